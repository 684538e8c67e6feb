"""What crosses the knowledge service's handle: chunks, explanations, outcomes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class RetrievedChunk(BaseModel):
    """A chunk that came back for a query; what a citation records."""

    chunk_id: str
    document_id: str
    title: str
    heading: str | None = None
    page: int | None = None
    position: int = 0
    score: float
    text: str

    @classmethod
    def from_hit(cls, chunk_id: str, score: float, payload: dict[str, Any]) -> RetrievedChunk:
        return cls(
            chunk_id=chunk_id,
            document_id=payload.get("document_id", ""),
            title=payload.get("document_title", ""),
            heading=payload.get("heading"),
            page=payload.get("page"),
            position=payload.get("position", 0),
            score=score,
            text=payload.get("text", ""),
        )

    def citation(self, excerpt_chars: int = 300) -> RetrievedChunk:
        """What is stored with a turn: where the chunk is, and enough text to show it."""
        return self.model_copy(update={"text": self.text[:excerpt_chars]})


class StageScore(BaseModel):
    score: float
    rank: int


class ExplainedChunk(BaseModel):
    """A returned chunk with its score and rank at each stage it reached."""

    chunk: RetrievedChunk
    stages: dict[str, StageScore] = Field(
        description="dense, sparse, fused, reranked: the stages this chunk reached."
    )


class SearchExplanation(BaseModel):
    """A search's hits explained, and where it searched."""

    version: int | None = Field(description="The knowledge-base version searched (None: empty).")
    embedder: str | None = Field(description="The embedder of that version and of the query.")
    hits: list[ExplainedChunk]


class IngestOutcome(BaseModel):
    document_id: str
    title: str
    chunks: int


class Refusal(BaseModel):
    """A document the service would not index, with the HTTP status that says why."""

    status: int
    reason: str


class KnowledgeBaseState(BaseModel):
    live_version: int | None
    versions: list[int]
    version_embedders: dict[int, str] = Field(
        default_factory=dict, description="The embedder (model@hash) that built each version."
    )
