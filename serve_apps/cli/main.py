"""``salesboost``: run the product, prepare models, chat with a persona, benchmark."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from serve_apps.cli import encoders as encoders_cli
from serve_apps.cli import models as models_cli
from serve_apps.cli.cluster import cluster_app
from serve_apps.cli.kb import kb_app
from serve_apps.cli.operator import operator_app
from serve_apps.cli.trace import trace
from serve_apps.telemetry.logs import configure_logging

app = typer.Typer(
    help="SalesBoost: an AI sales-training simulator on Ray Serve.", no_args_is_help=True
)
models_app = typer.Typer(
    help="Prepare the bundled models; see and swap the versions that answer.", no_args_is_help=True
)
bench_app = typer.Typer(help="Benchmarks that write JSON results.", no_args_is_help=True)
loadtest_app = typer.Typer(
    help="Load tests with locust (loadtests/README.md); `capacity` finds the SLO's limit."
)
app.add_typer(models_app, name="models")
app.add_typer(kb_app, name="kb")
app.add_typer(bench_app, name="bench")
app.add_typer(loadtest_app, name="loadtest")
app.add_typer(operator_app, name="operator")
app.add_typer(cluster_app, name="cluster")
app.command("trace")(trace)


# What `salesboost bench` and `salesboost loadtest` import beyond the runtime: the loadtests
# package (left out of the runtime image) and the `load` extra's libraries.
LOAD_MODULES = {
    "loadtests": "the loadtests package",
    "matplotlib": "matplotlib",
    "locust": "locust",
    "websocket": "websocket-client",
}


def _need_the_load_extra(command: str) -> None:
    missing = [
        name for module, name in LOAD_MODULES.items() if importlib.util.find_spec(module) is None
    ]
    if missing:
        typer.echo(
            f"error: salesboost {command} needs {', '.join(missing)}: install a checkout with "
            "the load extra (`pip install -e '.[load]'`; `make install` does)",
            err=True,
        )
        raise typer.Exit(2)


@bench_app.callback()
def bench() -> None:
    """Benchmarks that write JSON results."""
    _need_the_load_extra("bench")


def _settings():
    from serve_apps.settings import get_settings

    return get_settings()


@app.command()
def up(
    nodes: Annotated[
        int, typer.Option(help="Ray nodes on this machine: a head and NODES-1 workers.")
    ] = 1,
    observability: Annotated[
        bool,
        typer.Option(
            "--observability",
            help="Also run Prometheus here, scraping Ray's metrics with the alert rules loaded.",
        ),
    ] = False,
) -> None:
    """Start everything here (embedded PostgreSQL/Redis unless URLs are set) and serve."""
    from cluster.local import ClusterSizeError, check_nodes
    from cluster.local_stack import Stack

    settings = _settings()
    try:
        check_nodes(nodes, settings.ray_num_cpus)
    except ClusterSizeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(
        "cli", level=settings.log_level, log_format=settings.log_format, whole_process=True
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with Stack(settings, nodes=nodes, observability=observability) as stack:
        stack.start()
        watched = ""
        if stack.prometheus is not None:
            watched = (
                f"  Prometheus: {stack.prometheus.url} (alerts: {stack.prometheus.url}/alerts)\n"
            )
        typer.echo(
            f"\nSalesBoost is up at {stack.base_url}\n"
            f"  API docs:   {stack.base_url}/docs\n"
            f"  health:     {stack.base_url}/health/ready\n"
            f"  chat:       salesboost chat --url {stack.base_url}\n"
            f"  WebSocket:  POST {stack.base_url}/v1/sessions, then WS /v1/sessions/{{id}}/stream\n"
            f"  metrics:    {', '.join(f'http://{t}/metrics' for t in stack.metrics_targets)}\n"
            f"  traces:     salesboost trace SESSION_ID (files under {settings.trace_dir})\n"
            f"{watched}"
            "Press Ctrl-C to stop."
        )
        stop.wait()
        typer.echo("stopping")


@models_app.command("prepare")
def models_prepare() -> None:
    """Turn the bundled GGUF models into folders vLLM loads, and merge the adapters of the
    configs that ask for it (does nothing the second time)."""
    import yaml

    from models.llm import LLMDeploymentSettings
    from models.prepare import prepare_models
    from serve_apps.app import MODEL_CONFIGS_DIR

    merged = [
        LLMDeploymentSettings.model_validate(raw)
        for path in sorted(MODEL_CONFIGS_DIR.glob("*.yaml"))
        if (raw := yaml.safe_load(path.read_text()))
        and (raw.get("persona_adapter") or {}).get("merge")
    ]
    prepare_models(_settings().models_dir, merged, progress=typer.echo)


@models_app.command("list")
def models_list() -> None:
    """List the bundled models and the LLM deployment configs."""
    from models.catalog import BUNDLED_MODELS
    from models.prepare import is_prepared
    from serve_apps.app import MODEL_CONFIGS_DIR

    for model in BUNDLED_MODELS.values():
        state = "prepared" if is_prepared(model, _settings().models_dir) else "not prepared"
        typer.echo(f"bundled  {model.name:28} {state:13} {model.description}")
    for path in sorted(MODEL_CONFIGS_DIR.glob("*.yaml")):
        typer.echo(f"config   {path.stem:28} {path}")


models_app.command("status")(models_cli.status_command)
models_app.command("swap")(models_cli.swap_command)
models_app.command("canary")(models_cli.canary_command)
models_app.command("compare")(models_cli.compare_command)
models_app.command("promote")(models_cli.promote_command)
models_app.command("rollback")(models_cli.rollback_command)
models_app.command("replay")(models_cli.replay_command)
models_app.command("restore")(encoders_cli.restore_command)


@app.command()
def chat(
    url: Annotated[str, typer.Option(help="Gateway base URL.")] = "http://127.0.0.1:8000",
    scenario: Annotated[str, typer.Option(help="Scenario slug or id.")] = "crm-discovery-call",
    session: Annotated[str | None, typer.Option(help="Continue an existing session id.")] = None,
    mode: Annotated[
        str, typer.Option(help="practice (every agent), assessment (no hints), conversation.")
    ] = "practice",
) -> None:
    """Talk to a customer persona in the terminal; the reply streams as it is generated, with
    the coach's hints and compliance findings beside it. /end scores the session."""
    from serve_apps.cli.chat import chat as run_chat

    try:
        asyncio.run(run_chat(url, scenario, session, mode))
    except (EOFError, KeyboardInterrupt):
        typer.echo("")


