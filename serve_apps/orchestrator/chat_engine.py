"""The small interface the orchestrator uses to reach a chat model, and its Serve implementation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from ray.exceptions import RayError
from ray.serve.exceptions import RayServeException


class ModelUnavailableError(RuntimeError):
    """The model deployment refused or failed the request."""


@dataclass(frozen=True)
class ChatDelta:
    text: str
    output_tokens: int | None = None  # the reply's output tokens so far, when known


class ChatEngine(Protocol):
    model_id: str

    def stream_chat(
        self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float
    ) -> AsyncIterator[ChatDelta]: ...

    async def complete_json(
        self, messages: list[dict[str, str]], *, schema: dict[str, Any], max_tokens: int
    ) -> str:
        """A whole reply constrained to ``schema`` by guided decoding (temperature 0)."""
        ...

    async def check_health(self) -> None: ...


class ServeLLMChatEngine:
    """Streams chat completions from a ``ray.serve.llm`` LLMServer deployment handle."""

    def __init__(self, handle: Any, model_id: str) -> None:
        self._handle = handle.options(stream=True)
        self._health = handle
        self.model_id = model_id

    async def stream_chat(
        self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float
    ) -> AsyncIterator[ChatDelta]:
        # Plain text from the server (``SalesBoostLLMServer.chat_text``), not its OpenAI
        # stream. Each group the server sent stays one delta, so one object on every hop
        # after this one too.
        stream = self._handle.chat_text.remote(
            messages=messages, max_tokens=max_tokens, temperature=temperature
        )
        try:
            async for batch in stream:
                text = "".join(delta.text for delta in batch)
                yield ChatDelta(text=text, output_tokens=batch[-1].output_tokens)
        except (RayError, RayServeException) as exc:
            raise ModelUnavailableError(str(exc)) from exc

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

    async def check_health(self) -> None:
        await self._health.check_health.remote()
