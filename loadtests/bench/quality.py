"""``salesboost bench quality``: the agents against labelled sets, and the persona on the engine.

The sets are JSONL files in one folder (``tests/evalsets/``, README there; any folder in the
same format with ``--evalsets``):

- ``persona_replies.jsonl``: persona replies labelled in or out of character (and the kind);
  the reviewer's rules (and the embedder's off-question check) against the labels.
- ``trainee_turns.jsonl``: trainee turns with the compliance rules they break; every rule
  kind that decides without the judge (regular expressions, semantic, knowledge claims
  against the tenant's seed knowledge base, indexed here in-process).
- ``transcripts.jsonl``: short sessions with the rubric checks they pass; the evaluator.
- ``probes.jsonl``: a fixed script of trainee lines per scenario, sent to the persona through
  the real training turn (reviewer, retries) on the vLLM engine started here on the prepared
  model (the same engine arguments as the NPC deployment); ``probe_labels.jsonl``, when
  present, holds the team's reading of probe replies (matched by scenario, line and text).

The personas, scenarios, rubrics, rules and knowledge documents are the tenant file's
(``tenant.yaml`` in the folder, else the demo tenant). Sampling is the product's
(``SALESBOOST_NPC_TEMPERATURE``, 0.3; 0.7 for ``--persona before``), seeded per reply, so a
run is repeatable on one machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from retrieval.excerpts import ExcerptLimits, estimated_tokens, fit_excerpts, sentences
from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.specs import ComplianceRuleSpec, RubricSpec
from serve_apps.contracts.turn import (
    EvaluationRequest,
    HistoryTurn,
    NPCChunk,
    PersonaCard,
    PersonaPapers,
    ScenarioCard,
    TranscriptTurn,
    TurnRequest,
)
from serve_apps.contracts.wire import Review
from serve_apps.orchestrator.chat_engine import ChatDelta

Progress = Callable[[str], None]
EVALSETS = Path(__file__).resolve().parents[2] / "tests" / "evalsets"
BEFORE_TEMPERATURE = 0.7  # the product's persona temperature before issue 22


# --- arithmetic ---------------------------------------------------------------------------


def precision_recall(tp: int, fp: int, fn: int) -> dict[str, float | int | None]:
    """Precision and recall (None where undefined), with the counts behind them."""
    return {
        "precision": round(tp / (tp + fp), 3) if tp + fp else None,
        "recall": round(tp / (tp + fn), 3) if tp + fn else None,
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


def distribution(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p90": None, "max": None, "mean": None}
    ordered = sorted(values)

    def pct(q: float) -> float:
        rank = (len(ordered) - 1) * q
        low = int(rank)
        high = min(low + 1, len(ordered) - 1)
        return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 2)

    return {
        "n": len(ordered),
        "p50": pct(0.5),
        "p90": pct(0.9),
        "max": round(ordered[-1], 2),
        "mean": round(sum(ordered) / len(ordered), 2),
    }


def reviewer_scores(items: list[tuple[bool, bool, str | None]]) -> dict[str, Any]:
    """(labelled out of character, flagged by the reviewer, labelled kind) per reply; the
    positive class is "out of character"."""
    tp = sum(1 for out, flagged, _ in items if out and flagged)
    fp = sum(1 for out, flagged, _ in items if not out and flagged)
    fn = sum(1 for out, flagged, _ in items if out and not flagged)
    kinds: dict[str, dict[str, int]] = {}
    for out, flagged, kind in items:
        if out:
            entry = kinds.setdefault(kind or "unlabelled", {"n": 0, "caught": 0})
            entry["n"] += 1
            entry["caught"] += int(flagged)
    by_kind = {k: {**v, "recall": round(v["caught"] / v["n"], 3)} for k, v in sorted(kinds.items())}
    return {**precision_recall(tp, fp, fn), "replies": len(items), "recall_by_kind": by_kind}


def compliance_scores(
    items: list[tuple[set[str], set[str]]], kinds: Mapping[str, str]
) -> dict[str, Any]:
    """(labelled broken rules, found rules) per turn; overall and per rule kind."""
    counts: dict[str, list[int]] = {}
    for labelled, found in items:
        for rule in labelled | found:
            entry = counts.setdefault(kinds.get(rule, "unknown"), [0, 0, 0])
            entry[0] += int(rule in labelled and rule in found)
            entry[1] += int(rule in found and rule not in labelled)
            entry[2] += int(rule in labelled and rule not in found)
    total = [sum(c[i] for c in counts.values()) for i in range(3)]
    return {
        **precision_recall(*total),
        "turns": len(items),
        "by_kind": {kind: precision_recall(*c) for kind, c in sorted(counts.items())},
    }


def agreement(items: list[tuple[str, bool, bool | None]]) -> dict[str, Any]:
    """(check kind, label, evaluator's answer or None when it could not decide)."""
    decided = [(k, label, answer) for k, label, answer in items if answer is not None]
    agree = sum(1 for _, label, answer in decided if label == answer)
    by_kind: dict[str, dict[str, Any]] = {}
    for kind, label, answer in decided:
        entry = by_kind.setdefault(kind, {"checks": 0, "agree": 0})
        entry["checks"] += 1
        entry["agree"] += int(label == answer)
    for entry in by_kind.values():
        entry["agreement"] = round(entry["agree"] / entry["checks"], 3)
    return {
        "agreement": round(agree / len(decided), 3) if decided else None,
        "checks": len(decided),
        "not_decided": len(items) - len(decided),
        "by_kind": dict(sorted(by_kind.items())),
    }


# --- the sets -----------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path.name}:{number}: not JSON ({exc})") from None
    return rows


@dataclass
class Tenant:
    path: Path
    personas: dict[str, PersonaCard]
    scenarios: dict[str, dict[str, Any]]
    rubrics: dict[str, RubricSpec]
    rules: list[ComplianceRuleSpec]
    knowledge: dict[str, list[Path]] = field(default_factory=dict)

    @classmethod
    def load(cls, evalsets: Path) -> Tenant:
        from db.seed import DEMO_TENANT_FILE

        path = evalsets / "tenant.yaml"
        path = path if path.exists() else DEMO_TENANT_FILE
        data = yaml.safe_load(path.read_text())
        return cls(
            path=path,
            personas={p["slug"]: PersonaCard.model_validate(p) for p in data["personas"]},
            scenarios={s["slug"]: s for s in data["scenarios"]},
            rubrics={r["slug"]: RubricSpec.model_validate(r) for r in data.get("rubrics", [])},
            rules=[ComplianceRuleSpec.model_validate(r) for r in data.get("compliance_rules", [])],
            knowledge={
                b["slug"]: [path.parent / d for d in b["documents"]]
                for b in data.get("knowledge_bases", [])
            },
        )

    def scenario_card(self, slug: str) -> ScenarioCard:
        return ScenarioCard.model_validate(self.scenarios[slug])

    def committee(self, slug: str) -> list[PersonaCard]:
        return [self.personas[p] for p in self.scenarios[slug]["personas"]]


# --- the agents on the labelled sets --------------------------------------------------------


async def score_reviewer(rows, tenant: Tenant, matcher) -> dict[str, Any]:
    from serve_apps.orchestrator.agents.reviewer import Reviewer

    reviewer = Reviewer(matcher=matcher)
    items, misses = [], []
    for row in rows:
        issues = await reviewer.rule_issues(
            row["reply"],
            persona=tenant.personas[row["persona"]],
            scenario=tenant.scenario_card(row["scenario"]),
            question=row["trainee"],
        )
        out = not row["in_character"]
        items.append((out, bool(issues), row.get("kind")))
        if out != bool(issues):
            misses.append({"id": row["id"], "labelled_out": out, "issues": issues})
    return {**reviewer_scores(items), "disagreements": misses}


def knowledge_retriever(tenant: Tenant, store_dir: Path, top_k: int):
    """The tenant's seed knowledge bases indexed in-process as the service does."""
    from retrieval import compat
    from retrieval.embedder import Embedder
    from retrieval.knowledge_base import KnowledgeBase
    from retrieval.store import KnowledgeStore

    compat.install()
    store = KnowledgeStore(path=str(store_dir))
    embedder = Embedder()
    bases = {}
    for slug, documents in tenant.knowledge.items():
        base = KnowledgeBase(slug=slug, store=store, embedder=embedder)
        for document in documents:
            base.ingest(tenant_id="bench", filename=document.name, data=document.read_bytes())
        base.parser.close()
        bases[slug] = base

    def retrieve(
        slug: str | None, query: str, token_budget: int | None = None
    ) -> list[RetrievedChunk]:
        """As the knowledge service retrieves: with a budget, cut to the matching sentences."""
        if not slug or slug not in bases:
            return []
        hits = bases[slug].search(tenant_id="bench", query=query, top_k=top_k)
        chunks = [RetrievedChunk.from_hit(h.id, h.score, h.payload) for h in hits]
        if token_budget is None:
            return chunks
        cut = fit_excerpts(
            [c.text for c in chunks], query, ExcerptLimits(token_budget=token_budget)
        )
        return [c.model_copy(update={"text": t}) for c, t in zip(chunks, cut, strict=False)]

    return retrieve, store


class SellerGrounding:
    """The seller's chunks as the orchestrator asks for them (``SellerKnowledge``): only for a
    turn with a figure or a product term, cut to the agents' token budget; counts the turns
    that had a knowledge base and those that asked it."""

    def __init__(self, retrieve) -> None:
        from serve_apps.orchestrator.training_turn import AgentSettings

        self._retrieve = retrieve
        self._budget = AgentSettings().knowledge_token_budget
        self.turns = 0
        self.retrieved = 0

    def __call__(self, slug: str | None, text: str) -> list[RetrievedChunk]:
        from serve_apps.orchestrator.seller_knowledge import needs_knowledge

        if not slug:
            return []
        self.turns += 1
        if not needs_knowledge(text):
            return []
        self.retrieved += 1
        return self._retrieve(slug, text, self._budget)

    def summary(self) -> dict[str, Any]:
        return {
            "turns_with_a_knowledge_base": self.turns,
            "turns_retrieved": self.retrieved,
            # Before issue 20's cheaper turn every such turn was retrieved (1.0).
            "fraction_retrieved": round(self.retrieved / self.turns, 3) if self.turns else None,
        }


async def score_compliance(rows, tenant: Tenant, matcher, seller) -> dict[str, Any]:
    from serve_apps.orchestrator.agents.compliance import ComplianceChecker

    checker = ComplianceChecker(tenant.rules, None, matcher)
    slug = next(
        (s.get("knowledge_base") for s in tenant.scenarios.values() if s.get("knowledge_base")),
        None,
    )
    items, misses = [], []
    for row in rows:
        text = row["text"]
        found = checker.check(text, party="trainee", speaker="trainee", reply_to=1)
        found += await checker.semantic_check(
            text,
            party="trainee",
            speaker="trainee",
            reply_to=1,
            knowledge=seller(row.get("knowledge_base", slug), text),
        )
        labelled, got = set(row["breaks"]), {f.rule for f in found}
        items.append((labelled, got))
        if labelled != got:
            misses.append({"id": row["id"], "labelled": sorted(labelled), "found": sorted(got)})
    kinds = {r.slug: r.kind for r in tenant.rules}
    return {**compliance_scores(items, kinds), "disagreements": misses}


async def score_grounding(rows, tenant: Tenant, matcher, retrieve) -> dict[str, Any]:
    """The coach's knowledge hint on fixed price and product questions, with the chunks whole
    (``before``: as every turn was grounded before issue 20) and cut to the agents' token
    budget (``after``): whether it cites the right document with a sentence holding one of
    the expected facts, and how many sentences and tokens the agents were given."""
    from serve_apps.orchestrator.agents.coach import knowledge_hint
    from serve_apps.orchestrator.training_turn import AgentSettings

    agents = AgentSettings()
    scenario = next(slug for slug, spec in tenant.scenarios.items() if spec.get("knowledge_base"))
    out: dict[str, Any] = {"questions": len(rows)}
    hints: dict[str, list[str | None]] = {}
    for side, budget in (("before", None), ("after", agents.knowledge_token_budget)):
        correct, embedded, tokens, misses = 0, [], [], []
        hints[side] = []
        for row in rows:
            chunks = retrieve(row["knowledge_base"], row["question"], budget)
            embedded.append(sum(len(sentences(" ".join(c.text.split()))) for c in chunks))
            tokens.append(sum(estimated_tokens(c.text) for c in chunks))
            request = TurnRequest(
                session_id="grounding",
                tenant_id="bench",
                reply_to_seq=1,
                persona=tenant.committee(scenario)[0],
                scenario=tenant.scenario_card(scenario),
                trainee_text=row["question"],
            )
            hint = await knowledge_hint(matcher, request, chunks, agents.knowledge_hint_threshold)
            hints[side].append(hint.text if hint else None)
            cited = hint.citations[0].title if hint and hint.citations else None
            if hint and cited == row["title"] and any(f in hint.text for f in row["facts"]):
                correct += 1
            else:
                misses.append({"id": row["id"], "hint": hint.text if hint else None})
        out[side] = {
            "hints_right": correct,
            "hint_rate": round(correct / len(rows), 3) if rows else None,
            "sentences_embedded": distribution(embedded),
            "tokens_given": distribution(tokens),
            "misses": misses,
        }
    same = sum(a == b for a, b in zip(hints["before"], hints["after"], strict=True))
    out["same_hint_before_and_after"] = round(same / len(rows), 3) if rows else None
    return out


async def score_evaluator(rows, tenant: Tenant, matcher) -> dict[str, Any]:
    from serve_apps.orchestrator.agents.evaluator import Evaluator

    evaluator = Evaluator(None, matcher)
    items, misses = [], []
    for row in rows:
        scenario = tenant.scenarios[row["scenario"]]
        rubric = tenant.rubrics[scenario["rubric"]]
        kinds = {c.question: c.kind for crit in rubric.criteria for c in crit.checks}
        request = EvaluationRequest(
            session_id=row["id"],
            scenario=tenant.scenario_card(row["scenario"]),
            personas=tenant.committee(row["scenario"]),
            transcript=[
                TranscriptTurn(seq=i + 1, speaker=t["speaker"], text=t["text"])
                for i, t in enumerate(row["turns"])
            ],
            rubric=rubric,
        )
        report, _ = await evaluator.evaluate(request)
        answers = {
            c.question: (None if c.decided_by == "not_checked" else c.passed)
            for crit in report.criteria
            for c in crit.checks
        }
        for question, label in row["checks"].items():
            answer = answers.get(question)
            items.append((kinds.get(question, "unknown"), bool(label), answer))
            if answer is not None and answer != label:
                misses.append({"id": row["id"], "check": question, "labelled": label})
    return {**agreement(items), "disagreements": misses}


# The persona's model config the probes run on by default: the local stack's (serve_local.yaml).
DEFAULT_NPC_CONFIG = "npc_cpu_persona"


# --- the persona on the engine ---------------------------------------------------------------


class DirectChatEngine:
    """The ``ChatEngine`` interface over vLLM's ``AsyncLLM`` in this process (the NPC
    deployment's engine arguments): the product's agents run on it unchanged."""

    def __init__(
        self, engine: Any, tokenizer: Any, model_id: str, seed: int = 0, lora_request: Any = None
    ) -> None:
        self._engine = engine
        self._lora_request = lora_request  # the persona's adapter, where its config has one
        self._tokenizer = tokenizer
        self.model_id = model_id
        self.version = model_id
        self._seed = seed
        self.first_token_s: list[float] = []

    async def stream_chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        stop: Sequence[str] = (),
        repetition_penalty: float | None = None,
        continue_final_message: bool = False,
    ) -> AsyncIterator[ChatDelta]:
        from vllm import SamplingParams

        prompt = self._tokenizer.apply_chat_template(
            messages,
            add_generation_prompt=not continue_final_message,
            continue_final_message=continue_final_message,
            tokenize=False,
        )
        self._seed += 1
        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            stop=list(stop) or None,
            repetition_penalty=repetition_penalty or 1.0,
            seed=self._seed,
        )
        started, sent, first = time.perf_counter(), "", True
        final = None
        async for output in self._engine.generate(
            prompt, params, request_id=uuid.uuid4().hex, lora_request=self._lora_request
        ):
            text = output.outputs[0].text
            if text[len(sent) :]:
                if first:
                    self.first_token_s.append(time.perf_counter() - started)
                    first = False
                yield ChatDelta(text[len(sent) :])
                sent = text
            final = output
        if final is not None:
            completion = final.outputs[0]
            yield ChatDelta(
                "", output_tokens=len(completion.token_ids), finish_reason=completion.finish_reason
            )

    async def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False))


