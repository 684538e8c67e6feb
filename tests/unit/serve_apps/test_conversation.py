"""The conversation's order of effects, with in-memory stand-ins for PostgreSQL and Redis.

The fakes here isolate the protocol logic; the integration tests run the same code on the
real database, Redis and model.
"""

import asyncio
import json
import time
import uuid

import pytest

from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.specs import ComplianceRuleSpec
from serve_apps.contracts.turn import NPCChunk, PersonaCard, PersonaPapers, ScenarioCard
from serve_apps.contracts.wire import StoredTurn, TraineeTurn
from serve_apps.conversation.turns import (
    Conversation,
    StoredReply,
    TraineeTurnRecord,
    TurnContent,
)

PERSONA = PersonaCard(slug="cfo", name="Sam", role="CFO", company="Acme", personality="careful")
SCENARIO = ScenarioCard(
    title="t", product="p", stage="qualification", difficulty="easy", description="d"
)


class InMemoryConversationStore:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.turns: list[StoredTurn] = []
        self.by_client_id: dict[str, int] = {}
        self.replies: dict[int, StoredReply] = {}
        self.agent_events: list = []

    def _next(self) -> int:
        return len(self.turns) + 1

    async def store_trainee_turn(self, *, client_turn_id, text):
        if client_turn_id in self.by_client_id:
            seq = self.by_client_id[client_turn_id]
            return TraineeTurnRecord(seq=seq, duplicate=True, reply=self.replies.get(seq))
        seq = self._next()
        self.turns.append(
            StoredTurn(seq=seq, speaker="trainee", text=text, client_turn_id=client_turn_id)
        )
        self.by_client_id[client_turn_id] = seq
        self.log.append(f"stored trainee {seq}")
        return TraineeTurnRecord(seq=seq, duplicate=False, reply=None)

    async def store_npc_reply(
        self, *, reply_to_seq, text, output_tokens, model, citations, speaker, first_token_ms=None
    ):
        seq = self._next()
        self.turns.append(
            StoredTurn(
                seq=seq, speaker=speaker, text=text, reply_to=reply_to_seq, citations=citations
            )
        )
        reply = StoredReply(
            seq=seq, text=text, output_tokens=output_tokens, citations=citations, speaker=speaker
        )
        self.replies[reply_to_seq] = reply
        self.log.append(f"stored npc {seq}")
        return reply

    async def store_agent_events(self, *, reply_to_seq, events):
        self.agent_events.extend(events)
        self.log.append(f"stored {len(events)} agent events")

    async def turns_after(self, *, last_seq):
        return [t for t in self.turns if t.seq > last_seq]


class InMemoryLocks:
    """Stands in for the Redis locks; renewals are counted with the moment they came."""

    renew_every_s = 0.01

    def __init__(self) -> None:
        self.held: set[str] = set()
        self.renewals = 0
        self.renewed_at: list[float] = []

    async def renew(self, key):
        assert key in self.held
        self.renewals += 1
        self.renewed_at.append(time.monotonic())
        return True

    async def acquire(self, key):
        if key in self.held:
            return False
        self.held.add(key)
        return True

    async def release(self, key):
        self.held.discard(key)


class ScriptedReplies:
    """Stands in for the orchestrator: yields fixed chunks and counts calls."""

    def __init__(
        self, chunks=("Hello", " there."), fail_after=None, citations=(), first_token_after_s=0.0
    ) -> None:
        self.first_token_after_s = first_token_after_s
        self.first_token_at: float | None = None
        self.chunks = chunks
        self.fail_after = fail_after
        self.citations = list(citations)
        self.calls = 0
        self.requests = []

    async def __call__(self, request):
        self.calls += 1
        self.requests.append(request)
        await asyncio.sleep(self.first_token_after_s)  # queued in the engine, saying nothing
        self.first_token_at = time.monotonic()
        for index, text in enumerate(self.chunks):
            if self.fail_after is not None and index == self.fail_after:
                raise ConnectionError("model replica died")
            yield NPCChunk(text=text, speaker="cfo")
        yield NPCChunk(
            done=True,
            speaker="cfo",
            final_text="".join(self.chunks),
            output_tokens=len(self.chunks),
            model="test-model",
            citations=self.citations,
        )