@bench_app.command("turn")
def bench_turn(
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the results.")],
    turns: Annotated[int, typer.Option(help="Measured turns per conversation.")] = 10,
    concurrency: Annotated[
        str, typer.Option(help="Comma-separated concurrent conversations.")
    ] = "1,8",
    max_tokens: Annotated[int, typer.Option(help="Reply length in tokens.")] = 60,
    url: Annotated[
        str | None, typer.Option(help="Use a running gateway instead of starting one.")
    ] = None,
    agents: Annotated[
        bool, typer.Option(help="Also run with every agent on, against the persona alone.")
    ] = False,
    repeats: Annotated[
        int,
        typer.Option(
            min=1,
            max=10,
            help="Runs per level (fresh conversations each), pooled in the summary: at 8 "
            "conversations one run's ratio swings with how requests meet the engine's steps.",
        ),
    ] = 3,
    think_ms: Annotated[
        int,
        typer.Option(
            min=0,
            max=60_000,
            help="Mean time a trainee reads and types before each measured turn (uniform from "
            "0 to twice this, the same on both sides); 0 answers at once.",
        ),
    ] = 0,
    direct_gap_ms: Annotated[
        int,
        typer.Option(
            min=0,
            max=60_000,
            help="A pause before each of the direct side's turns, like the gateway's turn gap "
            "(its stores, retrieval and hops): what the gap alone does to a bare engine.",
        ),
    ] = 0,
    tracing: Annotated[
        str,
        typer.Option(
            help="on (the settings' sampling), off, or both: the gateway side on a stack with "
            "tracing and again on one without (ttft_ratio_tracing_on_vs_off per level).",
        ),
    ] = "on",
) -> None:
    """Time to first token and whole-turn latency: through the gateway vs. a direct vLLM engine."""
    if tracing not in ("on", "off", "both"):
        typer.echo("error: --tracing is on, off or both", err=True)
        raise typer.Exit(2)
    from loadtests.bench.turn import TurnBenchConfig, run_turn_bench

    levels = [int(x) for x in concurrency.split(",") if x.strip()]
    config = TurnBenchConfig(
        turns=turns,
        concurrency=levels,
        max_tokens=max_tokens,
        url=url,
        agents=agents,
        repeats=repeats,
        think_ms=think_ms,
        direct_gap_ms=direct_gap_ms,
        tracing=tracing,
    )
    result = run_turn_bench(config, _settings(), progress=typer.echo)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2))
    typer.echo(json.dumps(result, indent=2))