class BeforePersona:
    """The persona as it was before issue 22 (``persona_before.py``), same interface as
    :class:`NPCConversation`: the seller's excerpts in its prompt, 160 tokens, no stops."""

    def __init__(self, engine: DirectChatEngine, retrieve) -> None:
        self.engine = engine
        self._retrieve = retrieve

    async def stream_reply(self, request, *, speaker=None, attempt=0, feedback=None):
        from loadtests.bench import persona_before

        speaker = speaker or request.persona
        grounding = self._retrieve(request.knowledge_base, request.trainee_text)
        parts, tokens, finish = [], None, None
        async for delta in self.engine.stream_chat(
            persona_before.npc_messages(request, grounding, speaker=speaker, feedback=feedback),
            max_tokens=persona_before.MAX_TOKENS,
            temperature=request.temperature,
        ):
            tokens = delta.output_tokens or tokens
            finish = delta.finish_reason or finish
            if delta.text:
                parts.append(delta.text)
                yield NPCChunk(text=delta.text, speaker=speaker.slug, attempt=attempt)
        yield NPCChunk(
            done=True,
            speaker=speaker.slug,
            attempt=attempt,
            final_text="".join(parts),
            output_tokens=tokens,
            finish_reason=finish,
            citations=[c.citation() for c in grounding],
        )


