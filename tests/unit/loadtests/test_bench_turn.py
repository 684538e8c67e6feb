"""The turn benchmark's arithmetic (percentiles, pooled runs, where each repeat starts) and
the trainees' reading time and pauses."""

import asyncio
import threading
from types import SimpleNamespace

import pytest

from loadtests.bench.turn import (
    SCRIPTS,
    TRAINEE_LINES,
    TurnBenchConfig,
    TurnSample,
    _percentile,
    _run_level,
    demo_cards,
    direct_conversation,
    level_scripts,
    summarize,
    think_time_s,
    trainee_line,
)


def test_reading_time_is_drawn_alike_on_both_sides_and_averages_the_mean():
    assert think_time_s(3, 2, 0) == 0.0
    assert think_time_s(3, 2, 2000) == think_time_s(3, 2, 2000)  # gateway and direct agree
    draws = [think_time_s(script, turn, 2000) for script in range(40) for turn in range(1, 11)]
    assert all(0 <= d <= 4.0 for d in draws)
    assert len(set(draws)) == len(draws)  # no two trainees wait alike
    # Seeded, so the mean is a fixed number (2.00 s); with the two ends below, it fails for a
    # draw that is not uniform over 0 to 2x the mean (uniform(0, mean) gives 1.0).
    assert 1.8 < sum(draws) / len(draws) < 2.2
    assert min(draws) < 0.2 and max(draws) > 3.8  # some answer at once, some take the longest


def test_percentiles_interpolate_between_ranks():
    assert _percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert _percentile([5.0], 95) == 5.0


def test_summary_counts_throughput_over_the_measured_window():
    samples = [TurnSample(0.0, 0.1, 1.0, 50), TurnSample(1.0, 0.3, 1.0, 50)]
    summary = summarize(samples)
    assert summary["ttft_ms_p50"] == 200.0
    assert summary["turn_ms_p50"] == 1000.0
    assert summary["output_tokens_per_s"] == 50.0  # 100 tokens over 2 s
    assert summary["turns"] == 2


def test_the_gateways_clock_is_summarized_step_by_step():
    def timing(stored, called, first, done):
        return {
            "stored_ms": stored,
            "model_called_ms": called,
            "first_token_ms": first,
            "reply_stored_ms": done,
        }

    samples = [
        TurnSample(0.0, 0.5, 1.0, 10, timing(10.0, 40.0, 440.0, 990.0)),
        TurnSample(1.0, 0.7, 1.0, 10, timing(30.0, 60.0, 660.0, 995.0)),
    ]
    summary = summarize(samples)
    assert summary["server_ms_p50"] == {
        "stored": 20.0,
        "model_called": 50.0,
        "first_token": 550.0,
        "reply_stored": 992.5,
    }
    assert summary["model_ttft_ms_p50"] == 500.0  # 400 and 600: asked → first token
    assert "server_ms_p50" not in summarize([TurnSample(0.0, 0.1, 1.0, 5)])  # the direct side


def test_repeats_are_pooled_and_every_conversation_has_its_own_script():
    scripts = []

    async def scripted_conversation(start, script):  # stands in for a real conversation
        scripts.append(script)
        await start.wait()
        return [TurnSample(0.0, 0.1 * (script // 2 + 1), 1.0, 10)]

    summary = asyncio.run(_run_level(scripted_conversation, clients=2, repeats=3, first_script=4))
    assert sorted(scripts) == [4, 5, 6, 7, 8, 9]
    assert summary["turns"] == 6
    assert [run["ttft_ms_p50"] for run in summary["runs"]] == [300.0, 400.0, 500.0]


def test_no_two_scripts_send_the_same_lines():
    turns = 6  # a warm-up turn and five measured ones, as the bench runs by default
    sequences = {tuple(trainee_line(s, t) for t in range(turns)) for s in range(SCRIPTS)}
    assert len(sequences) == SCRIPTS
    # The measured turns of scripts with the same stride differ at every turn.
    for turn in range(turns):
        assert len({trainee_line(s, turn) for s in range(len(TRAINEE_LINES))}) == len(TRAINEE_LINES)


def test_levels_number_their_conversations_on_from_each_other():
    config = TurnBenchConfig(concurrency=[1, 8], repeats=3)
    assert level_scripts(config) == {1: 0, 8: 3}  # 1 x 3 conversations, then 8 x 3
    assert SCRIPTS >= 3 + 8 * 3  # the default levels fit without a script twice


class FakeEngine:
    """Stands in for vLLM's AsyncLLM: one two-token output per request, at once."""

    async def generate(self, prompt, params, request_id, lora_request=None):
        yield SimpleNamespace(outputs=[SimpleNamespace(token_ids=[1, 2], text="Sure.")])


class FakeTokenizer:
    def apply_chat_template(self, messages, **options):
        return "\n".join(m["content"] for m in messages)


def test_the_direct_side_pauses_for_reading_time_and_the_gap_before_measured_turns(monkeypatch):
    pauses: list[float] = []
    real_sleep = asyncio.sleep
    test_thread = threading.get_ident()

    async def record(seconds):
        # asyncio.sleep is patched process-wide: threads that earlier tests left
        # running (a client's polling loop) sleep through it too, so only this
        # thread's pauses are recorded, and theirs are slept for real.
        if threading.get_ident() != test_thread:
            await real_sleep(seconds)
            return
        pauses.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", record)
    persona, scenario = demo_cards("crm-discovery-call")
    samples = asyncio.run(
        direct_conversation(
            FakeEngine(),
            FakeTokenizer(),
            persona,
            scenario,
            turns=2,
            max_tokens=5,
            script=3,
            think_ms=1000,
            gap_ms=400,
        )
    )
    assert len(samples) == 2  # the warm-up turn is not measured, and not preceded by a pause
    expected = [think_time_s(3, turn, 1000) + 0.4 for turn in (1, 2)]
    assert pauses == pytest.approx(expected)


def test_the_cost_of_tracing_is_the_ratio_of_each_levels_ttft_on_over_off():
    from loadtests.bench.turn import tracing_cost

    on = {
        "ttft_ms_p50": 103.0,
        "ttft_ms_p95": 150.0,
        "runs": [{"ttft_ms_p50": 100.0}, {"ttft_ms_p50": 106.0}],
    }
    off = {
        "ttft_ms_p50": 100.0,
        "ttft_ms_p95": 120.0,
        "runs": [{"ttft_ms_p50": 100.0}, {"ttft_ms_p50": 100.0}],
    }
    assert tracing_cost(on, off) == {
        "ttft_ratio_tracing_on_vs_off": 1.03,
        "ttft_p95_ratio_tracing_on_vs_off": 1.25,
        "ttft_ratio_tracing_on_vs_off_runs": [1.0, 1.06],
    }
    assert "ttft_ratio_tracing_on_vs_off_runs" not in tracing_cost(
        {"ttft_ms_p50": 1.0, "ttft_ms_p95": 1.0}, {"ttft_ms_p50": 1.0, "ttft_ms_p95": 1.0}
    )
