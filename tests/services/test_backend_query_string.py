"""The query strings of backend calls: what urlencode would send, read back the same."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest

GRAPHQL_SERVICE = Path(__file__).resolve().parents[2] / "services" / "graphql"
for path in (GRAPHQL_SERVICE, GRAPHQL_SERVICE.parent / "common"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from app.backends import query_string  # noqa: E402


@pytest.mark.parametrize("params", [
    {"ids": ",".join(f"p{n:03d}" for n in range(40)), "limit": 40},
    {"customer_id": "c-001_x.y~", "limit": 1, "cursor": "o0042"},
    {"cursor": "a b&c=d/é%+?#", "limit": 5},
    {"ids": "p001,,p002,", "offset": 0},
    {"ids": ""},
    {"flag": True, "negative": -3},
])
def test_backends_read_the_same_parameters_urlencode_would_send(params: dict) -> None:
    assert parse_qsl(query_string(params), keep_blank_values=True) == parse_qsl(urlencode(params), keep_blank_values=True)


def test_ids_and_cursors_go_unquoted_and_everything_else_is_quoted() -> None:
    assert query_string({"ids": "p001,p002", "limit": 2}) == "ids=p001,p002&limit=2"
    assert query_string({"cursor": "a&limit=1000"}) == "cursor=a%26limit%3D1000"
    assert query_string({"cursor": "x y"}) == "cursor=x+y"
