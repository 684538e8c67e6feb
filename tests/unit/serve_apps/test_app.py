"""The application builder: typed configs bound as they are, Serve options from the configs,
and bad arguments refused while building (no Ray started)."""

from __future__ import annotations

import os
import pickle
from typing import Any
from unittest import mock

import pytest
from pydantic import SecretStr, ValidationError

from serve_apps.app import build_app
from serve_apps.connections import Connections
from serve_apps.gateway.config import GatewayConfig
from serve_apps.knowledge.config import EmbedderConfig, KnowledgeConfig
from serve_apps.orchestrator.config import OrchestratorConfig
from tests.unit.cluster.conftest import _NoRayContext


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """The builder reads the environment it runs in: start each test from none of ours."""
    for key in list(os.environ):
        if key.startswith("SALESBOOST_") or key in {"DATABASE_URL", "REDIS_URL"}:
            monkeypatch.delenv(key)


def built(args: dict[str, Any]) -> dict[str, Any]:
    """Deployment name → Ray Serve ``Deployment`` as the builder makes it from ``args``."""
    import ray
    from ray.serve._private.build_app import build_app as ray_build_app

    with mock.patch.object(ray, "get_runtime_context", return_value=_NoRayContext()):
        application = ray_build_app(build_app(args), name="salesboost", default_runtime_env={})
    return {d.name: d for d in application.deployments}


def options(deployment: Any) -> dict[str, Any]:
    config = deployment._deployment_config
    autoscaling = config.autoscaling_config
    return {
        "num_cpus": deployment._replica_config.ray_actor_options.get("num_cpus"),
        "max_ongoing_requests": config.max_ongoing_requests,
        "num_replicas": None if autoscaling else config.num_replicas,
        "autoscaling": None
        if autoscaling is None
        else (
            autoscaling.min_replicas,
            autoscaling.max_replicas,
            autoscaling.target_ongoing_requests,
        ),
    }


def test_each_deployment_gets_its_typed_config_and_the_options_it_had():
    deployments = built({})
    expected = {
        "Gateway": (GatewayConfig, 0.5, 512, None, (1, 4, 128)),
        "TrainingOrchestrator": (OrchestratorConfig, 0.5, 256, None, (1, 4, 64)),
        "KnowledgeService": (KnowledgeConfig, 0.5, 64, 1, None),
        "Embedder": (EmbedderConfig, 1, 32, None, (1, 2, 8)),
    }
    for name, (kind, cpus, ongoing, replicas, autoscaling) in expected.items():
        deployment = deployments[name]
        assert type(deployment._replica_config.init_kwargs["config"]) is kind, name
        assert options(deployment) == {
            "num_cpus": cpus,
            "max_ongoing_requests": ongoing,
            "num_replicas": replicas,
            "autoscaling": autoscaling,
        }, name


def test_arguments_override_the_environment_and_the_default_options(monkeypatch, tmp_path):
    monkeypatch.setenv("SALESBOOST_NPC_MAX_TOKENS", "40")
    monkeypatch.setenv("SALESBOOST_RATE_LIMIT_USER_PER_MIN", "7")
    monkeypatch.setenv("SALESBOOST_DATA_DIR", str(tmp_path))
    deployments = built(
        {
            "agents": {"coach_uses_judge": True},
            "search": {"top_k": 4},
            "gateway": {
                "npc_max_tokens": 32,
                "deployment_options": {
                    "max_ongoing_requests": 100,
                    "autoscaling_config": {"max_replicas": 8},
                },
            },
            "orchestrator": {"deployment_options": {"num_replicas": 2}},
            "embedder_options": {"ray_actor_options": {"num_cpus": 2}},
        }
    )
    gateway = deployments["Gateway"]._replica_config.init_kwargs["config"]
    assert gateway.npc_max_tokens == 32  # the arguments win over the environment
    assert gateway.rate_limit_user_per_min == 7  # the environment over the default
    assert options(deployments["Gateway"])["max_ongoing_requests"] == 100
    assert options(deployments["Gateway"])["autoscaling"] == (1, 8, 128)  # merged key by key
    orchestrator = deployments["TrainingOrchestrator"]
    assert orchestrator._replica_config.init_kwargs["config"].agents.coach_uses_judge
    assert options(orchestrator)["num_replicas"] == 2
    assert options(orchestrator)["autoscaling"] is None  # a fixed count replaces autoscaling
    knowledge = deployments["KnowledgeService"]._replica_config.init_kwargs["config"]
    assert knowledge.search.top_k == 4
    assert knowledge.qdrant_folder == tmp_path.resolve() / "qdrant"
    assert options(deployments["Embedder"])["num_cpus"] == 2


