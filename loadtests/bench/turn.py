"""``salesboost bench turn``: NPC reply latency through the gateway vs. a direct vLLM engine.

Both sides hold the same conversations (the demo scenario's persona, the same trainee lines,
the same prompt builder, the same engine arguments from the same YAML, temperature 0 and the
same reply length), one conversation per concurrent client, each turn waiting for the reply
before the next. The direct side is vLLM's ``AsyncLLM`` with the process layout Ray Serve LLM
uses on CPU (the ``mp`` executor: front end in the caller, engine core and worker in
subprocesses).

The persona reads no seller documents (the orchestrator asks for them for the coach and the
claims check, after the persona's first token), so both sides send the same prompt for the
demo discovery call, which gives the persona no papers of its own.

With ``--think-ms`` each trainee reads and types before each measured turn (the same random
draws on both sides). Without it every conversation answers at once, a closed loop in which
the gateway's turn gap (its stores, retrieval and hops, a few hundred ms at 8 conversations)
brings the conversations back into step after every reply, so that their prompts reach the
engine together and queue behind each other; the direct side, with next to no gap, drifts
out of step. Reading time breaks the lockstep on both sides. ``--direct-gap-ms`` gives the
direct side such a gap alone (a pause before each of its turns), to show what the gap does to
a bare engine's queue.

With ``--agents`` the gateway side runs a second time with every agent on (sessions in
``practice`` mode: compliance, director, coach with the judge, reviewer), and the JSON gets
``agents`` beside ``gateway`` and the ratios ``ttft_ratio_agents_vs_npc`` and
``turn_ratio_agents_vs_npc`` (agents on ÷ the persona alone, both through the gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from loadtests.bench.engine_metrics import read_prefix_cache
from serve_apps.contracts.turn import (
    HistoryTurn,
    PersonaCard,
    ScenarioCard,
    TurnRequest,
)
from serve_apps.orchestrator.npc_prompt import (
    clean_reply,
    npc_messages,
    persona_decoding,
    trim_reply,
)
from serve_apps.settings import Settings

if TYPE_CHECKING:
    pass

Progress = Callable[[str], None]

TRAINEE_LINES = [
    "Hi Priya, thanks for taking the time. What made you join our webinar last week?",
    "How are your sales and service teams using the current CRM day to day?",
    "What would have to be true for a new CRM to be a success for you in a year?",
    "You mentioned the last migration ran long. What went wrong there?",
    "Who else will be involved in choosing the new system?",
    "How does the CRM need to work with SAP and Microsoft 365?",
    "What timeline are you working against for the switch?",
    "If we could show a fixed-price migration plan, would that address your concern?",
]
# Strides coprime with the number of lines: each visits every line, in its own order.
_STRIDES = (1, 3, 5, 7)
SCRIPTS = len(TRAINEE_LINES) * len(_STRIDES)


def trainee_line(script: int, turn: int) -> str:
    """What the trainee says at ``turn`` of conversation script ``script``.

    Every conversation of a bench run follows its own script, so that no two send the same
    prompt: eight trainees at once say different things, and a conversation that repeated
    another's prompts would be answered from vLLM's prefix cache and time the cache, not the
    path. Scripts with the same stride differ at every turn; the others from the second on.
    """
    start = script % len(TRAINEE_LINES)
    stride = _STRIDES[(script // len(TRAINEE_LINES)) % len(_STRIDES)]
    return TRAINEE_LINES[(start + turn * stride) % len(TRAINEE_LINES)]


@dataclass(frozen=True)
class TurnBenchConfig:
    turns: int = 5
    concurrency: list[int] = field(default_factory=lambda: [1, 8])
    max_tokens: int = 60
    url: str | None = None
    scenario: str = "crm-discovery-call"
    agents: bool = False
    repeats: int = 3  # fresh conversations per level; the spread of the ratio across them
    think_ms: int = 0  # the trainee's mean reading and typing time before each measured turn
    direct_gap_ms: int = 0  # a pause before each of the direct side's measured turns only
    # "both": the gateway side again on a stack with tracing off (a stack of its own: Serve's
    # tracing is fixed when the cluster starts), for ttft_ratio_tracing_on_vs_off.
    tracing: str = "on"


def think_time_s(script: int, turn: int, mean_ms: int) -> float:
    """How long the trainee of conversation script ``script`` reads and types before ``turn``:
    uniform between none and twice ``mean_ms``, drawn alike on both sides of the bench."""
    if mean_ms <= 0:
        return 0.0
    return random.Random(f"{script}:{turn}").uniform(0, 2 * mean_ms) / 1000


@dataclass(frozen=True)
class TurnSample:
    started: float  # perf_counter when the turn was sent
    ttft_s: float
    turn_s: float
    output_tokens: int
    # The gateway's own clock (``reply_done``'s ``timing``), in ms from the turn's arrival.
    server: dict[str, float | None] | None = None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(samples: list[TurnSample]) -> dict[str, float]:
    # Throughput over the measured turns only (warm-up turns are outside this window).
    wall_s = max(s.started + s.turn_s for s in samples) - min(s.started for s in samples)
    ttft = [s.ttft_s * 1000 for s in samples]
    turn = [s.turn_s * 1000 for s in samples]
    return {
        "ttft_ms_p50": round(_percentile(ttft, 50), 2),
        "ttft_ms_p95": round(_percentile(ttft, 95), 2),
        "turn_ms_p50": round(_percentile(turn, 50), 2),
        "turn_ms_p95": round(_percentile(turn, 95), 2),
        "output_tokens_per_s": round(sum(s.output_tokens for s in samples) / wall_s, 2),
        "turns": len(samples),
        **_server_summary([s.server for s in samples if s.server]),
    }


def _server_summary(timings: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the gateway's time went: the p50 of each step of its clock, and the model's own
    time to first token behind the gateway (asked → first token), which sets it beside the
    direct engine's."""
    if not timings:
        return {}
    steps = {
        step.removesuffix("_ms"): round(_percentile([t[step] for t in timings], 50), 2)
        for step in timings[0]
        if all(t[step] is not None for t in timings)
    }
    model = [
        t["first_token_ms"] - t["model_called_ms"]
        for t in timings
        if t.get("first_token_ms") is not None
    ]
    return {"server_ms_p50": steps, "model_ttft_ms_p50": round(_percentile(model, 50), 2)}


