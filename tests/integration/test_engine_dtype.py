"""The running engine computes in the dtype chosen from this machine's CPU, and says so."""

import httpx
import pytest

from models.llm import LLMDeploymentSettings
from serve_apps.app import resolve_model_config

pytestmark = pytest.mark.integration


def test_the_running_engine_reports_the_dtype_the_choice_made(base_url):
    expected = LLMDeploymentSettings.from_file(
        resolve_model_config("npc_cpu_persona")
    ).dtype_choice()
    body = httpx.get(f"{base_url}/health/ready", timeout=30).json()
    assert body["status"] == "ready", body
    (engine,) = body["engines"]  # the judge shares the persona's engine on the CPU config
    # vLLM's own model config, read in the LLM replica: what the engine computes in.
    assert engine["model_id"] == "smollm2-135m-instruct"
    assert engine["dtype"] == expected.dtype
    assert engine["reason"] == expected.reason
    assert engine["cpu"]
