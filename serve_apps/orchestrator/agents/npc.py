"""The NPC agent: plays one persona for one reply; a plain class, so any engine plugs in.

The reply that counts (``final_text``) is the streamed text without a repeated name prefix,
cut back to its last whole sentence when the token budget stopped it mid-sentence.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from serve_apps.contracts.turn import NPCChunk, PersonaCard, TurnRequest
from serve_apps.orchestrator.chat_engine import ChatEngine
from serve_apps.orchestrator.npc_prompt import (
    clean_reply,
    npc_messages,
    persona_decoding,
    trim_reply,
)

log = logging.getLogger("salesboost.npc")


class NPCConversation:
    def __init__(self, engine: ChatEngine) -> None:
        self.engine = engine

    async def stream_reply(
        self,
        request: TurnRequest,
        *,
        speaker: PersonaCard | None = None,
        attempt: int = 0,
        feedback: list[dict[str, str]] | None = None,
    ) -> AsyncIterator[NPCChunk]:
        """The persona reads ``request.persona_papers`` (its own company's, never the seller's)
        and cites them in the reply."""
        speaker = speaker or request.persona
        others = [p for p in request.personas if p.slug != speaker.slug]
        decoding = persona_decoding(speaker, others)
        output_tokens: int | None = None
        finish_reason: str | None = None
        parts: list[str] = []
        async for delta in self.engine.stream_chat(
            npc_messages(request, speaker=speaker, feedback=feedback),
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            stop=decoding.stop,
            repetition_penalty=decoding.repetition_penalty,
            continue_final_message=decoding.continue_final_message,
        ):
            if delta.output_tokens is not None:
                output_tokens = delta.output_tokens
            finish_reason = delta.finish_reason or finish_reason
            if delta.text:
                # The first piece follows the name prefix ("Priya:"): no leading space.
                text = delta.text.lstrip() if not parts else delta.text
                parts.append(delta.text)
                if text:
                    yield NPCChunk(text=text, speaker=speaker.slug, attempt=attempt)
        raw = "".join(parts)
        if output_tokens is None:
            output_tokens = await self._count_unreported(raw)
        final, trimmed = trim_reply(clean_reply(raw, speaker))
        yield NPCChunk(
            done=True,
            speaker=speaker.slug,
            attempt=attempt,
            final_text=final,
            output_tokens=output_tokens,
            model=self.engine.version,
            citations=[chunk.citation() for chunk in request.persona_papers.chunks()],
            finish_reason=finish_reason,
            trimmed=trimmed,
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