def demo_cards(scenario_slug: str) -> tuple[PersonaCard, ScenarioCard]:
    from db.seed import DEMO_TENANT_FILE

    data = yaml.safe_load(DEMO_TENANT_FILE.read_text())
    scenario = next(s for s in data["scenarios"] if s["slug"] == scenario_slug)
    persona = next(p for p in data["personas"] if p["slug"] == scenario["personas"][0])
    return PersonaCard.model_validate(persona), ScenarioCard.model_validate(scenario)


# --- the gateway side ------------------------------------------------------------------


async def gateway_conversation(
    base_url: str,
    scenario: str,
    turns: int,
    start: asyncio.Barrier | None = None,
    mode: str = "conversation",
    script: int = 0,
    think_ms: int = 0,
) -> list[TurnSample]:
    """One conversation; ``mode`` ``conversation`` is the persona alone, ``practice`` has every
    agent at work. The first token is the persona's first (of its first attempt)."""
    import httpx
    import websockets

    from serve_apps.contracts.wire import ws_url

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        response = await client.post("/v1/sessions", json={"scenario": scenario, "mode": mode})
        response.raise_for_status()
        session_id = response.json()["id"]
    samples: list[TurnSample] = []
    async with websockets.connect(ws_url(base_url, f"/v1/sessions/{session_id}/stream")) as ws:
        for index in range(turns + 1):  # the first turn warms up and is not measured
            if index == 1 and start is not None:
                await start.wait()
            if index > 0:
                await asyncio.sleep(think_time_s(script, index, think_ms))
            sample, event = await timed_turn(ws, trainee_line(script, index))
            if sample is None:
                raise RuntimeError(f"gateway error event: {event}")
            if index > 0:
                samples.append(sample)
    return samples


async def timed_turn(
    ws: Any, text: str, client_turn_id: str | None = None, started: float | None = None
) -> tuple[TurnSample | None, dict[str, Any]]:
    """Send one trainee turn on an open session socket and wait for its end: the sample and
    the ``reply_done``, or no sample and the ``error`` event that ended the turn instead (an
    optional agent's ``agent_failed`` does not end it). A turn sent again passes its id and
    when it was first sent, so that its times count from then."""
    turn_id = client_turn_id or uuid.uuid4().hex
    frame = {"type": "turn", "client_turn_id": turn_id, "text": text}
    started = time.perf_counter() if started is None else started
    await ws.send(json.dumps(frame))
    first: float | None = None
    seq: int | None = None  # this turn's, from its ack: events about other turns are not its
    while True:
        event = json.loads(await ws.recv())
        if event["type"] == "ack" and event.get("client_turn_id") == turn_id:
            seq = event["seq"]
        elif event["type"] == "error" and event["code"] != "agent_failed":
            ours = event.get("client_turn_id") == turn_id or (
                event.get("client_turn_id") is None and event.get("reply_to") in (None, seq)
            )
            if ours:
                return None, event
        elif seq is None or event.get("reply_to") != seq:
            continue  # before this turn's ack, or about another turn
        elif event["type"] == "token" and first is None:
            first = time.perf_counter() - started
        elif event["type"] == "reply_done":
            elapsed = time.perf_counter() - started
            sample = TurnSample(
                started,
                first or elapsed,
                elapsed,
                event.get("output_tokens") or 0,
                event.get("timing"),
            )
            return sample, event


