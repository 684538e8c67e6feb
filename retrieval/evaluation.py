"""Retrieval quality and latency on any BEIR-format folder, through the product's own code.

The corpus is indexed by :class:`retrieval.indexing.IndexingPipeline` into a fresh
collection, every test query is searched with each mode, chunk hits are folded into
document rankings (a document ranks where its best chunk ranks), and nDCG@10, recall@100
and MRR@10 are computed against ``qrels/test.tsv``. Latency is the whole search call: query
embedding, Qdrant search and rerank together.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval.indexing import DocumentInput, IndexingPipeline
from retrieval.parsing import ParsedDocument, Section
from retrieval.search import HybridSearcher, SearchMode

MODES: tuple[SearchMode, ...] = ("dense", "sparse", "hybrid", "hybrid_rerank")
BENCH_TENANT = "bench"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BeirDataset:
    corpus: dict[str, tuple[str, str]]  # doc id -> (title, text)
    queries: dict[str, str]  # test query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> relevance

    @classmethod
    def load(cls, folder: Path) -> BeirDataset:
        for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder} is not a BEIR folder: {name} is missing")
        qrels: dict[str, dict[str, int]] = {}
        with open(folder / "qrels" / "test.tsv", newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                qid = row["query-id"].strip()
                qrels.setdefault(qid, {})[row["corpus-id"].strip()] = int(row["score"])
        corpus = {}
        with open(folder / "corpus.jsonl") as fh:
            for line in fh:
                doc = json.loads(line)
                corpus[str(doc["_id"])] = (doc.get("title") or "", doc.get("text") or "")
        queries = {}
        with open(folder / "queries.jsonl") as fh:
            for line in fh:
                query = json.loads(line)
                if str(query["_id"]) in qrels:
                    queries[str(query["_id"])] = query["text"]
        return cls(
            corpus=corpus, queries=queries, qrels={q: r for q, r in qrels.items() if q in queries}
        )


def ndcg_at_k(ranking: list[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(
        (2 ** relevant.get(doc, 0) - 1) / math.log2(i + 2) for i, doc in enumerate(ranking[:k])
    )
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2**rel - 1) / math.log2(i + 2) for i, rel in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranking: list[str], relevant: dict[str, int], k: int = 100) -> float:
    wanted = {doc for doc, rel in relevant.items() if rel > 0}
    return len(wanted & set(ranking[:k])) / len(wanted) if wanted else 0.0


def mrr_at_k(ranking: list[str], relevant: dict[str, int], k: int = 10) -> float:
    for i, doc in enumerate(ranking[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def documents_of(hits: list[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for hit in hits:
        seen.setdefault(hit.payload["document_id"], None)
    return list(seen)


def index_dataset(
    pipeline: IndexingPipeline, dataset: BeirDataset, collection: str, progress: Progress
) -> int:
    documents = (
        DocumentInput(
            document_id=doc_id,
            parsed=ParsedDocument(title=title, kind="txt", sections=[Section(text=text)]),
        )
        for doc_id, (title, text) in dataset.corpus.items()
        if text.strip() or title.strip()
    )
    total = len(dataset.corpus)
    started = time.perf_counter()

    def report(chunks: int) -> None:
        progress(
            f"  indexed {chunks} chunks ({time.perf_counter() - started:.0f} s, {total} documents)"
        )

    return pipeline.index(collection, tenant_id=BENCH_TENANT, documents=documents, progress=report)


def evaluate(
    searcher: HybridSearcher, dataset: BeirDataset, collection: str, progress: Progress
) -> dict[str, Any]:
    """One search per query and mode; its time is the latency, its hits the ranking.

    Each search asks for enough chunks to fill 100 documents; past the rerank depth the
    reranked ranking continues in the fused (hybrid) order, as the product would page on.
    """
    deep = 150  # chunks, enough to fill 100 documents
    hybrid_rankings: dict[str, list[str]] = {}
    results: dict[str, Any] = {}
    for mode in MODES:
        ndcg, recall, mrr, latency = [], [], [], []
        for qid, text in dataset.queries.items():
            started = time.perf_counter()
            hits = searcher.run(
                collection=collection, tenant_id=BENCH_TENANT, query=text, mode=mode, top_k=deep
            )
            latency.append((time.perf_counter() - started) * 1000)
            ranking = documents_of(hits)
            if mode == "hybrid":
                hybrid_rankings[qid] = ranking
            elif mode == "hybrid_rerank":
                seen = set(ranking)
                ranking += [d for d in hybrid_rankings.get(qid, []) if d not in seen]
            relevant = dataset.qrels[qid]
            ndcg.append(ndcg_at_k(ranking, relevant))
            recall.append(recall_at_k(ranking, relevant))
            mrr.append(mrr_at_k(ranking, relevant))
        results[mode] = {
            "ndcg_at_10": round(sum(ndcg) / len(ndcg), 4),
            "recall_at_100": round(sum(recall) / len(recall), 4),
            "mrr_at_10": round(sum(mrr) / len(mrr), 4),
            "latency_ms_p50": round(_percentile(latency, 50), 2),
            "latency_ms_p95": round(_percentile(latency, 95), 2),
            "queries": len(ndcg),
        }
        progress(f"{mode:14} {results[mode]}")
    return results
