"""A canary of the persona's model version on the real stack: half of the new sessions,
drawn by a seed, go to a candidate, and each session keeps its version for all its turns;
the comparison reads both versions' numbers from the stored rows; a promotion and a
rollback move the new sessions (and the running ones at their next turn).

The candidate is the bundled model without the persona's adapter and with other serving
settings (models/configs/npc_cpu_candidate.yaml, or the configured npc_cpu_persona when a swap
test left the candidate answering): one engine starts here. The test's later canary is of
the version the judge runs too, so its application is up already and only answers the probe.
The persona's version is put back as it was at the end, for the tests after this one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from models.llm import LLMDeploymentSettings
from serve_apps.model_lifecycle.routing import ROUTING_CACHE_S, canary_draw
from tests.integration.wsclient import connect, new_session, send_turn

pytestmark = pytest.mark.integration

CONFIGS = Path(__file__).resolve().parents[2] / "models" / "configs"
SEED = 2026
SHARE = 50
LINES = ["Hi Priya, thanks for the time today.", "What does your team use for records now?"]


def _config(name: str) -> dict:
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


def _configs_around(active_version: str) -> tuple[str, str]:
    """(the candidate's config, the config of the version answering now)."""
    candidate = LLMDeploymentSettings.model_validate(_config("npc_cpu_candidate"))
    if candidate.version == active_version:
        return "npc_cpu_persona", "npc_cpu_candidate"
    return "npc_cpu_candidate", "npc_cpu_persona"


async def _api(base_url: str, headers: dict, method: str, path: str, **kwargs) -> httpx.Response:
    """A request, sent again after a 503's Retry-After (a starting engine can starve this
    2-core machine's Redis for seconds)."""
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        for _ in range(10):
            response = await client.request(method, path, **kwargs)
            if response.status_code != 503:
                return response
            await asyncio.sleep(int(response.headers.get("Retry-After", "2")))
    return response


async def _npc(base_url: str, admin: dict) -> dict:
    response = await _api(base_url, admin, "GET", "/v1/models")
    assert response.status_code == 200, response.text
    return response.json()["roles"]["npc"]


async def _until(base_url: str, admin: dict, started_at: float, final: tuple[str, ...]) -> dict:
    """The role's change once it reaches one of ``final`` (or failed)."""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        last = (await _npc(base_url, admin)).get("last_swap") or {}
        if last.get("started_at") == started_at and last["state"] in (*final, "failed"):
            return last
        await asyncio.sleep(2)
    raise AssertionError("the change did not end")


async def _start_canary(base_url: str, admin: dict, config_name: str) -> dict:
    response = await _api(
        base_url,
        admin,
        "POST",
        "/v1/models/npc/canary",
        json={"config": _config(config_name), "share": SHARE, "seed": SEED},
    )
    assert response.status_code == 202, response.text
    started = response.json()
    last = await _until(base_url, admin, started["started_at"], ("canary",))
    assert last["state"] == "canary", last
    return started


async def _end_canary(base_url: str, admin: dict, action: str) -> dict:
    response = await _api(base_url, admin, "POST", f"/v1/models/npc/{action}")
    assert response.status_code == 202, response.text
    done = response.json()
    last = await _until(base_url, admin, done["started_at"], ("done",))
    assert last["state"] == "done", last
    return done


def _owner_rows(owner_db_url: str, query: str, *params) -> list[tuple]:
    """Rows of the demo company, read as its own under row-level security."""
    with psycopg.connect(owner_db_url.replace("+psycopg", "")) as conn:
        (tenant,) = conn.execute("SELECT id FROM tenants WHERE slug = 'demo'").fetchone()
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
        return conn.execute(query, params).fetchall()


def _given(owner_db_url: str, session_id: str) -> str | None:
    rows = _owner_rows(
        owner_db_url, "SELECT npc_model FROM training_sessions WHERE id = %s", session_id
    )
    return rows[0][0]


def _reply_versions(owner_db_url: str, session_id: str) -> list[str]:
    rows = _owner_rows(
        owner_db_url,
        "SELECT model FROM turns WHERE session_id = %s AND speaker = 'npc' ORDER BY seq",
        session_id,
    )
    return [model for (model,) in rows]


async def _talk(base_url: str, session_id: str, turns: int) -> None:
    """Turns answered without an error. A turn told `unavailable` (this 2-core machine's
    Redis starved for a moment) is sent again with its client_turn_id after its
    retry_after_s, as the product's clients do."""
    async with connect(base_url, session_id) as ws:
        for index in range(turns):
            turn_id = uuid.uuid4().hex
            for _ in range(5):
                events = await send_turn(ws, LINES[index % len(LINES)], turn_id)
                busy = [e for e in events if e["type"] == "error" and e["code"] == "unavailable"]
                if not busy:
                    break
                await asyncio.sleep(busy[0]["retry_after_s"])
            assert [e for e in events if e["type"] == "error"] == [], events


async def _sessions_given(
    base_url: str, owner_db_url: str, wanted: dict[str, int], limit: int = 40
) -> dict[str, list[str]]:
    """New sessions until each version in ``wanted`` has that many; each one's version."""
    given: dict[str, list[str]] = {version: [] for version in wanted}
    for _ in range(limit):
        if all(len(given[v]) >= n for v, n in wanted.items()):
            return given
        session_id = await new_session(base_url)
        given.setdefault(_given(owner_db_url, session_id) or "", []).append(session_id)
    raise AssertionError(f"{limit} new sessions did not split as {wanted}: {given}")


@pytest.fixture
async def npc_version_put_back(base_url, demo_admin):
    """After the test, whatever happened: no canary, and the version that answered before."""
    before = (await _npc(base_url, demo_admin))["active"]["version"]
    yield before
    now = await _npc(base_url, demo_admin)
    if now["canary"] is not None:
        await _api(base_url, demo_admin, "POST", "/v1/models/npc/rollback")
    for _ in range(60):
        now = await _npc(base_url, demo_admin)
        if (now.get("last_swap") or {}).get("state") not in ("deploying", "probing", "switched"):
            break
        await asyncio.sleep(2)
    if now["active"]["version"] != before:
        # Of the two configs, the one not answering now is the one that answered before.
        other_config, _ = _configs_around(now["active"]["version"])
        response = await _api(
            base_url,
            demo_admin,
            "POST",
            "/v1/models/npc/swap",
            json={"config": _config(other_config)},
        )
        if response.status_code == 202:
            await _until(base_url, demo_admin, response.json()["started_at"], ("done",))


async def test_bad_canary_requests_change_nothing(base_url, demo_admin, rival_admin):
    before = await _npc(base_url, demo_admin)
    candidate = _config("npc_cpu_candidate")
    for share in (0, 100, -5):
        response = await _api(
            base_url,
            demo_admin,
            "POST",
            "/v1/models/npc/canary",
            json={"config": candidate, "share": share},
        )
        assert response.status_code == 422, response.text
        assert "share" in response.json()["error"]["message"]
    response = await _api(
        base_url,
        demo_admin,
        "POST",
        "/v1/models/judge/canary",
        json={"config": candidate, "share": 20},
    )
    assert response.status_code == 422 and "swap it instead" in response.text
    response = await _api(
        base_url,
        demo_admin,
        "POST",
        "/v1/models/npc/canary",
        json={"config": {**candidate, "kv_cache_gib": 0}, "share": 20},
    )
    assert response.status_code == 422 and "kv_cache_gib" in response.text
    for action in ("promote", "rollback"):
        response = await _api(base_url, demo_admin, "POST", f"/v1/models/npc/{action}")
        assert response.status_code == 409 and "no canary" in response.text
    trainee = {"X-Dev-Tenant": "demo", "X-Dev-User": "trainee@demo.salesboost.local"}
    for headers in (trainee, rival_admin):
        response = await _api(
            base_url,
            headers,
            "POST",
            "/v1/models/npc/canary",
            json={"config": candidate, "share": 20},
        )
        assert response.status_code == 403
        assert (await _api(base_url, headers, "GET", "/v1/models/npc/compare")).status_code == 403
    response = await _api(base_url, demo_admin, "GET", "/v1/models/judge/compare")
    assert response.status_code == 422
    after = await _npc(base_url, demo_admin)
    assert after["active"] == before["active"] and after["canary"] is None


async def test_a_canary_splits_new_sessions_and_promote_and_rollback_move_them(
    base_url, demo_admin, owner_db_url, npc_version_put_back
):
    before = npc_version_put_back
    candidate_config, answering_config = _configs_around(before)

    # The candidate comes up beside the active version; meanwhile, and once it runs, another
    # canary or a swap of the persona is refused.
    response = await _api(
        base_url,
        demo_admin,
        "POST",
        "/v1/models/npc/canary",
        json={"config": _config(candidate_config), "share": SHARE, "seed": SEED},
    )
    assert response.status_code == 202, response.text
    started = response.json()
    candidate = started["candidate"]
    assert started["previous"] == before != candidate and started["seed"] == SEED
    swap = {"config": _config(candidate_config)}
    assert (
        await _api(base_url, demo_admin, "POST", "/v1/models/npc/swap", json=swap)
    ).status_code == 409
    last = await _until(base_url, demo_admin, started["started_at"], ("canary",))
    assert last["state"] == "canary", last
    again = {"config": _config(candidate_config), "share": 20}
    response = await _api(base_url, demo_admin, "POST", "/v1/models/npc/canary", json=again)
    assert response.status_code == 409 and "a canary of npc runs" in response.text
    assert (
        await _api(base_url, demo_admin, "POST", "/v1/models/npc/swap", json=swap)
    ).status_code == 409

    # New sessions are given a version by their draw, and every turn of each is answered by it
    # (once every gateway replica's routing cache has read the canary).
    await asyncio.sleep(ROUTING_CACHE_S * 2)
    given = await _sessions_given(base_url, owner_db_url, {before: 2, candidate: 2})
    for version, session_ids in given.items():
        for session_id in session_ids:
            drawn = candidate if canary_draw(session_id, SEED) < SHARE else before
            assert version == drawn, session_id
    talking = [given[before][0], given[before][1], given[candidate][0], given[candidate][1]]
    await asyncio.gather(*(_talk(base_url, s, 2) for s in talking))
    for session_id in talking:
        assert _reply_versions(owner_db_url, session_id) == [_given(owner_db_url, session_id)] * 2
    npc = await _npc(base_url, demo_admin)
    assert npc["canary"]["candidate"]["version"] == candidate and npc["canary"]["share"] == SHARE
    assert npc["canary"]["sessions"] == {v: len(ids) for v, ids in given.items() if ids}

    # The comparison's numbers are the stored rows'.
    response = await _api(base_url, demo_admin, "GET", "/v1/models/npc/compare")
    assert response.status_code == 200, response.text
    compared = {v["version"]: v for v in response.json()["versions"]}
    assert compared[before]["serving"] == "active"
    assert compared[candidate]["serving"] == "candidate"
    for version in (before, candidate):
        ((turns,),) = _owner_rows(
            owner_db_url,
            "SELECT count(*) FROM turns WHERE speaker = 'npc' AND model = %s",
            version,
        )
        ((assigned,),) = _owner_rows(
            owner_db_url,
            "SELECT count(*) FROM training_sessions WHERE npc_model = %s",
            version,
        )
        assert compared[version]["turns"] == turns >= 4
        assert compared[version]["sessions_assigned"] == assigned >= 2
        assert compared[version]["ttft_turns"] >= 4
        assert compared[version]["ttft_p50_ms"] > 0

    # Promoted: every new session gets the candidate, and a session given the old version is
    # answered by the candidate from its next turn.
    promoted = await _end_canary(base_url, demo_admin, "promote")
    assert (promoted["candidate"], promoted["previous"]) == (candidate, before)
    assert {_given(owner_db_url, await new_session(base_url)) for _ in range(3)} == {candidate}
    moved = given[before][0]
    await _talk(base_url, moved, 1)
    assert _reply_versions(owner_db_url, moved) == [before, before, candidate]
    npc = await _npc(base_url, demo_admin)
    assert npc["active"]["version"] == candidate and npc["canary"] is None

    # A canary of the old version (the judge's application: it runs already), rolled back:
    # the sessions it was given go back to the active version at their next turn.
    second = await _start_canary(base_url, demo_admin, answering_config)
    assert (second["candidate"], second["previous"]) == (before, candidate)
    drawn = (await _sessions_given(base_url, owner_db_url, {before: 1}))[before][0]
    await _talk(base_url, drawn, 1)
    await _end_canary(base_url, demo_admin, "rollback")
    assert {_given(owner_db_url, await new_session(base_url)) for _ in range(3)} == {candidate}
    await _talk(base_url, drawn, 1)
    assert _reply_versions(owner_db_url, drawn) == [before, candidate]
    npc = await _npc(base_url, demo_admin)
    assert npc["active"]["version"] == candidate and npc["canary"] is None
    assert npc["last_swap"]["kind"] == "rollback"
