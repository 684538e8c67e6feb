"""Knowledge-base versions and their embedders, on the real bundled embedder and Qdrant local
mode: each version records the embedder that built it, a search embeds its query with the
live version's embedder, and a rebuild by another embedder is built beside the live version,
caught up with what changed meanwhile, and switched to; the old version stays restorable.

The second embedder is the bundled model with a shorter longest input (128 tokens): the same
files, another version (its vectors of long chunks differ)."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval import compat
from retrieval.chunking import ChunkingConfig
from retrieval.embedder import EMBEDDING_MODELS, Embedder, EmbedderRecord
from retrieval.knowledge_base import (
    EmbedderUnavailable,
    KnowledgeBase,
    OneEmbedder,
    QueryVector,
    RebuildConflict,
)
from retrieval.store import KnowledgeStore

TENANT = "7f3c2a9e-0000-4000-8000-000000000001"
SHORT = EMBEDDING_MODELS["all-MiniLM-L6-v2"].model_copy(update={"max_length": 128})


class RecordingEmbedder:
    """A real embedder that counts the queries it embeds (and can be told to fail)."""

    def __init__(self, embedder: Embedder) -> None:
        self.inner = embedder
        self.record = embedder.record
        self.dim = embedder.dim
        self.queries: list[str] = []
        self.fail_after_documents: int | None = None
        self.documents = 0

    def embed_query(self, text: str) -> np.ndarray:
        self.queries.append(text)
        return self.inner.embed_query(text)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.documents += 1
        if self.fail_after_documents is not None and self.documents > self.fail_after_documents:
            raise RuntimeError("the embedder went away")
        return self.inner.embed_documents(texts)


class Directory:
    def __init__(self, *embedders: RecordingEmbedder) -> None:
        self.by_version = {e.record.version: e for e in embedders}

    def embedder_for(self, record: EmbedderRecord):
        return self.by_version[record.version]


@pytest.fixture(scope="module")
def models():
    compat.install()
    default = Embedder()
    short = Embedder(spec=SHORT)
    default.warm_up()
    short.warm_up()
    return default, short


@pytest.fixture
def embedders(models):
    default, short = models
    return RecordingEmbedder(default), RecordingEmbedder(short)


@pytest.fixture
def store(tmp_path):
    store = KnowledgeStore(path=str(tmp_path / "qdrant"))
    yield store
    store.close()


def _document(topic: str, paragraphs: int = 2) -> bytes:
    """A Markdown file with a heading per paragraph: each a chunk of 120 words (longer than
    128 tokens) and one of 20."""
    body = []
    for n in range(paragraphs):
        sentences = " ".join(
            f"The {topic} plan {n} covers point {k} of the rollout for the sales team."
            for k in range(10)
        )
        body.append(f"## {topic.title()} part {n}\n\n{sentences}\n")
    return (f"# {topic.title()} guide\n\n" + "\n".join(body)).encode()


def _base(store, embedders, slug: str = "t1_sales") -> KnowledgeBase:
    default, short = embedders
    return KnowledgeBase(
        slug=slug,
        store=store,
        embedder=default,  # the default: builds new versions and owns unrecorded ones
        embedders=Directory(default, short),
        chunking=ChunkingConfig(chunk_words=120, overlap_words=0),
    )


def _vectors(store: KnowledgeStore, collection: str) -> dict[str, np.ndarray]:
    points, _ = store.client.scroll(collection, limit=1000, with_vectors=["dense"])
    return {str(p.id): np.asarray(p.vector["dense"]) for p in points}


def test_a_version_records_its_embedder_and_a_search_embeds_with_it(store, embedders):
    default, short = embedders
    base = _base(store, embedders)
    base.ingest(tenant_id=TENANT, filename="pricing.md", data=_document("pricing"))
    assert base.live_version() == 1
    assert base.embedder_of(1) == default.record
    metadata = store.collection_metadata("kb.t1_sales.v1")
    assert EmbedderRecord.from_metadata(metadata) == default.record

    found = base.search_live(tenant_id=TENANT, query="rollout plan for pricing", top_k=3)
    assert found.version == 1 and found.embedder == default.record.version
    assert found.hits and default.queries == ["rollout plan for pricing"] and short.queries == []

    # A version built by the other embedder: its searches embed with that one.
    version = base.new_version(short.record)
    base.ingest(tenant_id=TENANT, filename="pricing.md", data=_document("pricing"), version=version)
    assert base.embedder_of(version) == short.record
    base.activate(version)
    # A query vector made by the default embedder is not used on the short one's version.
    given = QueryVector(default.record.version, default.inner.embed_query("pricing"))
    found = base.search_live(tenant_id=TENANT, query="pricing", query_vector=given)
    assert found.version == version and found.embedder == short.record.version
    assert short.queries == ["pricing"]
    # ... and one made by it is (nothing is embedded again).
    made = QueryVector(short.record.version, short.inner.embed_query("pricing"))
    base.search_live(tenant_id=TENANT, query="pricing", query_vector=made)
    assert short.queries == ["pricing"]
    assert base.version_embedders() == {1: default.record.version, 2: short.record.version}


def test_a_rebuild_reembeds_every_chunk_beside_the_live_version_and_switches(store, embedders):
    default, short = embedders
    base = _base(store, embedders)
    base.ingest(tenant_id=TENANT, filename="a.md", data=_document("pricing"))
    base.ingest(tenant_id=TENANT, filename="b.md", data=_document("security"))
    before = store.tenant_scroll("kb.t1_sales.v1", tenant_id=TENANT, limit=1000)[0]
    seen_live: list[int | None] = []

    def during(copied: int) -> None:
        # While the new version is built, the live one answers, by its own embedder.
        seen_live.append(base.search_live(tenant_id=TENANT, query="security plan").version)

    rebuilt = base.rebuild(tenant_id=TENANT, embedder=short.record, page_size=3, progress=during)
    assert rebuilt is not None and (rebuilt.version, rebuilt.previous) == (2, 1)
    assert rebuilt.chunks == len(before) and len(seen_live) > 1 and set(seen_live) == {1}
    assert base.live_version() == 2 and base.embedder_of(2) == short.record
    after = store.tenant_scroll("kb.t1_sales.v2", tenant_id=TENANT, limit=1000)[0]
    # The same chunks (ids, text, where they came from) ...
    assert {p.id: p.payload for p in after} == {p.id: p.payload for p in before}
    # ... with vectors of the other model: those of the chunks longer than its 128 tokens
    # differ (the short ones it reads whole, as the default does).
    old, new = _vectors(store, "kb.t1_sales.v1"), _vectors(store, "kb.t1_sales.v2")
    long = [p.id for p in after if len(p.payload["text"].split()) >= 100]
    assert long and all(not np.allclose(old[i], new[i], atol=1e-4) for i in long)

    short.queries.clear()
    found = base.search_live(tenant_id=TENANT, query="security plan")
    assert found.version == 2 and short.queries == ["security plan"]
    assert found.hits[0].payload["document_title"] == "Security guide"

    # The old version stays, with its embedder: restored, its searches use that one again.
    base.activate(1)
    default.queries.clear()
    found = base.search_live(tenant_id=TENANT, query="security plan")
    assert found.version == 1 and default.queries == ["security plan"]
    assert base.latest_version_by(short.record.version) == 2


def test_uploads_and_removals_during_a_rebuild_are_in_the_new_version(store, embedders):
    default, short = embedders
    base = _base(store, embedders)
    base.ingest(tenant_id=TENANT, filename="a.md", data=_document("pricing"))
    removed = base.ingest(tenant_id=TENANT, filename="b.md", data=_document("security"))
    changes = iter(["upload", "remove"])

    def during(copied: int) -> None:
        change = next(changes, None)
        if change == "upload":
            base.ingest(tenant_id=TENANT, filename="c.md", data=_document("onboarding"))
        elif change == "remove":
            base.remove(tenant_id=TENANT, document_id=removed.document_id)

    base.rebuild(tenant_id=TENANT, embedder=short.record, page_size=2, progress=during)
    live = store.document_chunk_counts("kb.t1_sales.v1", tenant_id=TENANT)
    built = store.document_chunk_counts("kb.t1_sales.v2", tenant_id=TENANT)
    assert built == live and removed.document_id not in built and len(built) == 2
    hits = base.search(tenant_id=TENANT, query="onboarding rollout", top_k=1)
    assert hits[0].payload["document_title"] == "Onboarding guide"


def test_a_failed_rebuild_leaves_the_live_version_and_keeps_nothing(store, embedders):
    default, short = embedders
    base = _base(store, embedders)
    base.ingest(tenant_id=TENANT, filename="a.md", data=_document("pricing", paragraphs=3))
    short.fail_after_documents = 2  # the first page embeds (2 calls), the second fails
    with pytest.raises(RuntimeError, match="went away"):
        base.rebuild(tenant_id=TENANT, embedder=short.record, page_size=2)
    assert base.live_version() == 1 and base.versions() == [1]
    assert base.search_live(tenant_id=TENANT, query="pricing").version == 1


def test_a_rebuild_whose_live_version_moved_is_dropped(store, embedders):
    default, short = embedders
    base = _base(store, embedders)
    base.ingest(tenant_id=TENANT, filename="a.md", data=_document("pricing"))
    other = base.new_version()
    base.ingest(tenant_id=TENANT, filename="a.md", data=_document("pricing"), version=other)

    def restore_meanwhile(copied: int) -> None:
        if base.live_version() == 1:
            base.activate(other)

    with pytest.raises(RebuildConflict, match="live version changed"):
        base.rebuild(
            tenant_id=TENANT, embedder=short.record, page_size=2, progress=restore_meanwhile
        )
    assert base.live_version() == other and base.versions() == [1, other]


def test_versions_from_before_records_are_the_default_embedders(store, embedders):
    default, short = embedders
    store.create_collection("kb.t1_old.v1", dim=default.dim)  # no record, as before
    store.point_alias("kb.t1_old", "kb.t1_old.v1")
    base = _base(store, embedders, slug="t1_old")
    assert base.embedder_of(1) == default.record
    assert base.record_unrecorded_versions() == [1]
    assert EmbedderRecord.from_metadata(store.collection_metadata("kb.t1_old.v1")) == (
        default.record
    )
    assert base.record_unrecorded_versions() == []


def test_one_embedder_refuses_a_version_another_built(models):
    default, short = models
    with pytest.raises(EmbedderUnavailable, match="built by all-MiniLM-L6-v2@"):
        OneEmbedder(default).embedder_for(short.record)
    assert default.record.version != short.record.version
    assert default.record.settings == {"kind": "embedder", "model": "all-MiniLM-L6-v2"}
    assert short.record.settings["max_length"] == 128
