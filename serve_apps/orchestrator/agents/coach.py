"""The coach: live hints beside the persona's reply.

Rules read the persona's last reply for objections and buying signals and follow the
conversation's stage from the trainee's words; the judge model suggests the next move once
the persona has started answering (so it does not compete with the reply's first token).
A trainee's earlier struggles (memory) open the first turn of a session. The seller's
knowledge base grounds the coach: the sentence of the chunks retrieved for the turn that is
closest to what the trainee said comes back as a ``knowledge`` hint, with its citation.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from retrieval.excerpts import sentences
from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.specs import SALES_STAGES, TraineeMemory
from serve_apps.contracts.turn import HistoryTurn, PersonaCard, TurnRequest
from serve_apps.contracts.wire import Hint
from serve_apps.orchestrator.agents.judge import Judge
from serve_apps.orchestrator.semantic import SemanticMatcher

# The sales stages, then the goodbye (where a conversation ends, never where a scenario starts).
STAGES = (*SALES_STAGES, "end")
# What the trainee's words say about the stage they are in (checked from the last stage back).
STAGE_CUES: dict[str, re.Pattern[str]] = {
    "end": re.compile(r"(?i)\b(thanks? (you )?for your time|goodbye|bye|talk soon)\b"),
    "close": re.compile(
        r"(?i)\b(sign|contract|next step|proposal|move forward|pilot|trial|purchase order)\b"
    ),
    "objection handling": re.compile(
        r"(?i)\b(i understand|i hear you|fair concern|that concern)\b"
    ),
    "solution presentation": re.compile(
        r"(?i)\b(demo|feature|connector|integrat\w*|our (platform|product|solution)|show you)\b"
    ),
    "value proposition": re.compile(r"(?i)\b(value|benefit|save|saving|roi|payback|help you)\b"),
    "needs analysis": re.compile(
        r"(?i)\b(challenge|pain|problem|currently|today|struggl\w*|need|priorit\w*)\b"
    ),
    "qualification": re.compile(
        r"(?i)\b(budget|timeline|decision|decide|who else|approv\w*|sign[- ]off|deadline)\b"
    ),
    "introduction": re.compile(r"(?i)\b(hi|hello|good (morning|afternoon)|my name|nice to meet)\b"),
}
STAGE_ADVICE = {
    "introduction": "Set an agenda and ask permission to ask a few questions.",
    "qualification": "Pin down budget, timeline and who signs before you pitch.",
    "needs analysis": "Ask what happens if nothing changes; quantify the pain.",
    "value proposition": "Tie each benefit to a need the customer said out loud.",
    "solution presentation": "Show only what answers their stated needs.",
    "objection handling": "Acknowledge, ask a clarifying question, then answer.",
    "close": "Propose a concrete next step with a date.",
    "end": "Summarise what you agreed and confirm the next step.",
}
OBJECTION_CUES = re.compile(
    r"(?i)\b(too expensive|expensive|higher than|over budget|not sure|concern\w*|worried|"
    r"burned|took twice|risk\w*|doubt\w*|competitor|cheaper|can't afford|not convinced)\b"
)
BUYING_SIGNAL_CUES = re.compile(
    r"(?i)\b(how soon|when could|what would it take|send me|could you send|sounds good|"
    r"interested|trial|pilot|next step|proposal|how do we start|what does onboarding)\b"
)
_WORD = re.compile(r"[a-z]{4,}")


def _content_words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def stage_of(text: str, previous: str) -> str:
    """The stage the trainee's words point to; the previous one when they point nowhere."""
    for stage in reversed(STAGES):
        if STAGE_CUES[stage].search(text):
            return stage
    return previous if previous in STAGES else "introduction"


def matched_objection(reply: str, persona: PersonaCard) -> str | None:
    """The persona's own objection the reply voices (shared words), or a generic cue."""
    words = _content_words(reply)
    for objection in persona.objections:
        if len(words & _content_words(objection)) >= 2:
            return objection
    match = OBJECTION_CUES.search(reply)
    return match.group(0) if match else None


class NextStep(BaseModel):
    # Short enough to close inside the token budget below, so the JSON always completes.
    next_step: str = Field(..., min_length=3, max_length=120)


