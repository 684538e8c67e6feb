"""A load profile: which users, in what proportion, how they pace themselves, and the ramp.

Profiles are YAML files in ``loadtests/profiles/`` (``--profile default``) or anywhere
(``--profile path/to/file.yaml``); this model validates them before a stack is started, so a
typo costs a second, not the stack's start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from serve_apps.contracts.turn import SessionModeName

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


class _Strict(BaseModel):
    # A misspelt key is an error, not a default silently used.
    model_config = ConfigDict(extra="forbid")


class UserWeights(_Strict):
    """Relative numbers of each kind of user (locust's class weights); 0 leaves a kind out."""

    trainee: int = Field(8, ge=0)
    manager: int = Field(1, ge=0)
    admin: int = Field(1, ge=0)
    knowledge: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _someone(self) -> UserWeights:
        if not any(self.model_dump().values()):
            raise ValueError("at least one kind of user needs a weight above 0")
        return self


class ThinkTime(_Strict):
    """Reading and typing time before each trainee turn, and the pause between any user's
    tasks: uniform between ``min_s`` and ``max_s``, drawn from each user's seeded generator."""

    min_s: float = Field(10.0, ge=0)
    max_s: float = Field(20.0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ThinkTime:
        if self.max_s < self.min_s:
            raise ValueError(f"max_s ({self.max_s}) is below min_s ({self.min_s})")
        return self


class TraineeSettings(_Strict):
    scenario: str = "crm-discovery-call"
    # practice (what a trainee usually gets), assessment or conversation (the persona alone).
    mode: SessionModeName = "practice"
    turns_per_session: int = Field(6, ge=1, le=100)
    # dev: the seeded demo trainee through development mode's headers (and query parameters
    # on the WebSocket); invite: each virtual trainee is invited by the demo admin, sets a
    # password, signs in and opens the WebSocket with a single-use ticket, as the web app
    # does. Both need a stack in development mode (the invitation uses the admin's headers).
    sign_in: Literal["dev", "invite"] = "dev"
    # Wait at most this long for a reply's end before counting the turn as failed (timeout).
    reply_timeout_s: float = Field(180.0, gt=0)
    # When set, each session first sends one turn of this many characters: over the server's
    # SALESBOOST_MAX_MESSAGE_CHARS it gets error ``message_too_long`` (the socket stays open),
    # which checks that failures are counted by code. Keep it under the frame limit (bytes).
    oversize_turn_chars: int | None = Field(None, ge=1, le=16_000)


class Ramp(_Strict):
    """Defaults for the command's ``--users``, ``--spawn-rate`` and ``--run-time``."""

    users: int = Field(16, ge=1)
    spawn_rate: float = Field(0.5, gt=0)
    run_time_s: int = Field(300, ge=1)


class Profile(_Strict):
    name: str
    description: str = ""
    seed: int = 0
    users: UserWeights = UserWeights()
    think: ThinkTime = ThinkTime()
    trainee: TraineeSettings = TraineeSettings()
    ramp: Ramp = Ramp()
    # The reply budget of a stack the command starts (SALESBOOST_NPC_MAX_TOKENS); a stack
    # given with --url keeps its own.
    max_tokens: int = Field(160, ge=1, le=1024)
    # The report's time series: one point per this many seconds.
    report_every_s: float = Field(5.0, gt=0)
    knowledge_base: str = "product"
    search_queries: list[str] = Field(
        default_factory=lambda: [
            "How much does the Professional plan cost per user?",
            "Does CloudCRM integrate with SAP?",
            "How long does a migration take?",
        ],
        min_length=1,
    )


def resolve_profile_path(name_or_path: str | Path) -> Path:
    """``default`` is ``loadtests/profiles/default.yaml``; anything with a suffix or a slash
    is a path."""
    text = str(name_or_path)
    if "/" in text or text.endswith((".yaml", ".yml")):
        return Path(text)
    return PROFILES_DIR / f"{text}.yaml"


def load_profile(name_or_path: str | Path) -> Profile:
    path = resolve_profile_path(name_or_path)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"no profile {str(name_or_path)!r} ({path}); bundled: {known}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a profile is a mapping of settings")
    return Profile.model_validate({"name": path.stem, **data})
