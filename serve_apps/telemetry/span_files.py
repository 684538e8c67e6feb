"""Spans as JSON lines on one machine: the file exporter, and what ``salesboost trace`` reads.

Each process appends to a file of its own (``spans-<pid>.jsonl``), so processes never
interleave lines and no file lock is needed; a reader takes only lines that end in a newline,
so a file being written is read up to its last whole span.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from pydantic import BaseModel, ConfigDict, ValidationError

from serve_apps.telemetry.tracing import SESSION_ID, TURN_SEQ

logger = logging.getLogger(__name__)

SPAN_FILE_GLOB = "*.jsonl"


class JsonLinesSpanExporter(SpanExporter):
    """Appends each span as one JSON line to ``<folder>/spans-<pid>.jsonl``.

    A batch is written with unbuffered writes, so it is on disk for a reader as soon as
    :meth:`export` returns. An error is a FAILURE result and a log line, never an exception
    (the SDK's worker thread would only log it, and the request must not notice).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid: int | None = None
        self._failing = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            payload = "".join(
                json.dumps(span_line(span), separators=(",", ":"), default=str) + "\n"
                for span in spans
            ).encode()
        except Exception as exc:  # a span the SDK accepted but JSON cannot write
            return self._failed(f"a span could not be written as JSON: {exc!r}")
        with self._lock:
            try:
                fd = self._file()
                written = memoryview(payload)
                while written:
                    written = written[os.write(fd, written) :]
            except OSError as exc:
                self._close()
                return self._failed(f"spans not written to {self.folder}: {exc}")
        self._failing = False
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every batch is already written through

    def shutdown(self) -> None:
        with self._lock:
            self._close()

    def _file(self) -> int:
        pid = os.getpid()
        if self._fd is not None and self._pid == pid:
            return self._fd
        # First export, or a forked child holding its parent's descriptor: a file of its own.
        self._close()
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / f"spans-{pid}.jsonl", os.O_RDWR | os.O_APPEND | os.O_CREAT)
        try:
            # An earlier process with this pid may have died mid-line: end that line, so the
            # next span is not glued to it.
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.write(fd, b"\n")
        except OSError:
            os.close(fd)
            raise
        self._fd, self._pid = fd, pid
        return fd

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)

    def _failed(self, reason: str) -> SpanExportResult:
        # Once per run of failures: a full disk would otherwise log every half second.
        if not self._failing:
            logger.warning("%s", reason)
        self._failing = True
        return SpanExportResult.FAILURE


def span_line(span: ReadableSpan) -> dict[str, Any]:
    """A span as the JSON object of its line."""
    context = span.get_span_context()
    parent = span.parent
    return {
        "trace_id": _trace_hex(context.trace_id) if context else None,
        "span_id": _span_hex(context.span_id) if context else None,
        "parent_id": _span_hex(parent.span_id) if parent is not None and parent.is_valid else None,
        "name": span.name,
        "kind": span.kind.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "attributes": _plain(span.attributes),
        "links": [
            {
                "trace_id": _trace_hex(link.context.trace_id),
                "span_id": _span_hex(link.context.span_id),
            }
            for link in span.links
        ],
        "resource": _plain(span.resource.attributes) if span.resource is not None else {},
    }


def _trace_hex(trace_id: int) -> str:
    return format(trace_id, "032x")


def _span_hex(span_id: int) -> str:
    return format(span_id, "016x")


def _plain(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    # The SDK keeps sequence values as tuples; a line keeps them as lists.
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in (attributes or {}).items()
    }