@bench_app.command("quality")
def bench_quality(
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the results.")],
    evalsets: Annotated[
        Path | None, typer.Option(help="A folder of labelled sets (tests/evalsets/README.md).")
    ] = None,
    persona: Annotated[
        str, typer.Option(help="current, or before: the persona prompt before issue 22.")
    ] = "current",
    engine: Annotated[
        bool, typer.Option(help="Run the probe scripts through the vLLM engine.")
    ] = True,
    npc_config: Annotated[
        str,
        typer.Option(help="The persona's model config (a name under models/configs or a path)."),
    ] = "npc_cpu_persona",
) -> None:
    """The agents against labelled sets, and the persona on the engine (docs/quality.md)."""
    from loadtests.bench.quality import EVALSETS, run_quality_bench

    result = run_quality_bench(
        _settings(),
        evalsets=evalsets or EVALSETS,
        persona=persona,
        engine=engine,
        npc_config=npc_config,
        progress=typer.echo,
    )
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2))
    summary = {k: v for k, v in result.items() if k != "persona"}
    if "persona" in result:
        summary["persona"] = {k: v for k, v in result["persona"].items() if k != "probe_replies"}
    typer.echo(json.dumps(summary, indent=2))


@bench_app.command("swap")
def bench_swap(
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the results.")],
    conversations: Annotated[int, typer.Option(min=1, max=32, help="Running at once.")] = 4,
    candidate: Annotated[
        str, typer.Option(help="The candidate's model config (a YAML path or a name).")
    ] = "npc_cpu_candidate",
    warm_up_s: Annotated[float, typer.Option(min=0, help="Talking before the swap.")] = 20,
    after_s: Annotated[float, typer.Option(min=0, help="Talking after it ends.")] = 30,
    url: Annotated[str | None, typer.Option(help="A running gateway, not one started.")] = None,
) -> None:
    """K conversations through a swap of the persona's model: failed_turns and
    duplicated_turns (goal 0), the longest pause in a turn, TTFT before/during/after."""
    _need_the_load_extra("bench swap")
    from loadtests.bench.swap import SwapBenchConfig, run_swap_bench, write

    config = SwapBenchConfig(
        candidate=candidate,
        conversations=conversations,
        warm_up_s=warm_up_s,
        after_s=after_s,
        url=url,
    )
    result = run_swap_bench(config, _settings(), progress=typer.echo)
    write(result, json_path)
    typer.echo(json.dumps({k: v for k, v in result.items() if k != "meta"}, indent=2))


