"""Logging: stderr plus a rotating file, as text or JSON, every line tagged with its request."""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import re
import sys
from datetime import UTC, datetime

import orjson

from mn_api.application.context import request_id
from mn_api.config import Settings


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


# A URL's query string often holds a receiver's token: no log line keeps it, whichever
# library wrote the line (the HTTP client logs every request it sends).
_URL_QUERY = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#\"'<>]+)\?[^\s#\"'<>]*")


def redact_urls(text: str) -> str:
    return _URL_QUERY.sub(r"\1?redacted", text) if "?" in text else text


class SecretFilter(logging.Filter):
    """Writes each record's message out with URL query strings removed, and keeps only
    the name of an exception (a stack holds paths and values)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = redact_urls(message), None
        if record.exc_info:
            error = record.exc_info[1]
            record.msg, record.args = f"{record.getMessage()} ({type(error).__name__})", None
            record.exc_info = None
            record.exc_text = None
        record.stack_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        return orjson.dumps(entry).decode()


_listener: logging.handlers.QueueListener | None = None


def _stop_listener() -> None:
    """Write out what is still queued and stop the writer thread (safe to call twice)."""
    global _listener
    if _listener is not None:
        listener, _listener = _listener, None
        listener.stop()


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure_logging(settings: Settings) -> None:
    """Install the gateway's handlers on the root logger (once per process)."""
    formatter: logging.Formatter = (
        JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    try:
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                settings.log_file,
                maxBytes=settings.log_max_bytes,
                backupCount=settings.log_backup_count,
                encoding="utf-8",
            )
        )
        file_note = None
    except OSError as err:
        file_note = f"log file not writable ({err.strerror}); logging to stderr only"
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for handler in handlers:
        handler.setFormatter(formatter)
    # Requests only hand their records to a queue; a thread formats and writes them, so
    # a slow disk or a log rotation never holds up the event loop.
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    front = logging.handlers.QueueHandler(records)
    front.addFilter(RequestIdFilter())  # runs in the request's context, where the id is
    front.addFilter(SecretFilter())
    root.addHandler(front)
    root.setLevel(settings.log_level)
    global _listener
    _stop_listener()
    _listener = logging.handlers.QueueListener(records, *handlers)
    _listener.start()
    atexit.register(_stop_listener)
    # Uvicorn's own access log would repeat ours without the request id.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    if file_note:
        logging.getLogger("mn_api").warning(file_note)
