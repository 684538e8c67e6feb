"""The LLM server's stream grouping: the first chunks at once, the later ones per interval."""

import asyncio
import random
import time

import pytest

from models.llm_server import first_at_once_then_batched


async def paced(items, gaps_s):
    """A source that waits ``gaps_s[i]`` before item ``i`` (0: handed over with the last)."""
    for item, gap in zip(items, gaps_s, strict=True):
        if gap:
            await asyncio.sleep(gap)
        yield item


async def collect(source, interval_s):
    started = time.perf_counter()
    batches = []
    async for batch in first_at_once_then_batched(source, interval_s):
        batches.append((batch, time.perf_counter() - started))
    return batches


def test_first_chunks_are_not_held_for_the_interval():
    # The role chunk and the first token come together, then a token every 10 ms. The
    # interval is long (2 s), so a busy machine's scheduling delays cannot pass for holding.
    items = ["role", "t1", "t2", "t3", "t4", "t5", "done"]
    gaps = [0.05, 0, 0.01, 0.01, 0.01, 0.01, 0.01]
    batches = asyncio.run(collect(paced(items, gaps), interval_s=2.0))
    first, at = batches[0]
    assert first == ["role", "t1"]
    assert at < 1.0  # held for the interval, it would come after 2 s
    assert [item for batch, _ in batches for item in batch] == items  # nothing lost or reordered
    # The rest came within one interval: it goes out as one batch when the source ends,
    # without waiting for the interval to run out.
    assert len(batches) == 2
    assert batches[1][1] < 1.0


def test_later_chunks_are_grouped_per_interval():
    items = [f"t{i}" for i in range(30)]
    gaps = [0.0] + [0.01] * 29  # 290 ms of tokens against 100 ms windows
    batches = asyncio.run(collect(paced(items, gaps), interval_s=0.1))
    assert batches[0][0] == ["t0"]
    # About 4 batches. A busy machine that stretches each 10 ms gap fivefold still gives
    # no more than half as many batches as tokens; one per token would be 30.
    assert 2 <= len(batches) <= len(items) // 2
    assert [item for batch, _ in batches for item in batch] == items


def test_zero_interval_sends_every_chunk_alone():
    items = ["a", "b", "c"]
    batches = asyncio.run(collect(paced(items, [0, 0, 0]), interval_s=0))
    assert [batch for batch, _ in batches] == [["a"], ["b"], ["c"]]


def test_a_source_error_comes_after_what_came_before_it():
    async def failing():
        yield "t1"
        await asyncio.sleep(0.01)
        yield "t2"
        raise RuntimeError("engine died")

    async def run():
        seen = []
        with pytest.raises(RuntimeError, match="engine died"):
            async for batch in first_at_once_then_batched(failing(), 0.5):
                seen.extend(batch)
        return seen

    assert asyncio.run(run()) == ["t1", "t2"]


def test_an_empty_source_yields_nothing():
    assert asyncio.run(collect(paced([], []), interval_s=0.1)) == []


def test_items_that_arrive_with_the_end_while_a_batch_is_held_are_not_lost():
    # The interleaving that dropped a reply's last chunk (its text and its usage): the caller
    # holds a batch (a network hop) while the source hands over its last items and ends.
    release = asyncio.Event()
    source_ended = asyncio.Event()

    async def source():
        try:
            yield "t1"
            await release.wait()
            yield "t2"
            yield "usage"
        finally:
            source_ended.set()

    async def run():
        seen = []
        async for batch in first_at_once_then_batched(source(), interval_s=0.05):
            seen.extend(batch)
            if batch == ["t1"]:
                release.set()
                await source_ended.wait()  # the reader has finished before this batch returns
        return seen

    assert asyncio.run(run()) == ["t1", "t2", "usage"]


@pytest.mark.parametrize("seed", range(40))
def test_every_item_comes_out_once_in_order_whatever_the_timings(seed):
    # Random arrival gaps (some items handed over together, some after the interval) against a
    # caller that holds each batch for a random time: the batches concatenate to the source.
    rng = random.Random(seed)
    count = rng.randint(1, 12)
    items = [f"t{i}" for i in range(count)]
    gaps = [rng.choice([0, 0, 0.001, 0.004, 0.012]) for _ in items]
    holds = [rng.choice([0, 0.002, 0.006, 0.015]) for _ in range(count + 1)]

    async def run():
        seen = []
        async for batch in first_at_once_then_batched(paced(items, gaps), interval_s=0.005):
            seen.extend(batch)
            await asyncio.sleep(holds[min(len(seen), count)])
        return seen

    assert asyncio.run(run()) == items
