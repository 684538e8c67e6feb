"""The training orchestrator deployment: a trainee turn in, the agents' events out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from opentelemetry import trace
from ray import serve

from serve_apps.contracts.models import ModelRoute
from serve_apps.contracts.turn import EvaluationReport, EvaluationRequest, TurnRequest
from serve_apps.contracts.wire import ComplianceFinding, ErrorEvent, Review
from serve_apps.orchestrator.agents.evaluator import Evaluator
from serve_apps.orchestrator.agents.judge import Judge
from serve_apps.orchestrator.agents.npc import NPCConversation
from serve_apps.orchestrator.config import OrchestratorConfig
from serve_apps.orchestrator.model_router import ModelRouter, RoutedChatEngine, routed
from serve_apps.orchestrator.seller_knowledge import SellerKnowledge
from serve_apps.orchestrator.semantic import SemanticMatcher, ServeSentenceEmbedder
from serve_apps.orchestrator.training_turn import (
    TrainingTurn,
    TurnEvent,
    agent_error,
)
from serve_apps.telemetry import tracing
from serve_apps.telemetry.logs import configure_logging, log_context
from serve_apps.telemetry.metrics import ProductMetrics, product_metrics

# A child of Serve's logger: its records go to the replica's log file under Ray's session
# directory (logs/serve/replica_<app>_TrainingOrchestrator_*.log).
_serve_log = logging.getLogger("ray.serve.salesboost.orchestrator")


# Serve options come from the config (OrchestratorConfig, serve_apps/app.py).
@serve.deployment(name="TrainingOrchestrator")
class TrainingOrchestrator:
    def __init__(
        self,
        config: OrchestratorConfig,
        npc_model: ModelRoute,
        judge_model: ModelRoute | None = None,
        embedder: Any | None = None,
        knowledge: Any | None = None,
    ) -> None:
        configure_logging("orchestrator")
        # Each model version is an application of its own; a request names the version it
        # is answered by, and the configured ones answer the rest (model_router.py).
        router = ModelRouter()
        self._router = router
        self._npc_engine = RoutedChatEngine(router, npc_model)
        self._judge_engine = RoutedChatEngine(router, judge_model) if judge_model else None
        settings = config.agents
        judge = (
            Judge(self._judge_engine, timeout_s=settings.judge_timeout_s)
            if self._judge_engine is not None
            else None
        )
        # The Embedder deployment the knowledge service uses: sentences for the semantic
        # checks; none (rules only) when the application was built without it.
        matcher = SemanticMatcher(ServeSentenceEmbedder(embedder)) if embedder is not None else None
        # The seller's knowledge for the coach and the claims check, asked beside the reply.
        seller = SellerKnowledge(
            knowledge,
            top_k=settings.knowledge_top_k,
            token_budget=settings.knowledge_token_budget,
            timeout_s=settings.knowledge_timeout_s,
        )
        self._turn = TrainingTurn(
            NPCConversation(self._npc_engine), judge, settings, matcher, seller
        )
        self._evaluator = Evaluator(judge if settings.evaluator_uses_judge else None, matcher)

    async def stream_turn(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        # One line per reply asked of the model, in the replica's Serve log with the request
        # id: a retried turn must not show up twice.
        _serve_log.info("model asked: session %s turn %s", request.session_id, request.reply_to_seq)
        # The request carries the persona's papers (the gateway read them while it stored
        # the turn); the seller's knowledge is asked beside the reply (SellerKnowledge).
        tracing.set_attributes(
            trace.get_current_span(),
            {tracing.SESSION_ID: request.session_id, tracing.TURN_SEQ: request.reply_to_seq},
        )
        metrics = product_metrics()
        with (
            log_context(
                session_id=request.session_id,
                tenant_id=request.tenant_id,
                turn_seq=request.reply_to_seq,
            ),
            routed(request.npc_model, request.judge_model),
        ):
            async for event in self._turn.run(request):
                _count(event, metrics)
                yield event

    async def evaluate(
        self, request: EvaluationRequest
    ) -> tuple[EvaluationReport, list[ErrorEvent]]:
        with routed(None, request.judge_model):
            report, failures = await self._evaluator.evaluate(request)
        return report, [agent_error(f, None) for f in failures]

    async def check_models(self, routes: list[ModelRoute]) -> None:
        """Each of these versions answers (the gateway's readiness asks for the versions its
        sessions are given). The orchestrator's own health does not depend on a model: a
        version that goes away must not take the turns of the others with it."""
        for route in routes:
            await self._router.engine(route).check_health()

    async def engine_info(self, routes: list[ModelRoute]) -> list[dict[str, Any]]:
        """Each version's engine dtype and the reason for it, once per application."""
        seen: dict[str, ModelRoute] = {route.app_name: route for route in routes}
        return [await self._router.engine(route).engine_info() for route in seen.values()]


def _count(event: TurnEvent, metrics: ProductMetrics) -> None:
    """The reviewer's verdicts and the compliance findings, in the metrics."""
    if isinstance(event, Review):
        metrics.reviews.inc(1, tags={"action": event.action})
    elif isinstance(event, ComplianceFinding):
        party = "trainee" if event.speaker == "trainee" else "persona"
        metrics.compliance_findings.inc(1, tags={"severity": event.severity, "party": party})