# --- the direct side -------------------------------------------------------------------


def stored_reply(text: str, persona: PersonaCard) -> str:
    """A reply as the conversation stores it (``agents/npc.py``)."""
    return trim_reply(clean_reply(text, persona))[0]


async def direct_conversation(
    engine: Any,
    tokenizer: Any,
    persona: PersonaCard,
    scenario: ScenarioCard,
    turns: int,
    max_tokens: int,
    start: asyncio.Barrier | None = None,
    script: int = 0,
    think_ms: int = 0,
    gap_ms: int = 0,
    lora_request: Any = None,
) -> list[TurnSample]:
    from vllm import SamplingParams

    # The persona's own decoding (stops at a new speaker), as the orchestrator asks for it.
    decoding = persona_decoding(persona, [])
    params = SamplingParams(
        max_tokens=max_tokens,
        temperature=0,
        stop=list(decoding.stop),
        repetition_penalty=decoding.repetition_penalty,
    )
    history: list[HistoryTurn] = []
    samples: list[TurnSample] = []
    for index in range(turns + 1):
        if index == 1 and start is not None:
            await start.wait()
        if index > 0:
            await asyncio.sleep(think_time_s(script, index, think_ms) + gap_ms / 1000)
        text = trainee_line(script, index)
        request = TurnRequest(
            session_id="direct",
            tenant_id="bench",
            reply_to_seq=index,
            persona=persona,
            scenario=scenario,
            history=history,
            trainee_text=text,
            max_tokens=max_tokens,
            temperature=0,
        )
        started = time.perf_counter()
        prompt = tokenizer.apply_chat_template(
            npc_messages(request),  # the persona reads no seller documents (npc_prompt.py)
            add_generation_prompt=False,
            continue_final_message=True,
            tokenize=False,
        )
        first: float | None = None
        final = None
        async for output in engine.generate(
            prompt, params, request_id=uuid.uuid4().hex, lora_request=lora_request
        ):
            if first is None and output.outputs[0].token_ids:
                first = time.perf_counter() - started
            final = output
        elapsed = time.perf_counter() - started
        reply = final.outputs[0] if final else None
        history += [
            HistoryTurn(speaker="trainee", text=text),
            # What the gateway stores and the next prompt reads: the reply cleaned and cut to
            # its last whole sentence, not the raw text, so both sides prefill the same prompts
            # (the raw text would let the engine's prefix cache cover the last reply too).
            HistoryTurn(speaker="npc", text=stored_reply(reply.text if reply else "", persona)),
        ]
        if index > 0:
            samples.append(
                TurnSample(started, first or elapsed, elapsed, len(reply.token_ids) if reply else 0)
            )
    return samples


async def _run_level(
    make_conversation: Callable[[asyncio.Barrier, int], Any],
    clients: int,
    repeats: int = 1,
    first_script: int = 0,
) -> dict[str, Any]:
    """Run ``clients`` conversations ``repeats`` times; in each, all start their measured
    turns together after warm-up. The summary pools every turn; ``runs`` has each run's.

    Each conversation follows its own script (:func:`trainee_line`), numbered on from
    ``first_script``, so that no conversation of the level repeats another's prompts.
    """
    pooled: list[TurnSample] = []
    runs = []
    for run in range(repeats):
        start = asyncio.Barrier(clients)
        first = first_script + run * clients
        results = await asyncio.gather(
            *(make_conversation(start, first + c) for c in range(clients))
        )
        samples = [s for conversation in results for s in conversation]
        pooled += samples
        runs.append(summarize(samples))
    summary: dict[str, Any] = summarize(pooled)
    if repeats > 1:
        summary["runs"] = runs
    return summary


# --- orchestration ---------------------------------------------------------------------


def level_scripts(config: TurnBenchConfig) -> dict[int, int]:
    """The first conversation script of each concurrency level.

    Levels number their conversations on from each other, so that no level repeats another's
    prompts, and both sides number them alike, so that they hold the same conversations.
    Past ``SCRIPTS`` conversations in all, the scripts start over.
    """
    first, numbered = 0, {}
    for level in config.concurrency:
        numbered[level] = first
        first += level * config.repeats
    return numbered


