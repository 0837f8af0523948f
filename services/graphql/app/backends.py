"""Calls to the products and orders services.

One HttpClient per process (app/http_client.py: keep-alive connections pooled per backend).
Every call is bounded by a total deadline covering connect, headers and body.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote_plus

import orjson
from graphql import GraphQLError

from app.http_client import HttpClient, HttpError, Origin

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


@contextmanager
def answer_of(backend: str) -> Iterator[None]:
    """Reading a backend's answer: a wrong shape (a missing field, a list for a map) is the
    backend's fault, reported as unavailable, not as an internal error of this service."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        logger.warning("backend answer had an unexpected shape", extra={"backend": backend})
        raise BackendUnavailable(backend, "answered with an unexpected shape") from None


# Characters a query value may carry as they are (RFC 3986 unreserved, and the comma
# that separates ids); ids and cursors are made of these.
_PLAIN_QUERY_VALUE = re.compile(r"[A-Za-z0-9._~,-]*")


def query_string(params: dict[str, str | int]) -> str:
    """urlencode(params), but values of plain characters go as they are: urlencode quotes
    character by character, which for the 40-odd ids of a page cost 0.05 ms a call."""
    return "&".join(f"{quote_plus(name)}={_query_value(str(value))}" for name, value in params.items())


def _query_value(text: str) -> str:
    return text if _PLAIN_QUERY_VALUE.fullmatch(text) else quote_plus(text)


class Backend:
    def __init__(self, name: str, base_url: str, client: HttpClient, timeout: float) -> None:
        self.name = name
        self.origin = Origin.parse(base_url)
        self.client = client
        self.timeout = timeout

    async def get(self, path: str, params: dict[str, str | int], headers: dict[str, str]) -> dict:
        target = f"{path}?{query_string(params)}" if params else path
        try:
            async with asyncio.timeout(self.timeout):
                status, content = await self.client.get(self.origin, target, headers)
        except TimeoutError:
            raise BackendUnavailable(self.name, f"no answer within {self.timeout:g}s") from None
        except HttpError as error:
            logger.warning("backend call failed", extra={"backend": self.name, "error": str(error)})
            raise BackendUnavailable(self.name, "connection failed") from None
        if status == 422:
            raise self._bad_argument(content)
        if status != 200:
            raise BackendUnavailable(self.name, f"answered HTTP {status}")
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            raise BackendUnavailable(self.name, "answered with invalid JSON") from None

    def _bad_argument(self, content: bytes) -> ShopError:
        try:
            field = orjson.loads(content)["fields"][0]
            return BadArgument(_ARGUMENT_NAMES.get(field["field"], field["field"]), field["message"])
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            return BackendUnavailable(self.name, "rejected the request")
