"""The turn benchmark's arithmetic: percentiles, pooled runs, and where each repeat starts."""

import asyncio

from serve_apps.bench.turn import TurnSample, _percentile, _run_level, summarize


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


def test_repeats_are_pooled_and_each_starts_elsewhere():
    offsets = []

    async def scripted_conversation(start, run):  # stands in for a real conversation
        offsets.append(run)
        await start.wait()
        return [TurnSample(0.0, 0.1 * (run + 1), 1.0, 10)]

    summary = asyncio.run(_run_level(scripted_conversation, clients=2, repeats=3))
    assert sorted(offsets) == [0, 0, 1, 1, 2, 2]  # repeat r starts the trainee's lines at r
    assert summary["turns"] == 6
    assert [run["ttft_ms_p50"] for run in summary["runs"]] == [100.0, 200.0, 300.0]
    assert summary["ttft_ms_p50"] == 200.0