def engine_meta() -> dict[str, Any]:
    """The CPU and the dtype the NPC engine runs in, so that figures from machines of
    different kinds are never compared blind."""
    from models.cpu_dtype import detect_cpu
    from models.llm import LLMDeploymentSettings
    from serve_apps.app import resolve_model_config

    npc = LLMDeploymentSettings.from_file(resolve_model_config("npc_cpu_persona"))
    choice = npc.dtype_choice()
    return {
        "cpu": detect_cpu().as_meta(),
        "engine_dtype": choice.dtype if choice is not None else npc.dtype,
        "engine_dtype_reason": choice.reason if choice is not None else "model config",
    }


def run_turn_bench(
    config: TurnBenchConfig, settings: Settings, progress: Progress = print
) -> dict[str, Any]:
    results: dict[str, Any] = {str(c): {} for c in config.concurrency}
    results["meta"] = {
        "turns_per_conversation": config.turns,
        "max_tokens": config.max_tokens,
        "temperature": 0,
        "cpu_count": os.cpu_count(),
        "repeats": config.repeats,
        "trainee_scripts": "one per conversation (trainee_line)",
        "think_ms": config.think_ms,
        "direct_gap_ms": config.direct_gap_ms,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **engine_meta(),
    }
    results["meta"]["tracing"] = config.tracing
    results["meta"]["trace_sampling_ratio"] = settings.trace_sampling_ratio
    _gateway_phase(config, settings, results, progress, tracing=config.tracing != "off")
    if config.tracing == "both":
        _gateway_phase(
            config, settings, results, progress, tracing=False, key="gateway_tracing_off"
        )
    _direct_phase(config, settings, results, progress)
    for level in config.concurrency:
        entry = results[str(level)]
        if config.agents:
            entry["ttft_ratio_agents_vs_npc"] = round(
                entry["agents"]["ttft_ms_p50"] / entry["gateway"]["ttft_ms_p50"], 3
            )
            entry["turn_ratio_agents_vs_npc"] = round(
                entry["agents"]["turn_ms_p50"] / entry["gateway"]["turn_ms_p50"], 3
            )
        entry["ttft_ratio_p50"] = round(
            entry["gateway"]["ttft_ms_p50"] / entry["direct"]["ttft_ms_p50"], 3
        )
        if config.repeats > 1:  # run i of the gateway against run i of the direct engine
            entry["ttft_ratio_p50_runs"] = [
                round(g["ttft_ms_p50"] / d["ttft_ms_p50"], 3)
                for g, d in zip(entry["gateway"]["runs"], entry["direct"]["runs"], strict=True)
            ]
        entry["turn_ratio_p50"] = round(
            entry["gateway"]["turn_ms_p50"] / entry["direct"]["turn_ms_p50"], 3
        )
        if config.tracing == "both":
            entry.update(tracing_cost(entry["gateway"], entry["gateway_tracing_off"]))
    return results


def tracing_cost(on: dict[str, Any], off: dict[str, Any]) -> dict[str, Any]:
    """What tracing costs a level's turns: its TTFT p50 and p95 with tracing over without, and
    run by run when the level was repeated (run i on, against run i off)."""
    cost: dict[str, Any] = {
        "ttft_ratio_tracing_on_vs_off": round(on["ttft_ms_p50"] / off["ttft_ms_p50"], 3),
        "ttft_p95_ratio_tracing_on_vs_off": round(on["ttft_ms_p95"] / off["ttft_ms_p95"], 3),
    }
    if "runs" in on and "runs" in off:
        cost["ttft_ratio_tracing_on_vs_off_runs"] = [
            round(a["ttft_ms_p50"] / b["ttft_ms_p50"], 3)
            for a, b in zip(on["runs"], off["runs"], strict=True)
        ]
    return cost


