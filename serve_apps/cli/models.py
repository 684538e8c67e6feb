"""``salesboost models status|swap|canary|compare|promote|rollback|replay``: the platform's
model versions, through the running API (the embedder's and the reranker's: ``cli/encoders.py``).

The changes run in the cluster (``serve_apps/model_lifecycle``); these send them, then
follow the role's status until the change is done or failed (``--no-wait`` returns at once).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from serve_apps.cli.kb import (
    DEFAULT_ADMIN,
    DEFAULT_URL,
    TenantOption,
    UrlOption,
    UserOption,
    _client,
    _ok,
)

FINAL_STATES = ("done", "failed", "unchanged")
# A canary's start is over once it runs (both versions answer) or failed.
CANARY_FINAL_STATES = ("canary", "failed")


def _show(status: dict[str, Any]) -> None:
    for role, entry in status["roles"].items():
        active = entry["active"]
        origin = "the Serve config's" if entry["configured"] else "swapped in"
        typer.echo(f"{role:6} {active['version']:40} {active['app_name']:16} ({origin})")
        if canary := entry.get("canary"):
            candidate = canary["candidate"]
            counts = canary.get("sessions") or {}
            typer.echo(
                f"       canary {candidate['version']:33} {candidate['app_name']:16} "
                f"{canary['share']}% of new sessions (seed {canary['seed']})"
            )
            typer.echo(
                f"       sessions since it started: {counts.get(candidate['version'], 0)} "
                f"candidate, {counts.get(active['version'], 0)} active"
            )
        if last := entry.get("last_swap"):
            message = f": {last['message']}" if last["message"] else ""
            kind = last.get("kind", "swap")
            typer.echo(f"       last {kind} to {last['candidate']}: {last['state']}{message}")


def _read_config(config: str) -> dict[str, Any]:
    """A model config's fields, from a YAML path or a name under models/configs."""
    import yaml

    from serve_apps.app import resolve_model_config

    try:
        return yaml.safe_load(resolve_model_config(config).read_text())
    except (ValueError, yaml.YAMLError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(code=2) from None


def _follow(
    client: Any, role: str, started: dict[str, Any], final: tuple[str, ...], timeout: int
) -> None:
    """Print the role's change as it goes, until it reaches one of ``final`` (exit code 1
    when it failed, or is still going after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        last = _ok(client.get("/v1/models"))["roles"][role].get("last_swap") or {}
        if last.get("started_at") == started["started_at"]:
            line = f"{last['state']}" + (f": {last['message']}" if last["message"] else "")
            if line != seen:
                typer.echo(f"  {line}")
                seen = line
            if last["state"] in final:
                raise typer.Exit(code=1 if last["state"] == "failed" else 0)
        time.sleep(2)
    typer.secho(f"still running after {timeout} s: see `salesboost models status`", err=True)
    raise typer.Exit(code=1)


def status_command(
    url: UrlOption = DEFAULT_URL,
    tenant: TenantOption = "demo",
    user: UserOption = DEFAULT_ADMIN,
    as_json: Annotated[bool, typer.Option("--json", help="The API's JSON.")] = False,
) -> None:
    """Which model version answers each role, and each role's last swap."""
    from serve_apps.cli import encoders

    with _client(url, tenant, user) as client:
        status = _ok(client.get("/v1/models"))
        encoder_status = encoders.encoder_status(client)
    if as_json:
        typer.echo(json.dumps({**status, "encoders": encoder_status}, indent=2))
        return
    _show(status)
    if encoder_status is not None:
        encoders.show_encoders(encoder_status)


def swap_command(
    role: Annotated[str, typer.Argument(help="npc, judge, embedder or reranker.")],
    config: Annotated[str, typer.Argument(help="A model config: a YAML path or a name.")],
    url: UrlOption = DEFAULT_URL,
    tenant: TenantOption = "demo",
    user: UserOption = DEFAULT_ADMIN,
    wait: Annotated[bool, typer.Option(help="Follow the swap until it ends.")] = True,
    timeout: Annotated[int, typer.Option(help="Seconds to follow it.")] = 1200,
) -> None:
    """Swap ROLE to the version CONFIG describes under live conversations: it comes up beside
    the old one, new turns move to it once it answers, and the old one finishes its replies
    and goes. A config that fails validation or a candidate that fails to start changes
    nothing; the old version keeps answering. The embedder: every knowledge base is rebuilt
    by it beside its live version and switched when built (the old versions stay:
    `salesboost models restore embedder VERSION`); the reranker: the next searches are
    scored by it."""
    from serve_apps.cli import encoders

    if role in encoders.ENCODER_KINDS:
        encoders.swap(role, config, url, tenant, user, wait, timeout)
        return
    settings = _read_config(config)
    with _client(url, tenant, user) as client:
        started = _ok(client.post(f"/v1/models/{role}/swap", json={"config": settings}))
        typer.echo(f"swapping {role} to {started['candidate']} (was {started['previous']})")
        if wait:
            _follow(client, role, started, FINAL_STATES, timeout)


def canary_command(
    role: Annotated[str, typer.Argument(help="npc: the persona's model.")],
    config: Annotated[str, typer.Argument(help="A model config: a YAML path or a name.")],
    share: Annotated[
        int, typer.Option(help="Percent of the new sessions the candidate gets (1-99).")
    ],
    seed: Annotated[
        int | None,
        typer.Option(help="Which sessions draw the candidate (a hash of id and seed); random."),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    tenant: TenantOption = "demo",
    user: UserOption = DEFAULT_ADMIN,
    wait: Annotated[bool, typer.Option(help="Follow the candidate's start.")] = True,
    timeout: Annotated[int, typer.Option(help="Seconds to follow it.")] = 1200,
) -> None:
    """Give SHARE percent of the new training sessions the version CONFIG describes: it comes
    up beside the active one, then each new session draws its version once, from its id and
    the seed, and keeps it for all its turns. Compare them with `salesboost models compare`,
    then promote or roll back. A candidate that fails to start changes nothing."""
    settings = _read_config(config)
    body: dict[str, Any] = {"config": settings, "share": share}
    if seed is not None:
        body["seed"] = seed
    with _client(url, tenant, user) as client:
        started = _ok(client.post(f"/v1/models/{role}/canary", json=body))
        typer.echo(
            f"canary of {role}: {started['candidate']} for {started['share']}% of the new "
            f"sessions (seed {started['seed']}), beside {started['previous']}"
        )
        if wait:
            _follow(client, role, started, CANARY_FINAL_STATES, timeout)


def _end_canary(
    action: str, role: str, url: str, tenant: str, user: str, wait: bool, timeout: int
) -> None:
    with _client(url, tenant, user) as client:
        started = _ok(client.post(f"/v1/models/{role}/{action}"))
        typer.echo(
            f"{action}: {role} answered by {started['candidate']}, "
            f"{started['previous']} retired once no gateway routes to it"
        )
        if wait:
            _follow(client, role, started, FINAL_STATES, timeout)


def promote_command(
    role: Annotated[str, typer.Argument(help="npc: the persona's model.")],
    url: UrlOption = DEFAULT_URL,
    tenant: TenantOption = "demo",
    user: UserOption = DEFAULT_ADMIN,
    wait: Annotated[bool, typer.Option(help="Follow until the old version is retired.")] = True,
    timeout: Annotated[int, typer.Option(help="Seconds to follow it.")] = 300,
) -> None:
    """End the canary with its candidate answering every session (running ones from their
    next turn); the old active version is retired."""
    _end_canary("promote", role, url, tenant, user, wait, timeout)


def rollback_command(
    role: Annotated[str, typer.Argument(help="npc: the persona's model.")],
    url: UrlOption = DEFAULT_URL,
    tenant: TenantOption = "demo",
    user: UserOption = DEFAULT_ADMIN,
    wait: Annotated[bool, typer.Option(help="Follow until the candidate is retired.")] = True,
    timeout: Annotated[int, typer.Option(help="Seconds to follow it.")] = 300,
) -> None:
    """End the canary with the active version answering every session (the candidate's
    running ones from their next turn); the candidate is retired."""
    _end_canary("rollback", role, url, tenant, user, wait, timeout)


def _number(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def show_comparison(comparison: dict[str, Any]) -> None:
    """The comparison as a table, one version a row."""
    typer.echo(
        f"{comparison['role']} versions, sessions started since {comparison['since'][:16]} "
        f"({comparison['scope']}):"
    )
    typer.echo(
        f"  {'version':34} {'':9} {'assigned':>8} {'sessions':>8} {'turns':>6} "
        f"{'score':>6} {'±sd':>5} {'rejected':>8} {'ttft p50':>9} {'unansw.':>7} {'errors':>6}"
    )
    for v in comparison["versions"]:
        rejected = (
            f"{v['rejection_rate']:.0%} of {v['reviews']}"
            if v["rejection_rate"] is not None
            else "-"
        )
        ttft = f"{v['ttft_p50_ms']:.0f} ms" if v["ttft_p50_ms"] is not None else "-"
        typer.echo(
            f"  {v['version']:34} {v['serving'] or '':9} {v['sessions_assigned']:>8} "
            f"{v['sessions']:>8} {v['turns']:>6} {_number(v['score_mean']):>6} "
            f"{_number(v['score_stddev']):>5} {rejected:>8} {ttft:>9} "
            f"{v['unanswered_turns']:>7} {v['agent_errors']:>6}"
        )
    if comparison["mixed_sessions"]:
        typer.echo(
            f"  {comparison['mixed_sessions']} sessions were answered by more than one version "
            "(moved by a swap, promotion or rollback): their scores count for neither"
        )


def compare_command(
    role: Annotated[str, typer.Argument(help="npc: the persona's model.")],
    days: Annotated[int, typer.Option(help="Sessions started in the last DAYS days.")] = 30,
    url: UrlOption = DEFAULT_URL,
    tenant: TenantOption = "demo",
    user: UserOption = DEFAULT_ADMIN,
    as_json: Annotated[bool, typer.Option("--json", help="The API's JSON.")] = False,
) -> None:
    """Each model version's sessions, turns, evaluator score (mean and spread), reviewer
    rejection rate, median time to first token and failures, from your company's stored
    sessions (every company's: `salesboost operator model-compare`)."""
    with _client(url, tenant, user) as client:
        comparison = _ok(client.get(f"/v1/models/{role}/compare", params={"days": days}))
    typer.echo(json.dumps(comparison, indent=2)) if as_json else show_comparison(comparison)


def _side_by_side(report: dict[str, Any]) -> None:
    """The replay's totals, the stored replies beside the candidate's."""
    typer.echo(
        f"replayed {report['replayed']} of {report['sessions_asked']} sessions asked "
        f"({report['scope']}), {report['failed']} failed; stored "
        f"{', '.join(report['stored_versions']) or '-'} against {report['candidate_version']}"
    )
    rows = [
        ("evaluator score", "score", ".1f"),
        ("scored sessions", "scored_sessions", "d"),
        ("replies", "replies", "d"),
        ("reviewer rejections", "rejections", "d"),
        ("  of verdicts", "reviews", "d"),
        ("rejection rate", "rejection_rate", ".0%"),
        ("reply length (chars)", "reply_chars_mean", ".0f"),
        ("output tokens", "output_tokens_mean", ".1f"),
        ("first token p50 (ms)", "ttft_p50_ms", ".0f"),
        ("cut at the limit", "cut_replies", "d"),
        ("  of replies known", "cut_known", "d"),
    ]
    typer.echo(f"  {'':22} {'stored':>10} {'candidate':>10}")
    for label, field, spec in rows:
        stored, candidate = report["stored"][field], report["candidate"][field]
        typer.echo(f"  {label:22} {_number(stored, spec):>10} {_number(candidate, spec):>10}")
    for session in report["sessions"]:
        if session["state"] != "replayed":
            typer.echo(f"  session {session['session_id']}: {session['error']}")


def replay_command(
    candidate: Annotated[
        str, typer.Option(help="The candidate's model config: a YAML path or a name.")
    ],
    sessions: Annotated[
        int, typer.Option(min=1, max=50, help="Your company's most recent sessions to replay.")
    ],
    url: UrlOption = DEFAULT_URL,
    tenant: Annotated[
        str,
        typer.Option(
            help="Your company (a model admin's): its sessions are the ones replayed. Another "
            "company's sessions are never replayed through the API."
        ),
    ] = "demo",
    user: UserOption = DEFAULT_ADMIN,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the report (JSON) to this file.")
    ] = None,
    timeout: Annotated[int, typer.Option(help="Seconds to wait for the report.")] = 3600,
) -> None:
    """Replay the trainee turns of your company's most recent SESSIONS sessions against the
    CANDIDATE version (brought up beside the others without any traffic routed to it, and
    removed after unless it was served already), with the reviewer and the evaluator, and
    compare it with the stored replies: evaluator score, reviewer rejections, reply length,
    first-token time, replies cut at the limit, and every turn's two replies (--json).
    Nothing stored changes."""
    settings = _read_config(candidate)
    with _client(url, tenant, user) as client:
        started = _ok(
            client.post("/v1/models/npc/replay", json={"config": settings, "sessions": sessions})
        )
        replay_id = started["replay_id"]
        typer.echo(
            f"replay {replay_id}: {started['sessions_total']} sessions against "
            f"{started['candidate']}"
        )
        deadline = time.monotonic() + timeout
        seen = ""
        while True:
            status = _ok(client.get(f"/v1/models/replays/{replay_id}"))
            line = status["state"] + (f": {status['message']}" if status["message"] else "")
            if line != seen:
                typer.echo(f"  {line}")
                seen = line
            if status["state"] in ("done", "failed"):
                break
            if time.monotonic() > deadline:
                typer.secho(
                    f"still running after {timeout} s: GET /v1/models/replays/{replay_id}",
                    err=True,
                )
                raise typer.Exit(code=1)
            time.sleep(2)
    if status["state"] == "failed":
        raise typer.Exit(code=1)
    report = status["report"]
    if json_file is not None:
        json_file.write_text(json.dumps(report, indent=2))
        typer.echo(f"wrote {json_file}")
    _side_by_side(report)
