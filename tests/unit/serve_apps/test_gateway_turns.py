"""How the gateway takes a turn when a store does not answer in time (unit: the conversation
socket's turn taking with a fake rate limiter and a fake conversation; the real stores are in the
integration tests)."""

from __future__ import annotations

import uuid

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeout
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from serve_apps.contracts.wire import ErrorEvent, TraineeTurn
from serve_apps.gateway.rate_limits import RateLimited
from serve_apps.gateway.routes.conversation import UNAVAILABLE_RETRY_AFTER_S, take_turn


class FakeLimits:
    """A rate limiter whose store fails (or answers) as the test says."""

    def __init__(self, failure: Exception | None) -> None:
        self.failure = failure

    async def check_caller(self, tenant_id, user_id) -> None:
        if self.failure is not None:
            raise self.failure

    async def check_token_budget(self, tenant_id) -> None:
        return None


class FakeConversation:
    def __init__(self, failure: Exception | None = None) -> None:
        self.session_id = uuid.uuid4()
        self.tenant_id = uuid.uuid4()
        self.user_id = uuid.uuid4()
        self.mode = "practice"
        self.reported: list[ErrorEvent] = []
        self.handled: list[TraineeTurn] = []
        self.failure = failure

    async def report(self, event: ErrorEvent) -> None:
        self.reported.append(event)

    async def handle_turn(self, frame: TraineeTurn) -> None:
        if self.failure is not None:
            raise self.failure
        self.handled.append(frame)


@pytest.mark.parametrize(
    "failure",
    [
        RedisTimeout("Timeout reading from socket"),
        RedisConnectionError("Connection refused"),
        OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        PoolTimeout("QueuePool limit of size 8 overflow 4 reached"),
        TimeoutError(),
    ],
    ids=["redis-timeout", "redis-down", "postgres", "pool-full", "timeout"],
)
async def test_a_store_that_does_not_answer_is_a_typed_error_the_client_can_retry(failure):
    conversation = FakeConversation()
    turn = TraineeTurn(client_turn_id="c-1", text="What matters most to you?")
    await take_turn(FakeLimits(failure), conversation, turn)
    (event,) = conversation.reported
    assert event.code == "unavailable" and event.client_turn_id == "c-1"
    assert event.retry_after_s == UNAVAILABLE_RETRY_AFTER_S
    assert conversation.handled == []


async def test_a_store_failing_while_the_turn_is_answered_is_the_same_typed_error():
    conversation = FakeConversation(failure=RedisTimeout("lock"))
    turn = TraineeTurn(client_turn_id="c-2", text="And your timeline?")
    await take_turn(FakeLimits(None), conversation, turn)
    assert [(e.code, e.client_turn_id) for e in conversation.reported] == [("unavailable", "c-2")]


@pytest.mark.parametrize(
    "failure",
    [ValueError("a bug"), ResponseError("WRONGTYPE"), IntegrityError("INSERT", {}, Exception())],
    ids=["bug", "redis-command", "constraint"],
)
async def test_faults_are_not_taken_for_a_busy_store(failure):
    """A retry would fail the same way: these are not ``unavailable`` (the socket's own
    handler closes it with 1011 and logs the fault)."""
    conversation = FakeConversation(failure=failure)
    turn = TraineeTurn(client_turn_id="c-3", text="Hello")
    with pytest.raises(type(failure)):
        await take_turn(FakeLimits(None), conversation, turn)
    assert conversation.reported == []


async def test_a_rate_limited_turn_stays_rate_limited():
    conversation = FakeConversation()
    turn = TraineeTurn(client_turn_id="c-4", text="Hello")
    await take_turn(FakeLimits(RateLimited("turns", 7)), conversation, turn)
    (event,) = conversation.reported
    assert (event.code, event.retry_after_s) == ("rate_limited", 7)
