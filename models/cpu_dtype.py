"""The dtype a model runs in on the CPU, chosen from what the CPU can do.

bfloat16 halves the weights' and the KV cache's memory traffic, but only a CPU with bf16
instructions (AVX512-BF16 or AMX on x86, the BF16 extension on Arm) computes in it; without
them every matmul is emulated. On a 2-core AMD EPYC that reports AVX2 only, vLLM prefilled a
938-token prompt of the bundled model in 33.4 s in bfloat16 against 4.2 s in float32
(``docs/performance.md``). So: bfloat16 where the CPU has it natively, float32 otherwise, and
a config or ``SALESBOOST_CPU_DTYPE`` may force either.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

CPUDtype = Literal["bfloat16", "float32"]
DtypeSetting = Literal["auto", "bfloat16", "float32"]
FORCE_ENV = "SALESBOOST_CPU_DTYPE"

# /proc/cpuinfo flags that mean bf16 arithmetic runs in hardware.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


@dataclass(frozen=True)
class CPUCapability:
    """What this CPU can compute natively, as torch and the kernel report it."""

    isa: str  # torch's dispatch level: "AVX512", "AVX2", "DEFAULT", ...
    machine: str
    bf16_flags: frozenset[str]

    @property
    def native_bf16(self) -> bool:
        return bool(self.bf16_flags)

    def describe(self) -> str:
        bf16 = "+".join(sorted(self.bf16_flags)) or "no bf16"
        return f"{self.machine} {self.isa}, {bf16}"

    def as_meta(self) -> dict[str, object]:
        return {
            "machine": self.machine,
            "isa": self.isa,
            "bf16_flags": sorted(self.bf16_flags),
            "native_bf16": self.native_bf16,
        }


@dataclass(frozen=True)
class DtypeChoice:
    dtype: CPUDtype
    reason: str
    forced: bool

    def describe(self) -> str:
        return f"{self.dtype}: {self.reason}"


def choose_cpu_dtype(
    capability: CPUCapability,
    setting: DtypeSetting = "auto",
    *,
    forced_by: str = "the model config",
) -> DtypeChoice:
    """bfloat16 on a CPU with native bf16, float32 otherwise; ``setting`` other than
    ``auto`` is taken as it is."""
    if setting != "auto":
        native = "native" if capability.native_bf16 else "emulated"
        return DtypeChoice(
            setting, f"forced by {forced_by} (bf16 is {native} on this CPU)", forced=True
        )
    if capability.native_bf16:
        flags = ", ".join(sorted(capability.bf16_flags))
        return DtypeChoice("bfloat16", f"this CPU has bf16 instructions ({flags})", forced=False)
    return DtypeChoice("float32", "this CPU has no bf16 instructions", forced=False)


def dtype_setting(
    configured: DtypeSetting = "auto", forced: DtypeSetting | None = None
) -> DtypeSetting:
    """A config's own dtype wins; ``auto`` defers to ``forced``, or when that is not given to
    ``SALESBOOST_CPU_DTYPE`` when set."""
    if configured != "auto":
        return configured
    if forced is not None:
        return forced
    from_env = os.environ.get(FORCE_ENV, "auto").strip().lower() or "auto"
    if from_env not in ("auto", "bfloat16", "float32"):
        raise ValueError(f"{FORCE_ENV}={from_env!r}: expected auto, bfloat16 or float32")
    return from_env  # type: ignore[return-value]


def cpu_dtype(configured: DtypeSetting = "auto", forced: DtypeSetting | None = None) -> DtypeChoice:
    """The choice for this machine."""
    forced_by = "the model config" if configured != "auto" else FORCE_ENV
    return choose_cpu_dtype(detect_cpu(), dtype_setting(configured, forced), forced_by=forced_by)


@cache
def detect_cpu() -> CPUCapability:
    return CPUCapability(
        isa=_torch_isa(), machine=platform.machine(), bf16_flags=_bf16_flags(_cpuinfo())
    )


def _torch_isa() -> str:
    try:
        import torch

        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # torch is not needed to choose; the flags decide
        return "unknown"


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _bf16_flags(cpuinfo: str) -> frozenset[str]:
    """The native-bf16 flags of the first processor ("flags" on x86, "Features" on Arm)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split()) & NATIVE_BF16_FLAGS
    return frozenset()
