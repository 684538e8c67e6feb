"""`salesboost cluster render` on bad input: a clear error naming the file and the field,
exit status 2, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from serve_apps.cli import app
from tests.unit.cluster.conftest import REPO

runner = CliRunner()


def _serve_config(tmp_path: Path, **changes) -> Path:
    config = yaml.safe_load((REPO / "cluster" / "serve_local.yaml").read_text())
    application = config["applications"][0]
    for key, value in changes.items():
        if key == "args":
            application["args"] = {**application["args"], **value}
        elif value is None:
            application.pop(key)
        else:
            application[key] = value
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _render(out: Path, *args: str):
    return runner.invoke(app, ["cluster", "render", "--out", str(out), *args])


def _nothing_written(out: Path) -> bool:
    return not out.exists() or not any(out.rglob("*"))


def test_unknown_profile(tmp_path):
    result = _render(tmp_path / "k8s", "--profile", "tpu")
    assert result.exit_code == 2
    assert "unknown profile 'tpu'" in result.output and "cpu, gpu" in result.output
    assert _nothing_written(tmp_path / "k8s")


def test_serve_config_that_fails_serves_schema(tmp_path):
    path = _serve_config(tmp_path, import_path=None)
    result = _render(tmp_path / "k8s", "--profile", "cpu", "--serve-config", str(path))
    assert result.exit_code == 2
    assert str(path) in result.output
    assert "applications[0].import_path" in result.output
    assert _nothing_written(tmp_path / "k8s")


def test_num_replicas_beside_autoscaling_names_the_deployment(tmp_path):
    config = yaml.safe_load((REPO / "cluster" / "serve_local.yaml").read_text())
    config["applications"][0]["deployments"][0]["num_replicas"] = 2
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _render(tmp_path / "k8s", "--profile", "cpu", "--serve-config", str(path))
    assert result.exit_code == 2
    assert "applications[0].deployments[0]" in result.output
    assert "num_replicas" in result.output
    assert _nothing_written(tmp_path / "k8s")


def test_unknown_builder_argument(tmp_path):
    path = _serve_config(tmp_path, args={"npc_llm_confg": "npc_cpu"})
    result = _render(tmp_path / "k8s", "--profile", "cpu", "--serve-config", str(path))
    assert result.exit_code == 2
    assert "applications[0].args.npc_llm_confg" in result.output
    assert _nothing_written(tmp_path / "k8s")


@pytest.mark.parametrize(
    ("arg", "config"), [("npc_llm_config", "npc_gpu"), ("embedder_config", "embedder_gpu")]
)
def test_gpu_model_config_in_the_cpu_profile(tmp_path, arg, config):
    path = _serve_config(tmp_path, args={arg: config})
    result = _render(tmp_path / "k8s", "--profile", "cpu", "--serve-config", str(path))
    assert result.exit_code == 2
    output = " ".join(result.output.split())  # the terminal wraps long lines
    assert f"models/configs/{config}.yaml: accelerator: is 'gpu'" in output
    assert f"applications[0].args.{arg}" in output
    assert _nothing_written(tmp_path / "k8s")


def test_gpu_resources_in_the_cpu_profile(tmp_path):
    config = yaml.safe_load((REPO / "cluster" / "serve_local.yaml").read_text())
    config["applications"][0]["deployments"][-1]["ray_actor_options"]["num_gpus"] = 0.5
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _render(tmp_path / "k8s", "--profile", "cpu", "--serve-config", str(path))
    assert result.exit_code == 2
    assert "ray_actor_options.num_gpus" in result.output
    assert _nothing_written(tmp_path / "k8s")


def test_missing_serve_config_file(tmp_path):
    result = _render(tmp_path / "k8s", "--profile", "gpu", "--serve-config", "nope.yaml")
    assert result.exit_code == 2 and "nope.yaml: (file): no such file" in result.output
    assert _nothing_written(tmp_path / "k8s")
