"""The compat patch of Qdrant local mode: the functions it replaces still exist with the
signatures the replacements were written for, and the bulk scorers give what local mode's own
loops give."""

import importlib.metadata
import inspect

import numpy as np
import pytest
from qdrant_client.http import models
from qdrant_client.local import distances, multi_distances, payload_filters, sparse_distances
from qdrant_client.local.sparse import SparseVector

from retrieval import compat


@pytest.fixture(autouse=True)
def fresh_cache():
    compat.clear()
    yield
    compat.clear()


def test_the_pinned_release_is_the_one_the_patch_was_written_for():
    assert importlib.metadata.version("qdrant-client") == compat.PATCHED_FOR


@pytest.mark.parametrize(
    ("name", "defined_in", "replacement"),
    [
        ("calculate_payload_mask", payload_filters, compat._payload_mask),
        ("calculate_distance", distances, compat._dense_distance),
        ("calculate_distance_sparse", sparse_distances, compat._sparse_distance),
        ("calculate_multi_distance", multi_distances, compat._multi_distance),
    ],
)
def test_the_replaced_functions_keep_their_signatures(name, defined_in, replacement):
    """local_collection calls these by name (what install() rebinds), with the arguments the
    replacements take."""
    from qdrant_client.local import local_collection

    assert name in compat.PATCHED_FUNCTIONS
    assert callable(getattr(local_collection, name, None))
    original = getattr(defined_in, name)

    def described(fn) -> list:
        parameters = inspect.signature(fn).parameters.values()
        return [(p.name, p.kind, p.default) for p in parameters]

    assert described(replacement(original)) == described(original)


def test_the_wrapped_writes_exist():
    from qdrant_client.local import local_collection, qdrant_local

    for name in compat.COLLECTION_WRITES:
        assert callable(getattr(local_collection.LocalCollection, name, None)), name
    for name in compat.CLIENT_WRITES:
        assert callable(getattr(qdrant_local.QdrantLocal, name, None)), name


def test_install_is_idempotent():
    from qdrant_client.local import local_collection

    compat.install()
    patched = local_collection.calculate_distance_sparse
    compat.install()
    assert local_collection.calculate_distance_sparse is patched
    assert local_collection.LocalCollection.upsert.__wrapped__.__name__ == "upsert"
    assert not hasattr(local_collection.LocalCollection.upsert.__wrapped__, "__wrapped__")


def random_sparse(rng, count: int, vocabulary: int = 50) -> list[SparseVector]:
    vectors = []
    for _ in range(count):
        size = int(rng.integers(0, 8))
        indices = sorted(rng.choice(vocabulary, size=size, replace=False).tolist())
        vectors.append(SparseVector(indices=indices, values=rng.random(size).tolist()))
    return vectors


def test_sparse_scores_match_local_mode_including_no_overlap():
    rng = np.random.default_rng(7)
    corpus = random_sparse(rng, 300)
    bulk = compat._sparse_distance(sparse_distances.calculate_distance_sparse)
    for query in random_sparse(rng, 20):
        if not query.indices:
            continue
        expected = sparse_distances.calculate_distance_sparse(query, corpus)
        got = bulk(query, corpus)
        assert got.dtype == np.float32
        assert np.array_equal(np.isneginf(got), np.isneginf(expected))
        finite = np.isfinite(expected)
        np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-5)


def test_multivector_max_sim_matches_local_mode():
    rng = np.random.default_rng(3)
    matrices = [rng.normal(size=(int(rng.integers(1, 6)), 16)) for _ in range(200)]
    for distance in (models.Distance.COSINE, models.Distance.DOT):
        bulk = compat._multi_distance(multi_distances.calculate_multi_distance)
        query = rng.normal(size=(3, 16))
        expected = multi_distances.calculate_multi_distance(
            query, [m.copy() for m in matrices], distance
        )
        np.testing.assert_allclose(bulk(query, matrices, distance), expected, rtol=1e-4)
        compat.clear()


def test_cosine_on_unit_rows_matches_and_other_rows_fall_back():
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(100, 8)).astype(np.float32)
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    bulk = compat._dense_distance(distances.calculate_distance)
    query = rng.normal(size=8).astype(np.float32)
    expected = distances.calculate_distance(query, unit.copy(), models.Distance.COSINE)
    np.testing.assert_allclose(bulk(query, unit, models.Distance.COSINE), expected, rtol=1e-5)
    expected_raw = distances.calculate_distance(query, rows.copy(), models.Distance.COSINE)
    np.testing.assert_allclose(bulk(query, rows, models.Distance.COSINE), expected_raw, rtol=1e-5)


def test_payload_mask_with_ids_matches_local_mode():
    payloads = [{"tenant_id": "a" if i % 3 else "b"} for i in range(60)]
    ids_inv = [f"00000000-0000-0000-0000-{i:012d}" for i in range(60)]
    deleted = {"dense": np.zeros(60, dtype=bool)}
    tenant = models.FieldCondition(key="tenant_id", match=models.MatchValue(value="a"))
    chosen = ids_inv[::4]
    cases = [
        models.Filter(must=[tenant]),
        models.Filter(must=[tenant, models.HasIdCondition(has_id=chosen)]),
        models.Filter(must=[models.HasIdCondition(has_id=chosen)]),
        models.Filter(
            must=[tenant, models.HasIdCondition(has_id=chosen)],
            must_not=[models.HasIdCondition(has_id=ids_inv[:8])],
        ),
    ]
    bulk = compat._payload_mask(payload_filters.calculate_payload_mask)
    for payload_filter in cases:
        expected = payload_filters.calculate_payload_mask(
            payloads, payload_filter, ids_inv, deleted
        )
        for _ in range(2):  # the second answer comes from the cache
            assert np.array_equal(bulk(payloads, payload_filter, ids_inv, deleted), expected)


def test_a_write_drops_what_was_built(tmp_path):
    from retrieval.store import KnowledgeStore

    compat.install()
    store = KnowledgeStore(path=str(tmp_path / "q"))
    store.client.create_collection(
        "c",
        vectors_config={},
        sparse_vectors_config={"s": models.SparseVectorParams()},
    )

    def upsert(point_id: int, index: int) -> None:
        vector = {"s": models.SparseVector(indices=[index], values=[1.0])}
        store.client.upsert("c", [models.PointStruct(id=point_id, vector=vector)])

    def hits(index: int) -> list:
        query = models.SparseVector(indices=[index], values=[1.0])
        return [p.id for p in store.client.query_points("c", query=query, using="s").points]

    upsert(1, 10)
    assert hits(10) == [1]
    upsert(2, 10)
    assert sorted(hits(10)) == [1, 2]
    store.client.delete("c", points_selector=models.PointIdsList(points=[1]))
    assert hits(10) == [2]
