"""The CPU engine's dtype: bfloat16 where the CPU computes it natively, float32 elsewhere."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from models import cpu_dtype
from models.cpu_dtype import CPUCapability, _bf16_flags, choose_cpu_dtype
from models.llm import CPU_DTYPE_SETTING_KEY, LLMDeploymentSettings

AMD_EPYC_AVX2 = CPUCapability(isa="AVX2", machine="x86_64", bf16_flags=frozenset())
XEON_AMX = CPUCapability(
    isa="AVX512", machine="x86_64", bf16_flags=frozenset({"avx512_bf16", "amx_bf16"})
)

X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu vme sse sse2 avx avx2 fma avx512f avx512bw
"""
XEON_CPUINFO = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
ARM_CPUINFO = "processor\t: 0\nFeatures\t: fp asimd sve i8mm bf16\n"


def test_a_cpu_without_bf16_instructions_runs_float32():
    choice = choose_cpu_dtype(AMD_EPYC_AVX2)
    assert choice.dtype == "float32" and not choice.forced
    assert choice.describe() == "float32: this CPU has no bf16 instructions"


def test_a_cpu_with_native_bf16_runs_bfloat16():
    choice = choose_cpu_dtype(XEON_AMX)
    assert choice.dtype == "bfloat16" and not choice.forced
    assert "amx_bf16" in choice.reason and "avx512_bf16" in choice.reason


@pytest.mark.parametrize("cpu", [AMD_EPYC_AVX2, XEON_AMX])
@pytest.mark.parametrize("forced", ["bfloat16", "float32"])
def test_a_forced_dtype_is_taken_on_either_kind(cpu, forced):
    choice = choose_cpu_dtype(cpu, forced)
    assert choice.dtype == forced and choice.forced
    assert ("emulated" if not cpu.native_bf16 else "native") in choice.reason


def test_the_flags_that_mean_native_bf16_are_read_from_cpuinfo():
    assert _bf16_flags(X86_CPUINFO) == frozenset()
    assert _bf16_flags(XEON_CPUINFO) == {"avx512_bf16", "amx_bf16"}
    assert _bf16_flags(ARM_CPUINFO) == {"bf16"}
    assert _bf16_flags("") == frozenset()


def test_the_environment_forces_a_dtype_only_where_the_config_says_auto(monkeypatch):
    monkeypatch.setenv(cpu_dtype.FORCE_ENV, "float32")
    assert cpu_dtype.dtype_setting("auto") == "float32"
    assert cpu_dtype.dtype_setting("bfloat16") == "bfloat16"
    assert cpu_dtype.cpu_dtype("auto").reason.startswith(f"forced by {cpu_dtype.FORCE_ENV}")
    monkeypatch.setenv(cpu_dtype.FORCE_ENV, "fp8")
    with pytest.raises(ValueError, match="expected auto, bfloat16 or float32"):
        cpu_dtype.dtype_setting("auto")


def npc(**overrides) -> LLMDeploymentSettings:
    config = {"model_id": "m", "source": "/models/m", "accelerator": "cpu", **overrides}
    return LLMDeploymentSettings.model_validate(config)


def test_the_deployment_and_the_direct_engine_get_the_same_choice(monkeypatch):
    monkeypatch.setattr(cpu_dtype, "detect_cpu", lambda: AMD_EPYC_AVX2)
    monkeypatch.delenv(cpu_dtype.FORCE_ENV, raising=False)
    settings = npc(engine_kwargs={"max_model_len": 2048})
    config = settings.to_llm_config(Path("/data/models"))
    assert config.engine_kwargs["dtype"] == "float32"
    assert settings.vllm_engine_kwargs(Path("/data/models"))["dtype"] == "float32"
    # The replica chooses again on its own node, under the same setting.
    assert config.experimental_configs[CPU_DTYPE_SETTING_KEY] == "auto"


def test_a_forcing_environment_reaches_the_replica(monkeypatch):
    monkeypatch.setenv(cpu_dtype.FORCE_ENV, "float32")
    assert npc().engine_env()[cpu_dtype.FORCE_ENV] == "float32"


def test_a_gpu_engine_keeps_its_configured_dtype():
    settings = LLMDeploymentSettings.model_validate(
        {"model_id": "m", "source": "org/m", "accelerator": "gpu", "dtype": "bfloat16"}
    )
    assert settings.dtype_choice() is None
    config = settings.to_llm_config(Path("/data/models"))
    assert config.engine_kwargs["dtype"] == "bfloat16"
    assert config.experimental_configs[CPU_DTYPE_SETTING_KEY] is None


def test_the_dtype_has_one_place_in_a_config():
    with pytest.raises(ValidationError, match="set 'dtype' at the top level"):
        npc(engine_kwargs={"dtype": "bfloat16"})
    with pytest.raises(ValidationError, match="float16 is for GPUs"):
        npc(dtype="float16")
