"""Regenerates the shipped catalog and order data files.

The data is committed; this script only exists so the files can be rebuilt
deterministically (fixed seed) if their shape changes. Run from the repo root:
    python services/generate_data.py
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
PRODUCT_COUNT = 60
ORDER_COUNT = 240
CUSTOMER_COUNT = 40
CURRENCY = "EUR"

ADJECTIVES = ["Classic", "Compact", "Deluxe", "Eco", "Foldable", "Heavy-duty", "Minimal",
              "Portable", "Rugged", "Smart", "Vintage", "Wireless"]
NOUNS = [("Backpack", "bags"), ("Desk Lamp", "home"), ("Espresso Cup", "kitchen"),
         ("Headphones", "audio"), ("Kettle", "kitchen"), ("Notebook", "stationery"),
         ("Rain Jacket", "clothing"), ("Running Shoes", "clothing"), ("Speaker", "audio"),
         ("Water Bottle", "outdoor"), ("Tent", "outdoor"), ("Wall Clock", "home")]
STATUSES = ["pending", "paid", "shipped", "delivered", "cancelled"]


def article(word: str) -> str:
    return "An" if word[0].lower() in "aeiou" else "A"


def build_products(rng: random.Random) -> list[dict]:
    products = []
    for number in range(1, PRODUCT_COUNT + 1):
        adjective = ADJECTIVES[(number - 1) % len(ADJECTIVES)]
        noun, category = NOUNS[(number * 7) % len(NOUNS)]
        cents = rng.randrange(299, 24999)
        products.append({
            "id": f"p{number:03d}",
            "name": f"{adjective} {noun}",
            "description": f"{article(adjective)} {adjective.lower()} {noun.lower()} from our {category} range.",
            "price": str(Decimal(cents).scaleb(-2)),
            "currency": CURRENCY,
            "stock": rng.randrange(0, 500),
        })
    return products


def build_orders(rng: random.Random, products: list[dict]) -> list[dict]:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    orders = []
    for number in range(1, ORDER_COUNT + 1):
        chosen = rng.sample(products, rng.randint(1, 5))
        items = [{"product_id": p["id"], "quantity": rng.randint(1, 4), "unit_price": p["price"]}
                 for p in chosen]
        created = start + timedelta(minutes=number * 97 + rng.randrange(0, 60))
        orders.append({
            "id": f"o{number:04d}",
            "customer_id": f"c{rng.randint(1, CUSTOMER_COUNT):03d}",
            "status": rng.choice(STATUSES),
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "currency": CURRENCY,
            "items": items,
        })
    return orders


def main() -> None:
    rng = random.Random(20260101)
    products = build_products(rng)
    orders = build_orders(rng, products)
    for path, records in ((HERE / "products/app/data/products.json", products),
                          (HERE / "orders/app/data/orders.json", orders)):
        path.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {len(records)} records to {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
