"""Schemathesis over the OpenAPI document, against the running stack: no 5xx, and every
response matches the schema, for every operation, as an admin (the role that reaches most)
and as a trainee (refusals must be well-formed too).

It runs in a company of its own: as an admin it creates, changes and deletes whatever its
links lead it to, and the other tests' demo company must stay as seeded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@pytest.fixture(scope="module")
def fuzz_company(owner_db_url, tmp_path_factory) -> str:
    from db.seed import DEMO_TENANT_FILE, seed_file

    data = yaml.safe_load(DEMO_TENANT_FILE.read_text())
    data["tenant"] = {"slug": "fuzz", "name": "Fuzz Ltd"}
    data["users"] = [
        {"email": "admin@fuzz.example", "display_name": "FA", "role": "admin"},
        {"email": "trainee@fuzz.example", "display_name": "FT", "role": "trainee"},
    ]
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data))
    seed_file(owner_db_url, path)
    return "fuzz"


# Examples per operation, per user: the run's time hardly depends on it (6 and 3 took as
# long as 10 and 4, most of it schemathesis walking the links), so each gets the full 10.
@pytest.mark.parametrize(
    ("user", "examples"), [("admin@fuzz.example", 10), ("trainee@fuzz.example", 10)]
)
def test_fuzzed_requests_get_no_5xx_and_schema_conforming_answers(
    base_url, fuzz_company, user, examples
):
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{base_url}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            str(examples),
            "--seed",
            "7",
            "--request-timeout",
            "120",
            "--header",
            f"X-Dev-Tenant: {fuzz_company}",
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
