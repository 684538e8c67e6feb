"""The small interface the orchestrator uses to reach a chat model, and its Serve implementation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class ModelUnavailableError(RuntimeError):
    """The model deployment refused or failed the request."""


@dataclass(frozen=True)
class ChatDelta:
    text: str
    output_tokens: int | None = None  # set on the last delta when the engine reports usage
    finish_reason: str | None = None  # "length": the token budget ended the reply


class ChatEngine(Protocol):
    model_id: str
    version: str  # model_id@config hash: what a stored reply records

    def stream_chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        stop: Sequence[str] = (),
        repetition_penalty: float | None = None,
        continue_final_message: bool = False,
    ) -> AsyncIterator[ChatDelta]:
        """The reply, streamed; ``continue_final_message``: the last (assistant) message is
        continued rather than a new one started."""
        ...

    async def complete_json(
        self, messages: list[dict[str, str]], *, schema: dict[str, Any], max_tokens: int
    ) -> str:
        """A whole reply constrained to ``schema`` by guided decoding (temperature 0)."""
        ...

    async def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is in the model's own tokenizer."""
        ...

    async def check_health(self) -> None: ...


def parse_sse_chunk(chunk: str) -> ChatDelta | None:
    """One ``data: {...}`` line of vLLM's OpenAI stream as a delta (None for keep-alives/DONE)."""
    payload = chunk.strip()
    if payload.startswith("data:"):
        payload = payload[5:].strip()
    if not payload or payload == "[DONE]":
        return None
    body = json.loads(payload)
    if "error" in body and "choices" not in body:
        raise ModelUnavailableError(str(body["error"].get("message", body["error"])))
    text, finish_reason = "", None
    for choice in body.get("choices") or ():
        text += (choice.get("delta") or {}).get("content") or ""
        finish_reason = choice.get("finish_reason") or finish_reason
    usage = body.get("usage") or {}
    return ChatDelta(
        text=text, output_tokens=usage.get("completion_tokens"), finish_reason=finish_reason
    )


class ServeLLMChatEngine:
    """Streams chat completions from a ``ray.serve.llm`` LLMServer deployment handle."""

    def __init__(self, handle: Any, model_id: str, version: str | None = None) -> None:
        # Imported here, as the replica starts, not on the first reply: importing
        # ray.serve.llm takes seconds (7.5 s on a busy 2-core machine), and a trace of the
        # first turn after a start showed it all before the engine was asked.
        import ray.serve.llm.openai_api_models  # noqa: F401

        self._handle = handle.options(stream=True)  # the reply streams
        self._calls = handle  # one answer each: tokens, health, engine info
        self.model_id = model_id
        self.version = version or model_id

    async def stream_chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        stop: Sequence[str] = (),
        repetition_penalty: float | None = None,
        continue_final_message: bool = False,
    ) -> AsyncIterator[ChatDelta]:
        from ray.serve.llm.openai_api_models import ChatCompletionRequest

        extra: dict[str, Any] = {}
        if repetition_penalty is not None:
            extra["repetition_penalty"] = repetition_penalty
        if continue_final_message:
            extra.update(add_generation_prompt=False, continue_final_message=True)
        request = ChatCompletionRequest(
            model=self.model_id,
            messages=messages,
            max_tokens=max_tokens,
            temperature=temperature,
            stream=True,
            stream_options={"include_usage": True},
            **extra,
        )
        # Set after validation: vLLM's request type caps stop strings at OpenAI's 4
        # (VLLM_MAX_STOP_STRINGS, read once at import in every process that builds one), and the
        # persona stops at each other speaker's name; the engine's own sampling takes any number.
        request.stop = list(stop)
        async for batch in self._handle.chat.remote(request):
            # One delta per batch the server sent: whatever it grouped stays one object on
            # every hop after this one too.
            text, output_tokens, finish_reason = "", None, None
            for item in batch if isinstance(batch, list) else [batch]:
                if not isinstance(item, str):  # an ErrorResponse object
                    raise ModelUnavailableError(str(getattr(item, "error", item)))
                for line in item.split("\n\n"):
                    delta = parse_sse_chunk(line)
                    if delta is not None:
                        text += delta.text
                        if delta.output_tokens is not None:
                            output_tokens = delta.output_tokens
                        finish_reason = delta.finish_reason or finish_reason
            if text or output_tokens is not None or finish_reason:
                yield ChatDelta(text, output_tokens, finish_reason)

    async def complete_json(
        self, messages: list[dict[str, str]], *, schema: dict[str, Any], max_tokens: int
    ) -> str:
        from ray.serve.llm.openai_api_models import ChatCompletionRequest

        request = ChatCompletionRequest(
            model=self.model_id,
            messages=messages,
            max_tokens=max_tokens,
            temperature=0,
            stream=False,
            # Free whitespace lets a small model spend its token budget on newlines.
            structured_outputs={"json": schema, "disable_any_whitespace": True},
        )
        async for answer in self._handle.chat.remote(request):
            choices = getattr(answer, "choices", None)
            if not choices:  # an ErrorResponse
                raise ModelUnavailableError(str(getattr(answer, "error", answer)))
            return choices[0].message.content or ""
        raise ModelUnavailableError("the model returned no answer")

    async def count_tokens(self, text: str) -> int:
        # The engine's own tokenizer (FirstTokenAtOnceLLMServer.count_tokens), not a copy.
        return int(await self._calls.count_tokens.remote(text))

    async def check_health(self) -> None:
        await self._calls.check_health.remote()

    async def engine_info(self) -> dict[str, Any]:
        """The running engine's dtype and why it was chosen (``FirstTokenAtOnceLLMServer``)."""
        return await self._calls.engine_info.remote()
