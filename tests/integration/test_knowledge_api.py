"""The knowledge-base API on the real stack: uploads, refusals, search testing, versions,
tenant isolation, and the persona's replies grounded on the tenant's documents."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.documents import make_pdf, make_zip_bomb_docx
from tests.integration.wsclient import connect, drain, new_session, recv, send_turn

TRAINEE = {"X-Dev-Tenant": "demo", "X-Dev-User": "trainee@demo.salesboost.local"}


def client(base_url: str, headers: dict) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers=headers, timeout=120)


def upload(http: httpx.Client, kb: str, name: str, data: bytes) -> httpx.Response:
    return http.post(f"/v1/knowledge-bases/{kb}/documents", files={"file": (name, data)})


def search(http: httpx.Client, kb: str, q: str, top_k: int = 5) -> list[dict]:
    response = http.get(f"/v1/knowledge-bases/{kb}/search", params={"q": q, "top_k": top_k})
    assert response.status_code == 200, response.text
    return response.json()["hits"]


def markdown(title: str, body: str) -> bytes:
    return f"# {title}\n\n## Details\n{body}\n".encode()


def test_seeded_knowledge_base_is_live_and_search_shows_every_stage(base_url, demo_admin):
    with client(base_url, demo_admin) as http:
        state = http.get("/v1/knowledge-bases/product").json()
        assert state["live_version"] == 1
        assert {d["filename"] for d in state["documents"]} == {
            "cloudcrm-product-sheet.md",
            "cloudcrm-pricing-faq.md",
        }
        hits = search(http, "product", "How much does the migration package cost?")
    assert hits[0]["chunk"]["title"] == "CloudCRM pricing and contract FAQ"
    assert "48,000 USD" in hits[0]["chunk"]["text"]
    assert [h["stages"]["reranked"]["rank"] for h in hits] == list(range(1, len(hits) + 1))
    top = hits[0]["stages"]
    assert {"dense", "sparse", "fused", "reranked"} <= top.keys()
    assert all(stage["rank"] >= 1 for stage in top.values())


def test_upload_indexes_once_and_the_same_file_again_is_recognised(base_url, demo_admin):
    marker = f"zephyrine{uuid.uuid4().hex[:8]}"
    data = markdown("Field notes", f"The {marker} connector syncs invoices nightly.")
    with client(base_url, demo_admin) as http:
        first = upload(http, "tests-upload", "notes.md", data)
        assert first.status_code == 201, first.text
        assert first.json()["title"] == "Field notes" and first.json()["chunks"] >= 1
        again = upload(http, "tests-upload", "renamed.md", data)
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        hits = search(http, "tests-upload", f"{marker} connector")
        assert marker in hits[0]["chunk"]["text"]
        listed = http.get("/v1/knowledge-bases/tests-upload").json()["documents"]
        assert [d["filename"] for d in listed] == ["notes.md"]


GOOD_PDF = make_pdf("Quarterly pricing for the enterprise tier")


@pytest.mark.parametrize(
    ("name", "data", "status", "reason"),
    [
        ("empty.txt", b"", 422, "empty"),
        ("tool.exe", b"MZ\x90\x00", 415, "unsupported file type"),
        ("locked.pdf", make_pdf("secret prices", encrypt=True), 422, "encrypted"),
        ("cut.pdf", GOOD_PDF[: len(GOOD_PDF) // 2], 422, "damaged or truncated"),
        ("bomb.docx", make_zip_bomb_docx(), 422, "zip bomb"),
        ("fake.pdf", b"just text pretending", 422, "not a PDF"),
        ("binary.txt", b"\x00\x01\x02" * 100, 422, "binary"),
        ("huge.txt", b"word " * (2 * 1024 * 1024 // 5 + 10), 413, "limited to"),
    ],
)
def test_bad_uploads_are_refused_fast_and_nothing_indexed_is_damaged(
    base_url, demo_admin, name, data, status, reason
):
    with client(base_url, demo_admin) as http:
        before = http.get("/v1/knowledge-bases/product").json()
        started = time.monotonic()
        response = upload(http, "product", name, data)
        elapsed = time.monotonic() - started
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert reason in error["message"] and error["request_id"]
        assert elapsed < 10
        after = http.get("/v1/knowledge-bases/product").json()
        assert after == before
        hits = search(http, "product", "migration package price")
        assert hits[0]["chunk"]["title"] == "CloudCRM pricing and contract FAQ"


def test_bad_requests_get_422_in_the_one_error_body(base_url, demo_admin):
    with client(base_url, demo_admin) as http:
        bad = [
            http.get("/v1/knowledge-bases/Not_A_Slug!/search", params={"q": "x"}),
            http.get("/v1/knowledge-bases/product/search", params={"q": "x", "top_k": 0}),
            http.get("/v1/knowledge-bases/product/search", params={"q": "   "}),
            http.get("/v1/knowledge-bases/product/search"),
            http.put(
                "/v1/knowledge-bases/product",
                json={"chunking": {"chunk_words": 50, "overlap_words": 50}},
            ),
            http.put("/v1/knowledge-bases/product", json={"chunking": {"size": 10}}),
            http.post("/v1/knowledge-bases/product/documents"),
        ]
    for response in bad:
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"]


def test_trainees_cannot_manage_or_test_knowledge(base_url):
    with client(base_url, TRAINEE) as http:
        assert upload(http, "product", "a.md", b"# A\ntext").status_code == 403
        response = http.get("/v1/knowledge-bases/product/search", params={"q": "price"})
        assert response.status_code == 403
        assert http.post("/v1/knowledge-bases/product/reindex").status_code == 403


def test_another_tenant_neither_sees_nor_retrieves_our_knowledge(base_url, demo_admin, rival_admin):
    secret = f"quorvex{uuid.uuid4().hex[:8]}"
    with client(base_url, rival_admin) as rival:
        assert rival.get("/v1/knowledge-bases/product").status_code == 404
        # None of ours (the rival may have its own, made by other tests).
        assert "product" not in {kb["slug"] for kb in rival.get("/v1/knowledge-bases").json()}
        response = upload(rival, "product", "rival.md", markdown("Rival plan", f"{secret} rebate."))
        assert response.status_code == 201, response.text
        rival_hits = search(rival, "product", "How much does the migration package cost?")
        assert {h["chunk"]["title"] for h in rival_hits} == {"Rival plan"}
    with client(base_url, demo_admin) as demo:
        hits = search(demo, "product", f"{secret} rebate")
        assert all(secret not in h["chunk"]["text"] for h in hits)
        assert {
            d["filename"] for d in demo.get("/v1/knowledge-bases/product").json()["documents"]
        } == {
            "cloudcrm-product-sheet.md",
            "cloudcrm-pricing-faq.md",
        }


def test_reindex_builds_a_new_version_and_the_previous_can_be_restored(base_url, demo_admin):
    body = " ".join(f"Sentence {i} about onboarding paths and adoption." for i in range(60))
    with client(base_url, demo_admin) as http:
        assert (
            upload(http, "tests-versions", "guide.md", markdown("Guide", body)).status_code == 201
        )
        v1 = http.get("/v1/knowledge-bases/tests-versions").json()
        assert v1["live_version"] == 1
        smaller = {"chunking": {"chunk_words": 40, "overlap_words": 8, "split_on_headings": True}}
        assert http.put("/v1/knowledge-bases/tests-versions", json=smaller).status_code == 200
        v2 = http.post("/v1/knowledge-bases/tests-versions/reindex")
        assert v2.status_code == 200, v2.text
        v2 = v2.json()
        assert v2["live_version"] == 2 and v2["versions"] == [1, 2]
        assert v2["documents"][0]["chunks"] > v1["documents"][0]["chunks"]
        assert (
            len(search(http, "tests-versions", "onboarding adoption", top_k=50))
            == v2["documents"][0]["chunks"]
        )
        restored = http.post("/v1/knowledge-bases/tests-versions/versions/1/activate")
        assert restored.status_code == 200 and restored.json()["live_version"] == 1
        assert (
            len(search(http, "tests-versions", "onboarding adoption", top_k=50))
            == v1["documents"][0]["chunks"]
        )
        missing = http.post("/v1/knowledge-bases/tests-versions/versions/9/activate")
        assert missing.status_code == 404


def test_deleting_a_document_removes_its_chunks(base_url, demo_admin):
    marker = f"vellichor{uuid.uuid4().hex[:8]}"
    with client(base_url, demo_admin) as http:
        created = upload(http, "tests-delete", "d.md", markdown("Doomed", f"{marker} clause."))
        assert created.status_code == 201
        assert marker in search(http, "tests-delete", marker)[0]["chunk"]["text"]
        gone = http.delete(f"/v1/knowledge-bases/tests-delete/documents/{created.json()['id']}")
        assert gone.status_code == 204
        assert search(http, "tests-delete", marker) == []
        again = http.delete(f"/v1/knowledge-bases/tests-delete/documents/{created.json()['id']}")
        assert again.status_code == 404


# What the buying committee's personas read (db/seed/demo_tenant.yaml).
CUSTOMER_PAPERS = {
    "Northwind Logistics: CRM replacement, internal requirements",
    "CloudCRM Enterprise: pricing (public website)",
}


async def test_the_seller_knowledge_grounds_the_coach_and_the_persona_reads_its_own(base_url):
    # The persona is the customer: the seller's documents never reach it (on the bundled
    # model it spoke as the vendor when they did); the coach cites them instead. The buying
    # committee reads its own company's papers and the vendor's website, and cites those.
    session_id = await new_session(base_url, scenario="buying-committee", mode="practice")
    async with connect(base_url, session_id) as ws:
        events = await send_turn(ws, "The fixed-price migration package is 48,000 USD.")
        events += await drain(ws, quiet_s=5)
    done = next(e for e in events if e["type"] == "reply_done")
    assert done["citations"] and {c["title"] for c in done["citations"]} <= CUSTOMER_PAPERS
    hints = [e for e in events if e["type"] == "hint" and e["kind"] == "knowledge"]
    assert len(hints) == 1 and "48,000 USD" in hints[0]["text"], events
    titles = {c["title"] for c in hints[0]["citations"]}
    assert titles <= {"CloudCRM pricing and contract FAQ", "CloudCRM Enterprise — product sheet"}
    assert all(c["text"] and c["chunk_id"] for c in hints[0]["citations"])

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        stored = (await http.get(f"/v1/sessions/{session_id}")).json()["turns"]
    npc = next(t for t in stored if t["speaker"] != "trainee")
    assert npc["citations"] == done["citations"]

    async with connect(base_url, session_id, "?last_seq=0") as ws:
        replayed = [await recv(ws), await recv(ws)]
    assert replayed[1]["citations"] == done["citations"]
