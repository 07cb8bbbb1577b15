"""Shop connectors: webhook payloads of Shopify and WooCommerce, mapped onto the same customer
and order services as the API (``source="shopify"``/``"woocommerce"``)."""
