"""One JSON object per line on stdout, for every logger (app, uvicorn, access).

Only the fields below and explicit `extra=` fields are written; request headers
and bodies are never logged, so tokens or cookies cannot leak into logs.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from typing import Any

import orjson

_STANDARD_RECORD_FIELDS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime", "color_message"}
)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service or os.environ.get("SERVICE_NAME", "")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "service": self.service,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def logging_config(service: str, level: str = "INFO") -> dict[str, Any]:
    """A dictConfig for uvicorn's `log_config` that routes everything through JsonFormatter."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "service": service}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            # Propagate to root so that there is exactly one handler and one format.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            # Our AccessLogMiddleware writes richer access lines; uvicorn's own are off.
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
