import pytest
from pydantic import ValidationError

from retrieval.chunking import ChunkingConfig, chunk_document
from retrieval.evaluation import mrr_at_k, ndcg_at_k, recall_at_k
from retrieval.indexing import split_sentences
from retrieval.parsing import ParsedDocument, Section
from retrieval.sparse import BM25Encoder, analyze


def doc(*sections: Section) -> ParsedDocument:
    return ParsedDocument(title="T", kind="md", sections=list(sections))


def test_chunks_overlap_and_remember_their_section():
    words = " ".join(f"w{i}" for i in range(25))
    chunks = chunk_document(
        doc(Section(text=words, heading="H", page=3)),
        ChunkingConfig(chunk_words=16, overlap_words=4),
    )
    assert [c.text.split()[0] for c in chunks] == ["w0", "w12"]
    assert chunks[1].text.split()[:4] == ["w12", "w13", "w14", "w15"]
    assert all(c.heading == "H" and c.page == 3 for c in chunks)
    assert [c.position for c in chunks] == [0, 1]


def test_headings_split_chunks_unless_disabled():
    document = doc(Section(text="alpha beta", heading="A"), Section(text="gamma", heading="B"))
    assert len(chunk_document(document, ChunkingConfig())) == 2
    merged = chunk_document(document, ChunkingConfig(split_on_headings=False))
    assert [c.text for c in merged] == ["alpha beta gamma"]


def test_chunking_config_rejects_overlap_as_large_as_the_chunk():
    with pytest.raises(ValidationError, match=r"overlap \(32 words\) must be shorter"):
        ChunkingConfig(chunk_words=32, overlap_words=32)


def test_analyzer_stems_and_drops_stop_words():
    assert analyze("The running runners ran to the CRM's dashboards") == [
        "run",
        "runner",
        "ran",
        "crm",
        "dashboard",
    ]


def test_bm25_document_weights_saturate_and_queries_are_binary():
    encoder = BM25Encoder(k1=1.2, b=0.0)
    once = encoder.encode_document("pricing")
    many = encoder.encode_document("pricing pricing pricing pricing")
    assert once.indices == many.indices
    assert once.values[0] == pytest.approx(1.0)
    assert 1.0 < many.values[0] < 2.2  # saturates below k1 + 1
    query = encoder.encode_query("pricing and pricing")
    assert query.values == [1.0] and query.indices == once.indices


def test_sentences_split_on_terminal_punctuation():
    assert split_sentences("CRM helps. It costs 5.5 USD! Why? (Because.)") == [
        "CRM helps.",
        "It costs 5.5 USD!",
        "Why?",
        "(Because.)",
    ]


def test_ranking_metrics():
    relevant = {"a": 1, "b": 1}
    assert ndcg_at_k(["a", "b", "c"], relevant) == pytest.approx(1.0)
    assert ndcg_at_k(["c", "a"], relevant) == pytest.approx((1 / 1.585) / (1 + 1 / 1.585), rel=1e-3)
    assert recall_at_k(["a", "x"], relevant, k=100) == 0.5
    assert mrr_at_k(["x", "y", "b"], relevant) == pytest.approx(1 / 3)
    assert mrr_at_k(["x"], relevant) == 0.0
