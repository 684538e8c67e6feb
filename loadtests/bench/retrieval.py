"""``salesboost bench retrieval``: index a BEIR folder through the ingestion code and measure."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serve_apps.settings import Settings

Progress = Callable[[str], None]


def _index_fingerprint(dataset_dir: Path, embedder: str, chunking: dict[str, Any]) -> str:
    import hashlib

    digest = hashlib.sha256()
    with (dataset_dir / "corpus.jsonl").open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    corpus = digest.hexdigest()
    return json.dumps(
        {"corpus": corpus, "embedder": embedder, "chunking": chunking}, sort_keys=True
    )


def run_retrieval_bench(
    dataset_dir: Path, settings: Settings, progress: Progress = print, *, reuse_index: bool = False
) -> dict[str, Any]:
    from models.cpu_dtype import detect_cpu
    from retrieval import compat
    from retrieval.chunking import ChunkingConfig
    from retrieval.embedder import Embedder
    from retrieval.evaluation import BeirDataset, evaluate, index_dataset
    from retrieval.indexing import IndexingPipeline
    from retrieval.search import HybridSearcher, SearchConfig
    from retrieval.sparse import BM25Encoder
    from retrieval.store import KnowledgeStore

    compat.install()  # as the knowledge service does
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # FlagEmbedding's per-batch bars; we report progress
    dataset = BeirDataset.load(dataset_dir)
    progress(
        f"{dataset_dir.name}: {len(dataset.corpus)} documents, {len(dataset.queries)} test queries"
    )
    store_dir = settings.data_dir / "bench" / f"qdrant-{dataset_dir.name}"
    marker = store_dir / "salesboost-index.json"
    embedder = Embedder()
    embedder.warm_up()
    chunking = ChunkingConfig()
    collection = f"bench_{dataset_dir.name}"
    sparse = BM25Encoder()
    fingerprint = _index_fingerprint(dataset_dir, embedder.spec.name, chunking.model_dump())
    built = json.loads(marker.read_text()) if marker.is_file() else {}
    if reuse_index and built.get("fingerprint") == fingerprint:
        progress(f"reusing the index in {store_dir} (built from the same corpus and settings)")
        store = KnowledgeStore(path=str(store_dir))
        chunks = store.client.count(collection, exact=True).count
        indexing_s = built["indexing_s"]
    else:
        shutil.rmtree(store_dir, ignore_errors=True)
        store_dir.mkdir(parents=True)
        store = KnowledgeStore(path=str(store_dir))
        store.create_collection(collection, dim=embedder.dim)
        pipeline = IndexingPipeline(
            store=store, embedder=embedder, sparse=sparse, chunking=chunking
        )
        started = time.perf_counter()
        chunks = index_dataset(pipeline, dataset, collection, progress)
        indexing_s = time.perf_counter() - started
        marker.write_text(
            json.dumps({"fingerprint": fingerprint, "chunks": chunks, "indexing_s": indexing_s})
        )
    search_config = SearchConfig()
    searcher = HybridSearcher(store=store, embedder=embedder, sparse=sparse, config=search_config)
    methods = evaluate(searcher, dataset, collection, progress)
    dense = methods["dense"]["ndcg_at_10"]
    return {
        **methods,
        "hybrid_rerank_vs_dense_ndcg": round(methods["hybrid_rerank"]["ndcg_at_10"] / dense, 4),
        "meta": {
            "dataset": dataset_dir.name,
            "documents": len(dataset.corpus),
            "queries": len(dataset.queries),
            "chunks": chunks,
            "indexing_s": round(indexing_s, 1),
            "embedder": embedder.spec.name,
            # The encoders run in float32 on every CPU (FlagEmbedding casts to it there).
            "cpu": detect_cpu().as_meta(),
            "encoder_dtype": "float32",
            "reranker": (
                "top-50 fused candidates rescored by dense, BM25 and late interaction "
                "(best sentence, MAX_SIM), fused by DBSF"
            ),
            "chunking": chunking.model_dump(),
            "search": search_config.model_dump(),
            "cpu_count": os.cpu_count(),
        },
    }


def plot(results: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from retrieval.evaluation import MODES

    modes = [m for m in MODES if m in results]
    fig, (quality, speed) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.25
    for i, metric in enumerate(("ndcg_at_10", "recall_at_100", "mrr_at_10")):
        quality.bar(
            [x + i * width for x in range(len(modes))],
            [results[m][metric] for m in modes],
            width,
            label=metric,
        )
    quality.set_xticks([x + width for x in range(len(modes))], modes)
    quality.set_ylim(0, 1)
    quality.set_title(f"{title}: quality")
    quality.legend(loc="lower right")
    for i, metric in enumerate(("latency_ms_p50", "latency_ms_p95")):
        speed.bar(
            [x + i * 0.35 for x in range(len(modes))],
            [results[m][metric] for m in modes],
            0.35,
            label=metric,
        )
    speed.set_xticks([x + 0.175 for x in range(len(modes))], modes)
    speed.set_ylabel("ms")
    speed.set_title("search latency (embed + search + rerank)")
    speed.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
