"""What the knowledge service and the encoder deployments are configured with
(``serve_apps/app.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import ConfigDict, Field

from models.encoders import EncoderDeploymentSettings
from retrieval.search import SearchConfig
from serve_apps.deployment_options import DeploymentConfig


class KnowledgeConfig(DeploymentConfig):
    """Search depths, the Qdrant local-mode folder, and the knowledge service's Serve options.
    A Qdrant server's URL and key come from the replica's environment
    (``serve_apps/connections.py``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Qdrant local mode opens its folder in one process only: one replica.
    default_deployment_options: ClassVar[dict[str, Any]] = {
        "num_replicas": 1,
        "ray_actor_options": {"num_cpus": 0.5},
        "max_ongoing_requests": 64,
    }

    search: SearchConfig = Field(default_factory=SearchConfig)
    qdrant_folder: Path = Field(
        Path(".data/qdrant"),
        description="Qdrant local mode's folder, without a Qdrant server (<data_dir>/qdrant).",
    )


class EmbedderConfig(DeploymentConfig):
    """The embedder's model settings and its Serve options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_deployment_options: ClassVar[dict[str, Any]] = {
        "ray_actor_options": {"num_cpus": 1},
        "max_ongoing_requests": 32,
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 8},
    }

    encoder: EncoderDeploymentSettings
    other_versions_kept: int = Field(
        2,
        ge=1,
        le=8,
        description="Embedder versions besides the configured one a replica keeps loaded "
        "(those that knowledge-base versions record: a swap's new one, a restored one).",
    )


class RerankerConfig(DeploymentConfig):
    """The cross-encoder's model settings and its Serve options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_deployment_options: ClassVar[dict[str, Any]] = {
        "ray_actor_options": {"num_cpus": 1},
        "max_ongoing_requests": 16,
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 4},
    }

    encoder: EncoderDeploymentSettings
    other_versions_kept: int = Field(
        2,
        ge=1,
        le=8,
        description="Cross-encoders besides the configured one a replica keeps loaded (a "
        "swap's new one, and the one before it while its last searches finish).",
    )
