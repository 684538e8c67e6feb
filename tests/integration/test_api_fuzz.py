"""Schemathesis over the OpenAPI document, against the running stack: no 5xx, and every
response matches the schema, for every operation, as an admin (the role that reaches most)
and as a trainee (refusals must be well-formed too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@pytest.mark.parametrize("user", ["admin@demo.salesboost.local", "trainee@demo.salesboost.local"])
def test_fuzzed_requests_get_no_5xx_and_schema_conforming_answers(base_url, user):
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{base_url}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            "10",
            "--seed",
            "7",
            "--request-timeout",
            "120",
            "--header",
            "X-Dev-Tenant: demo",
            "--header",
            f"X-Dev-User: {user}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "generated" in result.stdout and "passed" in result.stdout
