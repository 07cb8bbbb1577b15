"""Shop ingestion: connectors (webhooks and sync), bulk importers and their conversions."""
