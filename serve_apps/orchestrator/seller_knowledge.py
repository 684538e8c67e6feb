"""The seller's knowledge for a turn: asked of the knowledge service only when the turn needs
it, and never before the persona's first token.

The persona does not read the seller's documents (it speaks as the vendor when it does, on
the bundled model); the coach's knowledge hint and the check of the trainee's claims do, and
both run beside the persona's reply. A turn of small talk ("Thanks for making the time")
needs no product sheet: it costs no retrieval and no embedding of excerpts.
"""

from __future__ import annotations

import asyncio
import logging
import re
from functools import lru_cache
from typing import Any

from retrieval.sparse import analyze
from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.turn import TurnRequest
from serve_apps.telemetry import tracing
from serve_apps.telemetry.metrics import product_metrics

log = logging.getLogger("salesboost.orchestrator.knowledge")

# What a seller's knowledge base answers: a figure (a price, a term, a head count, a date)
# or one of its subjects. Compared as stems (the sparse search's analyzer): "integration"
# and "integrates" are both "integr".
DEFAULT_KNOWLEDGE_TERMS = (
    "price", "cost", "discount", "budget", "fee", "quote", "invoice", "payment", "license",
    "seat", "plan", "tier", "edition", "contract", "terms", "renewal", "cancel", "trial",
    "sandbox", "pilot", "feature", "integration", "api", "migration", "data", "support",
    "sla", "uptime", "security", "compliance", "gdpr", "hipaa", "onboarding", "training",
    "implementation", "rollout", "deployment", "storage", "module", "report", "dashboard",
    "mobile", "customization", "automation", "workflow", "plugin", "add-on", "package",
    "product", "platform", "version", "guarantee", "warranty", "refund",
)  # fmt: skip

# A figure, or a question after one ("how much", "per user").
_FIGURE = re.compile(r"\d|[$€£¥%]|\bhow much\b|\bper (?:user|seat|month|year)\b", re.IGNORECASE)


@lru_cache(maxsize=8)
def _stems(terms: tuple[str, ...]) -> frozenset[str]:
    return frozenset(stem for term in terms for stem in analyze(term))


def needs_knowledge(text: str, terms: tuple[str, ...] = DEFAULT_KNOWLEDGE_TERMS) -> bool:
    """Whether the trainee's turn says or asks something the seller's knowledge base answers:
    a figure or a question after one, or a word whose stem is one of ``terms``."""
    return bool(_FIGURE.search(text)) or not _stems(terms).isdisjoint(analyze(text))


class SellerKnowledge:
    """Retrieves a turn's seller chunks, cut to the sentences that match it within a token
    budget, from the knowledge service's handle."""

    def __init__(
        self,
        knowledge: Any | None,
        *,
        top_k: int,
        token_budget: int,
        timeout_s: float,
        terms: tuple[str, ...] = DEFAULT_KNOWLEDGE_TERMS,
    ) -> None:
        self._knowledge = knowledge
        self._top_k = top_k
        self._token_budget = token_budget
        self._timeout_s = timeout_s
        self._terms = terms

    async def for_turn(self, request: TurnRequest) -> list[RetrievedChunk]:
        """The chunks given in the request (benchmarks pass their own), else retrieved when
        the scenario has a knowledge base and the turn needs it; none when retrieval fails or
        runs late (the hint and the check go without)."""
        if request.grounding is not None:
            return request.grounding
        if self._knowledge is None or not request.knowledge_base or self._top_k == 0:
            return []
        metrics = product_metrics()
        if not needs_knowledge(request.trainee_text, self._terms):
            metrics.seller_retrievals.inc(1, tags={"outcome": "not_needed"})
            return []
        with tracing.span("retrieve.seller_knowledge") as span:
            try:
                chunks: list[RetrievedChunk] = await asyncio.wait_for(
                    self._knowledge.retrieve.remote(
                        tenant_id=request.tenant_id,
                        knowledge_base=request.knowledge_base,
                        query=request.trainee_text,
                        top_k=self._top_k,
                        token_budget=self._token_budget,
                    ),
                    timeout=self._timeout_s,
                )
            except Exception as exc:
                log.warning("seller knowledge from %r failed: %r", request.knowledge_base, exc)
                tracing.mark_error(span, "retrieval_failed")
                metrics.seller_retrievals.inc(1, tags={"outcome": "failed"})
                return []
            span.set_attribute("chunks", len(chunks))
        metrics.seller_retrievals.inc(1, tags={"outcome": "retrieved"})
        return chunks
