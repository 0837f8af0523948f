"""Settings of the GraphQL service, read once from the environment.

PRODUCTS_URL             base URL of the products service
                         (default http://products.e-commerce.svc.cluster.local:8080)
ORDERS_URL               base URL of the orders service
                         (default http://orders.e-commerce.svc.cluster.local:8080)
BACKEND_TIMEOUT_SECONDS  total time allowed for one backend call, connect to last byte
                         (default 2.0; keep it below the mesh's route timeout, about 5 s,
                         so the gateway answers with partial data before Envoy gives up)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PRODUCTS_URL = "http://products.e-commerce.svc.cluster.local:8080"
DEFAULT_ORDERS_URL = "http://orders.e-commerce.svc.cluster.local:8080"
DEFAULT_BACKEND_TIMEOUT_SECONDS = 2.0


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    products_url: str
    orders_url: str
    backend_timeout_seconds: float


def _base_url(name: str, default: str) -> str:
    value = os.environ.get(name, "") or default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise SettingsError(f"{name}={value!r}: expected an http(s) base URL such as {default}")
    return value.rstrip("/")


def load_settings() -> Settings:
    raw_timeout = os.environ.get("BACKEND_TIMEOUT_SECONDS", "") or str(DEFAULT_BACKEND_TIMEOUT_SECONDS)
    try:
        timeout = float(raw_timeout)
    except ValueError:
        timeout = -1.0
    if not 0.05 <= timeout <= 30:
        raise SettingsError(f"BACKEND_TIMEOUT_SECONDS={raw_timeout!r}: expected seconds between 0.05 and 30")
    return Settings(
        products_url=_base_url("PRODUCTS_URL", DEFAULT_PRODUCTS_URL),
        orders_url=_base_url("ORDERS_URL", DEFAULT_ORDERS_URL),
        backend_timeout_seconds=timeout,
    )
