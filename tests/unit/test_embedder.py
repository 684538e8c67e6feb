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
