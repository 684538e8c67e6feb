"""WebSocket frames of ``/v1/sessions/{id}/stream``: one discriminated union each way.

Client → server: ``turn`` (a trainee utterance with its client turn id), ``resume``
(replay everything after a sequence number), ``end`` (finish and score the session),
``ping``.
Server → client: ``ack``, ``token``, ``reply_done``, ``hint`` (the coach), ``compliance``,
``review`` (the reviewer's verdict on a streamed reply), ``turn_taking`` (who of a
buying committee answers), ``score`` (the evaluator, after
``end``), ``turn`` (replayed history), ``pong``, ``error``. Every frame is JSON with a
``type`` field.

Tokens of a reply are provisional until its ``review``: a review with ``action: retry``
retracts that attempt's tokens, and the next attempt streams with ``attempt`` one higher.
``reply_done`` always carries the reply that counts.

Client frames are validated strictly: every field must have its JSON type (``last_seq`` is a
JSON integer: not ``"1"``, ``true`` or ``1.0``, as ``client_turn_id`` and ``text`` must be
strings and not numbers), and integers are range-checked before they reach PostgreSQL.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.specs import Severity, storable
from serve_apps.contracts.turn import EvaluationReport

CLIENT_TURN_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
# Sequence numbers are PostgreSQL ``integer`` columns.
MAX_SEQ = 2**31 - 1
# Control characters other than tab, newline and carriage return: JSON escapes each as six
# bytes (``\u0007``), and no trainee types them. So a message costs at most 4 bytes of
# UTF-8 per character, which the frame limit leaves room for (settings.py).
_CONTROL = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f]")


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- client → server -------------------------------------------------------------------


class _ClientFrame(_Frame):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TraineeTurn(_ClientFrame):
    type: Literal["turn"] = "turn"
    client_turn_id: str = Field(..., pattern=CLIENT_TURN_ID_PATTERN)
    text: str = Field(..., min_length=1)


class Resume(_ClientFrame):
    type: Literal["resume"] = "resume"
    last_seq: int = Field(0, ge=0, le=MAX_SEQ)


class Ping(_ClientFrame):
    type: Literal["ping"] = "ping"


class EndSession(_ClientFrame):
    type: Literal["end"] = "end"


ClientFrame = Annotated[TraineeTurn | Resume | Ping | EndSession, Field(discriminator="type")]
_client_frames: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


# --- server → client -------------------------------------------------------------------


class Ack(_Frame):
    """The trainee turn is stored; ``duplicate`` means this client turn id was seen before."""

    type: Literal["ack"] = "ack"
    client_turn_id: str
    seq: int
    duplicate: bool = False


class Token(_Frame):
    type: Literal["token"] = "token"
    reply_to: int
    speaker: str
    text: str
    attempt: int = 0


class Hint(_Frame):
    """The coach, live: about the trainee turn ``reply_to`` (None: at the session's start)."""

    type: Literal["hint"] = "hint"
    reply_to: int | None
    kind: Literal["objection", "buying_signal", "next_step", "stage", "memory", "knowledge"]
    text: str
    stage: str | None = None
    citations: list[RetrievedChunk] = Field(
        default_factory=list, description="knowledge: the seller's chunk the hint cites."
    )


class ComplianceFinding(_Frame):
    """A compliance rule broken by the trainee (``speaker: trainee``) or by a persona."""

    type: Literal["compliance"] = "compliance"
    reply_to: int
    speaker: str
    rule: str
    description: str
    severity: Severity
    excerpt: str = Field(description="The sentences that break the rule, whole.")
    decided_by: Literal["rule", "semantic", "knowledge", "judge"] = "rule"
    similarity: float | None = Field(None, description="semantic: to the closest example.")
    source: RetrievedChunk | None = Field(
        None, description="knowledge_claims: the seller's chunk the claim contradicts."
    )


class Review(_Frame):
    """The reviewer's verdict on one attempt at a reply, before it counts as final."""

    type: Literal["review"] = "review"
    reply_to: int
    speaker: str
    attempt: int
    passed: bool
    issues: list[str] = Field(default_factory=list)
    action: Literal["accepted", "retry", "replaced"]


class TurnTaking(_Frame):
    """The director's choice of who answers, sent before that persona's tokens."""

    type: Literal["turn_taking"] = "turn_taking"
    reply_to: int
    speaker: str
    reason: str
    decided_by: Literal["rule", "judge"]


class Score(_Frame):
    type: Literal["score"] = "score"
    session_id: str
    report: EvaluationReport


class TurnTiming(_Frame):
    """Where a reply's time went on the server, in milliseconds from the moment the trainee
    turn arrived: what a client's own clock cannot split (its time to first token is all of
    these plus the network)."""

    stored_ms: float = Field(description="The trainee turn stored (then acknowledged).")
    model_called_ms: float = Field(
        description="The persona's model asked: the turn stored, its knowledge retrieved."
    )
    first_token_ms: float | None = Field(
        None, description="The persona's first token back at the gateway."
    )
    reply_stored_ms: float = Field(description="The reply stored (then ``reply_done``).")


class ReplyDone(_Frame):
    """The NPC reply is stored under ``seq``; ``text`` is the whole reply. ``timing`` comes
    with a reply generated for this turn (not with one replayed for a retried turn)."""

    type: Literal["reply_done"] = "reply_done"
    seq: int
    reply_to: int
    speaker: str
    text: str
    output_tokens: int | None = None
    citations: list[RetrievedChunk] = Field(
        default_factory=list, description="Knowledge chunks the reply was grounded on."
    )
    timing: TurnTiming | None = None


class StoredTurn(_Frame):
    """A turn replayed from PostgreSQL after a reconnect."""

    type: Literal["turn"] = "turn"
    seq: int
    speaker: str
    text: str
    client_turn_id: str | None = None
    reply_to: int | None = None
    citations: list[RetrievedChunk] = Field(default_factory=list)


class Pong(_Frame):
    type: Literal["pong"] = "pong"


ErrorCode = Literal[
    "invalid_json",
    "invalid_frame",
    "message_too_long",
    "reply_in_progress",
    "too_many_turns",
    "model_unavailable",
    "session_ended",
    "rate_limited",
    "overloaded",
    "unavailable",
    "agent_failed",
    "no_rubric",
    "internal",
]


class ErrorEvent(_Frame):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    client_turn_id: str | None = None
    retry_after_s: int | None = None
    agent: str | None = Field(None, description="The agent that failed (agent_failed).")
    reply_to: int | None = None


AgentEvent = Hint | ComplianceFinding | Review | TurnTaking


def for_the_trainee(event: BaseModel) -> bool:
    """Whether a turn's event is sent to the trainee. An optional agent that could not
    answer in time (``agent_failed``: the coach's or the evaluator's judge) is stored for the
    report, not shown: the conversation goes on without it."""
    return not (isinstance(event, ErrorEvent) and event.code == "agent_failed")


ServerEvent = Annotated[
    Ack
    | Token
    | ReplyDone
    | StoredTurn
    | Pong
    | ErrorEvent
    | Hint
    | ComplianceFinding
    | Review
    | TurnTaking
    | Score,
    Field(discriminator="type"),
]
server_events: TypeAdapter[ServerEvent] = TypeAdapter(ServerEvent)


class FrameError(ValueError):
    """A client frame that cannot be accepted; carries the typed error to send back."""

    def __init__(self, event: ErrorEvent) -> None:
        super().__init__(event.message)
        self.event = event


def parse_client_frame(raw: str | bytes, *, max_message_chars: int) -> ClientFrame:
    """Validate one client frame, raising :class:`FrameError` with a typed error event."""
    try:
        frame = _client_frames.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] in {"json_invalid", "json_type"}:
            raise FrameError(
                ErrorEvent(code="invalid_json", message="frame is not a JSON object")
            ) from None
        where = ".".join(str(part) for part in first["loc"]) or "frame"
        raise FrameError(
            ErrorEvent(code="invalid_frame", message=f"{where}: {first['msg']}")
        ) from None
    if isinstance(frame, TraineeTurn):
        try:
            storable(frame.text)
        except ValueError as exc:
            raise FrameError(
                ErrorEvent(
                    code="invalid_frame",
                    message=f"text: {exc}",
                    client_turn_id=frame.client_turn_id,
                )
            ) from None
        if _CONTROL.search(frame.text):
            raise FrameError(
                ErrorEvent(
                    code="invalid_frame",
                    message="text: must not contain control characters",
                    client_turn_id=frame.client_turn_id,
                )
            )
        if not frame.text.strip():
            raise FrameError(
                ErrorEvent(
                    code="invalid_frame",
                    message="text: must not be blank",
                    client_turn_id=frame.client_turn_id,
                )
            )
        if len(frame.text) > max_message_chars:
            raise FrameError(
                ErrorEvent(
                    code="message_too_long",
                    message=f"text: {len(frame.text)} characters, at most {max_message_chars}",
                    client_turn_id=frame.client_turn_id,
                )
            )
    return frame


def parse_last_seq(raw: str | None) -> int | None:
    """``?last_seq=`` on connect: decimal digits only, 0 to :data:`MAX_SEQ` (ValueError)."""
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or int(raw) > MAX_SEQ:
        raise ValueError(f"last_seq: must be an integer from 0 to {MAX_SEQ}")
    return int(raw)


def encode(event: BaseModel) -> str:
    return event.model_dump_json()


def ws_url(base_url: str, path: str) -> str:
    """The WebSocket URL of ``path`` on the gateway at ``base_url`` (``http`` → ``ws``,
    ``https`` → ``wss``): where a client opens a session's stream."""
    return base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + path
