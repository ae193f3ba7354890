"""Logging: stderr plus a rotating file, as text or JSON, every line tagged with its request."""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import orjson

from mn_api.application.context import request_id
from mn_api.config import Settings
from mn_api.domain.urls import scrub_urls


def without_secrets(record: logging.LogRecord) -> None:
    """Writes the record's message out with every URL's userinfo and query string removed
    (they often hold a password or a receiver's token, whichever library wrote the line:
    the HTTP client logs every request it sends), and keeps only the name of an exception
    (a stack holds paths and values)."""
    message = scrub_urls(record.getMessage())
    if record.exc_info:
        message = f"{message} ({type(record.exc_info[1]).__name__})"
        record.exc_info = None
        record.exc_text = None
    record.msg, record.args, record.stack_info = message, None, None


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
        fields = getattr(record, "http", None)
        if isinstance(fields, dict):
            entry.update(fields)  # an access line: method, route, status, duration_ms
        return orjson.dumps(entry).decode()


class _RotatingFile(logging.handlers.RotatingFileHandler):
    """The standard rotating file, counting what it wrote instead of asking the file system
    (and formatting each record twice) for every line."""

    def __init__(self, filename: Path, max_bytes: int, backup_count: int) -> None:
        super().__init__(filename, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
        self._size = filename.stat().st_size if filename.exists() else 0

    def write_line(self, line: str) -> None:
        if self.maxBytes > 0 and self._size + len(line) >= self.maxBytes:
            self.doRollover()
            self._size = 0
        if self.stream is None:
            self.stream = self._open()
        self.stream.write(line)
        self._size += len(line)


class _Tee(logging.Handler):
    """Formats each record once and writes the line to stderr and to the rotating file,
    without a flush per line (the listener flushes once the queue is drained)."""

    def __init__(self, console: TextIO, file: _RotatingFile | None) -> None:
        super().__init__()
        self._console = console
        self._file = file

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            self._console.write(line)
            if self._file is not None:
                self._file.write_line(line)
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self._console.flush()
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        super().close()


class _Enqueue(logging.Handler):
    """The only handler requests touch: it tags the record with its request id, takes
    secrets out of its text and hands it to the writer thread's queue. No lock and no
    copy: nothing else reads the record."""

    def __init__(self, records: queue.SimpleQueue[logging.LogRecord]) -> None:
        super().__init__()
        self._records = records

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        record.request_id = request_id.get() or "-"
        without_secrets(record)
        self._records.put_nowait(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)


class _SecondsFormatter(logging.Formatter):
    """The standard text format, with the date and time worked out once a second."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._second = -1
        self._text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._text = time.strftime(self.default_time_format, self.converter(record.created))
        return f"{self._text},{int(record.msecs):03d}"


# After the first record of a burst, the writer waits this long for the others, so that
# it wakes (and takes the interpreter from the requests) a few times a second, not once a
# record.
GATHER_SECONDS = 0.05


class _DrainingListener(logging.handlers.QueueListener):
    """Handles every record waiting, then flushes once: a burst costs one write call."""

    def _monitor(self) -> None:
        records = self.queue
        while True:
            record = self.dequeue(True)
            if record is not self._sentinel:
                time.sleep(GATHER_SECONDS)
            while record is not self._sentinel:
                self.handle(record)
                try:
                    record = records.get_nowait()
                except queue.Empty:
                    break
            for handler in self.handlers:
                handler.flush()
            if record is self._sentinel:
                return


_listener: logging.handlers.QueueListener | None = None


def _stop_listener() -> None:
    """Write out what is still queued and stop the writer thread (safe to call twice)."""
    global _listener
    if _listener is not None:
        listener, _listener = _listener, None
        listener.stop()


class _WriteNow(logging.Handler):
    """Each record tagged, cleaned and written out as it is made, on the caller's thread."""

    def __init__(self, writer: logging.Handler) -> None:
        super().__init__()
        self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        record.request_id = request_id.get() or "-"
        without_secrets(record)
        self._writer.handle(record)
        self._writer.flush()


def write_synchronously() -> None:
    """From now on every line is written as it is logged, what was queued first. For the
    end of a process that may stop at any moment: a worker of several is ended by the
    stop signal uvicorn raises again after its graceful shutdown, and no line of that
    shutdown may be left in a queue."""
    listener = _listener
    if listener is None:
        return
    _stop_listener()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _Enqueue):
            root.removeHandler(handler)
    for writer in listener.handlers:
        root.addHandler(_WriteNow(writer))


def _console() -> TextIO:
    """stderr with its own buffer, so that lines go out once a burst is written rather than
    one system call each (sys.stderr flushes every line); sys.stderr itself when it has no
    descriptor (captured, or embedded)."""
    try:
        descriptor = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stderr
    return open(descriptor, "w", buffering=1 << 16, closefd=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure_logging(settings: Settings) -> None:
    """Install the gateway's handlers on the root logger (once per process)."""
    formatter: logging.Formatter = (
        JsonFormatter() if settings.log_format == "json" else _SecondsFormatter(TEXT_FORMAT)
    )
    file: _RotatingFile | None = None
    try:
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        file = _RotatingFile(settings.log_file, settings.log_max_bytes, settings.log_backup_count)
        file_note = None
    except OSError as err:
        file_note = f"log file not writable ({err.strerror}); logging to stderr only"
    writer = _Tee(_console(), file)
    writer.setFormatter(formatter)
    # No record needs the caller's frame, thread or process: not looking them up makes
    # each log call (one per request, at least) cheaper.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    # Requests only hand their records to a queue; a thread formats and writes them, so
    # a slow disk or a log rotation never holds up the event loop.
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    root.addHandler(_Enqueue(records))
    root.setLevel(settings.log_level)
    global _listener
    _stop_listener()
    _listener = _DrainingListener(records, writer)
    _listener.start()
    atexit.register(_stop_listener)
    # Uvicorn's own access log would repeat ours without the request id.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    if file_note:
        logging.getLogger("mn_api").warning(file_note)
