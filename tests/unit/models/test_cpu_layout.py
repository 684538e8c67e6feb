"""How a local stack splits the cores between a CPU model engine and everything else."""

import os

import pytest

from models.cpu_layout import CpuLayout, parse_cpu_list


def test_auto_gives_a_quarter_of_the_cores_to_serving_from_two_cores_up():
    assert CpuLayout.plan("auto", range(4)) == CpuLayout(engine=(0, 1, 2), serving=(3,))
    assert CpuLayout.plan("auto", range(8)) == CpuLayout(engine=(0, 1, 2, 3, 4, 5), serving=(6, 7))
    assert CpuLayout.plan("auto", [0, 1]) == CpuLayout(engine=(0,), serving=(1,))
    assert CpuLayout.plan("auto", [0]) is None  # no core would be left for serving
    assert CpuLayout.plan("off", [0, 1, 2, 3]) is None
    # Asked for explicitly, two cores split one and one.
    assert CpuLayout.plan("0", [0, 1]) == CpuLayout(engine=(0,), serving=(1,))


def test_an_explicit_list_is_the_engines_and_the_rest_serve():
    assert CpuLayout.plan("0-2", range(4)) == CpuLayout(engine=(0, 1, 2), serving=(3,))
    assert CpuLayout.plan("1,3", range(4)) == CpuLayout(engine=(1, 3), serving=(0, 2))
    with pytest.raises(ValueError, match="not available"):
        CpuLayout.plan("0-4", range(4))
    with pytest.raises(ValueError, match="no core"):
        CpuLayout.plan("0-3", range(4))


def test_cpu_lists_parse_and_bad_ones_are_refused():
    assert parse_cpu_list("0-2,5") == (0, 1, 2, 5)
    assert parse_cpu_list("3") == (3,)
    for bad in ["", "a", "2-1", "0,,1", "-1"]:
        with pytest.raises(ValueError):
            parse_cpu_list(bad)


def test_the_engine_learns_its_cores_from_vllms_own_variable():
    layout = CpuLayout(engine=(0, 1), serving=(2,))
    assert layout.engine_env() == {"VLLM_CPU_OMP_THREADS_BIND": "0,1"}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to split")
def test_processes_started_inside_run_on_the_serving_cores_and_this_one_is_restored():
    import subprocess
    import sys

    before = os.sched_getaffinity(0)
    allowed = sorted(before)
    layout = CpuLayout.plan(str(allowed[0]), allowed)
    with layout.serving_cores():
        child = subprocess.run(
            [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
            capture_output=True,
            text=True,
            check=True,
        )
    assert child.stdout.strip() == str(list(layout.serving))
    assert os.sched_getaffinity(0) == before
