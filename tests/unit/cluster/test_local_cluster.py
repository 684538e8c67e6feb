"""The local multi-node cluster's bounds and the Serve config a local stack deploys."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cluster.deploy import local_serve_config
from cluster.local import ClusterSizeError, check_nodes
from serve_apps.cli import app
from tests.unit.cluster.conftest import REPO


@pytest.mark.parametrize(
    ("nodes", "cpus", "message"),
    [(0, 8, "at least 1 node"), (5, 40, "at most 4"), (3, 4, "raise it to at least 6")],
)
def test_cluster_sizes_this_machine_cannot_hold(nodes, cpus, message):
    with pytest.raises(ClusterSizeError, match=message):
        check_nodes(nodes, cpus)


def test_up_refuses_zero_nodes_before_starting_anything():
    result = CliRunner().invoke(app, ["up", "--nodes", "0"])
    assert result.exit_code == 2 and "at least 1 node" in result.output


def test_a_local_deploy_is_the_files_config_on_this_machine():
    config = local_serve_config(
        REPO / "cluster" / "serve_gpu.yaml",
        env={"SALESBOOST_MODE": "development", "DATABASE_URL": "postgresql://x"},
        host="127.0.0.1",
        port=8123,
    )
    assert config["proxy_location"] == "HeadOnly"  # one port on one machine
    assert config["http_options"]["host"] == "127.0.0.1"
    assert config["http_options"]["port"] == 8123
    env = config["applications"][0]["runtime_env"]["env_vars"]
    assert env["DATABASE_URL"] == "postgresql://x"
    assert env["SALESBOOST_MODE"] == "production"  # the file's own env_vars win
    names = [d["name"] for d in config["applications"][0]["deployments"]]
    assert "TrainingOrchestrator" in names


def test_a_cluster_token_is_used_at_once_and_forgotten_after(tmp_path):
    """Ray caches its auth mode per process: naming a token must take effect in a process
    that touched Ray before, and undoing it must too (a later one-node stack has no token).
    In a process of its own: the test session's driver has its own cluster's auth."""
    token = tmp_path / "auth_token"
    token.write_text("ab" * 32)
    script = f"""
import os
import subprocess
import sys
from ray._raylet import get_authentication_mode
from cluster.local import AUTH_ENVIRONMENT, restore_auth_environment, use_cluster_token
before = {{key: None for key in AUTH_ENVIRONMENT}}
print(get_authentication_mode())
use_cluster_token(__import__("pathlib").Path({str(token)!r}))
print(get_authentication_mode(), os.environ["RAY_AUTH_TOKEN_PATH"])
restore_auth_environment(before)
print(get_authentication_mode(), [k for k in AUTH_ENVIRONMENT if k in os.environ])
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.strip().splitlines()
    assert lines == ["0", f"1 {token}", "0 []"], lines  # DISABLED, TOKEN, DISABLED again