def make(log, replies=None, send=None, locks=None):
    store = InMemoryConversationStore(log)
    sent: list[dict] = []

    async def record(frame: str) -> None:
        event = json.loads(frame)
        sent.append(event)
        log.append(f"sent {event['type']}")

    conversation = Conversation(
        session_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        knowledge_base="product",
        persona=PERSONA,
        scenario=SCENARIO,
        history=[],
        store=store,
        locks=locks or InMemoryLocks(),
        reply_source=replies or ScriptedReplies(),
        send=send or record,
    )
    return conversation, store, sent


async def test_turn_is_stored_before_ack_and_reply_before_done():
    log: list[str] = []
    conversation, _, sent = make(log)
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Hi"))
    assert log == [
        "stored trainee 1",
        "sent ack",
        "sent token",
        "sent token",
        "stored npc 2",
        "sent reply_done",
    ]
    assert sent[-1]["text"] == "Hello there."
    assert sent[-1]["reply_to"] == 1 and sent[-1]["seq"] == 2
    assert not conversation.locks.held
    assert sent[-1]["speaker"] == "cfo"
    assert [h.speaker for h in conversation.history] == ["trainee", "npc"]


async def test_retried_turn_returns_stored_reply_without_calling_the_model():
    log: list[str] = []
    replies = ScriptedReplies()
    conversation, store, sent = make(log, replies=replies)
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Hi"))
    sent.clear()
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Hi"))
    assert replies.calls == 1
    assert [e["type"] for e in sent] == ["ack", "reply_done"]
    assert sent[0]["duplicate"] is True and sent[0]["seq"] == 1
    assert sent[1]["text"] == "Hello there."
    assert len(store.turns) == 2


async def test_reply_done_says_where_a_generated_reply_spent_its_time():
    log: list[str] = []
    conversation, _, sent = make(log)
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Hi"))
    timing = sent[-1]["timing"]
    steps = ["stored_ms", "model_called_ms", "first_token_ms", "reply_stored_ms"]
    assert all(timing[step] >= 0 for step in steps)
    assert [timing[step] for step in steps] == sorted(timing[step] for step in steps)

    sent.clear()  # a retry replays the stored reply: no generation, so no timing
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Hi"))
    assert sent[-1]["type"] == "reply_done" and sent[-1]["timing"] is None


async def test_model_failure_reports_an_error_and_keeps_the_trainee_turn():
    log: list[str] = []
    conversation, store, sent = make(log, replies=ScriptedReplies(fail_after=1))
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Hi"))
    assert sent[-1]["type"] == "error"
    assert sent[-1]["code"] == "model_unavailable"
    assert sent[-1]["client_turn_id"] == "c1"
    assert [t.speaker for t in store.turns] == ["trainee"]
    # A retry of the same turn now generates the reply it never got.
    conversation.reply_source = ScriptedReplies()
    sent.clear()
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Hi"))
    assert [e["type"] for e in sent] == ["ack", "token", "token", "reply_done"]
    assert sent[0]["duplicate"] is True


async def test_reply_is_stored_even_when_the_client_goes_away():
    log: list[str] = []

    async def broken_send(frame: str) -> None:
        raise ConnectionResetError("client gone")

    conversation, store, _ = make(log, send=broken_send)
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Hi"))
    assert [t.text for t in store.turns] == ["Hi", "Hello there."]


async def test_the_lock_is_renewed_while_the_turn_waits_for_its_first_token():
    log: list[str] = []
    locks = InMemoryLocks()
    replies = ScriptedReplies(first_token_after_s=0.2)  # 20 renewal periods without a word
    conversation, _, sent = make(log, replies=replies, locks=locks)
    started = time.monotonic()
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Hi"))
    before_first_token = [t for t in locks.renewed_at if t < replies.first_token_at]
    assert len(before_first_token) >= 5, locks.renewed_at
    # No gap between renewals much longer than the period (a lock lives three of them).
    beats = [started, *before_first_token]
    assert max(b - a for a, b in zip(beats, beats[1:], strict=False)) < 3 * locks.renew_every_s
    renewals = locks.renewals
    await asyncio.sleep(0.05)
    assert locks.renewals == renewals and not locks.held  # renewal stops with the reply
    assert sent[-1]["type"] == "reply_done"


