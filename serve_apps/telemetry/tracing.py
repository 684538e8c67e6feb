"""Traces: the product's spans under Ray Serve's own.

Serve makes the proxy, router and replica spans and carries the context across every
``DeploymentHandle`` call (``ray/serve/_private/tracing_utils.py``); it installs one
``TracerProvider`` per Serve process, sampled ``ParentBased(TraceIdRatio)``, from the
cluster's ``tracing_config`` (``serve.start`` or a Serve config's ``tracing_config:``). The
product adds its spans to that provider through the OpenTelemetry API, so they nest under
Serve's and every handle call made inside one of them carries it on. Outside Serve (the CLI,
unit tests) the API's no-op tracer makes them free.

Where spans go is :func:`span_processors`, the exporter Serve's ``exporter_import_path``
names: a JSON-lines file per process under ``SALESBOOST_TRACE_DIR`` (one machine;
``salesboost trace`` reads it), or OTLP to a collector (production), by
``SALESBOOST_TRACE_EXPORTER``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from pydantic import BaseModel, ConfigDict, Field

EXPORTER_IMPORT_PATH = "serve_apps.telemetry.tracing:span_processors"
EXPORTER_ENV = "SALESBOOST_TRACE_EXPORTER"
TRACE_DIR_ENV = "SALESBOOST_TRACE_DIR"

# Span attribute keys the product sets (``salesboost trace`` finds a turn by them).
SESSION_ID = "salesboost.session_id"
TURN_SEQ = "salesboost.turn_seq"
TENANT_ID = "salesboost.tenant_id"
MODE = "salesboost.mode"
REQUEST_ID = "salesboost.request_id"

_tracer = trace.get_tracer("salesboost")

AttributeValue = str | bool | int | float


class TracingConfig(BaseModel):
    """Tracing for the whole cluster (Serve's ``tracing_config`` is cluster-wide)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Spans from every Serve process and the product.")
    exporter: Literal["file", "otlp"] = Field(
        "file",
        description="file: JSON lines under trace_dir, read by `salesboost trace`; otlp: to "
        "the collector at OTEL_EXPORTER_OTLP_ENDPOINT (the OpenTelemetry SDK's own variables).",
    )
    sampling_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="The share of turns and requests traced (their whole trace, or nothing). "
        "Every one on one machine; a small share under production traffic.",
    )

    def serve_tracing_config(self) -> dict[str, Any]:
        """The value of Serve's ``tracing_config`` (``serve.start`` or a Serve config)."""
        return {
            "enabled": self.enabled,
            "exporter_import_path": EXPORTER_IMPORT_PATH if self.enabled else "",
            "sampling_ratio": self.sampling_ratio,
        }

    def environment(self, trace_dir: Path) -> dict[str, str]:
        """What :func:`span_processors` reads in each Serve process."""
        return {EXPORTER_ENV: self.exporter, TRACE_DIR_ENV: str(trace_dir)}


def span_processors() -> list[Any]:
    """Serve's exporter hook (no arguments, by its contract): this process's span processors.

    Batched, so a span's end costs a queue append on the request's path; the file exporter
    flushes every half second so ``salesboost trace`` sees a turn soon after it.
    """
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if os.environ.get(EXPORTER_ENV, "file") == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return [BatchSpanProcessor(OTLPSpanExporter())]
    from serve_apps.telemetry.span_files import JsonLinesSpanExporter

    folder = Path(os.environ.get(TRACE_DIR_ENV) or _serve_spans_dir())
    return [BatchSpanProcessor(JsonLinesSpanExporter(folder), schedule_delay_millis=500)]


def _serve_spans_dir() -> str:
    from ray.serve._private.logging_utils import get_serve_logs_dir

    return os.path.join(get_serve_logs_dir(), "spans")


@contextmanager
def span(
    name: str, attributes: Mapping[str, AttributeValue | None] | None = None
) -> Iterator[Span]:
    """A product span, the current one inside the block (handle calls made in it carry it).

    An exception leaving the block marks the span as an error and is re-raised.
    """
    with _tracer.start_as_current_span(
        name, attributes=_present(attributes), record_exception=True
    ) as current:
        yield current


def start_span(name: str, attributes: Mapping[str, AttributeValue | None] | None = None) -> Span:
    """A child of the current span that the caller ends: for work whose span must not stay
    the current one across the ``await``s and ``yield``s it spans (a reply's stream)."""
    return _tracer.start_span(name, attributes=_present(attributes))


@contextmanager
def root_span(
    name: str, attributes: Mapping[str, AttributeValue | None] | None = None
) -> Iterator[Span]:
    """A span that starts a trace of its own, linked to the span around it.

    One trace per conversation turn: a WebSocket is one long Serve request, so its turns
    would otherwise all be one trace as long as the conversation.
    """
    around = trace.get_current_span().get_span_context()
    links = [Link(around)] if around.is_valid else []
    with _tracer.start_as_current_span(
        name,
        context=Context(),
        kind=SpanKind.SERVER,
        attributes=_present(attributes),
        links=links,
        record_exception=True,
    ) as current:
        yield current


def set_attributes(current: Span, attributes: Mapping[str, AttributeValue | None]) -> None:
    current.set_attributes(_present(attributes))


def mark_error(current: Span, code: str) -> None:
    """A failure that is answered (a typed error event), not raised."""
    current.set_status(Status(StatusCode.ERROR, code))
    current.set_attribute("salesboost.error_code", code)


def enabled_here() -> bool:
    """Whether this process exports spans (Serve set up its provider from the tracing config)."""
    from opentelemetry.sdk.trace import TracerProvider

    return isinstance(trace.get_tracer_provider(), TracerProvider)


def trace_database_and_redis(sync_engine: Any) -> None:
    """Database statements and Redis commands as child spans, by OpenTelemetry's own
    instrumentations: SQL as the driver sees it (parameters bound apart, so no values), Redis
    commands with their arguments replaced by ``?``. Only where spans are exported: with
    tracing off they would cost a no-op span per call."""
    if not enabled_here():
        return
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # Its declared range ends below SQLAlchemy 2.1, whose engine events (all it uses) are
    # unchanged: tests/integration/test_observability.py checks the statements' spans.
    SQLAlchemyInstrumentor().instrument(
        engine=sync_engine, enable_commenter=False, skip_dep_check=True
    )
    redis = RedisInstrumentor()
    if not redis.is_instrumented_by_opentelemetry:
        redis.instrument()


def untraced() -> Any:
    """A block whose database and Redis calls make no spans (periodic probes would otherwise
    each be a trace of their own)."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    return suppress_instrumentation()


def current_ids() -> tuple[str, str] | None:
    """The current trace and span ids (hex), for log lines; None outside a sampled span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _present(attributes: Mapping[str, AttributeValue | None] | None) -> dict[str, AttributeValue]:
    return {k: v for k, v in (attributes or {}).items() if v is not None}
