"""Swapping the embedder under live searches, on the real stack.

The candidate is the bundled embedder reading 128 tokens of each text instead of 256
(models/configs/embedder_cpu_candidate.yaml): the same files, another version, whose vectors
of the longer chunks differ. While a search loop keeps asking, the swap rebuilds every
company's knowledge bases beside their live versions and switches each when built: every
search answers, each from one version with that version's embedder (never the new model's
query against the old model's vectors), and after the swap from the new version. A document
uploaded during the rebuild is in the new version. The old versions stay, and a restore puts
them back (and leaves the stack as the other tests expect it). Bad configs, a second change
at once, a candidate that does not load and other companies' admins change nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from serve_apps.knowledge.encoder_routing import FINAL_STATES

pytestmark = pytest.mark.integration

CONFIGS = Path(__file__).resolve().parents[2] / "models" / "configs"
KB = "tests-embedder-swap"
TOPICS = [
    "migration",
    "pricing",
    "security",
    "onboarding",
    "reporting",
    "integrations",
    "support",
    "renewals",
]


def _config(name: str) -> dict:
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


def _handbook(sections: int, marker: str = "") -> bytes:
    """A Markdown handbook of ``sections`` sections of about 150 words each (a chunk each,
    longer than the candidate's 128 tokens), each about one topic."""
    parts = [f"# Sales handbook {marker}".rstrip(), ""]
    for n in range(sections):
        topic = TOPICS[n % len(TOPICS)]
        sentences = " ".join(
            f"Section {n} explains how the {topic} team handles case {k} for a customer "
            f"account {marker}."
            for k in range(10)
        )
        parts += [f"## {topic.title()} notes {n}", "", sentences, ""]
    return "\n".join(parts).encode()


async def _get(client: httpx.AsyncClient, path: str, **params) -> httpx.Response:
    """A GET that waits out the API's 503 + Retry-After (a busy 2-core machine)."""
    for _ in range(10):
        response = await client.get(path, params=params or None)
        if response.status_code != 503:
            return response
        await asyncio.sleep(int(response.headers.get("Retry-After", "1")))
    return response


async def _encoders(client: httpx.AsyncClient) -> dict:
    response = await _get(client, "/v1/models/encoders")
    assert response.status_code == 200, response.text
    return response.json()


async def _until_change_ends(
    client: httpx.AsyncClient, kind: str, started_at: float, timeout_s: float = 900
) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        last = (await _encoders(client))[kind].get("last_change") or {}
        if last.get("started_at") == started_at and last["state"] in FINAL_STATES:
            return last
        await asyncio.sleep(1)
    raise AssertionError(f"the {kind} change did not end")


async def _knowledge_base(client: httpx.AsyncClient, name: str) -> dict:
    response = await _get(client, f"/v1/knowledge-bases/{name}")
    assert response.status_code == 200, response.text
    return response.json()


def _embedder_of_live(state: dict) -> str:
    return state["version_embedders"][str(state["live_version"])]


async def test_bad_configs_a_second_change_and_other_companies_change_nothing(
    base_url, demo_admin, rival_admin
):
    async with httpx.AsyncClient(base_url=base_url, headers=demo_admin, timeout=60) as client:
        before = await _encoders(client)
        configured = before["embedder"]["configured_version"]
        assert before["embedder"]["active"] == configured

        for config, field in [
            ({**_config("embedder_cpu_candidate"), "dim": 768}, "dim=768"),
            ({"kind": "embedder", "model": "e5-small-v2"}, "e5-small-v2"),
            ({"kind": "embedder", "model": "/models/e5", "dim": 384}, "pooling"),
            ({**_config("embedder_cpu_candidate"), "normalize": False}, "normalize"),
            (_config("reranker_cpu"), "body.config.kind"),
        ]:
            response = await client.post("/v1/models/embedder/swap", json={"config": config})
            assert response.status_code == 422, response.text
            assert field in response.json()["error"]["message"]
        response = await client.post("/v1/models/embedder/restore", json={"version": "x@1"})
        assert response.status_code == 422, response.text

        # No cross-encoder runs on this stack: the reranker can only be late interaction.
        gpu = _config("reranker_gpu") | {"accelerator": "cpu", "use_fp16": False}
        response = await client.post("/v1/models/reranker/swap", json={"config": gpu})
        assert response.status_code == 422 and "no Reranker deployment" in response.text
        response = await client.post(
            "/v1/models/reranker/swap", json={"config": _config("reranker_cpu")}
        )
        assert response.status_code == 202 and response.json()["state"] == "unchanged"

        # A model folder that is not there: the swap starts, fails its probe, changes nothing.
        missing = {"kind": "embedder", "model": "/nonexistent/e5", "dim": 384, "pooling": "mean"}
        started = await client.post("/v1/models/embedder/swap", json={"config": missing})
        assert started.status_code == 202, started.text
        last = await _until_change_ends(client, "embedder", started.json()["started_at"])
        assert last["state"] == "failed" and "nothing changed" in last["message"], last
        assert (await _encoders(client))["embedder"]["active"] == configured

    async with httpx.AsyncClient(base_url=base_url, headers=rival_admin, timeout=60) as client:
        for path, body in [
            ("/v1/models/embedder/swap", {"config": _config("embedder_cpu_candidate")}),
            ("/v1/models/embedder/restore", {"version": configured}),
            ("/v1/models/reranker/swap", {"config": _config("reranker_cpu")}),
        ]:
            response = await client.post(path, json=body)
            assert response.status_code == 403, (path, response.text)
        assert (await client.get("/v1/models/encoders")).status_code == 403


async def test_a_swap_under_live_searches_moves_every_company_and_restores(
    base_url, demo_admin, rival_admin
):
    demo = httpx.AsyncClient(base_url=base_url, headers=demo_admin, timeout=120)
    rival = httpx.AsyncClient(base_url=base_url, headers=rival_admin, timeout=120)
    async with demo, rival:
        configured = (await _encoders(demo))["embedder"]["configured_version"]
        try:
            await _swap_under_live_searches_and_restore(demo, rival)
        finally:
            await _put_back_the_configured_embedder(demo, configured)


async def _put_back_the_configured_embedder(demo: httpx.AsyncClient, configured: str) -> None:
    """Whatever the test saw, the tests after it meet the Serve config's embedder and the
    knowledge bases' versions it built."""
    last = (await _encoders(demo))["embedder"].get("last_change") or {}
    if last and last["state"] not in FINAL_STATES:
        last = await _until_change_ends(demo, "embedder", last["started_at"])
    if (await _encoders(demo))["embedder"]["active"] != configured:
        response = await demo.post("/v1/models/embedder/restore", json={"version": configured})
        assert response.status_code == 202, response.text
        await _until_change_ends(demo, "embedder", response.json()["started_at"])


async def _swap_under_live_searches_and_restore(
    demo: httpx.AsyncClient, rival: httpx.AsyncClient
) -> None:
    for client, sections in ((demo, 120), (rival, 8)):
        response = await client.post(
            f"/v1/knowledge-bases/{KB}/documents",
            files={"file": ("handbook.md", _handbook(sections))},
        )
        assert response.status_code in (200, 201), response.text
    old_embedder = (await _encoders(demo))["embedder"]["active"]
    before = await _knowledge_base(demo, KB)
    old_version = before["live_version"]
    assert _embedder_of_live(before) == old_embedder
    rival_before = await _knowledge_base(rival, KB)

    searches: list[tuple[str, int, int | None, str | None, str]] = []
    swap_over = asyncio.Event()

    async def search_until_the_swap_is_over() -> None:
        """Search all along, noting the change's state before each search and what
        answered it; three more searches after the swap."""
        after = 0
        while after < 3:
            state = ((await _encoders(demo))["embedder"].get("last_change") or {}).get("state", "")
            response = await _get(demo, f"/v1/knowledge-bases/{KB}/search", q="pricing case 7")
            body = response.json() if response.status_code == 200 else {}
            top = body["hits"][0]["chunk"]["heading"] if body.get("hits") else ""
            searches.append(
                (state, response.status_code, body.get("version"), body.get("embedder"), top)
            )
            if swap_over.is_set():
                after += 1
            await asyncio.sleep(0.3)

    searching = asyncio.create_task(search_until_the_swap_is_over())
    await asyncio.sleep(2)
    response = await demo.post(
        "/v1/models/embedder/swap", json={"config": _config("embedder_cpu_candidate")}
    )
    assert response.status_code == 202, response.text
    started = response.json()
    new_embedder = started["candidate"]
    assert started["previous"] == old_embedder != new_embedder
    # One embedder change at a time (this one rebuilds for minutes; a failing probe, as
    # in the test above, may end before a second request arrives).
    again = await demo.post(
        "/v1/models/embedder/swap", json={"config": _config("embedder_cpu_candidate")}
    )
    assert again.status_code == 409, again.text

    # A document uploaded while the knowledge bases are rebuilt is in the new version.
    marker = f"quokka{uuid.uuid4().hex[:6]}"
    for _ in range(600):  # the probe loads the candidate first
        if (await _encoders(demo))["embedder"]["last_change"]["state"] != "probing":
            break
        await asyncio.sleep(0.5)
    response = await demo.post(
        f"/v1/knowledge-bases/{KB}/documents",
        files={"file": ("late.md", _handbook(2, marker))},
    )
    assert response.status_code == 201, response.text
    # ... while a re-index waits for the change to end (asked of the seeded knowledge
    # base: one that succeeds after the swap would move the one searched here).
    state_before = (await _encoders(demo))["embedder"]["last_change"]["state"]
    reindex = await demo.post("/v1/knowledge-bases/product/reindex")
    state_after = (await _encoders(demo))["embedder"]["last_change"]["state"]
    if state_before == state_after == "rebuilding":
        assert reindex.status_code == 409, reindex.text

    last = await _until_change_ends(demo, "embedder", started["started_at"])
    assert last["state"] == "done" and last["failures"] == [], json.dumps(last, indent=1)
    swap_over.set()
    await searching

    assert [s for s in searches if s[1] != 200] == []  # every search answered
    assert any(s[0] == "rebuilding" for s in searches), "no search during the rebuild"
    # Each search came from one version, with that version's embedder: the old one's
    # until the switch, the new one's after, never a mix.
    after = await _knowledge_base(demo, KB)
    new_version = after["live_version"]
    assert {(s[2], s[3]) for s in searches} <= {
        (old_version, old_embedder),
        (new_version, new_embedder),
    }
    assert {(s[2], s[3]) for s in searches[-3:]} == {(new_version, new_embedder)}
    assert all(s[4].startswith("Pricing notes") for s in searches), searches
    assert new_version != old_version and old_version in after["versions"]
    assert _embedder_of_live(after) == new_embedder
    assert after["version_embedders"][str(old_version)] == old_embedder
    found = await _get(demo, f"/v1/knowledge-bases/{KB}/search", q=f"{marker} customer")
    assert marker in found.json()["hits"][0]["chunk"]["text"]
    assert found.json()["version"] == new_version
    # Every company's knowledge bases moved.
    rival_after = await _knowledge_base(rival, KB)
    assert _embedder_of_live(rival_after) == new_embedder
    assert rival_after["live_version"] != rival_before["live_version"]
    encoders = (await _encoders(demo))["embedder"]
    assert encoders["active"] == new_embedder and encoders["configured"] is False

    # A new knowledge base now starts with the new embedder.
    fresh = f"{KB}-new"
    response = await demo.post(
        f"/v1/knowledge-bases/{fresh}/documents",
        files={"file": ("fresh.md", _handbook(1))},
    )
    assert response.status_code == 201, response.text
    assert _embedder_of_live(await _knowledge_base(demo, fresh)) == new_embedder

    # The old versions restore, by their own embedder; the fresh knowledge base, which
    # has none by it, is rebuilt by it.
    response = await demo.post("/v1/models/embedder/restore", json={"version": old_embedder})
    assert response.status_code == 202, response.text
    last = await _until_change_ends(demo, "embedder", response.json()["started_at"])
    assert last["state"] == "done" and last["failures"] == [], json.dumps(last, indent=1)
    restored = await _knowledge_base(demo, KB)
    assert restored["live_version"] == old_version
    found = await _get(demo, f"/v1/knowledge-bases/{KB}/search", q="pricing case 7")
    assert (found.json()["version"], found.json()["embedder"]) == (old_version, old_embedder)
    assert (await _knowledge_base(rival, KB))["live_version"] == rival_before["live_version"]
    fresh_state = await _knowledge_base(demo, fresh)
    assert fresh_state["live_version"] == 2 and _embedder_of_live(fresh_state) == old_embedder
    encoders = (await _encoders(demo))["embedder"]
    assert encoders["active"] == old_embedder and encoders["configured"] is True
