"""The cheapest Python gateway this stack allows: the benchmark's `--floor` path, not a product.

A bare ASGI app under uvicorn (uvloop, httptools): no FastAPI, no Strawberry, no GraphQL. It makes
the same two backend calls as the GraphQL service, with the same HTTP client
(services/graphql/app/http_client.py), and answers the same page of 20 orders with their items'
products as JSON. Its latency over the direct baseline is what one more Python hop costs on this
machine before any GraphQL work; the GraphQL service's latency over it is the GraphQL work.
Run by bench/services_bench.py with PYTHONPATH=services/graphql and ORDERS_URL, PRODUCTS_URL set.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from app.http_client import HttpClient, Origin

PRODUCT_FIELDS = ("id", "name", "price", "currency", "stock")
client = HttpClient()
orders_origin = Origin.parse(os.environ["ORDERS_URL"])
products_origin = Origin.parse(os.environ["PRODUCTS_URL"])


async def page() -> bytes:
    _, raw_orders = await client.get(orders_origin, "/orders?limit=20", {})
    orders = orjson.loads(raw_orders)["items"]
    ids = list(dict.fromkeys(item["product_id"] for order in orders for item in order["items"]))
    _, raw_products = await client.get(products_origin, f"/products?ids={','.join(ids)}&limit={len(ids)}", {})
    products = {product["id"]: product for product in orjson.loads(raw_products)["items"]}
    nodes = [{
        "id": order["id"], "customerId": order["customer_id"], "status": order["status"],
        "createdAt": order["created_at"], "total": order["total"], "currency": order["currency"],
        "items": [{"quantity": item["quantity"], "unitPrice": item["unit_price"],
                   "product": {name: products[item["product_id"]][name] for name in PRODUCT_FIELDS}}
                  for item in order["items"]],
    } for order in orders]
    return orjson.dumps({"data": {"orders": {"nodes": nodes}}})


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        client.close()
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    # GET (the readiness probe) answers at once; POST does the gateway's work.
    answer = await page() if scope["method"] == "POST" else b"{}"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]})
    await send({"type": "http.response.body", "body": answer})