@bench_app.command("scaling")
def bench_scaling(
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the results.")],
    nodes: Annotated[
        str, typer.Option(help="Comma-separated cluster sizes, each run in turn.")
    ] = "1,2",
    conversations: Annotated[
        int, typer.Option(min=1, max=32, help="Conversations opened at once (the step).")
    ] = 6,
    turns: Annotated[int, typer.Option(min=1, max=50, help="Turns per conversation.")] = 20,
    think_ms: Annotated[
        int,
        typer.Option(min=0, max=60_000, help="Mean reading time before each turn (0 to 2x)."),
    ] = 1000,
    plot: Annotated[Path | None, typer.Option(help="PNG plot; default beside the JSON.")] = None,
) -> None:
    """A step load of conversations on a 1-node and a 2-node local Ray cluster: replicas over
    time, TTFT, turns/s, scale_up_s and failed_turns while Serve adds replicas."""
    from cluster.local import ClusterSizeError, check_nodes
    from loadtests.bench.scaling import ScalingBenchConfig, run_scaling_bench
    from loadtests.bench.scaling import plot as draw

    settings = _settings()
    try:
        sizes = tuple(sorted({int(x) for x in nodes.split(",") if x.strip()}))
        if not sizes:
            raise ClusterSizeError("--nodes: name at least one cluster size")
        for size in sizes:
            check_nodes(size, settings.ray_num_cpus)
        # Before a run of ten minutes, not after it.
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.touch()
    except (ValueError, ClusterSizeError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    config = ScalingBenchConfig(
        nodes=sizes, conversations=conversations, turns=turns, think_ms=think_ms
    )
    result = run_scaling_bench(config, settings, progress=typer.echo)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2))
    plot_path = plot or json_path.with_suffix(".png")
    draw(result, plot_path)
    summary = {k: v for k, v in result.items() if not k.startswith("nodes_")}
    for key in (k for k in result if k.startswith("nodes_")):
        summary[key] = {k: v for k, v in result[key].items() if k != "replicas"}
    typer.echo(json.dumps(summary, indent=2))
    typer.echo(f"plot: {plot_path}")


@bench_app.command("ui")
def bench_ui(
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the results.")],
    turns: Annotated[int, typer.Option(min=1, max=50, help="Measured turns.")] = 10,
    max_tokens: Annotated[int, typer.Option(min=1, max=512, help="Reply length in tokens.")] = 60,
    url: Annotated[
        str | None, typer.Option(help="Use a running gateway instead of starting one.")
    ] = None,
) -> None:
    """In Chromium: from Send to the reply's first token painted, against the gateway's own
    time to first token (painted_vs_gateway_ttft_p50), and the trainee's first load in KB."""
    from loadtests.bench.ui import run_ui_bench

    try:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.touch()
        result = run_ui_bench(
            _settings(), turns=turns, max_tokens=max_tokens, url=url, progress=typer.echo
        )
    except (OSError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    json_path.write_text(json.dumps(result, indent=2))
    summary = {k: v for k, v in result.items() if k not in ("turns", "first_load")}
    typer.echo(json.dumps(summary, indent=2))


@bench_app.command("retrieval")
def bench_retrieval(
    dataset: Annotated[Path, typer.Option(help="A BEIR folder (corpus, queries, qrels/test.tsv).")],
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the results.")],
    plot: Annotated[Path | None, typer.Option(help="PNG plot; default beside the JSON.")] = None,
    reuse_index: Annotated[
        bool,
        typer.Option(help="Reuse the last index of this corpus if built with the same settings."),
    ] = False,
) -> None:
    """nDCG@10, recall@100, MRR@10 and latency for dense, sparse, hybrid and hybrid+rerank."""
    from loadtests.bench.retrieval import plot as draw
    from loadtests.bench.retrieval import run_retrieval_bench

    result = run_retrieval_bench(dataset, _settings(), progress=typer.echo, reuse_index=reuse_index)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2))
    plot_path = plot or json_path.with_suffix(".png")
    draw(result, plot_path, title=dataset.name)
    typer.echo(json.dumps(result, indent=2))
    typer.echo(f"plot: {plot_path}")


@loadtest_app.callback(invoke_without_command=True)
def loadtest(
    ctx: typer.Context,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Where to write the report (required).")
    ] = None,
    profile: Annotated[
        str, typer.Option(help="A profile in loadtests/profiles/ (by name) or a YAML path.")
    ] = "default",
    users: Annotated[
        int | None, typer.Option(min=1, help="Concurrent users; default: the profile's ramp.")
    ] = None,
    spawn_rate: Annotated[
        float | None, typer.Option(min=0.01, help="Users started per second.")
    ] = None,
    run_time: Annotated[
        int | None, typer.Option(min=1, help="Seconds of load, from the first user.")
    ] = None,
    html: Annotated[Path | None, typer.Option(help="Locust's HTML report with its charts.")] = None,
    url: Annotated[
        str | None, typer.Option(help="Load a running gateway instead of starting a stack.")
    ] = None,
) -> None:
    """Locust, headless: trainees over the WebSocket, managers, admins and search over HTTP,
    mixed by a profile; writes TTFT and turn p50/p95/p99, failures by code, turns/s, output
    tokens/s and a time series (loadtests/README.md)."""
    _need_the_load_extra("loadtest")
    if ctx.invoked_subcommand is not None:
        return
    if json_path is None:
        typer.echo("error: --json FILE is required", err=True)
        raise typer.Exit(2)
    from loadtests.command import LoadTestError, run_loadtest

    try:
        result = run_loadtest(
            _settings(),
            profile=profile,
            users=users,
            spawn_rate=spawn_rate,
            run_time_s=run_time,
            json_path=json_path,
            html=html,
            url=url,
            progress=typer.echo,
        )
    except LoadTestError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    summary = {
        k: v
        for k, v in result.items()
        if k not in ("time_series", "config", "replicas", "cpu_by_process")
    }
    typer.echo(json.dumps(summary, indent=2))


