"""Changing the embedder or the reranker under live searches, run by the knowledge service.

The embedder swap:

    validate ─► lock ─► probe the new embedder (its replicas load it; it embeds a query)
      ─► for every tenant's knowledge base whose live version another embedder built:
           rebuild it by the new one beside the live version, and switch when built
           (a failure leaves that knowledge base on its live version, and says why)
      ─► the new embedder builds new versions from then on ─► a second pass for the
         knowledge bases made meanwhile ─► unlock

Searches go on throughout: each embeds its query by the embedder of the version it searches
(the live one until the switch, the new one after), so no query meets vectors of two models.
The old versions stay: ``restore`` puts back, in every knowledge base, the newest version an
embedder built (rebuilding by it those that have none, made since), and makes it the one new
versions are built by.

The reranker swap has no index to build: once the new cross-encoder answers, the next
searches are scored by it; a search under way keeps the scorer it began with.

One change of each at a time (a Redis lock per kind, renewed while the change runs: a
replica that dies frees it, and the change shows as interrupted); a re-index or a restore of
a knowledge base waits for the embedder's change to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from models.encoders import LATE_INTERACTION, EncoderDeploymentSettings
from retrieval.embedder import EmbedderRecord
from serve_apps.knowledge import encoder_routing
from serve_apps.knowledge.encoder_routing import (
    LOCK_TTL_S,
    BaseFailure,
    EncoderChange,
    EncoderKind,
    EncoderRoutingStore,
)

log = logging.getLogger("salesboost.knowledge")

# The failures a status lists (the count is the whole number).
MAX_FAILURES_SHOWN = 50


class EncoderChangeRefused(RuntimeError):
    """Another change of this encoder runs, or an embedder change holds the knowledge bases'
    versions (the HTTP API answers 409)."""


@dataclass(frozen=True, order=True)
class KnowledgeBaseRef:
    """One company's knowledge base, as the store names it."""

    tenant_id: str
    name: str


@dataclass(frozen=True)
class LiveState:
    version: int
    embedder: str


class KnowledgeIndex(Protocol):
    """What a change needs of the knowledge bases and the encoders (the knowledge service)."""

    async def knowledge_bases(self) -> list[KnowledgeBaseRef]: ...

    async def live(self, base: KnowledgeBaseRef) -> LiveState | None: ...

    async def rebuild(self, base: KnowledgeBaseRef, embedder: EmbedderRecord) -> int | None:
        """A new version by ``embedder`` made live; its number (None: nothing to rebuild)."""
        ...

    async def restore(self, base: KnowledgeBaseRef, embedder_version: str) -> int | None:
        """The newest version ``embedder_version`` built made live; None when none is kept."""
        ...

    async def find_embedder(self, embedder_version: str) -> EmbedderRecord | None:
        """The record of ``embedder_version`` from a version it built, if one is kept."""
        ...

    async def probe_embedder(self, embedder: EmbedderRecord) -> None: ...

    async def probe_reranker(self, reranker: EncoderDeploymentSettings) -> None: ...


