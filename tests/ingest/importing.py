"""Helpers of the import tests: files in each layout."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import polars as pl


def order_row(i: int, customer: str | None = None, **extra: Any) -> dict[str, Any]:
    lines = [
        {
            "product_id": f"p{i % 7}",
            "name": "Mug",
            "category": "home",
            "quantity": 1 + i % 3,
            "unit_price": 1250,
        }
    ]
    total = lines[0]["quantity"] * 1250 + 490
    return {
        "id": f"o-{i}",
        "customer_id": customer or f"c-{i % 5}",
        "placed_at": f"2025-03-{1 + i % 28:02d}T10:00:00+01:00",
        "currency": "EUR",
        "lines": json.dumps(lines),
        "shipping": 490,
        "discounts": 0,
        "tax": 0,
        "total": total,
        "email": "",
        **extra,
    }


def write_csv(path: Path, rows: list[dict[str, Any]], delimiter: str = ",") -> Path:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, delimiter=delimiter)
        w.writeheader()
        w.writerows(rows)
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    pl.DataFrame(rows).write_parquet(path)
    return path


SHOPIFY_COLUMNS = [
    "Name",
    "Email",
    "Financial Status",
    "Paid at",
    "Fulfillment Status",
    "Fulfilled at",
    "Accepts Marketing",
    "Currency",
    "Subtotal",
    "Shipping",
    "Taxes",
    "Total",
    "Discount Code",
    "Discount Amount",
    "Shipping Method",
    "Created at",
    "Lineitem quantity",
    "Lineitem name",
    "Lineitem price",
    "Lineitem compare at price",
    "Lineitem sku",
    "Lineitem requires shipping",
    "Lineitem taxable",
    "Lineitem fulfillment status",
    "Billing Name",
    "Id",
]


def shopify_rows() -> list[dict[str, Any]]:
    """#1001: two lines, a discount, tax on top; #1002: taxes included in prices."""
    first = {
        "Name": "#1001",
        "Email": "Ana@Example.com",
        "Financial Status": "paid",
        "Paid at": "2025-03-01 10:05:00 +0100",
        "Accepts Marketing": "yes",
        "Currency": "EUR",
        "Subtotal": "40.00",
        "Shipping": "4.90",
        "Taxes": "8.98",
        "Total": "53.88",
        "Discount Code": "SPRING",
        "Discount Amount": "5.00",
        "Created at": "2025-03-01 10:00:00 +0100",
        "Lineitem quantity": "2",
        "Lineitem name": "T-shirt",
        "Lineitem price": "15.00",
        "Lineitem sku": "TS-1",
        "Billing Name": "Ana Lima",
        "Id": "5550001",
    }
    second_line = {
        "Name": "#1001",
        "Email": "Ana@Example.com",
        "Lineitem quantity": "1",
        "Lineitem name": "Cap",
        "Lineitem price": "15.00",
        "Lineitem sku": "CAP-1",
    }
    other = {
        "Name": "#1002",
        "Email": "",
        "Financial Status": "paid",
        "Currency": "EUR",
        "Subtotal": "20.00",
        "Shipping": "0.00",
        "Taxes": "3.33",
        "Total": "20.00",
        "Discount Amount": "0.00",
        "Created at": "2025-03-02 09:00:00 +0100",
        "Lineitem quantity": "1",
        "Lineitem name": "Socks",
        "Lineitem price": "20.00",
        "Lineitem sku": "SO-1",
        "Id": "5550002",
    }
    return [{c: r.get(c, "") for c in SHOPIFY_COLUMNS} for r in (first, second_line, other)]


def woocommerce_rows() -> list[dict[str, Any]]:
    return [
        {
            "order_id": "727",
            "order_number": "727",
            "order_date": "2025-03-05 10:00:00",
            "status": "wc-completed",
            "shipping_total": "10.00",
            "tax_total": "1.35",
            "discount_total": "5.00",
            "order_total": "36.35",
            "order_currency": "EUR",
            "customer_email": "marie@example.fr",
            "customer_id": "26",
            "line_item_1": "name:Woo Single #1|product_id:93|sku:|quantity:2|total:6.00|"
            "sub_total:6.00|tax:0.45",
            "line_item_2": "name:Ship Your Idea|product_id:23|sku:SYI|quantity:1|total:19.00|"
            "sub_total:24.00|tax:0.90",
        }
    ]