async def test_a_reply_stored_after_its_client_left_is_published_for_the_new_socket():
    log: list[str] = []
    published: list[dict] = []

    async def publish(frame: str) -> None:
        published.append(json.loads(frame))

    conversation, store, sent = make(log, replies=ScriptedReplies(first_token_after_s=0.05))
    conversation.publish = publish
    turn = asyncio.create_task(
        conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Hi"))
    )
    await asyncio.sleep(0.02)
    conversation.client_left()  # the socket closed after the ack
    await turn
    assert [e["type"] for e in sent] == ["ack"]
    assert [e["type"] for e in published] == ["reply_done"]
    assert published[0]["seq"] == store.turns[-1].seq and published[0]["timing"] is not None


async def test_a_reply_its_client_received_is_not_published():
    log: list[str] = []
    published: list[str] = []

    async def publish(frame: str) -> None:
        published.append(frame)

    conversation, _, sent = make(log)
    conversation.publish = publish
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Hi"))
    assert sent[-1]["type"] == "reply_done" and published == []


async def test_a_reply_in_progress_is_not_generated_twice():
    log: list[str] = []
    locks = InMemoryLocks()
    replies = ScriptedReplies()
    conversation, store, sent = make(log, replies=replies, locks=locks)
    first = await store.store_trainee_turn(client_turn_id="c1", text="Hi")
    locks.held.add(f"{conversation.session_id}:{first.seq}")  # another replica is generating
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Hi"))
    assert replies.calls == 0
    assert sent[-1]["code"] == "reply_in_progress"


async def test_replay_sends_stored_turns_after_the_sequence_number():
    log: list[str] = []
    conversation, _, sent = make(log)
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Hi"))
    await conversation.handle_turn(TraineeTurn(client_turn_id="c2", text="Again"))
    sent.clear()
    await conversation.replay(2)
    assert [(e["type"], e["seq"]) for e in sent] == [("turn", 3), ("turn", 4)]
    assert sent[0]["client_turn_id"] == "c2"
    assert sent[1]["reply_to"] == 3


@pytest.mark.parametrize("bad_history_budget", [0])
def test_prompt_keeps_system_and_new_turn_even_with_no_history_budget(bad_history_budget):
    from serve_apps.contracts.turn import HistoryTurn, TurnRequest
    from serve_apps.orchestrator.npc_prompt import npc_messages, recent_history

    history = [HistoryTurn(speaker="trainee", text="a" * 50), HistoryTurn(speaker="npc", text="b")]
    assert recent_history(history, budget_chars=bad_history_budget) == []
    request = TurnRequest(
        tenant_id="t",
        session_id="s",
        reply_to_seq=3,
        persona=PERSONA,
        scenario=SCENARIO,
        history=history,
        trainee_text="Now?",
    )
    messages = npc_messages(request)
    assert messages[0]["role"] == "system" and "Sam, CFO at Acme" in messages[0]["content"]
    # The card's example exchanges, then the new turn and the persona's line to continue.
    assert [m["role"] for m in messages[-2:]] == ["user", "assistant"]
    assert messages[-2]["content"] == "Salesperson: Now?"


async def test_citations_reach_the_store_the_reply_a_retry_and_a_replay():
    cited = RetrievedChunk(
        chunk_id="c-1", document_id="d-1", title="Pricing", score=0.9, text="Seats cost $40."
    )
    replies = ScriptedReplies(citations=[cited])
    log: list[str] = []
    conversation, store, sent = make(log, replies=replies)
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="What does it cost?"))
    assert replies.requests[0].knowledge_base == "product"
    assert replies.requests[0].tenant_id == str(conversation.tenant_id)
    done = sent[-1]
    assert done["type"] == "reply_done"
    assert [c["chunk_id"] for c in done["citations"]] == ["c-1"]
    assert store.replies[1].citations == [cited]

    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="What does it cost?"))
    assert sent[-1]["citations"] == done["citations"] and replies.calls == 1

    await conversation.replay(0)
    replayed = [e for e in sent if e["type"] == "turn"]
    assert [e["citations"] for e in replayed] == [[], done["citations"]]