class RecordingPersona:
    """Keeps every attempt's last chunk (the training turn yields only the one that counts)."""

    def __init__(self, persona: Any) -> None:
        self._persona = persona
        self.engine = persona.engine
        self.done: list[NPCChunk] = []

    async def stream_reply(self, request, **kwargs):
        async for chunk in self._persona.stream_reply(request, **kwargs):
            if chunk.done:
                self.done.append(chunk)
            yield chunk


def probe_summary(replies: list[dict[str, Any]], labels: list[dict[str, Any]]) -> dict[str, Any]:
    """The probe replies' figures: in-character rates, lengths, cuts."""
    from serve_apps.orchestrator.npc_prompt import ends_a_sentence

    n = len(replies)
    label_of = {(r["scenario"], r["line"], r["reply"]): r["in_character"] for r in labels}
    labelled = [
        label_of[key]
        for r in replies
        if (key := (r["scenario"], r["line"], r["final"])) in label_of
    ]
    attempts = [a for r in replies for a in r["attempts"]]
    return {
        "replies": n,
        "in_character_rate": {
            # Final replies the reviewer accepted (at any attempt); a replaced reply is the
            # reviewer's safe line, counted as not accepted.
            "by_reviewer": round(sum(r["accepted"] for r in replies) / n, 3) if n else None,
            "first_attempt_by_reviewer": (
                round(sum(r["attempts"][0]["passed"] for r in replies) / n, 3) if n else None
            ),
            "by_labels": round(sum(labelled) / len(labelled), 3) if labelled else None,
            "labelled": len(labelled),
        },
        "replaced_rate": round(sum(r["replaced"] for r in replies) / n, 3) if n else None,
        "reply_words": distribution([len(r["final"].split()) for r in replies]),
        "reply_tokens": distribution([a["output_tokens"] or 0 for a in attempts]),
        "cut_at_limit_fraction": (
            round(sum(a["finish_reason"] == "length" for a in attempts) / len(attempts), 3)
            if attempts
            else None
        ),
        "final_ends_mid_sentence": sum(not ends_a_sentence(r["final"]) for r in replies),
        "issues": _count([i for a in attempts for i in a["issues"]]),
        # What reading papers costs the first token (the scenario's persona papers).
        "first_token_ms_by_papers": {
            side: distribution(
                [
                    r["first_token_ms"]
                    for r in replies
                    if r.get("first_token_ms") is not None and bool(r.get("papers")) == with_papers
                ]
            )
            for side, with_papers in (("with_papers", True), ("without_papers", False))
        },
    }


