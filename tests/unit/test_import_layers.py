"""The import contracts in pyproject.toml ([tool.importlinter]): serve_apps.contracts is a
leaf, and each layer imports only the layers below it. A broken one fails here with the
chain of imports that breaks it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(config: Path) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(config)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_are_kept():
    finished = lint_imports(REPO / "pyproject.toml")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "0 broken" in finished.stdout


def test_a_broken_contract_fails(tmp_path):
    """The check sees an import that exists: the contracts package's one import of retrieval."""
    config = tmp_path / "importlinter.toml"
    config.write_text(
        "[tool.importlinter]\n"
        'root_packages = ["serve_apps", "retrieval"]\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "no retrieval"\n'
        'type = "forbidden"\n'
        'source_modules = ["serve_apps.contracts"]\n'
        'forbidden_modules = ["retrieval"]\n'
    )
    finished = lint_imports(config)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    assert "serve_apps.contracts.specs -> retrieval.names" in finished.stdout
