"""Where the knowledge service embeds: queries in its own process, documents by the deployment."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from retrieval.embedder import Embedder
from serve_apps.knowledge.embedder import (
    InServiceQueryEmbedder,
    RemoteEmbedder,
    service_embedder,
)


class FakeEmbedderHandle:
    """Fake (isolates the embedders from Ray): records what the deployment was asked."""

    def __init__(self):
        self.calls = []
        handle = self

        class Method:
            def __init__(self, name):
                self.name = name

            def remote(self, texts):
                handle.calls.append((self.name, list(texts)))
                vectors = np.full((len(texts), 384), 0.5, dtype=np.float32)

                class Response:
                    def result(self, timeout_s):
                        return vectors

                return Response()

        self.embed_queries = Method("embed_queries")
        self.embed_documents = Method("embed_documents")


def test_in_service_queries_match_the_model_and_documents_go_to_the_deployment():
    handle = FakeEmbedderHandle()
    embedder = service_embedder(handle, "all-MiniLM-L6-v2", "in_service")
    assert isinstance(embedder, InServiceQueryEmbedder)
    reference = Embedder(model="all-MiniLM-L6-v2")
    query = "How long does a CRM data migration take?"
    np.testing.assert_allclose(embedder.embed_query(query), reference.embed_query(query), atol=1e-5)
    together = asyncio.run(embedder.embed_queries_async([query, "price"]))
    np.testing.assert_allclose(together[1], reference.embed_query("price"), atol=1e-5)
    assert handle.calls == []  # no query went to the deployment

    documents = embedder.embed_documents(["a sheet", "a page"])
    assert documents.shape == (2, 384)
    assert handle.calls == [("embed_documents", ["a sheet", "a page"])]


def test_in_service_queries_from_many_threads_at_once():
    # The retrieval batch and the search's worker threads embed concurrently.
    embedder = service_embedder(FakeEmbedderHandle(), "all-MiniLM-L6-v2", "in_service")
    queries = [f"question {i} about onboarding and pricing" for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        vectors = list(pool.map(embedder.embed_query, queries))
    assert all(v.shape == (384,) for v in vectors)
    np.testing.assert_allclose(vectors[5], embedder.embed_query(queries[5]), atol=1e-5)


def test_deployment_embeds_queries_when_told_to():
    handle = FakeEmbedderHandle()
    embedder = service_embedder(handle, "all-MiniLM-L6-v2", "deployment")
    assert isinstance(embedder, RemoteEmbedder)
    assert embedder.embed_query("price").shape == (384,)
    assert handle.calls == [("embed_queries", ["price"])]
