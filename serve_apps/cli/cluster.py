"""``salesboost cluster``: the serving cluster for ops (KubeRay manifests, local cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

cluster_app = typer.Typer(
    help="The serving cluster: KubeRay manifests, migrations, local cluster status.",
    no_args_is_help=True,
)


@cluster_app.command("render")
def render(
    profile: Annotated[str, typer.Option(help="gpu (production) or cpu (the bundled model).")],
    out: Annotated[Path, typer.Option(help="Folder; the manifests go to OUT/<profile>/.")] = Path(
        "cluster/k8s"
    ),
    serve_config: Annotated[
        Path | None,
        typer.Option(help="Another Serve config than the profile's (cluster/values/*.yaml)."),
    ] = None,
) -> None:
    """Write the RayService, Ingress, PodDisruptionBudgets, migration Job, PodMonitor and
    PrometheusRule for a profile, from the same Serve config `salesboost up` deploys.
    Nothing is written on bad input."""
    from cluster.render import RenderError, write

    try:
        written = write(profile, out, serve_config_path=serve_config)
    except RenderError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for path in written:
        typer.echo(f"wrote {path}")


@cluster_app.command("migrate")
def migrate() -> None:
    """Apply the database migrations as the schema owner (the Kubernetes Job runs this)."""
    from db.migrate import upgrade
    from serve_apps.settings import get_settings

    settings = get_settings()
    url = settings.migration_database_url or settings.database_url
    if not url:
        typer.echo("error: set SALESBOOST_MIGRATION_DATABASE_URL (or DATABASE_URL)", err=True)
        raise typer.Exit(2)
    upgrade(url)
    typer.echo("migrations applied")


@cluster_app.command("status")
def status(
    address: Annotated[
        str, typer.Option(help="The Ray cluster; auto: the one on this machine.")
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Nodes, deployments, and where each replica runs (a running `salesboost up`)."""
    import json
    import os

    import ray

    from cluster.local import cluster_report, use_cluster_token
    from serve_apps.settings import get_settings

    # A multi-node `salesboost up` keeps its cluster's auth token under the data directory.
    token = get_settings().data_dir / "ray-nodes" / "auth_token"
    if token.is_file() and "RAY_AUTH_TOKEN_PATH" not in os.environ:
        use_cluster_token(token)

    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except ConnectionError as exc:
        typer.echo(f"error: no Ray cluster at {address!r} ({exc}); start `salesboost up`", err=True)
        raise typer.Exit(2) from None
    try:
        report = cluster_report()
    finally:
        ray.shutdown()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo("nodes")
    for node in report["nodes"]:
        extra = "  holds the Qdrant folder" if node["qdrant_local_folder"] else ""
        state = "alive" if node["alive"] else "dead"
        typer.echo(f"  {node['name']:10} {state:6} {node['cpus']:5.1f} CPU{extra}")
    typer.echo("deployments")
    for name, deployment in sorted(report["deployments"].items()):
        placed: dict[str, int] = {}
        for replica in deployment["replicas"]:
            placed[replica["node"]] = placed.get(replica["node"], 0) + 1
        where = ", ".join(f"{n} x{c}" for n, c in sorted(placed.items()))
        typer.echo(
            f"  {name:60} {deployment['status']:10} {len(deployment['replicas'])}/"
            f"{deployment['target_replicas']} replicas  [{where}]"
        )
