"""What the training orchestrator deployment is configured with (``serve_apps/app.py``)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict, Field

from serve_apps.deployment_options import DeploymentConfig
from serve_apps.orchestrator.training_turn import AgentSettings


class OrchestratorConfig(DeploymentConfig):
    """How the agents work, and the orchestrator's Serve options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_deployment_options: ClassVar[dict[str, Any]] = {
        "ray_actor_options": {"num_cpus": 0.5},
        "max_ongoing_requests": 256,
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 64},
    }

    agents: AgentSettings = Field(default_factory=AgentSettings)
