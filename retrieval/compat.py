"""Compat: qdrant-client's local mode (the embedded default store) scored in bulk.

This module patches qdrant-client internals; ``install()`` applies the patch to the process
(the knowledge service's replica and the benchmarks call it before opening a local store).

Why: local mode is qdrant-client's in-process Qdrant. It scores every point of a collection in
a Python loop for each query and each prefetch: a sparse dot product per point (about 60 µs),
a late-interaction matrix per point, and a payload filter check per point. At 10,000 chunks
one hybrid-plus-rerank query took 1.5 s, almost all of it in those loops; with the patch,
hybrid+rerank p95 on SciFact went from 1778 ms to about 150 ms (68 ms with BLAS on one thread).

What: ``install`` swaps four of ``qdrant_client.local.local_collection``'s module-level
functions for versions that build one structure per collection state and score all points
with NumPy:

* payload filters: the mask for a (payload list, filter) pair is computed once;
* sparse vectors: an inverted index (term -> rows, weights), so a query touches only the
  postings of its own terms;
* dense vectors: cosine skips renormalizing rows that upsert already stored normalized;
* multivectors: all rows stacked into one matrix, so ``MAX_SIM`` is one matrix product and
  a segmented max.

and wraps the writes of ``LocalCollection`` and ``QdrantLocal`` so that every structure is
dropped whenever any collection is written to: an answer never comes from stale data. The
replacements return what the originals return (tests/unit/retrieval/test_compat.py compares
them on random data, and checks that the replaced functions keep the signatures the
replacements were written for). A Qdrant server uses its own indexes and none of this runs.

Version guard: the patch is written against qdrant-client ``PATCHED_FOR`` (the pin in
pyproject.toml). On another release ``install`` warns and patches nothing, rather than
failing: the patch is only a speed-up, local mode's own scoring gives the same answers, and a
store that is slow is better than a knowledge service that does not start.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

# The release whose local-mode functions these replace; another one is not patched (its
# functions may score differently), and search then runs on local mode's own loops.
PATCHED_FOR = "1.20.0"
# What install() replaces in qdrant_client.local.local_collection.
PATCHED_FUNCTIONS = (
    "calculate_payload_mask",
    "calculate_distance",
    "calculate_distance_sparse",
    "calculate_multi_distance",
)
_EPSILON = 1.1920929e-07  # local mode's own guard against dividing by a zero norm
_MAX_MASKS = 64

_lock = threading.Lock()
# Per collection state: the postings and stacked matrices; few, and rebuilt only after a write.
_structures: dict[tuple[Any, ...], tuple[Any, Any]] = {}
# Per (payload list, filter): most filters are the tenant filter, but prefetches also filter
# by the ids of their candidates, which never repeat, so this one is bounded and evicts oldest.
_masks: OrderedDict[tuple[Any, ...], tuple[Any, np.ndarray]] = OrderedDict()
_installed = False
_install_lock = threading.Lock()


def _structure(key: tuple[Any, ...], keep_alive: Any, build: Callable[[], Any]) -> Any:
    """The structure for ``key``, built once per collection state.

    ``keep_alive`` holds the objects whose ``id`` is part of the key, so that an id cannot be
    reused by a new object while its entry lives.
    """
    with _lock:
        entry = _structures.get(key)
    if entry is not None:
        return entry[1]
    value = build()
    with _lock:
        _structures[key] = (keep_alive, value)
    return value


def clear() -> None:
    with _lock:
        _structures.clear()
        _masks.clear()


# --- payload filters -------------------------------------------------------------------


def _payload_mask(original: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    from qdrant_client.http import models
    from qdrant_client.local.payload_filters import normalize_point_ids

    def filter_mask(payloads, payload_filter, ids_inv, deleted_per_vector) -> np.ndarray:
        """The mask of a filter with no id condition, computed once per payload list."""
        if payload_filter is None:
            return np.ones(len(payloads), dtype=bool)
        described = payload_filter.model_dump_json(exclude_none=True)
        key = (id(payloads), len(payloads), described)
        with _lock:
            entry = _masks.get(key)
            if entry is not None:
                _masks.move_to_end(key)
                return entry[1].copy()
        mask = original(payloads, payload_filter, ids_inv, deleted_per_vector)
        with _lock:
            _masks[key] = (payloads, mask)
            while len(_masks) > _MAX_MASKS:
                _masks.popitem(last=False)
        return mask.copy()

    def position_of(ids_inv) -> dict[Any, int]:
        key = ("positions", id(ids_inv), len(ids_inv))
        return _structure(key, ids_inv, lambda: {pid: i for i, pid in enumerate(ids_inv)})

    def calculate_payload_mask(payloads, payload_filter, ids_inv, deleted_per_vector):
        # A prefetch narrows its query to the ids its sources returned by adding a
        # ``has_id`` condition to ``must``; those ids never repeat, so they are looked up
        # by position and the rest of the filter (the tenant) comes from the cache.
        must = payload_filter.must if payload_filter is not None else None
        by_id = (
            [c for c in must if isinstance(c, models.HasIdCondition)]
            if isinstance(must, list)
            else []
        )
        if not by_id:
            return filter_mask(payloads, payload_filter, ids_inv, deleted_per_vector)
        others = [c for c in must if not isinstance(c, models.HasIdCondition)]
        rest = payload_filter.model_copy(update={"must": others or None})
        if (
            rest.must is None
            and rest.should is None
            and rest.must_not is None
            and (rest.min_should is None)
        ):
            rest = None
        mask = filter_mask(payloads, rest, ids_inv, deleted_per_vector)
        positions = position_of(ids_inv)
        for condition in by_id:
            allowed = np.zeros(len(payloads), dtype=bool)
            found = [positions.get(pid) for pid in normalize_point_ids(tuple(condition.has_id))]
            allowed[[i for i in found if i is not None and i < len(payloads)]] = True
            mask &= allowed
        return mask

    return calculate_payload_mask


# --- dense vectors ------------------------------------------------------------------------


def _dense_distance(original: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    from qdrant_client.http import models

    def rows_are_unit(vectors: np.ndarray) -> bool:
        norms = np.linalg.norm(vectors, axis=-1)
        return bool(np.all((np.abs(norms - 1.0) < 1e-4) | (norms == 0.0)))

    def calculate_distance(query, vectors, distance_type):
        # Cosine in local mode renormalizes every stored vector on every query, though
        # upsert already stored them normalized; check that once per array instead.
        if distance_type != models.Distance.COSINE or query.ndim != 1 or vectors.ndim != 2:
            return original(query, vectors, distance_type)
        if np.isnan(query).any():
            raise ValueError("Query vector must not contain NaN")
        base = vectors.base if vectors.base is not None else vectors
        key = ("unit", vectors.__array_interface__["data"][0], vectors.shape, vectors.dtype.str)
        if not _structure(key, base, lambda: rows_are_unit(vectors)):
            return original(query, vectors, distance_type)
        norm = np.linalg.norm(query)
        return vectors @ (query / (norm if norm != 0.0 else _EPSILON))

    return calculate_distance


# --- sparse vectors ----------------------------------------------------------------------


class SparsePostings:
    """An inverted index over a list of sparse vectors: term -> (rows, weights)."""

    def __init__(self, vectors: list[Any]) -> None:
        self.size = len(vectors)
        lengths = np.fromiter((len(v.indices) for v in vectors), dtype=np.int64, count=self.size)
        rows = np.repeat(np.arange(self.size, dtype=np.int64), lengths)
        terms = np.fromiter(
            (i for v in vectors for i in v.indices), dtype=np.int64, count=int(lengths.sum())
        )
        weights = np.fromiter(
            (x for v in vectors for x in v.values), dtype=np.float64, count=len(terms)
        )
        order = np.argsort(terms, kind="stable")
        self.rows, self.weights = rows[order], weights[order]
        sorted_terms = terms[order]
        self.terms, starts = np.unique(sorted_terms, return_index=True)
        self.starts = np.append(starts, len(sorted_terms))

    def scores(self, query: Any) -> np.ndarray:
        """Dot product with every vector; ``-inf`` where no term is shared (local mode's rule)."""
        totals = np.zeros(self.size, dtype=np.float64)
        touched = np.zeros(self.size, dtype=bool)
        for term, value in zip(query.indices, query.values, strict=True):
            at = int(np.searchsorted(self.terms, term))
            if at == len(self.terms) or self.terms[at] != term:
                continue
            rows = self.rows[self.starts[at] : self.starts[at + 1]]
            totals[rows] += value * self.weights[self.starts[at] : self.starts[at + 1]]
            touched[rows] = True
        scores = totals.astype(np.float32)
        scores[~touched] = np.float32("-inf")
        return scores


def _sparse_distance(original: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def calculate_distance_sparse(query, vectors, empty_is_zero: bool = False):
        if empty_is_zero or not vectors:
            return original(query, vectors, empty_is_zero)
        key = ("sparse", len(vectors), id(vectors[0]), id(vectors[-1]))
        postings = _structure(key, (vectors[0], vectors[-1]), lambda: SparsePostings(vectors))
        return postings.scores(query)

    return calculate_distance_sparse


# --- multivectors (late interaction) -----------------------------------------------------


class StackedMatrices:
    """Every point's matrix stacked into one, with where each point's rows start."""

    def __init__(self, matrices: list[np.ndarray], *, normalize: bool) -> None:
        stacked = np.concatenate(matrices, axis=0).astype(np.float32, copy=False)
        if normalize:
            norms = np.linalg.norm(stacked, axis=-1)[:, np.newaxis]
            stacked = stacked / np.where(norms != 0.0, norms, _EPSILON)
        self.rows = stacked
        lengths = np.fromiter((len(m) for m in matrices), dtype=np.int64, count=len(matrices))
        self.starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))

    def max_sim(self, query: np.ndarray, *, normalize: bool) -> np.ndarray:
        """Sum over query rows of the best-matching row of each point."""
        if normalize:
            norms = np.linalg.norm(query, axis=-1)[:, np.newaxis]
            query = query / np.where(norms != 0.0, norms, _EPSILON)
        similarity = query.astype(np.float32) @ self.rows.T
        best = np.maximum.reduceat(similarity, self.starts, axis=1)
        return best.sum(axis=0, dtype=np.float64)


