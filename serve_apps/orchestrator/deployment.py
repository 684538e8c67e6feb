"""The training orchestrator deployment: turns a trainee turn into a streamed NPC reply."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from serve_apps.knowledge.contracts import RetrievedChunk
from serve_apps.orchestrator.chat_engine import ChatEngine, ServeLLMChatEngine
from serve_apps.orchestrator.contracts import NPCChunk, NPCReplyRequest
from serve_apps.orchestrator.npc_prompt import npc_messages

log = logging.getLogger("salesboost.orchestrator")


class NPCConversation:
    """The NPC agent: plays the persona for one reply; a plain class, so any engine plugs in."""

    def __init__(self, engine: ChatEngine) -> None:
        self._engine = engine

    async def stream_reply(
        self, request: NPCReplyRequest, grounding: list[RetrievedChunk] | None = None
    ) -> AsyncIterator[NPCChunk]:
        output_tokens: int | None = None
        async for delta in self._engine.stream_chat(
            npc_messages(request, grounding),
            max_tokens=request.max_tokens,
            temperature=request.temperature,
        ):
            if delta.output_tokens is not None:
                output_tokens = delta.output_tokens
            if delta.text:
                yield NPCChunk(text=delta.text)
        yield NPCChunk(
            done=True,
            output_tokens=output_tokens,
            model=self._engine.model_id,
            citations=[chunk.citation() for chunk in grounding or []],
        )


@serve.deployment(
    name="TrainingOrchestrator",
    ray_actor_options={"num_cpus": 0.5},
    max_ongoing_requests=256,
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 64},
)
class TrainingOrchestrator:
    def __init__(self, npc_llm: Any, npc_model_id: str, knowledge: Any) -> None:
        from serve_apps.settings import get_settings

        self._npc = NPCConversation(ServeLLMChatEngine(npc_llm, npc_model_id))
        self._engine = self._npc._engine
        self._knowledge = knowledge
        settings = get_settings()
        self._grounding_top_k = settings.grounding_top_k
        self._grounding_timeout_s = settings.grounding_timeout_s

    async def ground(
        self, *, tenant_id: str, knowledge_base: str | None, text: str
    ) -> list[RetrievedChunk]:
        """The knowledge chunks for a trainee turn; none (and a log line) when retrieval fails.

        The persona still answers without them: a slow or broken knowledge service costs
        grounding, never the reply.
        """
        if not knowledge_base or self._grounding_top_k == 0:
            return []
        try:
            return await asyncio.wait_for(
                self._knowledge.retrieve.remote(
                    tenant_id=tenant_id,
                    knowledge_base=knowledge_base,
                    query=text,
                    top_k=self._grounding_top_k,
                ),
                timeout=self._grounding_timeout_s,
            )
        except Exception as exc:
            log.warning("retrieval from %r failed, answering ungrounded: %r", knowledge_base, exc)
            return []

    async def stream_npc_reply(self, request: NPCReplyRequest) -> AsyncIterator[NPCChunk]:
        grounding = request.grounding
        if grounding is None:
            grounding = await self.ground(
                tenant_id=request.tenant_id,
                knowledge_base=request.knowledge_base,
                text=request.trainee_text,
            )
        async for chunk in self._npc.stream_reply(request, grounding):
            yield chunk

    async def check_health(self) -> None:
        await self._engine.check_health()
