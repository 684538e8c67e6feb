"""Deploy a Serve config file to a running Ray cluster the way a RayService does: the whole
config goes to Serve's controller, which imports and builds each application in a task on
the cluster and applies the file's ``deployments:`` options over the code's."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from cluster.serve_config import load_serve_config, with_model_applications


def local_serve_config(
    path: Path,
    *,
    env: dict[str, str],
    host: str,
    port: int,
    cluster_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The file's config for a cluster on this machine: the proxy on the head only (proxies
    of several local nodes would all bind the same port), at the stack's host and port, the
    stack's environment under each application's own ``env_vars`` (which win), and the
    stack's cluster-wide options (``tracing_config``, ``logging_config``) over the file's."""
    config = with_model_applications(copy.deepcopy(load_serve_config(path)))
    config.update(cluster_options or {})
    config["proxy_location"] = "HeadOnly"
    config["http_options"] = {**(config.get("http_options") or {}), "host": host, "port": port}
    for app in config["applications"]:
        runtime_env = dict(app.get("runtime_env") or {})
        runtime_env["env_vars"] = {**env, **(runtime_env.get("env_vars") or {})}
        app["runtime_env"] = runtime_env
    return config


def deploy_serve_config(
    path: Path,
    *,
    env: dict[str, str],
    host: str,
    port: int,
    cluster_options: dict[str, Any] | None = None,
) -> list[str]:
    """Send the config to the controller (Serve must be started); returns the app names."""
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(
        local_serve_config(path, env=env, host=host, port=port, cluster_options=cluster_options)
    )
    # The client `serve.run` and `serve deploy` use; `deploy_apps` is the dashboard's path.
    client = _get_global_client()
    if client is None:
        raise RuntimeError("Serve is not running: start it before deploying")
    client.deploy_apps(schema)
    return [app.name for app in schema.applications]


def raise_if_deploy_failed() -> None:
    """A clear error when an application failed to build or deploy (no waiting it out)."""
    from ray import serve

    for name, app in serve.status().applications.items():
        if str(app.status) in ("DEPLOY_FAILED", "ApplicationStatus.DEPLOY_FAILED"):
            raise RuntimeError(f"Serve application {name!r} failed to deploy: {app.message}")
