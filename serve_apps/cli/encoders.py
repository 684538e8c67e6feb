"""``salesboost models swap embedder|reranker CONFIG``, ``salesboost models restore embedder
VERSION``, and the encoders' lines of ``salesboost models status``, through the running API.

The changes run in the knowledge service (``serve_apps/knowledge/encoder_swap.py``); these
send them, then follow the change until it ends (``--no-wait`` returns at once).
"""

from __future__ import annotations

import time
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

ENCODER_KINDS = ("embedder", "reranker")
FINAL_STATES = ("done", "partial", "failed", "unchanged", "interrupted")
# Final states that left something undone: the command exits 1.
UNDONE_STATES = ("partial", "failed", "interrupted")


def read_encoder_config(config: str) -> dict[str, Any]:
    """An encoder config's fields, from a YAML path or a name under models/configs."""
    import yaml

    from serve_apps.app import resolve_model_config

    try:
        fields = yaml.safe_load(resolve_model_config(config).read_text())
    except (ValueError, yaml.YAMLError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(code=2) from None
    if not isinstance(fields, dict):
        typer.secho(f"error: {config} holds no config (a YAML mapping)", fg="red", err=True)
        raise typer.Exit(code=2)
    return fields


def show_encoders(status: dict[str, Any]) -> None:
    embedder, reranker = status["embedder"], status["reranker"]
    origin = "the Serve config's" if embedder["configured"] else "swapped in"
    typer.echo(f"{'embedder':8} {embedder['active']:40} {embedder['dim']}-d ({origin})")
    _show_last(embedder.get("last_change"))
    origin = "the Serve config's" if reranker["configured"] else "swapped in"
    typer.echo(f"{'reranker':8} {reranker['active']:40} ({origin})")
    _show_last(reranker.get("last_change"))


def _show_last(last: dict[str, Any] | None) -> None:
    if not last:
        return
    message = f": {last['message']}" if last["message"] else ""
    typer.echo(f"         last {last['action']} to {last['candidate']}: {last['state']}{message}")
    for failure in last.get("failures") or []:
        typer.echo(
            f"           {failure['tenant_id']}/{failure['knowledge_base']} stays on version "
            f"{failure['live_version']}: {failure['reason']}"
        )


def follow(client: Any, kind: str, started: dict[str, Any], timeout: int) -> None:
    """Print the change as it goes until it ends (exit code 1 when it left something undone,
    or is still going after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        last = _ok(client.get("/v1/models/encoders"))[kind].get("last_change") or {}
        if last.get("started_at") == started["started_at"]:
            line = f"{last['state']}" + (f": {last['message']}" if last["message"] else "")
            if line != seen:
                typer.echo(f"  {line}")
                seen = line
            if last["state"] in FINAL_STATES:
                for failure in last.get("failures") or []:
                    typer.echo(
                        f"    {failure['tenant_id']}/{failure['knowledge_base']} stays on "
                        f"version {failure['live_version']}: {failure['reason']}"
                    )
                raise typer.Exit(code=1 if last["state"] in UNDONE_STATES else 0)
        time.sleep(2)
    typer.secho(f"still running after {timeout} s: see `salesboost models status`", err=True)
    raise typer.Exit(code=1)


def swap(
    kind: str, config: str, url: str, tenant: str, user: str, wait: bool, timeout: int
) -> None:
    """Swap the embedder (a rebuild of every knowledge base) or the reranker to CONFIG."""
    settings = read_encoder_config(config)
    with _client(url, tenant, user) as client:
        started = _ok(client.post(f"/v1/models/{kind}/swap", json={"config": settings}))
        typer.echo(f"swapping the {kind} to {started['candidate']} (was {started['previous']})")
        if wait:
            follow(client, kind, started, timeout)


def restore_command(
    kind: Annotated[str, typer.Argument(help="embedder: the only encoder with versions kept.")],
    version: Annotated[
        str, typer.Argument(help="An embedder version (model@hash), as the status shows.")
    ],
    url: UrlOption = DEFAULT_URL,
    tenant: TenantOption = "demo",
    user: UserOption = DEFAULT_ADMIN,
    wait: Annotated[bool, typer.Option(help="Follow the restore until it ends.")] = True,
    timeout: Annotated[int, typer.Option(help="Seconds to follow it.")] = 600,
) -> None:
    """Make live again, in every company's knowledge bases, the newest version the embedder
    VERSION built (one with none, made since, is rebuilt by it), and let it build new
    versions."""
    if kind != "embedder":
        typer.secho(
            "error: only the embedder has versions to restore (swap the reranker back with "
            "`salesboost models swap reranker CONFIG`)",
            fg="red",
            err=True,
        )
        raise typer.Exit(code=2)
    with _client(url, tenant, user) as client:
        started = _ok(client.post("/v1/models/embedder/restore", json={"version": version}))
        typer.echo(f"restoring the embedder {version} (was {started['previous']})")
        if wait:
            follow(client, "embedder", started, timeout)


def encoder_status(client: Any) -> dict[str, Any] | None:
    """The encoders' status, or None from a server that has no such route."""
    response = client.get("/v1/models/encoders")
    return None if response.status_code == 404 else _ok(response)
