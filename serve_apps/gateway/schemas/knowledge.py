"""Bodies of the knowledge-base routes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from retrieval.chunking import ChunkingConfig
from serve_apps.contracts.knowledge import ExplainedChunk
from serve_apps.contracts.specs import StorableText


class KnowledgeBaseSettings(StorableText):
    model_config = ConfigDict(extra="forbid")

    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)


class DocumentOut(BaseModel):
    id: uuid.UUID
    filename: str
    title: str
    size_bytes: int
    chunks: int
    created_at: datetime


class KnowledgeBaseOut(BaseModel):
    slug: str
    chunking: ChunkingConfig
    live_version: int | None = Field(description="The version searches use (None: empty).")
    versions: list[int] = Field(description="Every version kept; any can be made live again.")
    version_embedders: dict[int, str] = Field(
        default_factory=dict,
        description="The embedder (model@hash) that built each version: its searches embed "
        "their queries with it.",
    )
    documents: list[DocumentOut]


class SearchTestOut(BaseModel):
    query: str
    version: int | None = Field(None, description="The version searched (the live one).")
    embedder: str | None = Field(None, description="Its embedder, which embedded the query.")
    hits: list[ExplainedChunk] = Field(
        description="Ranked as returned; each with its score and rank at every stage."
    )
