"""Calls to the products and orders services.

One aiohttp ClientSession per process, created in the app's lifespan: keep-alive connections
pooled per backend, and a total timeout per call that covers connect, request and answer.
aiohttp rather than httpx because this service spends its CPU per backend call, and an aiohttp
call costs several times less CPU (docs/services.md, Backend calls).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
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


@contextmanager
def answer_of(backend: str) -> Iterator[None]:
    """Reading a backend's answer: a wrong shape (a missing field, a list for a map) is the
    backend's fault, reported as unavailable, not as an internal error of this service."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        logger.warning("backend answer had an unexpected shape", extra={"backend": backend})
        raise BackendUnavailable(backend, "answered with an unexpected shape") from None


def create_session(timeout: float) -> aiohttp.ClientSession:
    """The process's client; call it with the event loop running (in the lifespan)."""
    return aiohttp.ClientSession(
        # Idle connections are dropped after 30 s, before the backends' (75 s) and Envoy's
        # idle timeouts, so this side never reuses a connection the other side is closing.
        connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=30.0),
        timeout=aiohttp.ClientTimeout(total=timeout),
        # Backends are in-cluster names (or loopback): proxies from the environment must not
        # capture these calls.
        trust_env=False,
        skip_auto_headers=("User-Agent",),
    )


class Backend:
    def __init__(self, name: str, base_url: str, session: aiohttp.ClientSession) -> None:
        self.name = name
        self.base_url = base_url
        self.session = session

    async def get(self, path: str, params: dict[str, str | int], headers: dict[str, str]) -> dict:
        try:
            async with self.session.get(self.base_url + path, params=params, headers=headers) as response:
                status = response.status
                content = await response.read()
        except TimeoutError:
            raise BackendUnavailable(self.name, f"no answer within {self.session.timeout.total:g}s") from None
        except aiohttp.ClientError as error:
            logger.warning("backend call failed", extra={"backend": self.name, "error": type(error).__name__})
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
