"""The NPC agent: plays one persona for one reply; a plain class, so any engine plugs in."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from serve_apps.knowledge.contracts import RetrievedChunk
from serve_apps.orchestrator.chat_engine import ChatEngine
from serve_apps.orchestrator.contracts import NPCChunk, PersonaCard, TurnRequest
from serve_apps.orchestrator.npc_prompt import npc_messages

log = logging.getLogger("salesboost.npc")


class NPCConversation:
    def __init__(self, engine: ChatEngine) -> None:
        self.engine = engine

    async def stream_reply(
        self,
        request: TurnRequest,
        grounding: list[RetrievedChunk] | None = None,
        *,
        speaker: PersonaCard | None = None,
        attempt: int = 0,
        feedback: list[dict[str, str]] | None = None,
    ) -> AsyncIterator[NPCChunk]:
        speaker = speaker or request.persona
        output_tokens: int | None = None
        parts: list[str] = []
        async for delta in self.engine.stream_chat(
            npc_messages(request, grounding, speaker=speaker, feedback=feedback),
            max_tokens=request.max_tokens,
            temperature=request.temperature,
        ):
            if delta.output_tokens is not None:
                output_tokens = delta.output_tokens
            if delta.text:
                parts.append(delta.text)
                yield NPCChunk(text=delta.text, speaker=speaker.slug, attempt=attempt)
        text = "".join(parts)
        if output_tokens is None:
            output_tokens = await self._count_unreported(text)
        yield NPCChunk(
            done=True,
            speaker=speaker.slug,
            attempt=attempt,
            final_text=text,
            output_tokens=output_tokens,
            model=self.engine.model_id,
            citations=[chunk.citation() for chunk in grounding or []],
        )

    async def _count_unreported(self, text: str) -> int:
        """The reply's tokens when the engine's stream carried no usage: every reply is
        counted against the company's token budget, none stored as unknown."""
        try:
            count = await self.engine.count_tokens(text)
        except Exception as exc:  # a count that fails must not cost the trainee the reply
            count = len(text.split())
            log.warning(
                "the stream carried no usage and the tokenizer failed (%r): counted %d words",
                exc,
                count,
            )
            return count
        log.warning("the stream carried no usage: counted %d tokens with the tokenizer", count)
        return count
