"""Span files and `salesboost trace`: spans made by the real OpenTelemetry SDK, written by the
file exporter, read back as a turn's tree and drawn as a waterfall."""

from __future__ import annotations

# Before any TracerProvider exists: the SDK's after-fork hook in the child starts a thread
# pool, and would wait forever on the pool module's lock if that module registered its own
# fork hook (which releases the lock) after the provider's.
import concurrent.futures.thread  # noqa: F401
import json
import logging
import os
import time
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import Link, SpanKind
from typer.testing import CliRunner

from serve_apps.cli import app
from serve_apps.settings import get_settings
from serve_apps.telemetry.span_files import (
    JsonLinesSpanExporter,
    read_spans,
    render_waterfall,
    turn_traces,
)
from serve_apps.telemetry.tracing import SESSION_ID, TURN_SEQ

SESSION = "5e55-a"
OTHER_SESSION = "5e55-b"
SECRET_PROMPT = "the trainee's whole message, which no waterfall may print"
MS = 1_000_000


class Turns:
    """A span folder written through the SDK: two turns of SESSION, a turn of OTHER_SESSION,
    an HTTP request of SESSION (no turn), and a span whose parent never reached the files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.provider = TracerProvider(resource=Resource({"service.name": "salesboost-test"}))
        self.provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(folder)))
        self.tracer = self.provider.get_tracer("test")
        self.t0 = time.time_ns()

    def span(self, name, start_ms, end_ms, parent=None, **kwargs):
        context = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(
            name, context=context, start_time=self.t0 + start_ms * MS, **kwargs
        )
        span.end(end_time=self.t0 + end_ms * MS)
        return span

    def open_span(self, name, start_ms, parent=None, **kwargs):
        context = trace.set_span_in_context(parent) if parent is not None else None
        return self.tracer.start_span(
            name, context=context, start_time=self.t0 + start_ms * MS, **kwargs
        )

    def write(self) -> Turns:
        around = self.span("proxy", 0, 400, kind=SpanKind.SERVER)
        turn = self.open_span(
            "turn",
            0,
            kind=SpanKind.SERVER,
            attributes={SESSION_ID: SESSION, TURN_SEQ: 1},
            links=[Link(around.get_span_context())],
        )
        self.span(
            "store_turn",
            1,
            10,
            turn,
            attributes={
                "db.system": "postgresql",
                "db.statement": "insert into turns (text) values ($1)",
            },
        )
        retrieval = self.open_span("retrieval", 10, turn)
        self.span("embed", 11, 20, retrieval)
        retrieval.end(end_time=self.t0 + 30 * MS)
        with (
            pytest.raises(ValueError),
            self.tracer.start_as_current_span(
                "reviewer",
                context=trace.set_span_in_context(turn),
                start_time=self.t0 + 30 * MS,
                end_on_exit=False,
                attributes={"salesboost.attempt": 1},
            ) as reviewer,
        ):
            raise ValueError(SECRET_PROMPT)  # the SDK marks the span ERROR as it leaves
        reviewer.end(end_time=self.t0 + 40 * MS)
        self.span(
            "llm",
            40,
            95,
            turn,
            attributes={
                "salesboost.ttft_ms": 12.5,
                "gen_ai.usage.output_tokens": 42,
                "salesboost.prompt": SECRET_PROMPT,
            },
        )
        # A handle call whose span never ended (its process stopped): its child is an orphan.
        lost_parent = self.open_span("knowledge_call", 45, turn)
        self.span("rerank", 50, 60, lost_parent)
        turn.end(end_time=self.t0 + 100 * MS)

        self.span("turn", 120, 150, attributes={SESSION_ID: OTHER_SESSION, TURN_SEQ: 1})
        self.span("GET /v1/sessions", 160, 170, attributes={SESSION_ID: SESSION})
        second = self.open_span("turn", 200, attributes={SESSION_ID: SESSION, TURN_SEQ: 2})
        self.span("llm", 210, 290, second)
        second.end(end_time=self.t0 + 300 * MS)
        self.turn_one = turn
        return self

    @property
    def span_file(self) -> Path:
        return self.folder / f"spans-{os.getpid()}.jsonl"


@pytest.fixture
def turns(tmp_path) -> Turns:
    return Turns(tmp_path / "traces").write()


def names_and_depths(tree):
    return [(node.span.name, depth, node.orphan) for node, depth in tree.walk()]


def test_a_span_line_has_the_ids_status_attributes_links_and_resource(turns):
    lines = [json.loads(line) for line in turns.span_file.read_text().splitlines()]
    root = next(line for line in lines if line["attributes"].get(TURN_SEQ) == 1)
    by_name = {line["name"]: line for line in lines if line["trace_id"] == root["trace_id"]}
    by_name["proxy"] = next(line for line in lines if line["name"] == "proxy")
    context = turns.turn_one.get_span_context()
    assert root["trace_id"] == format(context.trace_id, "032x")
    assert root["span_id"] == format(context.span_id, "016x")
    assert root["parent_id"] is None
    assert root["kind"] == "SERVER"
    assert root["end_ns"] - root["start_ns"] == 100 * MS
    assert root["status"] == "UNSET"
    assert root["attributes"] == {SESSION_ID: SESSION, TURN_SEQ: 1}
    proxy = by_name["proxy"]
    assert root["links"] == [{"trace_id": proxy["trace_id"], "span_id": proxy["span_id"]}]
    assert root["resource"]["service.name"] == "salesboost-test"
    store = by_name["store_turn"]
    assert (store["parent_id"], store["kind"]) == (root["span_id"], "INTERNAL")
    reviewer = by_name["reviewer"]
    assert reviewer["status"] == "ERROR"
    assert reviewer["status_description"].startswith("ValueError")
    assert by_name["llm"]["attributes"]["salesboost.ttft_ms"] == 12.5
    assert len(root["trace_id"]) == 32 and len(root["span_id"]) == 16


def test_a_turn_is_read_back_as_a_tree_with_the_orphan_under_the_root(turns):
    (tree,) = turn_traces(read_spans(turns.folder), SESSION, 1)
    assert tree.session_id == SESSION and tree.turn_seq == 1
    assert names_and_depths(tree) == [
        ("turn", 0, False),
        ("store_turn", 1, False),
        ("retrieval", 1, False),
        ("embed", 2, False),
        ("reviewer", 1, False),
        ("llm", 1, False),
        ("rerank", 1, True),
    ]
    assert {span.trace_id for span in tree.spans()} == {tree.trace_id}
    assert [span.name for span in tree.spans() if span.is_error] == ["reviewer"]


def test_traces_are_chosen_by_session_and_turn(turns):
    spans = read_spans(turns.folder)
    assert [t.turn_seq for t in turn_traces(spans, SESSION, None)] == [1, 2]
    (second,) = turn_traces(spans, SESSION, 2)
    assert names_and_depths(second) == [("turn", 0, False), ("llm", 1, False)]
    (other,) = turn_traces(spans, OTHER_SESSION, 1)
    assert other.session_id == OTHER_SESSION and other.trace_id != second.trace_id
    assert turn_traces(spans, SESSION, 3) == []
    assert turn_traces(spans, "no-such-session", None) == []


def test_a_turn_number_is_compared_as_a_number_not_as_text_or_a_bool(turns):
    spans = read_spans(turns.folder)
    root = turn_traces(spans, SESSION, 1)[0].root.span
    as_text = root.model_copy(update={"attributes": {SESSION_ID: SESSION, TURN_SEQ: "1"}})
    as_bool = root.model_copy(update={"attributes": {SESSION_ID: SESSION, TURN_SEQ: True}})
    assert turn_traces([as_text], SESSION, 1) == []
    assert turn_traces([as_bool], SESSION, 1) == []


def test_a_line_still_being_written_is_left_for_later_and_a_bad_whole_line_skipped(turns, caplog):
    count = len(read_spans(turns.folder))
    whole = turns.span_file.read_text().splitlines()
    with turns.span_file.open("a") as out:
        out.write(whole[0][: len(whole[0]) // 2])  # a batch cut by the reader
    (turns.folder / "spans-999999.jsonl").write_text('{"trace_id": "0af76519')
    assert len(read_spans(turns.folder)) == count

    (turns.folder / "spans-999998.jsonl").write_text("not json\n" + whole[0] + "\n")
    with caplog.at_level(logging.WARNING):
        assert len(read_spans(turns.folder)) == count + 1
    assert "spans-999998.jsonl line 1 is not a span" in caplog.text


def test_a_line_left_half_written_by_a_dead_process_with_the_same_pid_is_ended(tmp_path):
    folder = tmp_path / "traces"
    folder.mkdir()
    (folder / f"spans-{os.getpid()}.jsonl").write_text('{"trace_id": "cut off')
    written = Turns(folder)
    written.span("turn", 0, 5, attributes={SESSION_ID: SESSION, TURN_SEQ: 7})
    (tree,) = turn_traces(read_spans(folder), SESSION, 7)
    assert tree.root.span.name == "turn"


def test_a_forked_process_writes_a_file_of_its_own(tmp_path):
    folder = tmp_path / "traces"
    exporter = JsonLinesSpanExporter(folder)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    tracer.start_span("in the parent").end()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's own exit status is the assertion
        try:
            tracer.start_span("in the child").end()
        finally:
            os._exit(0)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        [f"spans-{os.getpid()}.jsonl", f"spans-{child}.jsonl"]
    )
    assert "in the child" in (folder / f"spans-{child}.jsonl").read_text()
    assert "in the child" not in (folder / f"spans-{os.getpid()}.jsonl").read_text()


def test_an_unwritable_folder_is_a_failure_result_not_an_exception(tmp_path, caplog):
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(blocked / "traces")))
    span = provider.get_tracer("test").start_span("turn")
    span.end()
    exporter = JsonLinesSpanExporter(blocked / "traces")
    with caplog.at_level(logging.WARNING):
        assert exporter.export([span]) is SpanExportResult.FAILURE
    assert "spans not written" in caplog.text


def waterfall_rows(text):
    lines = text.splitlines()
    assert lines[0].startswith("trace ") and "session 5e55-a  turn 1  100.0 ms" in lines[0]
    return lines[2:]


def test_the_waterfall_has_a_line_per_span_in_start_order_with_offsets_and_bars(turns):
    (tree,) = turn_traces(read_spans(turns.folder), SESSION, 1)
    width = 40
    rows = waterfall_rows(render_waterfall(tree, width=width))
    names = [row.split()[0] for row in rows]
    assert names == ["turn", "store_turn", "retrieval", "embed", "reviewer", "llm", "rerank"]
    starts = [float(row.split()[1]) for row in rows]
    durations = [float(row.split()[2]) for row in rows]
    assert starts == [0.0, 1.0, 10.0, 11.0, 30.0, 40.0, 50.0]
    assert durations == [100.0, 9.0, 20.0, 9.0, 10.0, 55.0, 10.0]
    bars = [row.split()[3] for row in rows]
    assert all(len(bar) == width for bar in bars)
    assert bars[0] == "█" * width
    assert bars[5].index("█") == 16 and bars[5].rindex("█") == 37  # 40..95 of 100 ms
    assert rows[3].startswith("    embed")  # a grandchild, two levels in

    by_name = dict(zip(names, rows, strict=True))
    assert "db=postgresql" in by_name["store_turn"] and "db.op=INSERT" in by_name["store_turn"]
    assert "ERROR ValueError" in by_name["reviewer"] and "attempt=1" in by_name["reviewer"]
    assert "ttft_ms=12.5" in by_name["llm"] and "output_tokens=42" in by_name["llm"]
    assert by_name["rerank"].endswith("(orphan)")
    assert "ERROR" not in by_name["llm"] and "(orphan)" not in by_name["embed"]


def test_the_waterfall_never_prints_attribute_or_exception_text(turns):
    for tree in turn_traces(read_spans(turns.folder), SESSION):
        text = render_waterfall(tree)
        assert SECRET_PROMPT[:12] not in text
        assert "turns (text)" not in text


runner = CliRunner()


def test_trace_prints_each_turn_of_a_session(turns):
    result = runner.invoke(app, ["trace", SESSION, "--dir", str(turns.folder)])
    assert result.exit_code == 0, result.output
    headers = [line for line in result.output.splitlines() if line.startswith("trace ")]
    assert [header.split("turn ")[1].split()[0] for header in headers] == ["1", "2"]

    result = runner.invoke(app, ["trace", SESSION, "--turn", "2", "--dir", str(turns.folder)])
    assert result.exit_code == 0, result.output
    assert "turn 2" in result.output and "store_turn" not in result.output


def test_trace_json_gives_the_spans_with_their_depth(turns):
    result = runner.invoke(
        app, ["trace", SESSION, "--turn", "1", "--dir", str(turns.folder), "--json"]
    )
    assert result.exit_code == 0, result.output
    (turn,) = json.loads(result.output)
    assert turn["turn_seq"] == 1 and turn["session_id"] == SESSION
    spans = turn["spans"]
    assert [(s["name"], s["depth"]) for s in spans][:4] == [
        ("turn", 0),
        ("store_turn", 1),
        ("retrieval", 1),
        ("embed", 2),
    ]
    assert {s["trace_id"] for s in spans} == {turn["trace_id"]}
    assert [s["name"] for s in spans if s["orphan"]] == ["rerank"]


def test_trace_of_no_such_turn_or_folder_exits_1_with_the_reason(turns, tmp_path):
    result = runner.invoke(app, ["trace", SESSION, "--turn", "9", "--dir", str(turns.folder)])
    assert result.exit_code == 1
    assert f"no trace for session {SESSION} turn 9 in {turns.folder}" in result.output
    assert "not sampled" in result.output

    missing = tmp_path / "nowhere"
    result = runner.invoke(app, ["trace", SESSION, "--dir", str(missing)])
    assert result.exit_code == 1
    assert f"no span folder {missing}" in result.output


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SALESBOOST_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_trace_reads_the_data_dirs_traces_folder_by_default(data_dir):
    Turns(data_dir / "traces").write()
    result = runner.invoke(app, ["trace", SESSION, "--turn", "1"])
    assert result.exit_code == 0, result.output
    assert "rerank" in result.output
