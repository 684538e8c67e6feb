"""The training orchestrator deployment: turns a trainee turn into a streamed NPC reply."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from serve_apps.orchestrator.chat_engine import ChatEngine, ServeLLMChatEngine
from serve_apps.orchestrator.contracts import NPCChunk, NPCReplyRequest
from serve_apps.orchestrator.npc_prompt import npc_messages

log = logging.getLogger("salesboost.orchestrator")


class NPCConversation:
    """The NPC agent: plays the persona for one reply; a plain class, so any engine plugs in."""

    def __init__(self, engine: ChatEngine) -> None:
        self._engine = engine

    async def stream_reply(self, request: NPCReplyRequest) -> AsyncIterator[NPCChunk]:
        output_tokens: int | None = None
        async for delta in self._engine.stream_chat(
            npc_messages(request), max_tokens=request.max_tokens, temperature=request.temperature
        ):
            if delta.output_tokens is not None:
                output_tokens = delta.output_tokens
            if delta.text:
                yield NPCChunk(text=delta.text)
        yield NPCChunk(done=True, output_tokens=output_tokens, model=self._engine.model_id)


@serve.deployment(
    name="TrainingOrchestrator",
    ray_actor_options={"num_cpus": 0.5},
    max_ongoing_requests=256,
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 64},
)
class TrainingOrchestrator:
    def __init__(self, npc_llm: Any, npc_model_id: str) -> None:
        self._npc = NPCConversation(ServeLLMChatEngine(npc_llm, npc_model_id))
        self._engine = self._npc._engine

    async def stream_npc_reply(self, request: NPCReplyRequest) -> AsyncIterator[NPCChunk]:
        async for chunk in self._npc.stream_reply(request):
            yield chunk

    async def check_health(self) -> None:
        await self._engine.check_health()
