"""Each profile's deployments, as the builder makes them and the Serve config overrides
them, fit in what its worker groups offer; the LLM configs parse into Ray Serve LLM's
``LLMConfig`` without a GPU, and their autoscaling is what Ray Serve LLM applies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.render import load_values
from tests.unit.cluster.conftest import REPO, built_deployments

CONFIGS = REPO / "models" / "configs"


def _serve_config(profile: str) -> tuple[str, dict[str, Any]]:
    _, values = load_values(profile)
    return str(values.serve_config), yaml.safe_load((REPO / values.serve_config).read_text())


def replica_demands(profile: str) -> dict[str, tuple[dict[str, float], int, bool]]:
    """Deployment → (resources of one replica, most replicas, autoscaled), with the Serve
    config's overrides applied the way Serve applies them (``ray_actor_options`` replaces
    the code's; ``autoscaling_config`` or ``num_replicas`` replaces the code's)."""
    path, config = _serve_config(profile)
    deployments = built_deployments(path)
    overrides = {d["name"]: d for d in config["applications"][0].get("deployments", [])}
    unknown = sorted(set(overrides) - set(deployments))
    assert not unknown, f"{path} overrides deployments the builder does not make: {unknown}"
    out = {}
    for name, deployment in deployments.items():
        replica = deployment._replica_config
        override = overrides.get(name, {})
        actor = override.get("ray_actor_options", replica.ray_actor_options)
        if replica.placement_group_bundles:
            resources: dict[str, float] = {}
            for bundle in replica.placement_group_bundles:  # PACK: one node per replica
                for key, amount in bundle.items():
                    resources[key] = resources.get(key, 0) + amount
        else:
            resources = {"CPU": actor.get("num_cpus", 1), **actor.get("resources", {})}
            if actor.get("num_gpus"):
                resources["GPU"] = actor["num_gpus"]
        autoscaling = override.get("autoscaling_config")
        if autoscaling is None and "num_replicas" not in override:
            code = deployment._deployment_config.autoscaling_config
            autoscaling = code.model_dump() if code else None
        if autoscaling:
            out[name] = (resources, autoscaling["max_replicas"], True)
        else:
            out[name] = (resources, override.get("num_replicas", 1), False)
    return out


def pack(profile: str) -> dict[str, list[list[str]]]:
    """First-fit decreasing of every deployment's most replicas into each worker group's
    most pods; GPU replicas on GPU pods only and CPU replicas off them (Ray keeps CPU work
    off GPU nodes while it can). Returns group → pods → replicas; fails when one does not fit."""
    _, values = load_values(profile)
    pods = [
        (group, dict(group.offers()), [])
        for group in values.worker_groups
        for _ in range(group.max_replicas)
    ]
    items = [
        (name, resources)
        for name, (resources, count, _) in replica_demands(profile).items()
        for _ in range(count)
    ]
    items.sort(key=lambda item: (item[1].get("GPU", 0), item[1].get("CPU", 0)), reverse=True)
    for name, resources in items:
        wants_gpu = resources.get("GPU", 0) > 0
        for group, free, placed in pods:
            if bool(group.gpus) != wants_gpu and any(g.gpus for g in values.worker_groups):
                continue
            if all(free.get(key, 0) + 1e-9 >= amount for key, amount in resources.items()):
                for key, amount in resources.items():
                    free[key] = free.get(key, 0) - amount
                placed.append(name)
                break
        else:
            pytest.fail(f"{profile}: no pod left for a replica of {name} ({resources})")
    out: dict[str, list[list[str]]] = {}
    for group, _, placed in pods:
        out.setdefault(group.name, []).append(placed)
    return out


@pytest.mark.parametrize("profile", ["gpu", "cpu"])
def test_every_replica_fits_in_the_worker_groups_at_their_most(profile):
    placed = pack(profile)
    total = sum(len(p) for pods in placed.values() for p in pods)
    assert total == sum(count for _, count, _ in replica_demands(profile).values())


def test_gpu_profile_arithmetic():
    """The numbers behind cluster/values/gpu.yaml: 4 NPC + 2 judge engines take a whole
    H100 each, embedder and reranker (2 each, a quarter GPU) share one more: 7 of 8 GPU pods.
    Gateway and orchestrator (8 each) and knowledge (4) take 20 of 48 CPU-pod CPUs."""
    demands = replica_demands("gpu")
    gpus = sum(res.get("GPU", 0) * count for res, count, _ in demands.values())
    assert gpus == pytest.approx(7.0)
    _, values = load_values("gpu")
    gpu_group = next(g for g in values.worker_groups if g.gpus)
    cpu_group = next(g for g in values.worker_groups if not g.gpus)
    assert gpus <= gpu_group.max_replicas * gpu_group.gpus
    cpu_only = sum(res["CPU"] * count for res, count, _ in demands.values() if "GPU" not in res)
    assert cpu_only == 20 <= cpu_group.max_replicas * cpu_group.cpu
    engines = [name for name, (res, _, _) in demands.items() if res.get("GPU") == 1]
    assert len(engines) == 2  # the NPC and the judge are separate deployments
    for name in engines:
        assert demands[name][0].get("accelerator_type:H100", 0) > 0
    used = [pod for pod in pack("gpu")[gpu_group.name] if pod]
    assert len(used) == 7


def test_every_deployment_autoscales_on_the_gpu_profile():
    for name, (_, most, autoscaled) in replica_demands("gpu").items():
        if name == "ModelLifecycle":  # one replica holds the swaps; it asks for no CPU
            continue
        assert autoscaled, f"{name} has a fixed replica count on the GPU profile"
        assert most >= 2, name


def test_local_profile_keeps_the_knowledge_service_on_the_qdrant_folder():
    demands = replica_demands("cpu")
    resources, most, autoscaled = demands["KnowledgeService"]
    assert (most, autoscaled) == (1, False)
    assert resources.get("qdrant_local_folder") == 1
    for name in ("Gateway", "TrainingOrchestrator", "Embedder"):
        assert demands[name][2] and demands[name][1] >= 2, name


@pytest.mark.parametrize(
    "path", sorted(p for p in CONFIGS.glob("*.yaml") if p.stem.startswith(("npc", "judge")))
)
def test_llm_configs_parse_into_ray_serve_llm_config(path: Path, no_ray_context):
    from ray.llm._internal.serve.core.server.llm_server import LLMServer
    from ray.serve.llm import LLMConfig

    from models.llm import LLMDeploymentSettings

    settings = LLMDeploymentSettings.from_file(path)
    config = settings.to_llm_config(Path("/nonexistent/models"))
    assert isinstance(config, LLMConfig)
    assert config.model_id == settings.model_id
    # What Ray Serve LLM applies over its own default of 1e9 ongoing requests per replica,
    # at which a deployment never scales out.
    options = LLMServer.get_deployment_options(config)
    autoscaling = options["autoscaling_config"]
    assert autoscaling["target_ongoing_requests"] == settings.autoscaling.target_ongoing_requests
    assert autoscaling["max_replicas"] == settings.autoscaling.max_replicas
    assert autoscaling["target_ongoing_requests"] <= options["max_ongoing_requests"]
    if settings.accelerator == "gpu":
        (bundle,) = options["placement_group_bundles"]
        assert bundle["GPU"] == 1 and f"accelerator_type:{settings.accelerator_type}" in bundle


def test_the_built_llm_deployment_carries_the_model_configs_target():
    """Through ``build_llm_deployment`` (its defaults merged under the config's)."""
    deployments = built_deployments("cluster/serve_gpu.yaml")
    npc = next(d for name, d in deployments.items() if name.startswith("llm-npc"))
    assert npc._deployment_config.autoscaling_config.target_ongoing_requests == 32
    assert npc._deployment_config.autoscaling_config.max_replicas == 4


@pytest.mark.parametrize("name", ["embedder_gpu", "reranker_gpu"])
def test_encoder_gpu_configs(name):
    from models.encoders import EncoderDeploymentSettings

    settings = EncoderDeploymentSettings.from_file(CONFIGS / f"{name}.yaml")
    assert settings.accelerator == "gpu" and settings.device == "cuda"
    assert settings.kind == name.removesuffix("_gpu")
