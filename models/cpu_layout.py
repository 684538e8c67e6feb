"""Which cores a CPU model engine computes on, and which the rest of a one-machine stack uses.

vLLM's CPU build binds its worker's compute threads to cores of its own choosing (``auto``:
the first NUMA node's cores but one, which it leaves to its scheduler). Every other process
of the stack (Ray's daemons, the HTTP proxy, the gateway, the orchestrator, the knowledge
service and embedder, the LLM server's front end and vLLM's scheduler) may still run on the
engine's cores, and each slice it takes there stalls a forward pass. On 2 cores the
gateway's decode ran at 33-40 ms per token against 28-29 ms for a bare engine, and its
prefill about 10 % slower, until the stack kept off the engine's core.

So a local stack splits the cores: the engine's threads get their own
(``VLLM_CPU_OMP_THREADS_BIND``) and every process the stack starts runs on the rest. A
process's CPU mask is inherited by the processes it starts, so it is enough to hold the
serving cores while starting PostgreSQL, Redis and Ray's daemons (which start every worker).
On a cluster the pods' CPU requests do this job, and the layout is off.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

AUTO_MIN_CPUS = 2
CPU_LIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """``"0-2,5"`` → ``(0, 1, 2, 5)``."""
    if not CPU_LIST.match(text):
        raise ValueError(f"{text!r} is not a CPU list like '0' or '0-2,5'")
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        low, high = int(first), int(last or first)
        if high < low:
            raise ValueError(f"{part!r}: the range runs backwards")
        cpus.update(range(low, high + 1))
    return tuple(sorted(cpus))


@dataclass(frozen=True)
class CpuLayout:
    engine: tuple[int, ...]
    serving: tuple[int, ...]

    @classmethod
    def plan(cls, setting: str, allowed: Sequence[int]) -> CpuLayout | None:
        """The layout ``setting`` asks for on a process allowed to run on ``allowed``.

        ``off``: none. ``auto``: none on one core; otherwise the last quarter of the cores (at
        least one) for serving and the rest for the engine. A CPU list: those cores for the
        engine and the others for serving.

        On 2 cores too, since vLLM's scheduler runs beside its worker (``models.llm_server``):
        the engine's core to itself took the model's own time to first token inside the
        stack from 1,013 ms to 935 against a bare engine's 900-941 (one conversation), and
        8 conversations made 42.0 output tokens per second against the bare engine's 42.8.
        The one serving core does queue 8 turns that arrive at once (the model asked 235 ms
        after the turn arrived, against 155 with the cores shared).
        """
        allowed = sorted(allowed)
        if setting == "off":
            return None
        if setting == "auto":
            if len(allowed) < AUTO_MIN_CPUS:
                return None
            reserved = max(1, len(allowed) // 4)
            return cls(engine=tuple(allowed[:-reserved]), serving=tuple(allowed[-reserved:]))
        engine = parse_cpu_list(setting)
        outside = sorted(set(engine) - set(allowed))
        if outside:
            raise ValueError(f"engine CPUs {outside} are not available here (allowed: {allowed})")
        serving = tuple(c for c in allowed if c not in engine)
        if not serving:
            raise ValueError(f"engine CPUs {setting!r} leave no core for the rest of the stack")
        return cls(engine=engine, serving=serving)

    @classmethod
    def for_this_machine(cls, setting: str) -> CpuLayout | None:
        if not hasattr(os, "sched_getaffinity"):  # not Linux: leave scheduling to the OS
            return None
        return cls.plan(setting, sorted(os.sched_getaffinity(0)))

    def engine_env(self) -> dict[str, str]:
        """What tells vLLM's CPU worker where to bind (an explicit list: no core reserved)."""
        return {"VLLM_CPU_OMP_THREADS_BIND": _short(self.engine)}

    def serving_cores(self) -> contextlib.AbstractContextManager[None]:
        """Processes started inside the block run on the serving cores."""
        return processes_started_on(self.serving)

    def describe(self) -> str:
        return f"model engine on CPU {_short(self.engine)}, the rest on {_short(self.serving)}"


@contextmanager
def processes_started_on(cpus: Sequence[int]) -> Iterator[None]:
    """Processes started inside the block (from this thread) run on ``cpus``; this thread's
    own mask is restored afterwards, so its work is not squeezed onto them."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _short(cpus: Sequence[int]) -> str:
    return ",".join(str(c) for c in cpus)