def _multi_distance(original: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    from qdrant_client.http import models

    def calculate_multi_distance(query_matrix, matrices, distance_type):
        supported = distance_type in (models.Distance.COSINE, models.Distance.DOT)
        if not supported or not matrices or any(len(m) == 0 for m in matrices):
            return original(query_matrix, matrices, distance_type)
        if np.isnan(query_matrix).any():
            raise ValueError("Query matrix must not contain NaN")
        normalize = distance_type == models.Distance.COSINE
        key = ("multi", normalize, len(matrices), id(matrices[0]), id(matrices[-1]))
        stacked = _structure(
            key,
            (matrices[0], matrices[-1]),
            lambda: StackedMatrices(matrices, normalize=normalize),
        )
        return stacked.max_sim(np.asarray(query_matrix), normalize=normalize)

    return calculate_multi_distance


# --- installing --------------------------------------------------------------------------

# The writes after which every structure is dropped.
COLLECTION_WRITES = (
    "upsert",
    "delete",
    "update_vectors",
    "delete_vectors",
    "set_payload",
    "overwrite_payload",
    "delete_payload",
    "clear_payload",
    "batch_update_points",
)
CLIENT_WRITES = ("create_collection", "delete_collection", "recreate_collection", "close")


def _clearing_first(method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        clear()
        try:
            return method(*args, **kwargs)
        finally:
            clear()

    wrapper.__wrapped__ = method  # type: ignore[attr-defined]
    return wrapper


def install() -> None:
    """Patch qdrant-client's local mode in this process; once is enough, again does nothing.

    Also keeps NumPy's BLAS to one thread: the bulk scoring here is matrix-vector work that
    one core handles in milliseconds, while OpenBLAS worker threads spin after each call and
    starve the embedder's PyTorch threads on a small machine (measured on 2 cores: a 10 ms
    query embedding became 110 ms right after a search).
    """
    global _installed
    with _install_lock:
        if not _installed:
            _patch()
            _installed = True


def _patch() -> None:
    import importlib.metadata
    import logging

    from threadpoolctl import threadpool_limits

    version = importlib.metadata.version("qdrant-client")
    if version != PATCHED_FOR:
        logging.getLogger("salesboost.retrieval").warning(
            "retrieval.compat: the bulk scoring patch for Qdrant local mode was written for "
            "qdrant-client %s, and %s is installed: not patched, local mode's own (slower) "
            "scoring is used",
            PATCHED_FOR,
            version,
        )
        return

    threadpool_limits(limits=1, user_api="blas")
    from qdrant_client.local import local_collection, qdrant_local

    local_collection.calculate_payload_mask = _payload_mask(local_collection.calculate_payload_mask)
    local_collection.calculate_distance = _dense_distance(local_collection.calculate_distance)
    local_collection.calculate_distance_sparse = _sparse_distance(
        local_collection.calculate_distance_sparse
    )
    local_collection.calculate_multi_distance = _multi_distance(
        local_collection.calculate_multi_distance
    )
    for name in COLLECTION_WRITES:
        method = getattr(local_collection.LocalCollection, name)
        setattr(local_collection.LocalCollection, name, _clearing_first(method))
    for name in CLIENT_WRITES:
        method = getattr(qdrant_local.QdrantLocal, name)
        setattr(qdrant_local.QdrantLocal, name, _clearing_first(method))
