"""JSON logs: one line per event, with the ids that find it again, and nothing secret.

Every line carries the Serve request id, the session, tenant and turn it belongs to (bound
with :func:`log_context` where they are known) and the trace and span ids of the current
span, so a line leads to its trace (``salesboost trace``) and back. Lines never carry a
trainee's message text, a password, a token or a secret: the code logs ids and reasons, not
content, and a last filter masks what looks like a credential should one slip into a line.

The product's loggers are ``salesboost.*``; in a replica they write to standard error, which
Ray keeps in the worker's log file (and a log collector ships). Serve's own loggers write
JSON through Serve's ``logging_config`` (``encoding: JSON``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

from serve_apps.telemetry.tracing import current_ids

LOG_LEVEL_ENV = "SALESBOOST_LOG_LEVEL"
LOG_FORMAT_ENV = "SALESBOOST_LOG_FORMAT"
PRODUCT_LOGGER = "salesboost"

# Immutable by use: each binding sets a new mapping.
_context: ContextVar[Mapping[str, str | int]] = ContextVar(
    "salesboost_log_context", default=MappingProxyType({})
)

# Credentials that must never reach a log line, whatever a message interpolates: bearer and
# JWT tokens, key=value secrets, and URLs with a password in them.
_CREDENTIALS = [
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer [redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), "[redacted jwt]"),
    (
        re.compile(
            r"(?i)\b(password|passwd|secret|token|api_key|ticket)(\"?\s*[=:]\s*\"?)[^\s\"&,}]+"
        ),
        r"\1\2[redacted]",
    ),
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1[redacted]@"),
]


def redact(text: str) -> str:
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    return text


@contextmanager
def log_context(**ids: str | int | None) -> Iterator[None]:
    """Ids (session_id, tenant_id, turn_seq...) added to every line logged inside the block,
    in this task and the tasks it starts."""
    token = _context.set({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class _ContextFilter(logging.Filter):
    """Adds the bound ids, the trace ids and Serve's request id; masks credentials."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self._component = component

    def filter(self, record: logging.LogRecord) -> bool:
        record.component = self._component
        for key, value in _context.get().items():
            setattr(record, key, value)
        ids = current_ids()
        if ids is not None:
            record.trace_id, record.span_id = ids
        request_id = _serve_request_id()
        if request_id:
            record.request_id = request_id
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _serve_request_id() -> str | None:
    try:
        from ray.serve.context import _get_serve_request_context

        return _get_serve_request_context().request_id or None
    except Exception:  # outside Serve
        return None


def configure_logging(
    component: str,
    *,
    level: str | None = None,
    log_format: Literal["json", "text"] | None = None,
    whole_process: bool = False,
) -> None:
    """The product's loggers of this process, once: JSON (or text) lines on standard error
    at the configured level (``SALESBOOST_LOG_LEVEL``, ``SALESBOOST_LOG_FORMAT`` in a
    replica's environment, or the arguments). ``whole_process``: every logger of the
    process (a command's), not only the product's (a replica's, where Ray and vLLM keep
    their own)."""
    level = level or os.environ.get(LOG_LEVEL_ENV, "INFO")
    chosen = log_format or os.environ.get(LOG_FORMAT_ENV, "json")
    logger = logging.getLogger("" if whole_process else PRODUCT_LOGGER)
    logger.setLevel(level.upper())
    if not whole_process:
        logger.propagate = False
    for old in list(logger.handlers):
        if getattr(old, "salesboost", False):
            logger.removeHandler(old)
    handler: Any = logging.StreamHandler(sys.stderr)
    handler.salesboost = True  # ours, replaced when configured again
    handler.addFilter(_ContextFilter(component))
    if chosen == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
