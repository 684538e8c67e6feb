"""The health checks' body."""

from __future__ import annotations

from pydantic import BaseModel, Field


class HealthOut(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
    # Each model engine: its model, the dtype it computes in, why, and the CPU (readiness only).
    engines: list[dict[str, str]] = Field(default_factory=list)
