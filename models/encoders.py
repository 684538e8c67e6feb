"""Embedder and reranker deployments as ML engineers configure them (``models/configs/``).

A file names the model and where it runs; the builder turns it into the deployment's
arguments. How many replicas and how much of a GPU each takes are Serve options
(``deployments:`` in the Serve config), beside the other deployments' options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class EncoderDeploymentSettings(BaseModel):
    """One embedder or reranker deployment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["embedder", "reranker"] = Field(..., description="Which deployment it is.")
    model: str = Field(
        ...,
        min_length=1,
        description="Embedder: a name in retrieval.embedder.EMBEDDING_MODELS; reranker: a "
        "cross-encoder hub id or local path.",
    )
    accelerator: Literal["cpu", "gpu"] = Field("cpu", description="Where the model runs.")
    use_fp16: bool = Field(False, description="Half precision (GPU only).")
    batch_size: int = Field(32, ge=1, le=1024, description="Texts per forward pass.")
    max_length: int = Field(512, ge=16, le=8192, description="Reranker: longest pair in tokens.")

    @model_validator(mode="after")
    def _consistent(self) -> EncoderDeploymentSettings:
        if self.use_fp16 and self.accelerator == "cpu":
            raise ValueError("use_fp16=true needs accelerator: gpu (fp16 on CPU is emulated)")
        if self.kind == "embedder":
            from retrieval.embedder import EMBEDDING_MODELS

            if self.model not in EMBEDDING_MODELS:
                raise ValueError(
                    f"model={self.model!r} is not a known embedder; known: "
                    f"{sorted(EMBEDDING_MODELS)}"
                )
        return self

    @property
    def device(self) -> str:
        return "cuda" if self.accelerator == "gpu" else "cpu"

    @classmethod
    def from_file(cls, path: str | Path) -> EncoderDeploymentSettings:
        with open(path) as fh:
            return cls.model_validate(yaml.safe_load(fh))
