"""The hybrid store on real Qdrant (local mode) and the real bundled embedder."""

import pytest

from retrieval.chunking import ChunkingConfig
from retrieval.embedder import Embedder
from retrieval.indexing import DocumentInput, IndexingPipeline
from retrieval.parsing import ParsedDocument, Section
from retrieval.search import HybridSearcher, SearchConfig
from retrieval.sparse import BM25Encoder
from retrieval.store import KnowledgeStore

pytestmark = pytest.mark.integration

MODES = ("dense", "sparse", "hybrid", "hybrid_rerank")


@pytest.fixture(scope="module")
def embedder():
    model = Embedder()
    model.warm_up()
    return model


@pytest.fixture
def knowledge(tmp_path, embedder):
    store = KnowledgeStore(path=str(tmp_path / "qdrant"))
    sparse = BM25Encoder()
    pipeline = IndexingPipeline(
        store=store, embedder=embedder, sparse=sparse, chunking=ChunkingConfig()
    )
    searcher = HybridSearcher(
        store=store, embedder=embedder, sparse=sparse, config=SearchConfig(top_k=5)
    )
    return store, pipeline, searcher


def docs(*items):
    return [
        DocumentInput(
            document_id=doc_id,
            parsed=ParsedDocument(title=title, kind="md", sections=[Section(text=text)]),
        )
        for doc_id, title, text in items
    ]


ACME = docs(
    (
        "acme-price",
        "Acme price list",
        "CloudCRM Enterprise costs 49 USD per seat per month. Volume discounts start at 500 seats.",
    ),
    (
        "acme-security",
        "Acme security sheet",
        "CloudCRM holds SOC 2 Type II and ISO 27001. Single sign-on works with SAML and OIDC.",
    ),
)
RIVAL = docs(
    (
        "rival-price",
        "Rival price list",
        "Rival CRM costs 12 USD per seat per month with no discounts at all.",
    ),
)


def test_every_mode_finds_the_right_chunk_and_only_the_tenants_own(knowledge):
    store, pipeline, searcher = knowledge
    store.create_collection("kb_v1", dim=384)
    assert pipeline.index("kb_v1", tenant_id="acme", documents=ACME) == 2
    assert pipeline.index("kb_v1", tenant_id="rival", documents=RIVAL) == 1
    for mode in MODES:
        hits = searcher.run(
            collection="kb_v1",
            tenant_id="acme",
            query="how much does a seat cost per month?",
            mode=mode,
        )
        assert hits, mode
        assert {h.payload["tenant_id"] for h in hits} == {"acme"}, mode
        assert hits[0].payload["document_id"] == "acme-price", (mode, hits)
        rival = searcher.run(
            collection="kb_v1", tenant_id="rival", query="SOC 2 single sign-on", mode=mode
        )
        assert {h.payload["document_id"] for h in rival} <= {"rival-price"}, mode


def test_explain_reports_each_stage(knowledge):
    store, pipeline, searcher = knowledge
    store.create_collection("kb_v1", dim=384)
    pipeline.index("kb_v1", tenant_id="acme", documents=ACME)
    explained = searcher.explain(collection="kb_v1", tenant_id="acme", query="SAML single sign-on")
    top = explained[0]
    assert top.chunk.payload["document_id"] == "acme-security"
    assert top.dense is not None and top.sparse is not None and top.fused is not None
    assert top.reranked is not None and top.ranks["reranked"] == 1


def test_queries_without_a_tenant_are_refused(knowledge):
    store, _, searcher = knowledge
    store.create_collection("kb_v1", dim=384)
    with pytest.raises(ValueError, match="tenant"):
        searcher.run(collection="kb_v1", tenant_id="", query="price")


def test_alias_switches_versions_atomically_and_back(knowledge):
    store, pipeline, searcher = knowledge
    for version, documents in (("kb_v1", ACME[:1]), ("kb_v2", ACME)):
        store.create_collection(version, dim=384)
        pipeline.index(version, tenant_id="acme", documents=documents)
    store.point_alias("kb", "kb_v1")
    assert store.alias_target("kb") == "kb_v1"
    first = searcher.run(collection="kb", tenant_id="acme", query="SOC 2", mode="hybrid")
    assert {h.payload["document_id"] for h in first} == {"acme-price"}
    store.point_alias("kb", "kb_v2")
    second = searcher.run(collection="kb", tenant_id="acme", query="SOC 2", mode="hybrid")
    assert second[0].payload["document_id"] == "acme-security"
    store.point_alias("kb", "kb_v1")  # restore the previous version
    assert store.alias_target("kb") == "kb_v1"


def test_knowledge_base_ingests_refuses_and_versions(tmp_path, embedder):
    from retrieval.knowledge_base import KnowledgeBase
    from retrieval.parsing import DocumentRejected
    from tests.documents import make_docx

    store = KnowledgeStore(path=str(tmp_path / "qdrant"))
    knowledge = KnowledgeBase(slug="sales", store=store, embedder=embedder)
    try:
        sheet = b"# Pricing\nCloudCRM costs 49 USD per seat per month.\n# Security\nSOC 2 Type II."
        first = knowledge.ingest(tenant_id="acme", filename="sheet.md", data=sheet)
        assert first.title == "Pricing" and first.chunks == 2  # the first top-level heading
        again = knowledge.ingest(tenant_id="acme", filename="sheet.md", data=sheet)
        assert again.document_id == first.document_id
        docx = make_docx([("heading", "Onboarding"), ("p", "Onboarding takes two weeks.")])
        knowledge.ingest(tenant_id="acme", filename="onboarding.docx", data=docx)

        hits = knowledge.search(tenant_id="acme", query="price per seat")
        assert hits[0].payload["heading"] == "Pricing"
        assert len({h.id for h in hits}) == len(hits) == 3  # the re-upload did not duplicate
        assert knowledge.search(tenant_id="rival", query="price per seat") == []

        with pytest.raises(DocumentRejected, match="empty"):
            knowledge.ingest(tenant_id="acme", filename="empty.txt", data=b"")
        assert len(knowledge.search(tenant_id="acme", query="price per seat")) == 3

        assert knowledge.live_version() == 1
        version = knowledge.new_version()  # a re-index is built beside the live version
        assert knowledge.live_version() == 1 and version == 2
        knowledge.activate(version)
        assert knowledge.search(tenant_id="acme", query="price per seat") == []
        knowledge.activate(1)  # and the previous version comes back
        assert knowledge.search(tenant_id="acme", query="price per seat")
    finally:
        knowledge.parser.close()
