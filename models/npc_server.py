"""The LLM deployment class: Ray Serve LLM's ``LLMServer`` plus a lean token stream.

``LLMServer.chat`` renders every token as an OpenAI SSE JSON line that the caller parses
again; for the conversation's hot path ``stream_text`` hands back plain text deltas straight
from the engine. The OpenAI methods stay for everything else.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator
from typing import Any

from ray.serve.llm import LLMServer


class NPCLLMServer(LLMServer):
    async def stream_text(
        self, messages: list[dict[str, str]], max_tokens: int, temperature: float
    ) -> AsyncIterator[tuple[str, int]]:
        """Yield ``(text_delta, tokens_so_far)`` for a chat completion."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        # Ray Serve LLM keeps vLLM's AsyncLLM here; there is no public accessor for it.
        client: Any = self.engine._engine_client
        tokenizer = await self._tokenizer(client)
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        params = SamplingParams(
            max_tokens=max_tokens, temperature=temperature, output_kind=RequestOutputKind.DELTA
        )
        produced = 0
        async for output in client.generate(prompt, params, request_id=uuid.uuid4().hex):
            completion = output.outputs[0]
            produced += len(completion.token_ids)
            if completion.text or output.finished:
                yield completion.text, produced

    async def _tokenizer(self, client: Any) -> Any:
        tokenizer = getattr(self, "_chat_tokenizer", None)
        if tokenizer is None:
            tokenizer = client.get_tokenizer()  # a coroutine in some vLLM releases
            if inspect.isawaitable(tokenizer):
                tokenizer = await tokenizer
            self._chat_tokenizer = tokenizer
        return tokenizer