def _count(items: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


async def run_probes(
    tenant: Tenant,
    probes,
    matcher,
    retrieve,
    seller: SellerGrounding,
    settings,
    persona: str,
    progress: Progress,
    npc_config: str = DEFAULT_NPC_CONFIG,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    from models.llm import LLMDeploymentSettings
    from serve_apps.app import resolve_model_config
    from serve_apps.orchestrator.agents.npc import NPCConversation
    from serve_apps.orchestrator.training_turn import AgentSettings, TrainingTurn

    npc = LLMDeploymentSettings.from_file(resolve_model_config(npc_config))
    npc.prepare_merged(settings.models_dir, progress)
    os.environ.update(npc.engine_env())
    kwargs = {**npc.vllm_engine_kwargs(settings.models_dir), "distributed_executor_backend": "mp"}
    progress(f"persona: starting vLLM AsyncLLM with {kwargs}")
    engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))
    replies: list[dict[str, Any]] = []
    first_attempt_s: list[float] = []
    papers = settings.grounding_token_budget  # as the gateway reads the persona's papers
    try:
        tokenizer = engine.get_tokenizer()
        chat = DirectChatEngine(
            engine, tokenizer, npc.persona_model_id(), lora_request=npc.persona_lora_request()
        )
        speaker = RecordingPersona(
            BeforePersona(chat, retrieve)
            if persona == "before"
            # The persona streams and counts; the health check and JSON completions of the
            # ChatEngine protocol are the other agents'.
            else NPCConversation(chat)  # type: ignore[arg-type]
        )
        turn = TrainingTurn(speaker, None, AgentSettings(), matcher)  # type: ignore[arg-type]
        for probe in probes:
            scenario = tenant.scenarios[probe["scenario"]]
            committee = tenant.committee(probe["scenario"])
            history: list[HistoryTurn] = []
            for line_no, line in enumerate(probe["lines"]):
                request = TurnRequest(
                    session_id="probe",
                    tenant_id="bench",
                    knowledge_base=scenario.get("knowledge_base"),
                    reply_to_seq=2 * line_no + 1,
                    persona=committee[0],
                    committee=committee if len(committee) > 1 else [],
                    scenario=tenant.scenario_card(probe["scenario"]),
                    history=list(history),
                    trainee_text=line,
                    # The persona's own papers, as the gateway retrieves them for a turn.
                    persona_papers=PersonaPapers(
                        own=retrieve(scenario.get("customer_knowledge_base"), line, papers),
                        vendor_website=retrieve(
                            scenario.get("vendor_website_knowledge_base"), line, papers
                        ),
                    ),
                    max_tokens=settings.npc_max_tokens if persona == "current" else 160,
                    temperature=settings.npc_temperature
                    if persona == "current"
                    else BEFORE_TEMPERATURE,
                    grounding=seller(scenario.get("knowledge_base"), line),
                    mode="assessment",
                )
                speaker.done.clear()
                first_tokens_before = len(chat.first_token_s)
                final: NPCChunk | None = None
                reviews: list[Review] = []
                async for event in turn.run(request):
                    if isinstance(event, NPCChunk) and event.done:
                        final = event
                    elif isinstance(event, Review):
                        reviews.append(event)
                attempts = [
                    {
                        "text": chunk.final_text,
                        "output_tokens": chunk.output_tokens,
                        "finish_reason": chunk.finish_reason,
                        "trimmed": chunk.trimmed,
                        "passed": review.passed,
                        "issues": review.issues,
                    }
                    for chunk, review in zip(speaker.done, reviews, strict=True)
                ]
                assert final is not None
                first_token_ms = None
                if len(chat.first_token_s) > first_tokens_before:
                    first_attempt_s.append(chat.first_token_s[first_tokens_before])
                    first_token_ms = round(first_attempt_s[-1] * 1000, 1)
                text = final.final_text or ""
                replies.append(
                    {
                        "scenario": probe["scenario"],
                        "line": line_no,
                        "trainee": line,
                        "speaker": final.speaker,
                        "final": text,
                        "accepted": reviews[-1].action == "accepted",
                        "replaced": reviews[-1].action == "replaced",
                        "first_token_ms": first_token_ms,  # the first attempt's
                        "papers": len(request.persona_papers.chunks()),
                        "attempts": attempts,
                    }
                )
                progress(f"  [{probe['scenario']} {line_no}] {final.speaker}: {text}")
                history += [
                    HistoryTurn(speaker="trainee", text=line),
                    HistoryTurn(speaker="npc", text=text, persona=final.speaker),
                ]
        # A retry's prompt is the first attempt's, all in vLLM's prefix cache: its first token
        # comes at once, so the first attempts alone are the turn's time to first token.
        ttft = {
            "first_token_ms": distribution([s * 1000 for s in chat.first_token_s]),
            "first_attempt_first_token_ms": distribution([s * 1000 for s in first_attempt_s]),
        }
    finally:
        engine.shutdown()
    return replies, ttft


