"""Split parsed documents into overlapping chunks that remember where they came from."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from retrieval.parsing import ParsedDocument


class ChunkingConfig(BaseModel):
    """Per knowledge base. Sizes are in words (about 1.3 model tokens each)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunk_words: int = Field(160, ge=16, le=2000, description="Words per chunk.")
    overlap_words: int = Field(
        32, ge=0, le=1999, description="Words repeated from the previous chunk (below chunk_words)."
    )
    split_on_headings: bool = Field(True, description="Never let a chunk cross a heading.")

    @model_validator(mode="after")
    def _overlap_smaller_than_chunk(self) -> ChunkingConfig:
        if self.overlap_words >= self.chunk_words:
            raise ValueError(
                f"the overlap ({self.overlap_words} words) must be shorter than a chunk "
                f"({self.chunk_words} words)"
            )
        return self


@dataclass(frozen=True)
class Chunk:
    text: str
    position: int  # order within the document
    heading: str | None
    page: int | None


def _windows(words: list[str], size: int, overlap: int) -> list[list[str]]:
    if len(words) <= size:
        return [words]
    step = size - overlap
    windows = []
    for start in range(0, len(words), step):
        windows.append(words[start : start + size])
        if start + size >= len(words):
            break
    return windows


def chunk_document(document: ParsedDocument, config: ChunkingConfig) -> list[Chunk]:
    chunks: list[Chunk] = []
    if config.split_on_headings:
        groups = [(s.heading, s.page, s.text.split()) for s in document.sections]
    else:
        groups = [(None, None, " ".join(s.text for s in document.sections).split())]
    for heading, page, words in groups:
        if not words:
            continue
        for window in _windows(words, config.chunk_words, config.overlap_words):
            chunks.append(Chunk(" ".join(window), len(chunks), heading, page))
    return chunks
