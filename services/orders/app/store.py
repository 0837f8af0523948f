"""Loads and validates the orders shipped in data/orders.json, and indexes them by customer."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from service_kit.collection import ID_PATTERN, Collection

DATA_FILE = Path(__file__).with_name("data") / "orders.json"
STATUSES = frozenset({"pending", "paid", "shipped", "delivered", "cancelled"})


def _money(value: object, where: str) -> Decimal:
    try:
        amount = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        amount = None
    if amount is None or amount.as_tuple().exponent != -2 or amount < 0:
        raise ValueError(f"{where}: unit_price must be a decimal string with 2 places, got {value!r}")
    return amount


def validate_order(order: dict) -> dict:
    where = f"order {order.get('id')!r}"
    for field in ("id", "customer_id"):
        if not isinstance(order.get(field), str) or not ID_PATTERN.match(order[field]):
            raise ValueError(f"{where}: {field} must match {ID_PATTERN.pattern}")
    if order.get("status") not in STATUSES:
        raise ValueError(f"{where}: status must be one of {sorted(STATUSES)}")
    try:
        datetime.fromisoformat(order["created_at"].replace("Z", "+00:00"))
    except (KeyError, AttributeError, ValueError):
        raise ValueError(f"{where}: created_at must be an ISO 8601 timestamp") from None
    items = order.get("items")
    if not isinstance(items, list) or not items:
        raise ValueError(f"{where}: items must be a non-empty list")
    total = Decimal("0.00")
    for item in items:
        if not isinstance(item.get("product_id"), str) or not ID_PATTERN.match(item["product_id"]):
            raise ValueError(f"{where}: item product_id must match {ID_PATTERN.pattern}")
        if not isinstance(item.get("quantity"), int) or item["quantity"] < 1:
            raise ValueError(f"{where}: item quantity must be a positive integer")
        total += _money(item.get("unit_price"), where) * item["quantity"]
    # Derived once here so that no client has to add up money itself.
    return {**order, "total": str(total)}


class OrderStore:
    def __init__(self, records: list[dict]) -> None:
        self.orders = Collection([validate_order(record) for record in records], kind="order")
        by_customer: dict[str, list[int]] = defaultdict(list)
        for index, record in enumerate(self.orders.records):
            by_customer[record["customer_id"]].append(index)
        self.by_customer = dict(by_customer)


def load_orders(path: Path = DATA_FILE) -> OrderStore:
    return OrderStore(json.loads(path.read_text(encoding="utf-8")))
