"""Embedder and reranker deployments as ML engineers configure them (``models/configs/``).

A file names the model and where it runs; the builder turns it into the deployment's
arguments. How many replicas and how much of a GPU each takes are Serve options
(``deployments:`` in the Serve config), beside the other deployments' options.

The same file is what ``salesboost models swap embedder|reranker CONFIG`` takes. An embedder
is a model of the registry (``retrieval.embedder.EMBEDDING_MODELS``) by name, or a model
folder given by its absolute path with its dimension and pooling; either may set its own
longest input and query instruction, which makes another version (``version``). A reranker
is a cross-encoder (a hub id or a folder), or ``late-interaction``: the reranking inside
Qdrant on the embedder's sentence vectors, with no model of its own.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from retrieval.embedder import EmbedderRecord, EmbeddingModelSpec

# The reranker that needs no model: late interaction on the embedder's vectors, in Qdrant.
LATE_INTERACTION = "late-interaction"
# A cross-encoder's longest query-passage pair when its config names none.
DEFAULT_RERANKER_MAX_LENGTH = 512
# What an embedder config may set beside its model (the registry's entry gives the rest).
_EMBEDDER_ONLY = ("dim", "pooling", "query_instruction")


class EncoderDeploymentSettings(BaseModel):
    """One embedder or reranker deployment, or one version of it (a swap's config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["embedder", "reranker"] = Field(..., description="Which deployment it is.")
    model: str = Field(
        ...,
        min_length=1,
        max_length=1024,
        description="Embedder: a name in retrieval.embedder.EMBEDDING_MODELS, or the absolute "
        "path of a model folder; reranker: a cross-encoder hub id or local path, or "
        "'late-interaction' (no cross-encoder: Qdrant reranks on the embedder's vectors).",
    )
    accelerator: Literal["cpu", "gpu"] = Field("cpu", description="Where the model runs.")
    use_fp16: bool = Field(False, description="Half precision (GPU only).")
    batch_size: int = Field(32, ge=1, le=1024, description="Texts per forward pass.")
    max_length: int | None = Field(
        None,
        ge=16,
        le=8192,
        description="Longest input in tokens: a reranker's query-passage pair (512 when "
        "unset); an embedder's text (the registry's when unset).",
    )
    dim: int | None = Field(
        None,
        gt=0,
        le=65536,
        description="Embedder: its vectors' size; required for a model folder, and for a "
        "registry model it must be the registry's.",
    )
    pooling: Literal["mean", "cls"] | None = Field(
        None,
        description="Embedder: token vectors to one vector; required for a model folder.",
    )
    query_instruction: str | None = Field(
        None,
        max_length=512,
        description="Embedder: the prefix put before each query (BGE retrieval models).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> EncoderDeploymentSettings:
        if self.use_fp16 and self.accelerator == "cpu":
            raise ValueError("use_fp16=true needs accelerator: gpu (fp16 on CPU is emulated)")
        if self.kind == "embedder":
            self.embedding_spec()  # a registry model, or a folder with its shape
        else:
            named = [f for f in _EMBEDDER_ONLY if getattr(self, f) is not None]
            if named:
                raise ValueError(f"{', '.join(named)}: an embedder's settings, not a reranker's")
            if self.model == LATE_INTERACTION and self.model_fields_set & {
                "max_length",
                "use_fp16",
            }:
                raise ValueError("late-interaction has no model of its own to set up")
        return self

    @property
    def device(self) -> str:
        return "cuda" if self.accelerator == "gpu" else "cpu"

    # --- embedder -------------------------------------------------------------------------

    def embedding_spec(self) -> EmbeddingModelSpec:
        """The embedding model this config describes: the registry's entry with this
        config's settings over it, or the folder ``model`` names. ``ValueError`` naming the
        field when it describes none."""
        from retrieval.embedder import EMBEDDING_MODELS, EmbeddingModelSpec

        if self.kind != "embedder":
            raise ValueError(f"a {self.kind} config describes no embedding model")
        registered = EMBEDDING_MODELS.get(self.model)
        if registered is not None:
            if self.dim is not None and self.dim != registered.dim:
                raise ValueError(
                    f"dim={self.dim}: {self.model} gives {registered.dim}-dimensional vectors"
                )
            overrides = {
                "pooling": self.pooling,
                "query_instruction": self.query_instruction,
                "max_length": self.max_length,
            }
            return registered.model_copy(
                update={k: v for k, v in overrides.items() if v is not None}
            )
        folder = Path(self.model)
        if not folder.is_absolute():
            raise ValueError(
                f"model={self.model!r} is not a known embedder (known: "
                f"{sorted(EMBEDDING_MODELS)}) nor the absolute path of a model folder"
            )
        # The folder itself is read where the model loads (the embedder's replicas, which
        # may be other machines than this one): a missing one fails the swap's probe.
        missing = [f for f in ("dim", "pooling") if getattr(self, f) is None]
        if missing:
            raise ValueError(f"{', '.join(missing)}: required for a model folder")
        assert self.dim is not None and self.pooling is not None  # checked above
        return EmbeddingModelSpec(
            name=folder.name,
            source=str(folder),
            dim=self.dim,
            pooling=self.pooling,
            query_instruction=self.query_instruction or "",
            max_length=self.max_length or 512,
        )

    def embedder_record(self) -> EmbedderRecord:
        """What a knowledge-base version built by this embedder records."""
        from retrieval.embedder import EmbedderRecord

        spec = self.embedding_spec()
        return EmbedderRecord(
            version=spec.version,
            dim=spec.dim,
            settings=self.model_dump(mode="json", exclude_defaults=True),
        )

    # --- reranker -------------------------------------------------------------------------

    @property
    def is_cross_encoder(self) -> bool:
        return self.kind == "reranker" and self.model != LATE_INTERACTION

    @property
    def reranker_max_length(self) -> int:
        return self.max_length or DEFAULT_RERANKER_MAX_LENGTH

    # --- either ---------------------------------------------------------------------------

    @property
    def version(self) -> str:
        """``model@hash``. An embedder's hash is of what shapes its vectors
        (``EmbeddingModelSpec.version``); a cross-encoder's, of its model and longest pair;
        the late-interaction reranker is one version."""
        if self.kind == "embedder":
            return self.embedding_spec().version
        if not self.is_cross_encoder:
            return LATE_INTERACTION
        shape = {"model": self.model, "max_length": self.reranker_max_length}
        digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:10]
        return f"{Path(self.model).name}@{digest}"

    @classmethod
    def from_file(cls, path: str | Path) -> EncoderDeploymentSettings:
        with open(path) as fh:
            return cls.model_validate(yaml.safe_load(fh))