@contextlib.contextmanager
def bench_stack(
    settings: Settings,
    *,
    url: str | None,
    max_tokens: int,
    progress: Progress,
    tracing: bool | None = None,
) -> Iterator[str]:
    """The gateway's base URL: ``url``, or a stack started for the bench and stopped after.

    A started stack has a data directory of its own, so that it seeds and indexes the demo
    knowledge base with this code and the user's data is left alone (on the data directory of
    an older version the persona was grounded on chunks titled by an older parser, so the
    bench's two sides sent different prompts), and greedy replies of ``max_tokens``.
    """
    if url is not None:
        yield url
        return
    from cluster.local_stack import Stack

    data_dir = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    bench_settings = settings.model_copy(
        update={
            "npc_max_tokens": max_tokens,
            "npc_temperature": 0,
            "data_dir": data_dir,
            "models_dir_override": settings.models_dir,
            "tracing": settings.tracing if tracing is None else tracing,
        }
    )
    stack = Stack(bench_settings, progress=progress)
    try:
        stack.start()
        yield stack.base_url
    finally:
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _gateway_phase(
    config: TurnBenchConfig,
    settings: Settings,
    results: dict[str, Any],
    progress: Progress,
    *,
    tracing: bool | None = None,
    key: str = "gateway",
) -> None:
    runs = [(key, "conversation")]
    if config.agents and key == "gateway":
        runs.append(("agents", "practice"))
    first_scripts = level_scripts(config)
    if config.url is not None and key != "gateway":
        raise ValueError("--tracing both starts its own stacks; leave --url out")
    with bench_stack(
        settings,
        url=config.url,
        max_tokens=config.max_tokens,
        progress=progress,
        tracing=tracing,
    ) as base_url:
        # vLLM's prefix-cache counters, from the Ray metrics port of the stack's head.
        metrics_url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
        for level in config.concurrency:
            for key, mode in runs:
                progress(f"{key}: {level} concurrent conversation(s) x {config.turns} turns")

                def conversation(start: asyncio.Barrier, script: int, mode: str = mode) -> Any:
                    return gateway_conversation(
                        base_url,
                        config.scenario,
                        config.turns,
                        start,
                        mode,
                        script,
                        config.think_ms,
                    )

                before = read_prefix_cache(metrics_url)
                measured = asyncio.run(
                    _run_level(
                        conversation,
                        level,
                        config.repeats,
                        first_scripts[level],
                    )
                )
                after = read_prefix_cache(metrics_url, settle=before is not None)
                if before is not None and after is not None:
                    # Of the prompt tokens the engine looked up, those it did not prefill.
                    measured["prefix_cache_hit_rate"] = after.minus(before).hit_rate()
                results[str(level)][key] = measured
                progress(f"  {results[str(level)][key]}")


def local_npc_config(settings: Settings) -> str:
    """The persona's model config a local stack runs (``cluster/serve_local.yaml``)."""
    from cluster.serve_config import load_serve_config, salesboost_apps

    path = settings.serve_config
    (_, args), *_ = salesboost_apps(path, load_serve_config(path))
    return args.npc_llm_config


def _direct_phase(
    config: TurnBenchConfig, settings: Settings, results: dict[str, Any], progress: Progress
) -> None:
    from models.llm import LLMDeploymentSettings
    from serve_apps.app import resolve_model_config

    # The persona's model config of the stack the gateway side runs on (serve_local.yaml's).
    npc = LLMDeploymentSettings.from_file(resolve_model_config(local_npc_config(settings)))
    npc.prepare_merged(settings.models_dir, progress)
    os.environ.update(npc.engine_env())
    persona, scenario = demo_cards(config.scenario)
    first_scripts = level_scripts(config)

    async def run_all() -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        # The engine arguments Ray Serve LLM passes for a CPU deployment (mp executor).
        kwargs = {
            **npc.vllm_engine_kwargs(settings.models_dir),
            "distributed_executor_backend": "mp",
        }
        progress(f"direct: starting vLLM AsyncLLM with {kwargs}")
        engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))
        try:
            tokenizer = engine.get_tokenizer()
            # A fresh engine's first steps are slow; warm it up on first turns alone, which
            # every conversation sends unmeasured anyway, so no measured prompt is seen early.
            await asyncio.gather(
                *(
                    direct_conversation(
                        engine,
                        tokenizer,
                        persona,
                        scenario,
                        0,
                        config.max_tokens,
                        None,
                        script,
                        lora_request=npc.persona_lora_request(),
                    )
                    for script in range(max(config.concurrency))
                )
            )
            for level in config.concurrency:
                progress(f"direct: {level} concurrent conversation(s) x {config.turns} turns")
                results[str(level)]["direct"] = await _run_level(
                    lambda start, script: direct_conversation(
                        engine,
                        tokenizer,
                        persona,
                        scenario,
                        config.turns,
                        config.max_tokens,
                        start,
                        script,
                        config.think_ms,
                        config.direct_gap_ms,
                        npc.persona_lora_request(),
                    ),
                    level,
                    config.repeats,
                    first_scripts[level],
                )
                progress(f"  {results[str(level)]['direct']}")
        finally:
            engine.shutdown()

    asyncio.run(run_all())
