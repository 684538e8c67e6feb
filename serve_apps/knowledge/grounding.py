"""What the persona reads for a turn, asked of the knowledge service.

The gateway asks the moment a turn arrives (beside storing it), and a replay of stored
sessions for each turn it sends again (``read_papers``), for the persona's own papers
(the scenario's customer and vendor-website knowledge bases: they go into the persona's
prompt, so they are needed before its first token), cut to the sentences that match the
turn within a token budget. The seller's knowledge is not asked here: the orchestrator asks
for it after the persona's first token, when the turn needs it. Retrieval failing or running
late costs the grounding, never the reply.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.turn import PersonaPapers

log = logging.getLogger("salesboost.grounding")


async def ground(
    knowledge: Any,
    *,
    tenant_id: str,
    knowledge_base: str | None,
    text: str,
    top_k: int,
    timeout_s: float,
    token_budget: int | None = None,
) -> list[RetrievedChunk]:
    """The ``top_k`` chunks for ``text`` from the scenario's knowledge base; none (and a log
    line) when the scenario has none, or retrieval fails or takes longer than ``timeout_s``."""
    if not knowledge_base or top_k == 0:
        return []
    try:
        return await asyncio.wait_for(
            knowledge.retrieve.remote(
                tenant_id=tenant_id,
                knowledge_base=knowledge_base,
                query=text,
                top_k=top_k,
                token_budget=token_budget,
            ),
            timeout=timeout_s,
        )
    except Exception as exc:
        log.warning("retrieval from %r failed, answering ungrounded: %r", knowledge_base, exc)
        return []


async def read_papers(
    knowledge: Any,
    *,
    tenant_id: str,
    own: str | None,
    vendor_website: str | None,
    text: str,
    top_k: int,
    timeout_s: float,
    token_budget: int | None = None,
) -> PersonaPapers:
    """What the persona reads for a turn: its own company's papers and the vendor's website,
    from the scenario's knowledge bases for them, both at once (none: nothing to read)."""
    own_chunks, website_chunks = await asyncio.gather(
        *(
            ground(
                knowledge,
                tenant_id=tenant_id,
                knowledge_base=slug,
                text=text,
                top_k=top_k,
                timeout_s=timeout_s,
                token_budget=token_budget,
            )
            for slug in (own, vendor_website)
        )
    )
    return PersonaPapers(own=own_chunks, vendor_website=website_chunks)
