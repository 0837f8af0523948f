"""Reading values that may be unknown, and what a URN says.

Values the engine does not know yet (during `pulumi preview`) arrive as sentinel strings, and the
engine's property proxy raises `UnknownValueError` when one is read. Every read in the pack goes
through `get`/`elements`/`entries`, which turn an unknown into `UNKNOWN`; a check that meets `UNKNOWN`
says nothing (it cannot tell yet) and the same check runs again on `pulumi up`, when the value is known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

try:
    from pulumi_policy.proxy import UnknownValueError
except ImportError:  # the Pulumi program reads its own plain specs with these helpers, without pulumi-policy
    class UnknownValueError(Exception):  # type: ignore[no-redef]
        """Never raised outside the policy engine's proxy."""


class _Unknown:
    _instance: Optional["_Unknown"] = None

    def __new__(cls) -> "_Unknown":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        return False


UNKNOWN = _Unknown()

# The engine's sentinels for values computed later (pulumi_policy.proxy), for values not proxied.
_UNKNOWN_SENTINELS = frozenset({
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7", "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
    "04da6b54-80e4-46f7-96ec-b56ff0331ba9", "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
    "030794c1-ac77-496b-92df-f27374a8bd58", "e48ece36-62e2-4504-bad9-02848725956a",
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
})


def is_unknown(value: Any) -> bool:
    return value is UNKNOWN or (isinstance(value, str) and value in _UNKNOWN_SENTINELS)


def _known(value: Any) -> Any:
    return UNKNOWN if is_unknown(value) else value


def is_mapping(value: Any) -> bool:
    return isinstance(value, Mapping)


def is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def get(value: Any, *path: Any, default: Any = None) -> Any:
    """`value[path[0]][path[1]]...`: `default` when absent or of another shape, UNKNOWN when unknown."""
    current = _known(value)
    for key in path:
        if current is UNKNOWN:
            return UNKNOWN
        try:
            if isinstance(key, int):
                if not is_list(current) or not -len(current) <= key < len(current):
                    return default
            elif not is_mapping(current):
                return default
            current = _known(current[key])
        except KeyError:
            return default
        except UnknownValueError:
            return UNKNOWN
    return current


def elements(value: Any) -> list:
    """The items of a list (each possibly UNKNOWN); [] for anything that is not a list."""
    if not is_list(value):
        return []
    found = []
    for index in range(len(value)):
        try:
            found.append(_known(value[index]))
        except UnknownValueError:
            found.append(UNKNOWN)
    return found


def entries(value: Any) -> list[tuple[Any, Any]]:
    """The (key, value) pairs of a mapping (values possibly UNKNOWN); [] for anything else."""
    if not is_mapping(value):
        return []
    found = []
    for key in list(iter(value)):
        try:
            found.append((key, _known(value[key])))
        except UnknownValueError:
            found.append((key, UNKNOWN))
    return found


def number(value: Any) -> Any:
    """A numeric value (numbers may arrive as 4.0 or "4"); UNKNOWN stays UNKNOWN, anything else None."""
    if value is UNKNOWN or value is None or isinstance(value, bool):
        return UNKNOWN if value is UNKNOWN else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def describe(value: Any) -> str:
    return "unknown" if value is UNKNOWN else repr(value)


def stack_of(urn: str) -> str:
    """urn:pulumi:<stack>::<project>::<type chain>::<name>"""
    return urn.split("::")[0].split(":")[-1] if urn.startswith("urn:pulumi:") else ""


def type_chain(urn: str) -> list[str]:
    """The types of a resource's ancestors and its own, outermost first, from its URN."""
    parts = urn.split("::")
    return parts[2].split("$") if len(parts) >= 4 else []


def created_inside_eks_component(urn: str) -> bool:
    """True for resources pulumi-eks creates inside its components (their type chain has an eks: type)."""
    return any(t.startswith("eks:") for t in type_chain(urn)[:-1])