class EncoderChanges:
    def __init__(
        self,
        routing: EncoderRoutingStore,
        index: KnowledgeIndex,
        *,
        reranker_served: bool,
    ) -> None:
        """``reranker_served``: a Reranker deployment runs (a cross-encoder has somewhere to
        run; without one, searches rerank by late interaction only)."""
        self._routing = routing
        self._index = index
        self._reranker_served = reranker_served
        self._tasks: set[asyncio.Task[None]] = set()

    # --- what is active, and the last changes ---------------------------------------------

    async def status(self) -> dict[str, Any]:
        embedder = await self._routing.active_embedder(fresh=True)
        reranker = await self._routing.active_reranker(fresh=True)
        configured_reranker = self._routing.configured_reranker
        configured_reranker_version = _reranker_version(
            configured_reranker
            if configured_reranker and configured_reranker.is_cross_encoder
            else None
        )
        last_embedder = await self._routing.status("embedder")
        last_reranker = await self._routing.status("reranker")
        return {
            "embedder": {
                "active": embedder.version,
                "dim": embedder.dim,
                "settings": embedder.settings,
                "configured": embedder.version == self._routing.configured_embedder.version,
                "configured_version": self._routing.configured_embedder.version,
                "last_change": last_embedder.model_dump() if last_embedder else None,
            },
            "reranker": {
                "active": _reranker_version(reranker),
                "configured": _reranker_version(reranker) == configured_reranker_version,
                "configured_version": configured_reranker_version,
                "served": self._reranker_served,
                "last_change": last_reranker.model_dump() if last_reranker else None,
            },
        }

    async def embedder_change_running(self) -> bool:
        return await self._routing.locked("embedder")

    # --- the embedder ---------------------------------------------------------------------

    async def swap_embedder(self, settings_json: dict[str, Any]) -> dict[str, Any]:
        """Start the swap and return at once (its progress: ``status``). ``ValueError`` for a
        config that is not an embedder this deployment can run; ``EncoderChangeRefused``
        while another change of the embedder runs."""
        settings = self._embedder_settings(settings_json)
        record = settings.embedder_record()
        token = await self._lock("embedder")
        try:
            previous = await self._routing.active_embedder(fresh=True)
            change = _change("embedder", "swap", record.version, previous.version)
            await self._routing.set_status(change)
        except BaseException:
            await self._routing.unlock("embedder", token)
            raise
        self._start(self._holding("embedder", token, self._run_embedder_swap(change, record)))
        return change.model_dump()

    async def _embedder_answers(self, record: EmbedderRecord, step: Any) -> bool:
        """Whether the embedder loads and embeds a query; if not, the change ends failed."""
        try:
            await self._index.probe_embedder(record)
        except Exception as exc:
            await step(
                state="failed",
                message=f"nothing changed: {record.version} did not load or answer: {_reason(exc)}",
            )
            return False
        return True

    async def _run_embedder_swap(self, change: EncoderChange, record: EmbedderRecord) -> None:
        step = self._stepper(change)
        if not await self._embedder_answers(record, step):
            return
        await step(state="rebuilding", message="rebuilding the knowledge bases")
        failures: dict[KnowledgeBaseRef, BaseFailure] = {}
        moving: set[KnowledgeBaseRef] = set()
        switched = 0
        # The second pass takes the knowledge bases made (by the old embedder) during the
        # first, once the new one builds new versions, and tries once more those whose
        # rebuild failed in the first (a replica restarting, a document changing under it).
        for first_pass in (True, False):
            todo = await self._not_built_by(record.version)
            moving |= {base for base, _ in todo}
            for base, live in todo:
                try:
                    if await self._index.rebuild(base, record) is not None:
                        switched += 1
                    failures.pop(base, None)
                except Exception as exc:
                    log.warning("rebuilding %s by %s failed: %r", base, record.version, exc)
                    failures[base] = _failure(base, live, exc)
                await step(
                    knowledge_bases=len(moving),
                    switched=switched,
                    failures=list(failures.values())[:MAX_FAILURES_SHOWN],
                    message=f"{switched} of {len(moving)} knowledge bases rebuilt",
                )
            if first_pass:
                if todo and not switched:
                    await step(
                        state="failed",
                        message="every rebuild failed: each knowledge base stays on its live "
                        "version and the old embedder builds new ones (see failures)",
                    )
                    return
                await self._routing.set_active_embedder(record)
        await step(**_outcome(change, switched, moving, failures, "rebuilt by"))

    async def restore_embedder(self, version: str) -> dict[str, Any]:
        """Start putting back, in every knowledge base, the newest version ``version``
        built (a knowledge base with none is rebuilt by it), and make it the embedder that
        builds new versions (progress: ``status``). ``ValueError`` when no kept version
        records it and it is not the Serve config's."""
        version = version.strip()
        if not version or len(version) > 300:
            raise ValueError("version: an embedder version (model@hash), as status shows")
        self._require_routing()
        token = await self._lock("embedder")
        try:
            if version == self._routing.configured_embedder.version:
                record: EmbedderRecord | None = self._routing.configured_embedder
            else:
                record = await self._index.find_embedder(version)
            if record is None:
                raise ValueError(
                    f"no knowledge-base version kept was built by {version}, and it is not "
                    "the Serve config's embedder"
                )
            previous = await self._routing.active_embedder(fresh=True)
            change = _change("embedder", "restore", version, previous.version)
            await self._routing.set_status(change)
        except BaseException:
            await self._routing.unlock("embedder", token)
            raise
        self._start(self._holding("embedder", token, self._run_restore(change, record)))
        return change.model_dump()

    async def _run_restore(self, change: EncoderChange, record: EmbedderRecord) -> None:
        step = self._stepper(change)
        if not await self._embedder_answers(record, step):
            return
        await step(state="restoring", message="making its versions live again")
        todo = await self._not_built_by(record.version)
        failures: dict[KnowledgeBaseRef, BaseFailure] = {}
        switched = 0
        for base, live in todo:
            # Its newest version by that embedder; one made since the swap has none kept,
            # and is rebuilt by it as a swap would.
            try:
                if await self._index.restore(base, record.version) is None:
                    await self._index.rebuild(base, record)
                switched += 1
            except Exception as exc:
                log.warning("restoring %s to %s failed: %r", base, record.version, exc)
                failures[base] = _failure(base, live, exc)
        await self._routing.set_active_embedder(record)
        moving = {base for base, _ in todo}
        await step(**_outcome(change, switched, moving, failures, "restored to"))

    async def _not_built_by(
        self, embedder_version: str
    ) -> list[tuple[KnowledgeBaseRef, LiveState]]:
        """The knowledge bases with a live version another embedder built."""
        todo = []
        for base in sorted(await self._index.knowledge_bases()):
            live = await self._index.live(base)
            if live is not None and live.embedder != embedder_version:
                todo.append((base, live))
        return todo

    def _embedder_settings(self, settings_json: dict[str, Any]) -> EncoderDeploymentSettings:
        self._require_routing()
        settings = EncoderDeploymentSettings.model_validate(settings_json)
        if settings.kind != "embedder":
            raise ValueError("kind: a reranker config (swap it as the reranker)")
        configured = self._routing.configured_embedder.settings.get("accelerator", "cpu")
        if settings.accelerator != configured:
            raise ValueError(
                f"accelerator={settings.accelerator}: the Embedder deployment's replicas run "
                f"on {configured} (their resources are the Serve config's)"
            )
        return settings

    # --- the reranker ---------------------------------------------------------------------

    async def swap_reranker(self, settings_json: dict[str, Any]) -> dict[str, Any]:
        """Start the swap and return at once (progress: ``status``). ``ValueError`` for a
        config that is not a reranker this deployment can run; ``EncoderChangeRefused``
        while another reranker change runs."""
        self._require_routing()
        settings = EncoderDeploymentSettings.model_validate(settings_json)
        if settings.kind != "reranker":
            raise ValueError("kind: an embedder config (swap it as the embedder)")
        configured = self._routing.configured_reranker
        if settings.is_cross_encoder:
            if not self._reranker_served:
                raise ValueError(
                    f"model={settings.model!r}: this deployment runs no Reranker deployment "
                    "(name a reranker_config in the Serve config), so searches rerank by "
                    f"{LATE_INTERACTION} only"
                )
            if configured is not None and settings.accelerator != configured.accelerator:
                raise ValueError(
                    f"accelerator={settings.accelerator}: the Reranker deployment's replicas "
                    f"run on {configured.accelerator}"
                )
        token = await self._lock("reranker")
        try:
            previous = _reranker_version(await self._routing.active_reranker(fresh=True))
            change = _change("reranker", "swap", settings.version, previous)
            if settings.version == previous:
                change = change.model_copy(
                    update={"state": "unchanged", "message": "this reranker already scores"}
                )
            await self._routing.set_status(change)
        except BaseException:
            await self._routing.unlock("reranker", token)
            raise
        if change.state == "unchanged":
            await self._routing.unlock("reranker", token)
        else:
            self._start(self._holding("reranker", token, self._run_reranker_swap(change, settings)))
        return change.model_dump()

    async def _run_reranker_swap(
        self, change: EncoderChange, settings: EncoderDeploymentSettings
    ) -> None:
        step = self._stepper(change)
        if settings.is_cross_encoder:
            try:
                await self._index.probe_reranker(settings)
            except Exception as exc:
                await step(
                    state="failed",
                    message=f"nothing changed: {settings.version} did not load or answer: "
                    f"{_reason(exc)}",
                )
                return
        await self._routing.set_active_reranker(settings)
        await step(
            state="switched",
            message=f"new searches are scored by {settings.version}; those under way finish "
            f"on {change.previous}",
        )
        # Every knowledge service replica reads the active reranker again within this.
        await asyncio.sleep(encoder_routing.ROUTING_CACHE_S * 3)
        await step(state="done", message=f"searches are scored by {settings.version}")

    # --- the machinery --------------------------------------------------------------------

    def _require_routing(self) -> None:
        if not self._routing.can_change:
            raise ValueError("changing the encoders needs Redis (REDIS_URL), which is not set")

    async def _lock(self, kind: EncoderKind) -> str:
        token = await self._routing.lock(kind)
        if token is None:
            raise EncoderChangeRefused(f"a change of the {kind} is already running")
        return token

    async def _holding(
        self, kind: EncoderKind, token: str, work: Coroutine[Any, Any, None]
    ) -> None:
        """Run ``work`` holding ``kind``'s lock, renewed while it runs, released after."""
        async with self._renewed(kind, token):
            try:
                await work
            except Exception as exc:
                log.exception("the %s change failed", kind)
                last = await self._routing.status(kind)
                if last is not None:
                    await self._routing.set_status(
                        last.model_copy(
                            update={
                                "state": "failed",
                                "message": _reason(exc),
                                "updated_at": time.time(),
                            }
                        )
                    )

    @contextlib.asynccontextmanager
    async def _renewed(self, kind: EncoderKind, token: str) -> AsyncIterator[None]:
        async def renew() -> None:
            while True:
                await asyncio.sleep(LOCK_TTL_S / 4)
                if not await self._routing.renew(kind, token):
                    log.error("the %s change lost its lock", kind)

        renewing = asyncio.create_task(renew())
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            await self._routing.unlock(kind, token)

    def _stepper(self, change: EncoderChange) -> Callable[..., Awaitable[None]]:
        """Records each step of a change in its status, and in the log."""

        async def step(**update: Any) -> None:
            nonlocal change
            change = change.model_copy(update={**update, "updated_at": time.time()})
            if "state" in update:
                log.info(
                    "%s %s to %s: %s %s",
                    change.kind,
                    change.action,
                    change.candidate,
                    change.state,
                    change.message,
                )
            await self._routing.set_status(change)

        return step

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _change(
    kind: EncoderKind, action: Literal["swap", "restore"], candidate: str, previous: str | None
) -> EncoderChange:
    now = time.time()
    return EncoderChange(
        kind=kind,
        action=action,
        state="probing",
        candidate=candidate,
        previous=previous,
        started_at=now,
        updated_at=now,
    )


