"""Serve options of a deployment, layered as Ray Serve LLM's builder layers them: the
deployment's defaults, then the user's overrides from the application's arguments.

A Serve config's own ``deployments:`` list still applies over what the builder set (Serve
does that when it deploys the file).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DeploymentOptions(BaseModel):
    """Overrides of a deployment's ``@serve.deployment`` options; unset ones keep the
    deployment's defaults, and a mapping merges key by key over the default mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_replicas: int | None = Field(
        None, ge=1, description="A fixed number of replicas, instead of autoscaling."
    )
    autoscaling_config: dict[str, Any] | None = Field(
        None,
        description="Serve's autoscaling (min_replicas, max_replicas, target_ongoing_requests, "
        "upscale_delay_s, ...), instead of a fixed number of replicas.",
    )
    max_ongoing_requests: int | None = Field(
        None, ge=1, description="Requests one replica works on at once."
    )
    ray_actor_options: dict[str, Any] | None = Field(
        None, description="Each replica's Ray resources (num_cpus, num_gpus, resources, ...)."
    )

    @model_validator(mode="after")
    def _replicas_one_way(self) -> DeploymentOptions:
        if self.num_replicas is not None and self.autoscaling_config is not None:
            raise ValueError("set num_replicas or autoscaling_config, not both")
        return self

    def over(self, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """``defaults`` with these overrides applied."""
        options = copy.deepcopy(dict(defaults))
        given = self.model_dump(exclude_none=True)
        # A fixed count and autoscaling exclude each other: the one given replaces the other.
        if "num_replicas" in given:
            options.pop("autoscaling_config", None)
        if "autoscaling_config" in given:
            options.pop("num_replicas", None)
        for key, value in given.items():
            default = options.get(key)
            options[key] = {**default, **value} if isinstance(default, dict) else value
        return options


class DeploymentConfig(BaseModel):
    """A deployment's typed config: what its replicas need, and its Serve options."""

    # Today's options of the deployment, which the config's overrides go over.
    default_deployment_options: ClassVar[dict[str, Any]] = {}

    deployment_options: DeploymentOptions = Field(
        default_factory=DeploymentOptions,
        description="Serve options over the deployment's defaults (replicas, autoscaling, "
        "max_ongoing_requests, ray_actor_options).",
    )


def deployment_options(config: DeploymentConfig) -> dict[str, Any]:
    """The Serve options of ``config``'s deployment: its defaults, then the overrides."""
    return config.deployment_options.over(type(config).default_deployment_options)