class SpanRecord(BaseModel):
    """One span as read back from a line."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str
    status_description: str | None = None
    attributes: dict[str, Any] = {}
    links: list[dict[str, str]] = []
    resource: dict[str, Any] = {}

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    @property
    def is_error(self) -> bool:
        return self.status == "ERROR"


def read_spans(folder: Path) -> list[SpanRecord]:
    """Every span in the folder's ``*.jsonl`` files.

    A file's text after its last newline is a line still being written: left for next time.
    A whole line that is not a span is skipped with a warning.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no span folder {folder}")
    spans: list[SpanRecord] = []
    for path in sorted(folder.glob(SPAN_FILE_GLOB)):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # removed while the folder was read
        whole_lines, _, _being_written = data.rpartition(b"\n")
        for number, line in enumerate(whole_lines.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                spans.append(SpanRecord.model_validate_json(line))
            except ValidationError:
                logger.warning("%s line %d is not a span: skipped", path, number)
    return spans


@dataclass(eq=False)
class SpanNode:
    """A span in a trace's tree; ``orphan``: its parent is not in the files (another
    process's file not flushed yet, or a span that was never exported), so it hangs
    under the root."""

    span: SpanRecord
    children: list[SpanNode] = field(default_factory=list)
    orphan: bool = False


@dataclass(eq=False)
class TraceTree:
    """One trace as a tree from its root, children by start time."""

    root: SpanNode

    @property
    def trace_id(self) -> str:
        return self.root.span.trace_id

    @property
    def session_id(self) -> Any:
        return self.root.span.attributes.get(SESSION_ID)

    @property
    def turn_seq(self) -> Any:
        return self.root.span.attributes.get(TURN_SEQ)

    @property
    def start_ns(self) -> int:
        return min(node.span.start_ns for node, _ in self.walk())

    @property
    def end_ns(self) -> int:
        return max(node.span.end_ns for node, _ in self.walk())

    def walk(self) -> Iterator[tuple[SpanNode, int]]:
        """Each node with its depth, parents before children (depth first, by start)."""
        seen: set[str] = set()
        stack = [(self.root, 0)]
        while stack:
            node, depth = stack.pop()
            if node.span.span_id in seen:
                continue
            seen.add(node.span.span_id)
            yield node, depth
            stack.extend((child, depth + 1) for child in reversed(node.children))

    def spans(self) -> list[SpanRecord]:
        return [node.span for node, _ in self.walk()]


def turn_traces(
    spans: Iterable[SpanRecord], session_id: str, turn: int | None = None
) -> list[TraceTree]:
    """The traces of a session's turns (one turn, or all of them), by start time.

    A turn's trace is the one whose root (a span with no parent in the trace) carries the
    session id and the turn's sequence number (``tracing.root_span`` makes it).
    """
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    trees = []
    for trace_spans in by_trace.values():
        span_ids = {span.span_id for span in trace_spans}
        roots = [
            span
            for span in trace_spans
            if (span.parent_id is None or span.parent_id not in span_ids)
            and _is_turn_root(span, session_id, turn)
        ]
        if roots:
            # The true root (no parent at all) before a stray that only lost its parent.
            root = min(roots, key=lambda span: (span.parent_id is not None, span.start_ns))
            trees.append(_tree(root, trace_spans))
    return sorted(trees, key=lambda tree: tree.root.span.start_ns)


def _is_turn_root(span: SpanRecord, session_id: str, turn: int | None) -> bool:
    seq = span.attributes.get(TURN_SEQ)
    if span.attributes.get(SESSION_ID) != session_id:
        return False
    if not isinstance(seq, int) or isinstance(seq, bool):
        return False
    return turn is None or seq == turn


def _tree(root: SpanRecord, trace_spans: Sequence[SpanRecord]) -> TraceTree:
    nodes: dict[str, SpanNode] = {}
    for span in trace_spans:
        nodes.setdefault(span.span_id, SpanNode(span))  # a span written twice counts once
    root_node = nodes[root.span_id]
    for span_id, node in nodes.items():
        if span_id == root.span_id:
            continue
        parent = nodes.get(node.span.parent_id) if node.span.parent_id else None
        if parent is None:
            node.orphan = True
            root_node.children.append(node)
        else:
            parent.children.append(node)
    tree = TraceTree(root_node)
    # Spans whose parents point at each other (ids corrupted) are not reached from the root:
    # hang them under it as well, rather than lose them.
    reached = {node.span.span_id for node, _ in tree.walk()}
    for node in sorted(nodes.values(), key=lambda node: node.span.start_ns):
        if node.span.span_id not in reached:
            node.orphan = True
            root_node.children.append(node)
            reached.update(n.span.span_id for n, _ in TraceTree(node).walk())
    for node in nodes.values():
        node.children.sort(key=lambda child: (child.span.start_ns, child.span.name))
    return tree


# What a waterfall line shows of a span's attributes: an allow-list, never every value (an
# attribute can be long, or be text a person typed). Matched by the key's last dotted part
# (``gen_ai.usage.output_tokens`` -> ``output_tokens``), or by the whole key for db.*.
KEY_ATTRIBUTES = (
    "ttft_ms",
    "attempt",
    "retries",
    "input_tokens",
    "output_tokens",
    "hits",
    "error_code",
    "status_code",
)
DB_SYSTEM_KEYS = ("db.system", "db.system.name")
DB_STATEMENT_KEYS = ("db.operation.name", "db.operation", "db.statement", "db.query.text")
SHORT_VALUE_CHARS = 24
NAME_COLUMN_CHARS = 44


def key_attributes(attributes: Mapping[str, Any]) -> list[str]:
    """``label=value`` for the allow-listed attributes a span has, values kept short."""
    shown: dict[str, str] = {}
    for key in DB_SYSTEM_KEYS:
        if isinstance(attributes.get(key), str):
            shown.setdefault("db", _short(attributes[key]))
    for key in DB_STATEMENT_KEYS:
        value = attributes.get(key)
        if isinstance(value, str) and value.split():
            # The statement's verb only (SELECT, INSERT, GET): its text can hold anything.
            shown.setdefault("db.op", _short(value.split()[0].upper()))
    for key, value in attributes.items():
        label = key.rsplit(".", 1)[-1]
        if label in KEY_ATTRIBUTES and isinstance(value, str | int | float):
            shown.setdefault(label, _short(value))
    return [f"{label}={value}" for label, value in shown.items()]


def _short(value: str | int | float) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    text = " ".join(str(value).split())
    return text if len(text) <= SHORT_VALUE_CHARS else text[: SHORT_VALUE_CHARS - 1] + "…"


def render_waterfall(tree: TraceTree, width: int = 40) -> str:
    """The trace as text: one line per span (parents first), with its start from the trace's
    start and its duration in ms, a bar on a time axis ``width`` characters wide, and a few
    key attributes; error spans say ERROR, spans whose parent is missing say (orphan)."""
    width = max(width, 10)
    nodes = list(tree.walk())
    start_ns, end_ns = tree.start_ns, tree.end_ns
    total_ns = max(end_ns - start_ns, 1)
    names = [_name_cell(node, depth) for node, depth in nodes]
    name_width = max(len("span"), *(len(name) for name in names))
    lines = [
        f"trace {tree.trace_id}  session {tree.session_id}  turn {tree.turn_seq}  "
        f"{_ms(total_ns):.1f} ms",
        f"{'span':<{name_width}}  {'start ms':>9}  {'dur ms':>9}  {_axis(width, _ms(total_ns))}",
    ]
    for (node, _), name in zip(nodes, names, strict=True):
        span = node.span
        offset_ns = span.start_ns - start_ns
        notes = key_attributes(span.attributes)
        if span.is_error:
            notes.append(_error_note(span))
        if node.orphan:
            notes.append("(orphan)")
        line = (
            f"{name:<{name_width}}  {_ms(offset_ns):>9.1f}  {_ms(span.duration_ns):>9.1f}  "
            f"{_bar(offset_ns, span.duration_ns, total_ns, width)}  {' '.join(notes)}"
        )
        lines.append(line.rstrip())
    return "\n".join(lines)


def _name_cell(node: SpanNode, depth: int) -> str:
    name = "  " * depth + node.span.name
    if len(name) > NAME_COLUMN_CHARS:
        name = name[: NAME_COLUMN_CHARS - 1] + "…"
    return name


def _ms(ns: int) -> float:
    return ns / 1e6


def _axis(width: int, total_ms: float) -> str:
    end = f"{total_ms:.0f} ms"
    return "0" + end.rjust(width - 1)


def _bar(offset_ns: int, duration_ns: int, total_ns: int, width: int) -> str:
    first = min(width - 1, max(0, math.floor(offset_ns * width / total_ns)))
    last = min(width, max(first + 1, math.ceil((offset_ns + duration_ns) * width / total_ns)))
    return "─" * first + "█" * (last - first) + "─" * (width - last)


def _error_note(span: SpanRecord) -> str:
    # A code (``tracing.mark_error``) or an exception's type, not its message: the message
    # can hold anything (``--json`` has it whole).
    kind = (span.status_description or "").split(":", 1)[0].strip()
    return f"ERROR {_short(kind)}".rstrip() if kind else "ERROR"
