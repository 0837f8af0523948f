"""Calls to the products and orders services.

One httpx.AsyncClient per process (connection pooling and keep-alive); every call
is bounded by a total deadline, because httpx's own timeouts are per phase and a
backend dribbling bytes could otherwise hold a request open indefinitely.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlencode

import httpx
import orjson
from graphql import GraphQLError

logger = logging.getLogger("backends")

# REST parameter names as GraphQL argument names, so an error names what the client sent.
_ARGUMENT_NAMES = {"cursor": "after", "limit": "first", "customer_id": "customerId", "ids": "id", "offset": "offset"}


class ShopError(GraphQLError):
    """An error whose message is safe and useful to show to API clients."""


class BackendUnavailable(ShopError):
    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"{backend} service unavailable: {reason}",
                         extensions={"code": "BACKEND_UNAVAILABLE", "backend": backend})


class BadArgument(ShopError):
    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"invalid argument {argument}: {message}",
                         extensions={"code": "BAD_USER_INPUT", "argument": argument})


class Backend:
    def __init__(self, name: str, base_url: str, client: httpx.AsyncClient, timeout: float) -> None:
        self.name = name
        self.base_url = base_url
        self.client = client
        self.timeout = timeout

    async def get(self, path: str, params: dict[str, str | int], headers: dict[str, str]) -> dict:
        url = f"{self.base_url}{path}?{urlencode(params)}" if params else self.base_url + path
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.client.get(url, headers=headers)
        except TimeoutError:
            raise BackendUnavailable(self.name, f"no answer within {self.timeout:g}s") from None
        except httpx.HTTPError as error:
            logger.warning("backend call failed", extra={"backend": self.name, "error": type(error).__name__})
            raise BackendUnavailable(self.name, "connection failed") from None
        if response.status_code == 422:
            raise self._bad_argument(response)
        if response.status_code != 200:
            raise BackendUnavailable(self.name, f"answered HTTP {response.status_code}")
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise BackendUnavailable(self.name, "answered with invalid JSON") from None

    def _bad_argument(self, response: httpx.Response) -> ShopError:
        try:
            field = orjson.loads(response.content)["fields"][0]
            return BadArgument(_ARGUMENT_NAMES.get(field["field"], field["field"]), field["message"])
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            return BackendUnavailable(self.name, "rejected the request")


def make_client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=30.0),
        # Backends are addressed by in-cluster names or loopback; proxies from the
        # environment must not capture these calls.
        trust_env=False,
    )