@loadtest_app.command("surge")
def loadtest_surge(
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the results.")],
    profile: Annotated[
        str, typer.Option(help="A profile (its trainees' pacing and conversations).")
    ] = "default",
    sessions: Annotated[
        int, typer.Option(min=1, help="What the stack holds: the admission limit is set to it.")
    ] = 8,
    factor: Annotated[float, typer.Option(min=1.1, help="The surge: this many times.")] = 3.0,
    before: Annotated[int, typer.Option(min=10, help="Seconds at SESSIONS before.")] = 60,
    surge: Annotated[int, typer.Option(min=10, help="Seconds of the surge.")] = 90,
    after: Annotated[int, typer.Option(min=10, help="Seconds at SESSIONS after.")] = 90,
    slo_ttft_p95_ms: Annotated[
        float, typer.Option(min=1, help="The SLO: TTFT p95 at most this, in ms.")
    ] = 1500,
) -> None:
    """Overload on a stack started for it: SESSIONS trainees, then FACTOR times as many, then
    SESSIONS again: refusals (503 / overloaded), the admitted turns' TTFT p95 before, during
    and after, other failures, and recovery_s after the surge."""
    from loadtests.command import LoadTestError, run_surge

    try:
        result = run_surge(
            _settings(),
            profile=profile,
            sessions=sessions,
            factor=factor,
            before_s=before,
            surge_s=surge,
            after_s=after,
            slo_ttft_p95_ms=slo_ttft_p95_ms,
            json_path=json_path,
            progress=typer.echo,
        )
    except LoadTestError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        json.dumps({"surge": result["surge"], "failures": result["failures_by_code"]}, indent=2)
    )


@loadtest_app.command("capacity")
def loadtest_capacity(
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the results.")],
    profile: Annotated[
        str, typer.Option(help="A profile (its trainees' pacing and conversations).")
    ] = "default",
    slo_ttft_p95_ms: Annotated[
        float, typer.Option(min=1, help="The SLO: TTFT p95 at most this, in ms.")
    ] = 1500,
    levels: Annotated[
        str, typer.Option(help="Comma-separated numbers of concurrent trainee sessions.")
    ] = "2,4,8,12,16,20,24,32",
    step_time: Annotated[int, typer.Option(min=10, help="Seconds of load per level.")] = 120,
    url: Annotated[
        str | None, typer.Option(help="Load a running gateway instead of starting a stack.")
    ] = None,
) -> None:
    """Step the number of concurrent trainee sessions up until the SLO (TTFT p95 and no
    failure but rate_limited) breaks: capacity_sessions, with the curve under levels."""
    from loadtests.command import LoadTestError, run_capacity

    try:
        result = run_capacity(
            _settings(),
            profile=profile,
            slo_ttft_p95_ms=slo_ttft_p95_ms,
            levels=[int(x) for x in levels.split(",") if x.strip()],
            step_s=step_time,
            json_path=json_path,
            url=url,
            progress=typer.echo,
        )
    except (LoadTestError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(result, indent=2))
    from loadtests.report import plot_capacity

    plot_path = json_path.with_suffix(".png")
    plot_capacity(result, plot_path)
    typer.echo(f"plot: {plot_path}")


if __name__ == "__main__":
    app()
