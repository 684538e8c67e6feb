"""What the gateway sends the orchestrator and what comes back, over Serve handles."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from serve_apps.knowledge.contracts import RetrievedChunk


class PersonaCard(BaseModel):
    """Everything the NPC model needs to play one customer."""

    slug: str
    name: str
    role: str
    company: str
    personality: str
    goals: list[str] = Field(default_factory=list)
    objections: list[str] = Field(default_factory=list)
    facts: list[str] = Field(default_factory=list)
    hidden: list[str] = Field(default_factory=list)


class ScenarioCard(BaseModel):
    title: str
    product: str
    stage: str
    difficulty: str
    description: str


class HistoryTurn(BaseModel):
    speaker: Literal["trainee", "npc"]
    text: str


class NPCReplyRequest(BaseModel):
    session_id: str
    tenant_id: str
    knowledge_base: str | None = Field(
        None, description="The tenant's knowledge base that grounds the persona, if any."
    )
    reply_to_seq: int
    persona: PersonaCard
    scenario: ScenarioCard
    history: list[HistoryTurn] = Field(
        default_factory=list, description="Earlier turns, oldest first, without the new one."
    )
    trainee_text: str
    grounding: list[RetrievedChunk] | None = Field(
        None,
        description="Knowledge chunks already retrieved for this turn (the gateway asks for "
        "them while it stores the turn); None: the orchestrator retrieves them itself.",
    )
    max_tokens: int = Field(160, ge=1, le=2048)
    temperature: float = Field(0.7, ge=0, le=2)


class NPCChunk(BaseModel):
    """A piece of the streamed reply; the last one has ``done`` and the token count."""

    text: str = ""
    done: bool = False
    output_tokens: int | None = None
    model: str | None = None
    citations: list[RetrievedChunk] = Field(default_factory=list)
