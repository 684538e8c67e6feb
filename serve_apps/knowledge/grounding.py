"""A trainee turn's knowledge chunks, asked of the knowledge service.

The gateway, the one owner of a turn's grounding, asks the moment a turn arrives (beside
storing it) and sends the chunks to the orchestrator in the turn's request. Retrieval failing
or running late costs the grounding, never the reply.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from serve_apps.contracts.knowledge import RetrievedChunk

log = logging.getLogger("salesboost.grounding")


async def ground(
    knowledge: Any,
    *,
    tenant_id: str,
    knowledge_base: str | None,
    text: str,
    top_k: int,
    timeout_s: float,
) -> list[RetrievedChunk]:
    """The ``top_k`` chunks for ``text`` from the scenario's knowledge base; none (and a log
    line) when the scenario has none, or retrieval fails or takes longer than ``timeout_s``."""
    if not knowledge_base or top_k == 0:
        return []
    try:
        return await asyncio.wait_for(
            knowledge.retrieve.remote(
                tenant_id=tenant_id, knowledge_base=knowledge_base, query=text, top_k=top_k
            ),
            timeout=timeout_s,
        )
    except Exception as exc:
        log.warning("retrieval from %r failed, answering ungrounded: %r", knowledge_base, exc)
        return []