# --- the run --------------------------------------------------------------------------------


def run_quality_bench(
    settings,
    *,
    evalsets: Path = EVALSETS,
    persona: str = "current",
    engine: bool = True,
    npc_config: str = DEFAULT_NPC_CONFIG,
    progress: Progress = print,
) -> dict[str, Any]:
    from loadtests.bench.turn import engine_meta
    from models.cpu_dtype import detect_cpu
    from serve_apps.orchestrator.agents.reviewer import OFF_QUESTION_THRESHOLD
    from serve_apps.orchestrator.semantic import LocalSentenceEmbedder, SemanticMatcher

    tenant = Tenant.load(evalsets)
    matcher = SemanticMatcher(LocalSentenceEmbedder())
    store_dir = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    retrieve, store = knowledge_retriever(tenant, store_dir, settings.grounding_top_k)
    results: dict[str, Any] = {
        "meta": {
            "evalsets": str(evalsets),
            "tenant": str(tenant.path),
            "persona_prompt": persona,
            "npc_config": npc_config,
            "embedder": "all-MiniLM-L6-v2 (in-process, the Embedder deployment's model)",
            "off_question_threshold": OFF_QUESTION_THRESHOLD,
            "npc_max_tokens": settings.npc_max_tokens if persona == "current" else 160,
            "temperature": settings.npc_temperature if persona == "current" else BEFORE_TEMPERATURE,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            # The CPU always (the embedder's checks run on it too); the engine's dtype
            # only when the persona ran on the engine.
            **(engine_meta() if engine else {"cpu": detect_cpu().as_meta()}),
        }
    }
    claims_grounding, probe_grounding = SellerGrounding(retrieve), SellerGrounding(retrieve)
    try:

        async def labelled() -> None:
            progress("reviewer on persona_replies.jsonl")
            results["reviewer"] = await score_reviewer(
                read_jsonl(evalsets / "persona_replies.jsonl"), tenant, matcher
            )
            progress("compliance on trainee_turns.jsonl")
            results["compliance"] = await score_compliance(
                read_jsonl(evalsets / "trainee_turns.jsonl"), tenant, matcher, claims_grounding
            )
            results["compliance"]["seller_knowledge"] = claims_grounding.summary()
            if (evalsets / "grounding_questions.jsonl").exists():
                progress("the coach's knowledge hint on grounding_questions.jsonl")
                results["grounding"] = await score_grounding(
                    read_jsonl(evalsets / "grounding_questions.jsonl"), tenant, matcher, retrieve
                )
            progress("evaluator on transcripts.jsonl")
            results["evaluator"] = await score_evaluator(
                read_jsonl(evalsets / "transcripts.jsonl"), tenant, matcher
            )

        asyncio.run(labelled())
        probes = read_jsonl(evalsets / "probes.jsonl")
        if engine and probes:
            progress(f"persona ({persona} prompt) on probes.jsonl through the engine")
            replies, ttft = asyncio.run(
                run_probes(
                    tenant,
                    probes,
                    matcher,
                    retrieve,
                    probe_grounding,
                    settings,
                    persona,
                    progress,
                    npc_config,
                )
            )
            results["persona"] = {
                **probe_summary(replies, read_jsonl(evalsets / "probe_labels.jsonl")),
                **ttft,
                "seller_knowledge": probe_grounding.summary(),
                "probe_replies": replies,
            }
    finally:
        store.close()
        shutil.rmtree(store_dir, ignore_errors=True)
    return results
