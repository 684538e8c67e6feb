"""The web app's own unit tests (vitest: the conversation reducer, the field an API error is
about, the content editors' bodies and where a refusal of one goes), run from pytest so that
`make test` covers them too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"


def test_web_unit_tests_pass():
    if shutil.which("npx") is None or not (WEB / "node_modules" / ".bin" / "vitest").exists():
        pytest.fail("the web app's packages are missing: `make install` runs npm ci in web/")
    run = subprocess.run(
        ["npx", "--no-install", "vitest", "run", "--reporter=dot"],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
