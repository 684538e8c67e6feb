"""A real multi-node Ray cluster on this machine: a head and N-1 worker nodes, each its own
``ray start --block`` process (its own raylet, object store and workers), with logical
resources; what ``salesboost up --nodes N`` runs the product on.

On one machine the nodes share the cores: the point is the mechanism (scheduling across
nodes, replicas placed on each, scale-up onto another node), not more capacity.

The head holds the data directory's Qdrant folder, so it alone offers the custom resource
``qdrant_local_folder`` that the knowledge service's replica needs (``serve_local.yaml``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

QDRANT_FOLDER_RESOURCE = "qdrant_local_folder"
# Each node gets the same share of logical CPUs; more than the physical cores (replicas
# mostly wait on I/O and on the engine), as a one-node stack has.
MAX_NODES = 4
MIN_CPUS_PER_NODE = 2


class ClusterSizeError(ValueError):
    """More or fewer nodes than this machine can hold."""


def check_nodes(nodes: int, num_cpus: int) -> None:
    if nodes < 1:
        raise ClusterSizeError(f"--nodes {nodes}: a cluster needs at least 1 node (the head)")
    if nodes > MAX_NODES:
        raise ClusterSizeError(
            f"--nodes {nodes}: this machine holds at most {MAX_NODES} local nodes "
            "(each is a raylet with its own object store and workers)"
        )
    if num_cpus // nodes < MIN_CPUS_PER_NODE:
        raise ClusterSizeError(
            f"--nodes {nodes}: {num_cpus} logical CPUs (SALESBOOST_RAY_NUM_CPUS) give each node "
            f"fewer than {MIN_CPUS_PER_NODE}; raise it to at least {nodes * MIN_CPUS_PER_NODE}"
        )


AUTH_ENVIRONMENT = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")


def use_cluster_token(token: Path) -> dict[str, str]:
    """Make this process (and the processes it starts) present ``token`` to Ray; returns
    the environment that says so.

    Ray reads its config (the auth mode among it) and the token once per process and caches
    both: a process that imported Ray before would otherwise knock on the cluster with no
    token. Ray refreshes them the same way when it turns token auth on itself
    (``ray._private.authentication``)."""
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    os.environ.update(auth)
    _refresh_ray_auth()
    return auth


def restore_auth_environment(before: dict[str, str | None]) -> None:
    """Undo :func:`use_cluster_token` once its cluster is gone: a later cluster of this
    process (a one-node stack after a two-node one) must not look for a deleted token."""
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _refresh_ray_auth()


def _refresh_ray_auth() -> None:
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_cli() -> str:
    return str(Path(sys.executable).parent / "ray")


@dataclass
class LocalRayCluster:
    """``ray start`` processes this object started, and only those (stopped by their pids)."""

    nodes: int
    num_cpus: int
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    # Each node's metrics agent serves on its own port on this machine: this one and the next.
    metrics_port: int | None = None
    address: str = ""
    _processes: list[subprocess.Popen] = field(default_factory=list)
    _auth_before: dict[str, str | None] | None = None
    _token: Path | None = None

    def start(self, *, timeout_s: float = 120) -> LocalRayCluster:
        check_nodes(self.nodes, self.num_cpus)
        self._use_auth_token()
        per_node = self.num_cpus // self.nodes
        port = _free_port()
        # The GCS listens on the node's own address (not loopback), as `ray start` reports.
        from ray._private.services import get_node_ip_address

        self.address = f"{get_node_ip_address()}:{port}"
        head = [
            "--head",
            f"--port={port}",
            "--include-dashboard=false",
            f"--resources={json.dumps({QDRANT_FOLDER_RESOURCE: 1})}",
            "--labels=salesboost.io/node=head",
            *self._metrics_port_args(0),
        ]
        self._spawn("head", head, per_node)
        try:
            self._wait_for_nodes(1, timeout_s)
            for index in range(1, self.nodes):
                worker = [
                    f"--address={self.address}",
                    f"--labels=salesboost.io/node=worker-{index}",
                    *self._metrics_port_args(index),
                ]
                self._spawn(f"worker-{index}", worker, per_node)
            self._wait_for_nodes(self.nodes, timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _metrics_port_args(self, index: int) -> list[str]:
        if self.metrics_port is None:
            return []
        return [f"--metrics-export-port={self.metrics_port + index}"]

    @property
    def metrics_targets(self) -> list[str]:
        if self.metrics_port is None:
            return []
        return [f"127.0.0.1:{self.metrics_port + index}" for index in range(self.nodes)]

    def _use_auth_token(self) -> None:
        """`ray start` turns on Ray's token authentication: one random token per cluster, in
        a file only this user reads, named to every node and to this driver (which connects
        next) through the environment; `salesboost cluster status` reads the same file."""
        import secrets

        folder = self.log_dir or Path(tempfile.mkdtemp(prefix="salesboost-ray-"))
        folder.mkdir(parents=True, exist_ok=True)
        token = folder / "auth_token"
        token.unlink(missing_ok=True)
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        self._auth_before = {key: os.environ.get(key) for key in AUTH_ENVIRONMENT}
        self._token = token
        self.env = {**self.env, **use_cluster_token(token)}

    def _spawn(self, name: str, args: list[str], num_cpus: int) -> None:
        log: int | IO[bytes] = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = open(self.log_dir / f"ray-{name}.log", "ab")  # noqa: SIM115 (held by the child)
        command = [_ray_cli(), "start", *args, f"--num-cpus={num_cpus}", "--num-gpus=0", "--block"]
        self._processes.append(
            subprocess.Popen(
                command,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its daemons in a process group of its own
            )
        )

    def _wait_for_nodes(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for process in self._processes:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"`ray start` exited with {process.returncode} (logs: {self.log_dir})"
                    )
            if self.alive_nodes() >= count:
                return
            time.sleep(1)
        raise TimeoutError(f"{count} Ray nodes were not up within {timeout_s:.0f} s")

    def alive_nodes(self) -> int:
        """Nodes the GCS counts as alive (asked directly: the state API needs a dashboard)."""
        from ray._raylet import GcsClient  # type: ignore[attr-defined]
        from ray.core.generated.gcs_pb2 import GcsNodeInfo  # type: ignore[attr-defined]

        try:
            nodes = GcsClient(address=self.address).get_all_node_info(timeout=5)
        except Exception:  # the GCS is not up yet
            return 0
        return sum(1 for node in nodes.values() if node.state == GcsNodeInfo.ALIVE)

    def stop(self, timeout_s: float = 30) -> None:
        """SIGTERM to each ``ray start --block`` this cluster started (it stops the daemons
        it started), then SIGKILL to the process group of any that is still there."""
        for process in reversed(self._processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in reversed(self._processes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            # Whatever of its daemons is left, in the group it leads (and only that group).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        self._processes.clear()
        if self._auth_before is not None:
            restore_auth_environment(self._auth_before)
            self._auth_before = None
        if self._token is not None:  # `cluster status` must not offer it to a later cluster
            self._token.unlink(missing_ok=True)
            self._token = None


def cluster_report() -> dict:
    """Nodes, and each deployment's replicas with their state and node, from a driver
    connected to the cluster (Serve's controller answers; no dashboard needed)."""
    import ray
    from ray.serve.context import _get_global_client

    nodes = {}
    for node in ray.nodes():
        labels = node.get("Labels") or {}
        nodes[node["NodeID"]] = {
            "node_id": node["NodeID"],
            "name": labels.get("salesboost.io/node", node["NodeID"][:8]),
            "alive": bool(node["Alive"]),
            "cpus": node["Resources"].get("CPU", 0),
            "qdrant_local_folder": bool(node["Resources"].get(QDRANT_FOLDER_RESOURCE)),
        }
    deployments: dict[str, dict] = {}
    client = _get_global_client()
    if client is None:
        raise RuntimeError("Serve is not running on this cluster")
    details = client.get_serve_details()
    for app_name, app in (details.get("applications") or {}).items():
        for name, deployment in (app.get("deployments") or {}).items():
            replicas = [
                {
                    "replica_id": r.get("replica_id"),
                    "state": str(r.get("state")),
                    "node": nodes.get(r.get("node_id") or "", {}).get("name", r.get("node_id")),
                }
                for r in deployment.get("replicas") or []
            ]
            deployments[f"{app_name}/{name}"] = {
                "status": str(deployment.get("status")),
                "target_replicas": deployment.get("target_num_replicas"),
                "replicas": replicas,
            }
    return {"nodes": list(nodes.values()), "deployments": deployments}