async def test_the_persona_papers_are_read_while_the_turn_is_stored_and_reach_the_request():
    import asyncio

    cited = RetrievedChunk(chunk_id="c", document_id="d", title="RFP", score=1.0, text="$40")
    log: list[str] = []
    started = asyncio.Event()

    async def read(text: str) -> PersonaPapers:
        log.append(f"papers {text}")
        started.set()
        return PersonaPapers(own=[cited])

    class AwaitableResponse:
        """Like a Serve ``DeploymentResponse``: awaitable, but not a coroutine."""

        def __init__(self, text: str) -> None:
            self._coroutine = read(text)

        def __await__(self):
            return self._coroutine.__await__()

    def paper_reader(text: str) -> AwaitableResponse:
        return AwaitableResponse(text)

    replies = ScriptedReplies()
    conversation, store, _ = make(log, replies=replies)
    conversation.paper_reader = paper_reader
    original_store = store.store_trainee_turn

    async def store_after_reading_began(**kwargs):
        await asyncio.wait_for(started.wait(), 1)  # retrieval runs while the turn is stored
        return await original_store(**kwargs)

    store.store_trainee_turn = store_after_reading_began
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Price?"))
    assert log[:2] == ["papers Price?", "stored trainee 1"]
    assert replies.requests[0].persona_papers.own == [cited]
    # The seller's knowledge is the orchestrator's to ask for, after the first token.
    assert replies.requests[0].grounding is None


async def test_a_failed_retrieval_leaves_the_turn_without_papers_and_answered():
    async def broken(text: str):
        raise ConnectionError("knowledge service down")

    replies = ScriptedReplies()
    conversation, _, sent = make([], replies=replies)
    conversation.paper_reader = broken
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Price?"))
    assert sent[-1]["type"] == "reply_done"
    assert replies.requests[0].persona_papers == PersonaPapers()


async def test_each_stored_reply_reports_its_tokens_and_accounting_failures_do_not_matter():
    spent: list[int] = []
    sent_before_accounting: list[str] = []

    async def account(tokens: int) -> None:
        spent.append(tokens)
        sent_before_accounting.extend(e["type"] for e in sent)
        raise ConnectionError("redis went away")

    conversation, _, sent = make([])
    conversation.on_reply = account
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Hi"))
    assert spent == [2] and sent[-1]["type"] == "reply_done"
    # The trainee has the whole reply before the accounting runs.
    assert sent_before_accounting[-1] == "reply_done"


def _content(persona: PersonaCard, rules=()) -> TurnContent:
    return TurnContent(
        persona=persona, committee=[persona], scenario=SCENARIO, compliance_rules=list(rules)
    )


async def test_each_turn_reads_the_content_again_while_the_turn_is_stored():
    """An edit made while the conversation runs is in the next turn's request; the read
    runs beside storing the turn, not before it."""
    log: list[str] = []
    edited = PERSONA.model_copy(update={"facts": ["We renewed our CRM contract in March."]})
    rule = ComplianceRuleSpec(slug="no-guarantees", description="No guarantees", pattern="guarant")
    now = [_content(PERSONA)]
    started = asyncio.Event()

    async def content_source() -> TurnContent:
        log.append("content read")
        started.set()
        return now[0]

    replies = ScriptedReplies()
    conversation, store, _ = make(log, replies=replies)
    conversation.content_source = content_source
    original_store = store.store_trainee_turn

    async def store_after_the_read_began(**kwargs):
        await asyncio.wait_for(started.wait(), 1)
        return await original_store(**kwargs)

    store.store_trainee_turn = store_after_the_read_began
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Hi"))
    now[0] = _content(edited, [rule])
    started.clear()
    await conversation.handle_turn(TraineeTurn(client_turn_id="c2", text="And your CRM?"))

    assert log[:2] == ["content read", "stored trainee 1"]
    first, second = replies.requests
    assert first.persona == PERSONA and first.compliance_rules == []
    assert second.persona == edited and second.committee == [edited]
    assert second.compliance_rules == [rule]
    assert conversation.persona == edited  # and the turns after it


async def test_content_that_cannot_be_read_leaves_the_turn_with_the_content_it_had():
    async def broken() -> TurnContent:
        raise ConnectionError("database away")

    replies = ScriptedReplies()
    conversation, _, sent = make([], replies=replies)
    conversation.content_source = broken
    await conversation.handle_turn(TraineeTurn(client_turn_id="c1", text="Hi"))
    assert sent[-1]["type"] == "reply_done"
    assert replies.requests[0].persona == PERSONA
