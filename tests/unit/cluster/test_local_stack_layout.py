"""A local stack splits the cores only when its config runs a model engine on CPU."""

import os

import pytest
import yaml

from cluster.local_stack import ServeConfigFile, Stack
from serve_apps.settings import Settings


def layout_for(tmp_path, engine_cpus, npc="npc_cpu", judge="npc_cpu"):
    config = tmp_path / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "applications": [
                    {
                        "name": "salesboost",
                        "import_path": "serve_apps.app:build_app",
                        "args": {"npc_llm_config": npc, "judge_llm_config": judge},
                    }
                ]
            }
        )
    )
    settings = Settings(data_dir=tmp_path, engine_cpus=engine_cpus, serve_config=config)
    return Stack(settings, progress=lambda _: None)._cpu_layout(ServeConfigFile.load(config))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to split")
def test_a_cpu_engine_gets_the_cores_the_setting_names(tmp_path):
    first = min(os.sched_getaffinity(0))
    layout = layout_for(tmp_path, str(first))
    assert layout.engine == (first,)
    assert first not in layout.serving
    assert layout.engine_env() == {"VLLM_CPU_OMP_THREADS_BIND": str(first)}


def test_no_split_when_asked_for_none_or_the_engines_are_on_gpus(tmp_path):
    assert layout_for(tmp_path, "off") is None
    assert layout_for(tmp_path, "0", npc="npc_gpu", judge=None) is None
