"""Logging for `drip serve` and `drip run`: text for people, `DRIP_LOG_FORMAT=json` for shippers.

Every record gets the id of the web request it belongs to (`request_id`, set by
web/request_id.py in a context variable, so it follows the request into the thread pool and
into uvicorn's access line); outside a request it is absent.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from datetime import datetime, timezone
from typing import IO

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("drip_request_id", default=None)
TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s%(request_suffix)s"
# color_message: uvicorn's copy of the message with terminal colours
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id", "request_suffix", "color_message"}


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record that passes the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = REQUEST_ID.get()
        record.request_id = rid
        record.request_suffix = f" request_id={rid}" if rid else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id,
    anything passed in `extra=`, and the traceback as one string field."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            out["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(fmt: str | None = None, *, level: int = logging.INFO, stream: IO[str] | None = None,
                      force: bool = False) -> logging.Handler | None:
    """Put drip's handler, in `fmt` (default: DRIP_LOG_FORMAT), on the root logger.

    Like `logging.basicConfig`, it leaves a root logger alone that someone else already set up
    (a host application, pytest), unless `force`; a handler of its own from an earlier call is
    replaced. Returns the handler it installed, or None."""
    root = logging.getLogger()
    others = [h for h in root.handlers if not getattr(h, "_drip", False)]
    if others and not force:
        return None
    fmt = (fmt or os.environ.get("DRIP_LOG_FORMAT") or "text").lower()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._drip = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    for old in root.handlers[:]:
        if getattr(old, "_drip", False):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's own logging set-up (its default log_config, e.g. from an earlier server in the same
    # process) gives its loggers handlers of their own and stops them propagating: drip's lines
    # would lose uvicorn's access lines. Route them through this handler instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))  # not two lines every tick
    return handler
