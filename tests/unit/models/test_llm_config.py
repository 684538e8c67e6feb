from pathlib import Path

import pytest
from pydantic import ValidationError

from models.llm import LLMDeploymentSettings
from serve_apps.app import MODEL_CONFIGS_DIR, SalesBoostAppArgs, resolve_model_config


def test_cpu_config_builds_an_llm_config_that_schedules_on_cpu():
    settings = LLMDeploymentSettings.from_file(MODEL_CONFIGS_DIR / "npc_cpu.yaml")
    config = settings.to_llm_config(Path("/models"))
    assert config.placement_group_config == {"bundles": [{"CPU": 1}]}
    assert config.model_loading_config.model_source == "/models/SmolLM2-135M-Instruct"
    assert config.experimental_configs["stream_batching_interval_ms"] == 100
    assert config.runtime_env["env_vars"]["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert config.deployment_config["autoscaling_config"]["max_replicas"] >= 1
    assert "model" not in config.engine_kwargs  # Ray Serve LLM refuses it there


def test_gpu_config_asks_for_a_gpu_and_keeps_engine_arguments():
    settings = LLMDeploymentSettings.from_file(MODEL_CONFIGS_DIR / "npc_gpu.yaml")
    config = settings.to_llm_config(Path("/models"))
    assert config.placement_group_config == {"bundles": [{"CPU": 1, "GPU": 1}]}
    assert config.accelerator_type == "H100"
    assert config.engine_kwargs["gpu_memory_utilization"] == 0.9
    assert config.runtime_env["env_vars"] == {}


def test_direct_engine_arguments_match_the_deployment():
    settings = LLMDeploymentSettings.from_file(MODEL_CONFIGS_DIR / "npc_cpu.yaml")
    kwargs = settings.vllm_engine_kwargs(Path("/models"))
    deployment = settings.to_llm_config(Path("/models")).engine_kwargs
    assert kwargs == {"model": "/models/SmolLM2-135M-Instruct", **deployment}
    assert kwargs["dtype"] in ("bfloat16", "float32")  # chosen from this machine's CPU


def test_cpu_engines_compile_their_graph_unless_the_setting_turns_it_off(monkeypatch):
    cpu = LLMDeploymentSettings.from_file(MODEL_CONFIGS_DIR / "npc_cpu.yaml")
    gpu = LLMDeploymentSettings.from_file(MODEL_CONFIGS_DIR / "npc_gpu.yaml")
    monkeypatch.delenv("SALESBOOST_CPU_COMPILE_GRAPH", raising=False)
    assert "enforce_eager" not in cpu.resolved_engine_kwargs()
    monkeypatch.setenv("SALESBOOST_CPU_COMPILE_GRAPH", "False")  # as Settings writes it
    assert cpu.resolved_engine_kwargs()["enforce_eager"] is True
    assert (
        cpu.version == LLMDeploymentSettings.from_file(MODEL_CONFIGS_DIR / "npc_cpu.yaml").version
    )
    assert "enforce_eager" not in gpu.resolved_engine_kwargs()
    monkeypatch.setenv("SALESBOOST_CPU_COMPILE_GRAPH", "sometimes")
    with pytest.raises(ValueError, match="SALESBOOST_CPU_COMPILE_GRAPH"):
        cpu.resolved_engine_kwargs()


def test_a_candidate_gets_one_try_to_start_and_a_configured_version_three():
    from serve_apps.app import ModelAppArgs
    from serve_apps.model_lifecycle.serve_control import model_application

    settings = LLMDeploymentSettings.from_file(MODEL_CONFIGS_DIR / "npc_cpu.yaml")
    configured = settings.to_llm_config(Path("/models"))
    assert configured.deployment_config["max_constructor_retry_count"] == 3
    entry = model_application(settings.model_dump(mode="json"), "llm-x", {})
    args = ModelAppArgs.model_validate(entry["args"])
    candidate = args.llm_settings().to_llm_config(Path("/models"), start_tries=args.start_tries)
    assert candidate.deployment_config["max_constructor_retry_count"] == 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"accelerator_type": "H100"}, "needs accelerator: gpu"),
        ({"autoscaling": {"min_replicas": 3, "max_replicas": 2}}, "below min_replicas"),
        ({"source": "bundled:NoSuchModel"}, "known bundled models"),
        ({"kv_cache_gib": 0}, "greater than or equal"),
        ({"accelerator": "tpu"}, "'cpu' or 'gpu'"),
        ({"unknown_knob": 1}, "Extra inputs"),
    ],
)
def test_invalid_configs_name_the_offending_value(override, message):
    base = {"model_id": "m", "source": "bundled:SmolLM2-135M-Instruct"}
    with pytest.raises(ValidationError, match=message):
        LLMDeploymentSettings.model_validate({**base, **override})


def test_app_args_resolve_named_configs_and_reject_unknown_ones():
    assert resolve_model_config("npc_cpu").name == "npc_cpu.yaml"
    with pytest.raises(ValueError, match="neither a file"):
        resolve_model_config("nope")
    with pytest.raises(ValidationError):
        SalesBoostAppArgs.model_validate({"npc_llm_config": "npc_cpu", "typo": 1})