def test_urls_and_secrets_are_read_in_the_replica_never_bound(monkeypatch):
    monkeypatch.setenv("SALESBOOST_SECRET_KEY", "s" * 40)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://app:pw@db/salesboost")
    bound = built({})["Gateway"]._replica_config.init_kwargs["config"]
    assert bound.secret_key is None and bound.database_url is None
    assert b"pw@db" not in pickle.dumps(bound)
    in_replica = bound.with_connections(Connections())
    assert isinstance(in_replica.secret_key, SecretStr)
    assert in_replica.secret_key.get_secret_value() == "s" * 40
    assert in_replica.database_url == "postgresql+psycopg://app:pw@db/salesboost"
    assert in_replica.npc_max_tokens == bound.npc_max_tokens


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"gateway": {"max_message_chars": 5000}}, "max_frame_bytes=16384 cannot carry"),
        ({"gateway": {"secret_key": "k" * 40}}, "come from the replica's environment"),
        ({"gateway": {"npc_max_token": 3}}, "gateway.npc_max_token"),
        (
            {"agents": {"coach_uses_judge": True}, "orchestrator": {"agents": {}}},
            "set agents or orchestrator.agents, not both",
        ),
        (
            {"knowledge": {"deployment_options": {"num_replicas": 2, "autoscaling_config": {}}}},
            "set num_replicas or autoscaling_config, not both",
        ),
        (
            {"embedder_options": {"max_ongoing_requests": 0}},
            "embedder_options.max_ongoing_requests",
        ),
    ],
)
def test_a_bad_argument_fails_the_build_with_a_clear_message(args, message):
    with pytest.raises(ValidationError, match=message):
        build_app(args)


def test_no_model_is_built_into_the_product_application():
    """Each model version is an application of its own (build_model_app): the product's
    deployments are given the versions' routes, so a swap never restarts them."""
    from serve_apps.app import SalesBoostAppArgs

    deployments = built({})
    assert not [name for name in deployments if name.startswith("llm-")]
    routes = SalesBoostAppArgs().model_routes()
    orchestrator = deployments["TrainingOrchestrator"]._replica_config.init_kwargs
    assert orchestrator["npc_model"] == routes["npc"]
    assert orchestrator["judge_model"] == routes["judge"]
    assert deployments["Gateway"]._replica_config.init_kwargs["model_routes"] == routes
    assert "ModelLifecycle" in deployments


def test_the_knowledge_service_knows_the_encoders_it_was_given():
    """It embeds and scores with the versions knowledge bases record, and needs the
    configured ones' settings to tell them apart (an embedder or reranker swap)."""
    from models.encoders import EncoderDeploymentSettings

    knowledge = built({})["KnowledgeService"]._replica_config.init_kwargs
    assert knowledge["embedder_settings"] == EncoderDeploymentSettings(
        kind="embedder", model="all-MiniLM-L6-v2"
    )
    assert knowledge["reranker_settings"] is None
    deployments = built({"embedder_config": "embedder_gpu", "reranker_config": "reranker_gpu"})
    knowledge = deployments["KnowledgeService"]._replica_config.init_kwargs
    assert knowledge["embedder_settings"].model == "bge-m3"
    assert knowledge["reranker_settings"].model == "BAAI/bge-reranker-v2-m3"
    assert "Reranker" in deployments
