"""``salesboost models status|swap``: the platform's model versions, through the running API.

The swap runs in the cluster (``serve_apps/model_lifecycle``); this sends the config, then
follows the swap's status until it is done or failed (``--no-wait`` returns at once).
"""

from __future__ import annotations

import json
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

FINAL_STATES = ("done", "failed", "unchanged")


def _show(status: dict[str, Any]) -> None:
    for role, entry in status["roles"].items():
        active = entry["active"]
        origin = "the Serve config's" if entry["configured"] else "swapped in"
        typer.echo(f"{role:6} {active['version']:40} {active['app_name']:16} ({origin})")
        if last := entry.get("last_swap"):
            message = f": {last['message']}" if last["message"] else ""
            typer.echo(f"       last swap to {last['candidate']}: {last['state']}{message}")


def status_command(
    url: UrlOption = DEFAULT_URL,
    tenant: TenantOption = "demo",
    user: UserOption = DEFAULT_ADMIN,
    as_json: Annotated[bool, typer.Option("--json", help="The API's JSON.")] = False,
) -> None:
    """Which model version answers each role, and each role's last swap."""
    with _client(url, tenant, user) as client:
        status = _ok(client.get("/v1/models"))
    typer.echo(json.dumps(status, indent=2)) if as_json else _show(status)


def swap_command(
    role: Annotated[str, typer.Argument(help="npc or judge.")],
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
    nothing; the old version keeps answering."""
    import yaml

    from serve_apps.app import resolve_model_config

    try:
        settings = yaml.safe_load(resolve_model_config(config).read_text())
    except (ValueError, yaml.YAMLError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(code=2) from None
    with _client(url, tenant, user) as client:
        started = _ok(client.post(f"/v1/models/{role}/swap", json={"config": settings}))
        typer.echo(f"swapping {role} to {started['candidate']} (was {started['previous']})")
        if not wait:
            return
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            last = _ok(client.get("/v1/models"))["roles"][role].get("last_swap") or {}
            if last.get("started_at") == started["started_at"]:
                line = f"{last['state']}" + (f": {last['message']}" if last["message"] else "")
                if line != seen:
                    typer.echo(f"  {line}")
                    seen = line
                if last["state"] in FINAL_STATES:
                    raise typer.Exit(code=1 if last["state"] == "failed" else 0)
            time.sleep(2)
    typer.secho(f"still running after {timeout} s: see `salesboost models status`", err=True)
    raise typer.Exit(code=1)