def memory_hint(memory: TraineeMemory) -> str:
    skills = ", ".join(memory.weak_skills) or "nothing in particular"
    return f"Last time you struggled with: {skills}. {memory.summary}".strip()


class Coach:
    def __init__(self, judge: Judge | None = None) -> None:
        self._judge = judge

    def rule_hints(self, request: TurnRequest, previous_stage: str) -> tuple[list[Hint], str]:
        """Hints a rule decides, and the stage the conversation is in now."""
        seq = request.reply_to_seq
        hints: list[Hint] = []
        if request.memory is not None and not request.history:
            hints.append(Hint(reply_to=seq, kind="memory", text=memory_hint(request.memory)))
        last_reply = next((t for t in reversed(request.history) if t.speaker == "npc"), None)
        if last_reply is not None:
            persona = _speaker_card(request, last_reply)
            objection = matched_objection(last_reply.text, persona)
            if objection:
                hints.append(
                    Hint(
                        reply_to=seq,
                        kind="objection",
                        text=f"{persona.name} raised an objection ({objection!r}). "
                        + STAGE_ADVICE["objection handling"],
                    )
                )
            signal = BUYING_SIGNAL_CUES.search(last_reply.text)
            if signal:
                hints.append(
                    Hint(
                        reply_to=seq,
                        kind="buying_signal",
                        text=f"Buying signal from {persona.name} ({signal.group(0)!r}). "
                        + STAGE_ADVICE["close"],
                    )
                )
        stage = stage_of(request.trainee_text, previous_stage)
        if stage != previous_stage or not request.history:
            hints.append(
                Hint(
                    reply_to=seq,
                    kind="stage",
                    stage=stage,
                    text=f"Stage: {stage}. " + STAGE_ADVICE[stage],
                )
            )
        return hints, stage

    @property
    def uses_judge(self) -> bool:
        return self._judge is not None

    async def next_step(self, request: TurnRequest, stage: str) -> Hint:
        assert self._judge is not None
        recent = "\n".join(
            f"{'Salesperson' if t.speaker == 'trainee' else 'Customer'}: {t.text}"
            for t in request.history[-4:]
        )
        struggles = (
            f"\nThis salesperson struggled before with: {', '.join(request.memory.weak_skills)}."
            if request.memory and request.memory.weak_skills
            else ""
        )
        answer = await self._judge.ask(
            "coach",
            NextStep,
            instructions=(
                "You coach a salesperson during a sales call. In one short sentence, say what "
                f"they should do next. The call is at the {stage} stage.{struggles}"
            ),
            material=f"{recent}\nSalesperson: {request.trainee_text}",
            max_tokens=80,
        )
        return Hint(
            reply_to=request.reply_to_seq,
            kind="next_step",
            stage=stage,
            text=answer.next_step.strip(),
        )


def _speaker_card(request: TurnRequest, turn: HistoryTurn) -> PersonaCard:
    for persona in request.personas:
        if persona.slug == turn.persona:
            return persona
    return request.persona


def stage_from_history(history: list[HistoryTurn], start: str) -> str:
    """Replays the stage tracker over earlier trainee turns (a reconnect rebuilds it)."""
    stage = start if start in STAGES else "introduction"
    for turn in history:
        if turn.speaker == "trainee":
            stage = stage_of(turn.text, stage)
    return stage


async def knowledge_hint(
    matcher: SemanticMatcher,
    request: TurnRequest,
    chunks: list[RetrievedChunk],
    threshold: float,
) -> Hint | None:
    """The knowledge sentence closest to the trainee's turn, cited, when it is close enough."""
    candidates = [
        (sentence, chunk)
        for chunk in chunks
        for sentence in sentences(" ".join(chunk.text.split()))
    ]
    if not candidates:
        return None
    match = await matcher.best(request.trainee_text, tuple(s for s, _ in candidates))
    if match is None or match.score < threshold:
        return None
    chunk = next(c for s, c in candidates if s == match.example)
    return Hint(
        reply_to=request.reply_to_seq,
        kind="knowledge",
        text=f'From {chunk.title}: "{match.example}"',
        citations=[chunk.citation()],
    )
