"""A local stand-in for a PrestaShop webservice (http.server in a thread on 127.0.0.1),
answering ``/api/{resource}`` in PrestaShop's JSON shapes with its filter/sort/limit rules."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ123456"


def customer(i: int, date_upd: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": i,
        "id_default_group": "3",
        "id_lang": "1",
        "lastname": "DOE",
        "firstname": f"John{i}",
        "email": f"pub{i}@prestashop.com",
        "birthday": "1970-01-15",
        "newsletter": "1",
        "newsletter_date_add": "2024-12-20 08:19:58",
        "optin": "0",
        "active": "1",
        "is_guest": "0",
        "date_add": "2024-12-20 08:19:58",
        "date_upd": date_upd,
        **extra,
    }


def order(i: int, id_customer: int, date_upd: str, state: str = "2") -> dict[str, Any]:
    return {
        "id": i,
        "id_address_delivery": "4",
        "id_cart": str(i),
        "id_currency": "1",
        "id_lang": "1",
        "id_customer": str(id_customer),
        "id_carrier": "2",
        "current_state": state,
        "module": "ps_checkpayment",
        "reference": f"REF{i:05d}",
        "payment": "Payment by check",
        "total_discounts": "0.000000",
        "total_discounts_tax_incl": "5.000000",
        "total_discounts_tax_excl": "4.170000",
        "total_paid": "56.800000",
        "total_paid_tax_incl": "56.800000",
        "total_paid_tax_excl": "47.330000",
        "total_paid_real": "0.000000",
        "total_products": "44.170000",
        "total_products_wt": "53.000000",
        "total_shipping": "8.800000",
        "total_shipping_tax_incl": "8.800000",
        "total_shipping_tax_excl": "7.330000",
        "date_add": "2025-01-10 14:30:00",
        "date_upd": date_upd,
        "associations": {
            "order_rows": [
                {
                    "id": "1",
                    "product_id": "2",
                    "product_attribute_id": "10",
                    "product_quantity": "1",
                    "product_name": "Blouse - Color : White, Size : M",
                    "product_reference": "demo_2",
                    "product_ean13": "",
                    "product_upc": "",
                    "product_price": "26.999852",
                    "unit_price_tax_incl": "27.000000",
                    "unit_price_tax_excl": "22.500000",
                },
                {
                    "id": "2",
                    "product_id": "3",
                    "product_attribute_id": "13",
                    "product_quantity": "2",
                    "product_name": "Printed Dress - Size : S",
                    "product_reference": "demo_3",
                    "product_ean13": "",
                    "product_upc": "",
                    "product_price": "13.000000",
                    "unit_price_tax_incl": "13.000000",
                    "unit_price_tax_excl": "10.830000",
                },
            ]
        },
    }


class Shop:
    def __init__(self) -> None:
        self.data: dict[str, list[dict[str, Any]]] = {
            "customers": [],
            "orders": [],
            "currencies": [{"id": 1, "iso_code": "EUR"}],
        }
        self.requests: list[dict[str, list[str]]] = []

    def answer(self, resource: str, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        rows = list(self.data.get(resource, []))
        if "filter[date_upd]" in query:
            lo, hi = query["filter[date_upd]"][0].strip("[]").split(",")
            rows = [r for r in rows if lo <= r["date_upd"] <= hi]
        rows.sort(key=lambda r: (r.get("date_upd", ""), r["id"]))
        if "limit" in query:
            offset, count = (int(x) for x in query["limit"][0].split(","))
            rows = rows[offset : offset + count]
        return rows


def _handler(shop: Shop) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            expected = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
            if self.headers.get("Authorization") != expected:
                return self._send(401, {"errors": [{"code": 25, "message": "bad key"}]})
            url = urlparse(self.path)
            resource = url.path.removeprefix("/api/")
            query = parse_qs(url.query)
            shop.requests.append({"resource": [resource], **query})
            rows = shop.answer(resource, query)
            return self._send(200, {resource: rows} if rows else [])

        def _send(self, status: int, body: Any) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *_: Any) -> None:
            pass

    return Handler


@contextmanager
def serve(shop: Shop) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(shop))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
