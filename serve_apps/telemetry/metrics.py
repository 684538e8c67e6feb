"""The product's own metrics, exported through Ray's metrics (``ray.util.metrics``).

Ray's metrics agent on each node serves them at its ``metrics_export_port`` beside Ray
Serve's (``ray_serve_*``) and vLLM's (``ray_vllm_*``), so one Prometheus scrape gets all
three; Ray prefixes every name with ``ray_`` (``salesboost_turns_total`` is scraped as
``ray_salesboost_turns_total``). Ray adds its own labels (``WorkerId``, ``NodeAddress``...);
gauges are per process, so dashboards ``sum`` them.

Labels are bounded: modes, outcomes, agents, codes, stages and severities are closed sets
from the code; no user, session or tenant id is ever a label.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray.util.metrics import Counter, Gauge, Histogram

# Seconds. A turn's first token is 0.1-5 s on CPU and tens of ms on GPU.
LATENCY_BOUNDARIES = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0]
RETRIEVAL_BOUNDARIES = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]

# The names as they are registered (Prometheus sees them with the ``ray_`` prefix).
TURNS = "salesboost_turns_total"
TURN_TTFT = "salesboost_turn_ttft_seconds"
TURN_DURATION = "salesboost_turn_duration_seconds"
RETRIEVAL = "salesboost_retrieval_seconds"
REVIEWS = "salesboost_reviews_total"
AGENT_FAILURES = "salesboost_agent_failures_total"
COMPLIANCE_FINDINGS = "salesboost_compliance_findings_total"
RATE_LIMITED = "salesboost_rate_limited_total"
WEBSOCKETS_OPEN = "salesboost_websocket_connections"
SESSIONS_ENDED = "salesboost_sessions_ended_total"
SESSIONS_SCORED = "salesboost_sessions_scored_total"
DB_POOL_IN_USE = "salesboost_db_pool_in_use"
DB_POOL_WAITING = "salesboost_db_pool_waiting"
DEPENDENCY_UP = "salesboost_dependency_up"
ADMISSION_REFUSED = "salesboost_admission_refused_total"
SELLER_RETRIEVALS = "salesboost_seller_retrievals_total"
CONTENT_CACHE = "salesboost_content_cache_requests_total"


@dataclass(frozen=True)
class ProductMetrics:
    turns: Counter
    turn_ttft: Histogram
    turn_duration: Histogram
    retrieval: Histogram
    reviews: Counter
    agent_failures: Counter
    compliance_findings: Counter
    rate_limited: Counter
    websockets_open: Gauge
    sessions_ended: Counter
    sessions_scored: Counter
    db_pool_in_use: Gauge
    db_pool_waiting: Gauge
    dependency_up: Gauge
    admission_refused: Counter
    seller_retrievals: Counter
    content_cache: Counter


_lock = threading.Lock()
_metrics: ProductMetrics | None = None


def product_metrics() -> ProductMetrics:
    """This process's metrics, registered with Ray once (on first use, inside a replica)."""
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = _register()
    return _metrics


def _register() -> ProductMetrics:
    from ray.util.metrics import Counter, Gauge, Histogram

    return ProductMetrics(
        turns=Counter(
            TURNS,
            "Trainee turns by session mode and outcome (replied, replaced by the reviewer's "
            "safe line, resent: a retry answered from storage, in_progress, model_unavailable).",
            tag_keys=("mode", "outcome"),
        ),
        turn_ttft=Histogram(
            TURN_TTFT,
            "From a trainee turn's arrival at the gateway to the first persona token sent back.",
            boundaries=LATENCY_BOUNDARIES,
            tag_keys=("mode",),
        ),
        turn_duration=Histogram(
            TURN_DURATION,
            "From a trainee turn's arrival at the gateway to its reply_done.",
            boundaries=LATENCY_BOUNDARIES,
            tag_keys=("mode",),
        ),
        retrieval=Histogram(
            RETRIEVAL,
            "Knowledge retrieval per stage: embed the query, search, rerank, and the total.",
            boundaries=RETRIEVAL_BOUNDARIES,
            tag_keys=("stage",),
        ),
        reviews=Counter(
            REVIEWS,
            "The reviewer's verdicts on persona attempts: accepted, retry, replaced.",
            tag_keys=("action",),
        ),
        agent_failures=Counter(
            AGENT_FAILURES,
            "Optional agents that could not answer, by agent and error code.",
            tag_keys=("agent", "code"),
        ),
        compliance_findings=Counter(
            COMPLIANCE_FINDINGS,
            "Compliance findings by severity and by whose line broke the rule.",
            tag_keys=("severity", "party"),
        ),
        rate_limited=Counter(
            RATE_LIMITED,
            "Requests refused by a rate limit (429), by the limit that refused them.",
            tag_keys=("limit",),
        ),
        websockets_open=Gauge(
            WEBSOCKETS_OPEN, "Conversation WebSockets open on this gateway replica."
        ),
        sessions_ended=Counter(
            SESSIONS_ENDED, "Training sessions ended, by mode.", tag_keys=("mode",)
        ),
        sessions_scored=Counter(
            SESSIONS_SCORED, "Training sessions the evaluator scored, by mode.", tag_keys=("mode",)
        ),
        db_pool_in_use=Gauge(
            DB_POOL_IN_USE,
            "Database connections checked out of this process's pool.",
            tag_keys=("deployment",),
        ).set_default_tags({"deployment": _deployment()}),
        db_pool_waiting=Gauge(
            DB_POOL_WAITING,
            "Tenant transactions of this process waiting for a database connection.",
            tag_keys=("deployment",),
        ).set_default_tags({"deployment": _deployment()}),
        dependency_up=Gauge(
            DEPENDENCY_UP,
            "1 when the gateway last reached the dependency (health checks, readiness), else 0.",
            tag_keys=("dependency",),
        ),
        admission_refused=Counter(
            ADMISSION_REFUSED,
            "New conversations refused at the live-conversation limit (503 overloaded), at "
            "session creation or at the socket.",
            tag_keys=("at",),
        ),
        seller_retrievals=Counter(
            SELLER_RETRIEVALS,
            "Turns that asked the seller's knowledge base for the coach and the claims check "
            "(retrieved, failed) or did not need to (not_needed: no figure, no product term).",
            tag_keys=("outcome",),
        ),
        content_cache=Counter(
            CONTENT_CACHE,
            "Reads of the training content a turn is built from, by what was read (scenario) "
            "and the cache's answer: hit, miss (read from the database and cached) or "
            "unavailable (Redis away: read from the database).",
            tag_keys=("kind", "result"),
        ),
    )


def _deployment() -> str:
    """The Serve deployment this process is a replica of (``none`` outside Serve)."""
    try:
        from ray import serve

        return str(serve.get_replica_context().deployment)
    except Exception:
        return "none"
