"""Loads and validates the product catalog shipped in data/products.json."""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

from service_kit.collection import ID_PATTERN, Collection

DATA_FILE = Path(__file__).with_name("data") / "products.json"
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _check_money(value: object, where: str) -> None:
    # Prices travel as decimal strings with exactly two places: floats would round.
    try:
        amount = Decimal(str(value)) if isinstance(value, str) else None
    except InvalidOperation:
        amount = None
    if amount is None or amount.as_tuple().exponent != -2 or amount < 0:
        raise ValueError(f"{where}: price must be a decimal string with 2 places, got {value!r}")


def validate_product(product: dict) -> dict:
    where = f"product {product.get('id')!r}"
    if not isinstance(product.get("id"), str) or not ID_PATTERN.match(product["id"]):
        raise ValueError(f"{where}: id must match {ID_PATTERN.pattern}")
    for field in ("name", "description"):
        if not isinstance(product.get(field), str) or not product[field]:
            raise ValueError(f"{where}: {field} must be a non-empty string")
    _check_money(product.get("price"), where)
    if not isinstance(product.get("currency"), str) or not _CURRENCY.match(product["currency"]):
        raise ValueError(f"{where}: currency must be an ISO 4217 code")
    if not isinstance(product.get("stock"), int) or product["stock"] < 0:
        raise ValueError(f"{where}: stock must be a non-negative integer")
    return product


def load_catalog(path: Path = DATA_FILE) -> Collection:
    records = json.loads(path.read_text(encoding="utf-8"))
    return Collection([validate_product(record) for record in records], kind="product")
