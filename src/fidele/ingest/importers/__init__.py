"""Bulk import of customers and orders from CSV and Parquet (``fidele import``)."""