def _outcome(
    change: EncoderChange,
    switched: int,
    moving: set[KnowledgeBaseRef],
    failures: dict[KnowledgeBaseRef, BaseFailure],
    verb: str,
) -> dict[str, Any]:
    """The final step: done, partial (some knowledge bases stay), or unchanged."""
    if not moving and change.previous == change.candidate:
        state, message = "unchanged", f"{change.candidate} already builds every version"
    elif failures:
        state = "partial"
        message = (
            f"{switched} of {len(moving)} knowledge bases {verb} {change.candidate}; "
            f"{len(failures)} stay on their live version (see failures); new versions are "
            f"built by {change.candidate}"
        )
    else:
        state = "done"
        message = f"{switched} knowledge bases {verb} {change.candidate}, which builds new versions"
    return {
        "state": state,
        "message": message,
        "knowledge_bases": len(moving),
        "switched": switched,
        "failures": list(failures.values())[:MAX_FAILURES_SHOWN],
    }


def _failure(base: KnowledgeBaseRef, live: LiveState, exc: BaseException) -> BaseFailure:
    return BaseFailure(
        tenant_id=base.tenant_id,
        knowledge_base=base.name,
        live_version=live.version,
        reason=_reason(exc),
    )


def own_words(exc: BaseException) -> str:
    """An error's own message: a Serve handle raises the replica's error wrapped with its
    traceback (``cause`` is the error itself)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and cause is not exc:
        return own_words(cause)
    text = str(exc).strip()
    return (text.splitlines()[-1] if text else repr(exc))[:300]


_reason = own_words


def _reranker_version(settings: EncoderDeploymentSettings | None) -> str:
    return settings.version if settings is not None else LATE_INTERACTION
