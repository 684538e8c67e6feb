"""The one-pass query embedding is FlagEmbedding's own embedding of the same query."""

import numpy as np

from retrieval.embedder import Embedder


def test_query_embedding_matches_flagembedding_encode_queries():
    embedder = Embedder()
    embedder.warm_up()
    queries = ["does vitamin D lower fracture risk", "How long does a CRM data migration take?"]
    reference = np.asarray(
        embedder._model.encode_queries(queries, batch_size=8, convert_to_numpy=True)
    )
    for query, expected in zip(queries, reference, strict=True):
        got = embedder.embed_query(query)
        assert got.shape == (embedder.dim,)
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert abs(float(np.linalg.norm(got)) - 1.0) < 1e-5


def test_queries_embedded_together_match_each_embedded_alone():
    # The embedder deployment batches queries that arrive together: padding must not show.
    embedder = Embedder()
    queries = ["CRM", "How long does a CRM data migration take for forty users?", "price"]
    together = embedder.embed_queries(queries)
    assert together.shape == (3, embedder.dim)
    for query, vector in zip(queries, together, strict=True):
        np.testing.assert_allclose(vector, embedder.embed_query(query), atol=1e-5)
    assert embedder.embed_queries([]).shape == (0, embedder.dim)
