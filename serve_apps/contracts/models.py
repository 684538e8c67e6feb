"""Where a model version is served: what the gateway tells the orchestrator for a turn."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ModelRole = Literal["npc", "judge"]
MODEL_ROLES: tuple[ModelRole, ...] = ("npc", "judge")


class ModelRoute(BaseModel):
    """One model version of a role and the Serve application that serves it."""

    model_config = ConfigDict(frozen=True)

    role: ModelRole
    version: str = Field(description="model_id@config hash: what stored replies record.")
    model_id: str = Field(
        description="The name the engine serves the model under (for the persona, its adapter's "
        "where the config has one)."
    )
    app_name: str = Field(description="The Serve application of this version.")
    deployment_name: str = Field(description="Its LLM deployment.")
