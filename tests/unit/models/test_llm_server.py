"""The LLM server's stream grouping: the first chunks at once, the later ones per interval."""

import asyncio
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
    # The role chunk and the first token come together, then a token every 10 ms.
    items = ["role", "t1", "t2", "t3", "t4", "t5", "done"]
    gaps = [0.05, 0, 0.01, 0.01, 0.01, 0.01, 0.01]
    batches = asyncio.run(collect(paced(items, gaps), interval_s=0.5))
    first, at = batches[0]
    assert first == ["role", "t1"]
    assert at < 0.05 + 0.1  # far less than the 0.5 s interval
    assert [item for batch, _ in batches for item in batch] == items  # nothing lost or reordered
    # The rest came within one interval: it goes out as one batch when the source ends.
    assert len(batches) == 2
    assert batches[1][1] < 0.5


def test_later_chunks_are_grouped_per_interval():
    items = [f"t{i}" for i in range(12)]
    gaps = [0.0] + [0.02] * 11  # 220 ms of tokens against 100 ms windows
    batches = asyncio.run(collect(paced(items, gaps), interval_s=0.1))
    assert batches[0][0] == ["t0"]
    assert 3 <= len(batches) <= 6  # not one object per token
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


class FakeTokenizer:
    """Fake (isolates ``chat_text`` from a real tokenizer): a template that joins contents."""

    def apply_chat_template(self, messages, add_generation_prompt, tokenize):
        assert add_generation_prompt and not tokenize
        return "|".join(m["content"] for m in messages) + "|assistant:"


class FakeVLLMEngine:
    """Fake (isolates ``chat_text``'s arithmetic from vLLM): delta outputs, as asked for."""

    tokenizer = FakeTokenizer()

    def __init__(self, steps):
        self.steps = steps  # (text, token count, finished) per engine step
        self.calls = []

    async def generate(self, prompt, params, request_id):
        from types import SimpleNamespace

        self.calls.append((prompt, params))
        for text, tokens, finished in self.steps:
            yield SimpleNamespace(
                outputs=[SimpleNamespace(text=text, token_ids=list(range(tokens)))],
                finished=finished,
            )


def server_over(engine, defaults, interval_ms=0):
    """``SalesBoostLLMServer``'s streaming methods on a plain object: no Ray replica."""
    from models.llm_server import SalesBoostLLMServer

    class ChatTextOnly:
        chat_text = SalesBoostLLMServer.chat_text
        _batch_output_stream = SalesBoostLLMServer._batch_output_stream
        _vllm = engine
        _default_sampling = defaults

        def _get_batch_interval_ms(self):
            return interval_ms

    return ChatTextOnly()


async def drain(stream):
    return [batch async for batch in stream]


def test_chat_text_streams_deltas_with_running_token_counts():
    from vllm.sampling_params import RequestOutputKind

    # A multi-byte character can leave a step with tokens but no text yet.
    engine = FakeVLLMEngine([("Not", 1, False), ("", 1, False), (" now.", 2, False), ("", 0, True)])
    server = server_over(engine, {"top_p": 0.8, "temperature": 0.6, "max_tokens": 4096})
    messages = [{"role": "system", "content": "Be Priya."}, {"role": "user", "content": "Hi"}]
    batches = asyncio.run(drain(server.chat_text(messages, max_tokens=24, temperature=0.5)))

    deltas = [delta for batch in batches for delta in batch]
    assert [(d.text, d.output_tokens) for d in deltas] == [("Not", 1), (" now.", 4), ("", 4)]
    prompt, params = engine.calls[0]
    assert prompt == "Be Priya.|Hi|assistant:"
    # The model's generation defaults stay; the caller's length and temperature win.
    assert (params.top_p, params.temperature, params.max_tokens) == (0.8, 0.5, 24)
    assert params.output_kind == RequestOutputKind.DELTA


def test_chat_text_raises_the_engines_error_after_what_came_before():
    class FailingEngine(FakeVLLMEngine):
        async def generate(self, prompt, params, request_id):
            async for output in super().generate(prompt, params, request_id):
                yield output
            raise ValueError("prompt longer than the model's context")

    server = server_over(FailingEngine([("Hi", 1, False)]), {})
    seen = []

    async def consume():
        async for batch in server.chat_text([{"role": "user", "content": "x"}], 8, 0.0):
            seen.extend(batch)

    with pytest.raises(ValueError, match="context"):
        asyncio.run(consume())
    assert [d.text for d in seen] == ["Hi"]
