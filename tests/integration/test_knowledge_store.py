"""The hybrid store on real Qdrant (local mode) and the real bundled embedder."""

import pytest

from retrieval import compat
from retrieval.chunking import ChunkingConfig
from retrieval.embedder import Embedder
from retrieval.indexing import DocumentInput, IndexingPipeline
from retrieval.parsing import ParsedDocument, Section
from retrieval.search import HybridSearcher, SearchConfig
from retrieval.sparse import BM25Encoder
from retrieval.store import KnowledgeStore

pytestmark = pytest.mark.integration

MODES = ("dense", "sparse", "hybrid", "hybrid_rerank")


@pytest.fixture(scope="module", autouse=True)
def bulk_scoring():
    """Local mode as the knowledge service runs it."""
    compat.install()


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


TRICKY_SLUGS = ["alpha", "alpha_v1", "alpha_v1_v1", "alpha-v1", "alpha_v", "a", "a_v1", "v1"]


def test_no_two_legal_knowledge_base_names_share_a_collection_or_alias(tmp_path, embedder):
    """``alpha``'s first version and ``alpha_v1``'s alias were one name (issue 23); every name
    now splits on a "." that no knowledge-base name contains."""
    from retrieval.knowledge_base import KnowledgeBase

    store = KnowledgeStore(path=str(tmp_path / "qdrant"))
    bases = [KnowledgeBase(slug=s, store=store, embedder=embedder) for s in TRICKY_SLUGS]
    try:
        names: dict[str, str] = {}
        for base in bases:
            for name in [base.alias, *(base._collection(v) for v in (1, 2, 10, 11))]:
                assert names.setdefault(name, base.slug) == base.slug, (name, names[name])
        for index, base in enumerate(bases):
            sheet = f"# {base.slug}\nThe {base.slug} plan costs {index + 10} USD.".encode()
            base.ingest(tenant_id="acme", filename=f"{base.slug}.md", data=sheet)
        for base in bases:
            assert base.live_version() == 1 and base.versions() == [1], base.slug
            hits = base.search(tenant_id="acme", query="plan costs USD")
            assert [h.payload["heading"] for h in hits] == [base.slug]
        bases[0].activate(bases[0].new_version())  # alpha at version 2, alpha_v1 unmoved
        assert bases[0].versions() == [1, 2] and bases[1].versions() == [1]
        assert bases[1].live_version() == 1 and bases[1].search(tenant_id="acme", query="plan")
    finally:
        bases[0].parser.close()


def test_knowledge_bases_indexed_under_the_legacy_names_keep_working(tmp_path, embedder):
    """Data written with ``kb_<kb>`` (alias) and ``kb_<kb>_v<n>`` (versions): the alias moves to
    the new name on first use, the collections are read where they are."""
    from retrieval.knowledge_base import KnowledgeBase

    store = KnowledgeStore(path=str(tmp_path / "qdrant"))
    pipeline = IndexingPipeline(
        store=store, embedder=embedder, sparse=BM25Encoder(), chunking=ChunkingConfig()
    )
    for name in ("kb_t_alpha_v1", "kb_t_alpha_v2", "kb_t_alpha_v1_v1"):
        store.create_collection(name, dim=embedder.dim)
    pipeline.index("kb_t_alpha_v1", tenant_id="acme", documents=ACME)
    store.point_alias("kb_t_alpha", "kb_t_alpha_v1")  # alpha's live version: 1
    # What the collision left behind: alpha_v1's first version, with no alias of its own.
    alpha = KnowledgeBase(slug="t_alpha", store=store, embedder=embedder)
    alpha_v1 = KnowledgeBase(slug="t_alpha_v1", store=store, embedder=embedder)
    try:
        assert alpha.live_version() == 1 and alpha.versions() == [1, 2]
        assert store.alias_target("kb.t_alpha") == "kb_t_alpha_v1"
        assert store.alias_target("kb_t_alpha") is None
        assert alpha.search(tenant_id="acme", query="price per seat")
        assert alpha_v1.live_version() is None and alpha_v1.versions() == [1]

        alpha.activate(2)  # a legacy version that was not live
        assert store.alias_target("kb.t_alpha") == "kb_t_alpha_v2"
        assert alpha.new_version() == 3 and store.collection_exists("kb.t_alpha.v3")
        alpha.activate(1)
        assert alpha.search(tenant_id="acme", query="price per seat")

        sheet = b"# Alpha v1\nThe alpha v1 product costs 9 USD."
        alpha_v1.ingest(tenant_id="acme", filename="v1.md", data=sheet)
        assert alpha_v1.live_version() == 2  # beside the orphan version 1
        assert store.alias_target("kb.t_alpha_v1") == "kb.t_alpha_v1.v2"
        assert alpha.versions() == [1, 2, 3] and alpha.live_version() == 1
    finally:
        alpha.parser.close()
        alpha_v1.parser.close()
