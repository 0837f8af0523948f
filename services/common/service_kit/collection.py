"""An immutable, indexed, pre-serialised collection of records served read-only.

The data files are small and never change while a process runs, so every record is
serialised to JSON once at start and a page is assembled by joining bytes. Cursors
are opaque to clients: base64 of the last id returned, so a page boundary stays
stable even if a filter changes between calls.
"""

from __future__ import annotations

import base64
import binascii
import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence

import orjson

from service_kit.errors import FieldError

_ID = r"[A-Za-z0-9_-]{1,64}"
ID_PATTERN = re.compile(rf"^{_ID}$")
# Ids joined by commas, each as ID_PATTERN takes it: one match for a whole batch of ids.
ID_LIST_PATTERN = re.compile(rf"{_ID}(?:,{_ID})*")
MAX_LIMIT = 200
MAX_IDS = 200
_CURSOR_PREFIX = "v1:"


class Collection:
    def __init__(self, records: Sequence[dict], kind: str) -> None:
        self.kind = kind
        ordered = sorted(records, key=lambda record: record["id"])
        self.ids: list[str] = [record["id"] for record in ordered]
        self.position: dict[str, int] = {record_id: index for index, record_id in enumerate(self.ids)}
        if len(self.position) != len(self.ids):
            raise ValueError(f"{kind}: duplicate ids in data file")
        self.records: list[dict] = list(ordered)
        self.serialized: list[bytes] = [orjson.dumps(record) for record in ordered]
        self.all_positions: list[int] = list(range(len(ordered)))

    def __len__(self) -> int:
        return len(self.ids)

    def get_json(self, record_id: str) -> bytes | None:
        index = self.position.get(record_id)
        return None if index is None else self.serialized[index]

    def positions_of(self, ids: Iterable[str]) -> tuple[list[int], list[str]]:
        """Sorted positions of the known ids, and the unknown ids in request order."""
        found, missing = [], []
        for record_id in ids:
            index = self.position.get(record_id)
            if index is None:
                missing.append(record_id)
            else:
                found.append(index)
        found.sort()
        return found, missing

    def page(
        self,
        positions: Sequence[int],
        limit: int,
        cursor: str | None,
        offset: int | None,
        missing: list[str] | None = None,
    ) -> bytes:
        if cursor is not None and offset is not None:
            raise FieldError("cursor", "use either cursor or offset, not both")
        if cursor is not None:
            start = bisect_right(positions, self.position[decode_cursor(cursor, self)])
        else:
            start = offset or 0
        chunk = positions[start:start + limit]
        has_more = start + limit < len(positions)
        tail: dict = {
            "total": len(positions),
            "next_cursor": encode_cursor(self.ids[chunk[-1]]) if chunk and has_more else None,
        }
        if missing is not None:
            tail["missing"] = missing
        items = b",".join(self.serialized[index] for index in chunk)
        return b'{"items":[' + items + b"]," + orjson.dumps(tail)[1:]


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode((_CURSOR_PREFIX + last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, collection: Collection) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise FieldError("cursor", "not a cursor returned by this API") from None
    last_id = text[len(_CURSOR_PREFIX):] if text.startswith(_CURSOR_PREFIX) else None
    if last_id is None or last_id not in collection.position:
        raise FieldError("cursor", "not a cursor returned by this API")
    return last_id


def parse_ids(values: list[str] | None, field: str = "ids") -> list[str] | None:
    """Ids from repeated (?ids=a&ids=b) and/or comma-separated (?ids=a,b) parameters, de-duplicated."""
    if values is None:
        return None
    seen: dict[str, None] = {}
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not ID_PATTERN.match(part):
                raise FieldError(field, f"{part[:70]!r} is not a valid id (letters, digits, '-' or '_', at most 64)")
            seen[part] = None
    if not seen:
        raise FieldError(field, "give at least one id")
    if len(seen) > MAX_IDS:
        raise FieldError(field, f"at most {MAX_IDS} ids per request, got {len(seen)}")
    return list(seen)
