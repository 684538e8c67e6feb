"""WebSocket frames of ``/v1/sessions/{id}/stream``: one discriminated union each way.

Client → server: ``turn`` (a trainee utterance with its client turn id), ``resume``
(replay everything after a sequence number), ``ping``.
Server → client: ``ack``, ``token``, ``reply_done``, ``turn`` (replayed history), ``pong``,
``error``. Every frame is JSON with a ``type`` field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from serve_apps.knowledge.contracts import RetrievedChunk

CLIENT_TURN_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- client → server -------------------------------------------------------------------


class TraineeTurn(_Frame):
    type: Literal["turn"] = "turn"
    client_turn_id: str = Field(..., pattern=CLIENT_TURN_ID_PATTERN)
    text: str = Field(..., min_length=1)


class Resume(_Frame):
    type: Literal["resume"] = "resume"
    last_seq: int = Field(0, ge=0)


class Ping(_Frame):
    type: Literal["ping"] = "ping"


ClientFrame = Annotated[TraineeTurn | Resume | Ping, Field(discriminator="type")]
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


class ReplyDone(_Frame):
    """The NPC reply is stored under ``seq``; ``text`` is the whole reply."""

    type: Literal["reply_done"] = "reply_done"
    seq: int
    reply_to: int
    speaker: str
    text: str
    output_tokens: int | None = None
    citations: list[RetrievedChunk] = Field(
        default_factory=list, description="Knowledge chunks the reply was grounded on."
    )


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
    "model_unavailable",
    "session_ended",
    "rate_limited",
    "internal",
]


class ErrorEvent(_Frame):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    client_turn_id: str | None = None
    retry_after_s: int | None = None


ServerEvent = Annotated[
    Ack | Token | ReplyDone | StoredTurn | Pong | ErrorEvent, Field(discriminator="type")
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


def encode(event: BaseModel) -> str:
    return event.model_dump_json()
