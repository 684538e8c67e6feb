"""The cross-encoder path of hybrid search: Qdrant's fused candidates, reordered by a scorer.

The scorer here is a stand-in for the BGE cross-encoder (no cross-encoder weights are bundled);
the store, the embedder and the BM25 encoder are the real ones.
"""

import pytest

from retrieval import compat
from retrieval.chunking import ChunkingConfig
from retrieval.embedder import Embedder
from retrieval.indexing import DocumentInput, IndexingPipeline
from retrieval.parsing import ParsedDocument, Section
from retrieval.search import HybridSearcher, SearchConfig
from retrieval.sparse import BM25Encoder
from retrieval.store import KnowledgeStore


class FakeCrossEncoderPreferringWord:
    """Scores a passage 1.0 when it contains ``word``, else 0.0; records what it was asked."""

    def __init__(self, word: str) -> None:
        self.word = word
        self.asked: list[list[str]] = []

    def score(self, query: str, passages: list[str]) -> list[float]:
        self.asked.append(passages)
        return [1.0 if self.word in p else 0.0 for p in passages]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    compat.install()  # as the knowledge service does before it opens local mode
    embedder = Embedder()
    store = KnowledgeStore(path=str(tmp_path_factory.mktemp("q") / "qdrant"))
    store.create_collection("kb_v1", dim=embedder.dim)
    sparse = BM25Encoder()
    texts = {
        "price": "CloudCRM costs 65 USD per user per month, billed annually.",
        "discount": "A three-year contract locks the price; bigger discounts need approval.",
        "security": "CloudCRM is ISO 27001 certified and supports single sign-on.",
    }
    IndexingPipeline(
        store=store, embedder=embedder, sparse=sparse, chunking=ChunkingConfig()
    ).index(
        "kb_v1",
        tenant_id="acme",
        documents=[
            DocumentInput(
                document_id=key,
                parsed=ParsedDocument(title=key, kind="txt", sections=[Section(text=text)]),
            )
            for key, text in texts.items()
        ],
    )
    return store, embedder, sparse


def test_cross_encoder_reorders_the_fused_candidates(indexed):
    store, embedder, sparse = indexed
    scorer = FakeCrossEncoderPreferringWord("approval")
    searcher = HybridSearcher(
        store=store,
        embedder=embedder,
        sparse=sparse,
        config=SearchConfig(rerank_depth=3),
        cross_encoder=scorer,
    )
    hits = searcher.run(collection="kb_v1", tenant_id="acme", query="what does it cost", top_k=2)
    assert hits[0].payload["document_id"] == "discount" and hits[0].score == 1.0
    assert len(hits) == 2 and len(scorer.asked[0]) == 3
    explained = searcher.explain(collection="kb_v1", tenant_id="acme", query="what does it cost")
    assert explained[0].chunk.payload["document_id"] == "discount"
    assert explained[0].reranked == 1.0 and explained[0].ranks["reranked"] == 1
    assert explained[0].fused is not None


def test_cross_encoder_score_threshold_and_other_tenants(indexed):
    store, embedder, sparse = indexed
    searcher = HybridSearcher(
        store=store,
        embedder=embedder,
        sparse=sparse,
        config=SearchConfig(score_threshold=0.5),
        cross_encoder=FakeCrossEncoderPreferringWord("ISO"),
    )
    hits = searcher.run(collection="kb_v1", tenant_id="acme", query="certified security")
    assert [h.payload["document_id"] for h in hits] == ["security"]
    assert searcher.run(collection="kb_v1", tenant_id="rival", query="certified security") == []
