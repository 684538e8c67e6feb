"""The small interface the orchestrator uses to reach a chat model, and its Serve implementation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol


class ModelUnavailableError(RuntimeError):
    """The model deployment refused or failed the request."""


@dataclass(frozen=True)
class ChatDelta:
    text: str
    output_tokens: int | None = None  # set on the last delta when the engine reports usage


class ChatEngine(Protocol):
    model_id: str

    def stream_chat(
        self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float
    ) -> AsyncIterator[ChatDelta]: ...

    async def check_health(self) -> None: ...


class ServeLLMChatEngine:
    """Streams chat completions from the LLM deployment (``models.npc_server.NPCLLMServer``)."""

    def __init__(self, handle: Any, model_id: str) -> None:
        self._handle = handle.options(stream=True)
        self._health = handle
        self.model_id = model_id

    async def stream_chat(
        self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float
    ) -> AsyncIterator[ChatDelta]:
        produced = 0
        try:
            async for text, count in self._handle.stream_text.remote(
                messages, max_tokens, temperature
            ):
                produced = count
                if text:
                    yield ChatDelta(text=text)
        except Exception as exc:
            raise ModelUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        yield ChatDelta(text="", output_tokens=produced)

    async def check_health(self) -> None:
        await self._health.check_health.remote()
