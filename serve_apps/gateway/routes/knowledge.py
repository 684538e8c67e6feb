"""The knowledge-base API: uploads, the search-testing view, re-index and restore (admins and
managers).

Rows in PostgreSQL say what was uploaded; the knowledge service owns the chunks in Qdrant.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Path, Query, Request, Response, UploadFile
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import knowledge_repository as kb_repo
from db.engine import tenant_transaction
from db.models import KnowledgeBase, KnowledgeDocument
from db.repositories import NotFoundError
from retrieval.chunking import ChunkingConfig
from retrieval.names import KB_SLUG_PATTERN
from serve_apps.contracts.knowledge import Refusal
from serve_apps.gateway.deps import (
    EDITORS,
    AuditDep,
    CallerDep,
    StateDep,
    TenantSessionDep,
    having_role,
)
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.identity import Identity
from serve_apps.gateway.schemas.knowledge import (
    DocumentOut,
    KnowledgeBaseOut,
    KnowledgeBaseSettings,
    SearchTestOut,
)
from serve_apps.gateway.state import GatewayState

log = logging.getLogger("salesboost.gateway")
router = APIRouter(tags=["knowledge"], dependencies=[Depends(having_role(*EDITORS))])

KnowledgeBaseSlug = Annotated[
    str, Path(pattern=KB_SLUG_PATTERN, description="Knowledge base name.")
]
UPLOAD_CHUNK = 1 << 20


def _document_out(document: KnowledgeDocument) -> DocumentOut:
    return DocumentOut.model_validate(document, from_attributes=True)


async def _knowledge(state: GatewayState, method: str, **kwargs: Any) -> Any:
    """Call the knowledge service; when it (or the Qdrant behind it) fails, answer 503.

    What failed stays in the log: an internal exception's text is no message for a user.
    """
    from serve_apps.knowledge.encoder_swap import EncoderChangeRefused, own_words

    try:
        return await getattr(state.knowledge, method).remote(**kwargs)
    except EncoderChangeRefused as exc:
        raise APIError(409, "conflict", own_words(exc)) from None
    except Exception as exc:
        cause = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else repr(exc)
        raise APIError(
            503,
            "knowledge_unavailable",
            "the knowledge base is unavailable just now; try again, or quote the request id",
            detail=f"knowledge service {method} failed: {cause}",
        ) from None


async def _read_upload(limit: int, request: Request, file: UploadFile) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise APIError(413, "upload_too_large", f"uploads are limited to {limit} bytes")
    data = bytearray()
    while block := await file.read(UPLOAD_CHUNK):
        data += block
        if len(data) > limit:
            raise APIError(413, "upload_too_large", f"uploads are limited to {limit} bytes")
    return bytes(data)


async def _base_out(
    state: GatewayState, who: Identity, base: KnowledgeBase, documents: list[KnowledgeDocument]
) -> KnowledgeBaseOut:
    live = await _knowledge(state, "state", tenant_id=str(who.tenant_id), knowledge_base=base.slug)
    return KnowledgeBaseOut(
        slug=base.slug,
        chunking=ChunkingConfig.model_validate(base.chunking),
        live_version=live.live_version,
        versions=live.versions,
        version_embedders=live.version_embedders,
        documents=[_document_out(d) for d in documents],
    )


async def _existing(session: AsyncSession, slug: str) -> KnowledgeBase:
    try:
        return await kb_repo.get_knowledge_base(session, slug=slug)
    except NotFoundError:
        raise APIError(404, "knowledge_base_not_found", f"no knowledge base {slug!r}") from None


# --- knowledge bases --------------------------------------------------------------------


@router.get("/v1/knowledge-bases", response_model=list[KnowledgeBaseOut])
async def list_knowledge_bases(who: CallerDep, state: StateDep) -> list[KnowledgeBaseOut]:
    async with tenant_transaction(state.sessions, who.tenant_id) as session:
        bases = await kb_repo.list_knowledge_bases(session)
        listed = [(b, await kb_repo.list_documents(session, knowledge_base_id=b.id)) for b in bases]
    return [await _base_out(state, who, base, documents) for base, documents in listed]


@router.put("/v1/knowledge-bases/{knowledge_base}", response_model=KnowledgeBaseOut)
async def put_knowledge_base(
    knowledge_base: KnowledgeBaseSlug,
    body: KnowledgeBaseSettings,
    who: CallerDep,
    audit: AuditDep,
    state: StateDep,
) -> KnowledgeBaseOut:
    """Create a knowledge base or change its chunking (a re-index applies the change)."""
    chunking = body.chunking.model_dump()
    async with tenant_transaction(state.sessions, who.tenant_id) as session:
        base = await kb_repo.ensure_knowledge_base(
            session, tenant_id=who.tenant_id, slug=knowledge_base, chunking=chunking
        )
        base.chunking = chunking
        documents = await kb_repo.list_documents(session, knowledge_base_id=base.id)
        await audit.record(session, "knowledge_base.configure", knowledge_base, chunking=chunking)
    return await _base_out(state, who, base, documents)


@router.get("/v1/knowledge-bases/{knowledge_base}", response_model=KnowledgeBaseOut)
async def get_knowledge_base(
    knowledge_base: KnowledgeBaseSlug, who: CallerDep, state: StateDep
) -> KnowledgeBaseOut:
    async with tenant_transaction(state.sessions, who.tenant_id) as session:
        base = await _existing(session, knowledge_base)
        documents = await kb_repo.list_documents(session, knowledge_base_id=base.id)
    return await _base_out(state, who, base, documents)


# --- documents --------------------------------------------------------------------------


@router.post(
    "/v1/knowledge-bases/{knowledge_base}/documents",
    response_model=DocumentOut,
    status_code=201,
    responses={200: {"model": DocumentOut, "description": "The same file was there already."}},
)
async def upload_document(
    knowledge_base: KnowledgeBaseSlug,
    request: Request,
    response: Response,
    file: Annotated[UploadFile, File(description="PDF, DOCX, TXT or Markdown.")],
    who: CallerDep,
    audit: AuditDep,
    state: StateDep,
) -> DocumentOut:
    """Parse, chunk, embed and index one file into the live version."""
    filename = (file.filename or "").strip()[:255]
    if not filename:
        raise APIError(422, "filename_missing", "the upload needs a file name with its type")
    data = await _read_upload(state.settings.max_upload_bytes, request, file)
    sha256 = hashlib.sha256(data).hexdigest()
    async with tenant_transaction(state.sessions, who.tenant_id) as session:
        base = await kb_repo.ensure_knowledge_base(
            session,
            tenant_id=who.tenant_id,
            slug=knowledge_base,
            chunking=ChunkingConfig().model_dump(),
        )
        existing = await kb_repo.document_by_sha(session, knowledge_base_id=base.id, sha256=sha256)
        base_id, chunking = base.id, base.chunking
    if existing is not None:
        response.status_code = 200
        return _document_out(existing)
    outcome = await _knowledge(
        state,
        "ingest",
        tenant_id=str(who.tenant_id),
        knowledge_base=knowledge_base,
        chunking=chunking,
        filename=filename,
        data=data,
    )
    if isinstance(outcome, Refusal):
        raise APIError(outcome.status, "document_rejected", outcome.reason)
    try:
        async with tenant_transaction(state.sessions, who.tenant_id) as session:
            document = KnowledgeDocument(
                tenant_id=who.tenant_id,
                knowledge_base_id=base_id,
                sha256=sha256,
                filename=filename,
                title=outcome.title[:500],
                size_bytes=len(data),
                chunks=outcome.chunks,
                content=data,
            )
            session.add(document)
            await audit.record(
                session,
                "knowledge.document.upload",
                f"{knowledge_base}/{filename}",
                sha256=sha256,
                chunks=outcome.chunks,
                size_bytes=len(data),
            )
    except IntegrityError:  # the same file, uploaded twice at once: one row, same chunks
        async with tenant_transaction(state.sessions, who.tenant_id) as session:
            again = await kb_repo.document_by_sha(session, knowledge_base_id=base_id, sha256=sha256)
        if again is None:
            raise
        document = again
        response.status_code = 200
    log.info("indexed %r into %s: %d chunks", filename, knowledge_base, outcome.chunks)
    return _document_out(document)


@router.delete("/v1/knowledge-bases/{knowledge_base}/documents/{document_id}", status_code=204)
async def delete_document(
    knowledge_base: KnowledgeBaseSlug,
    document_id: uuid.UUID,
    who: CallerDep,
    audit: AuditDep,
    state: StateDep,
    session: TenantSessionDep,
) -> Response:
    base = await _existing(session, knowledge_base)
    try:
        document = await kb_repo.get_document(
            session, knowledge_base_id=base.id, document_id=document_id
        )
    except NotFoundError:
        raise APIError(404, "document_not_found", "no such document") from None
    await _knowledge(
        state,
        "remove",
        tenant_id=str(who.tenant_id),
        knowledge_base=knowledge_base,
        document_id=document.sha256[:32],
    )
    await kb_repo.delete_document(session, document_id=document.id)
    await audit.record(
        session,
        "knowledge.document.delete",
        f"{knowledge_base}/{document.filename}",
        sha256=document.sha256,
    )
    return Response(status_code=204)


# --- search testing ---------------------------------------------------------------------


@router.get("/v1/knowledge-bases/{knowledge_base}/search", response_model=SearchTestOut)
async def search_test(
    knowledge_base: KnowledgeBaseSlug,
    q: Annotated[str, Query(min_length=1, max_length=1000, description="The query.")],
    who: CallerDep,
    state: StateDep,
    top_k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> SearchTestOut:
    """The ranked chunks for a query, each with its score and rank at every stage."""
    if not q.strip():
        raise APIError(422, "query_empty", "the query is blank")
    async with tenant_transaction(state.sessions, who.tenant_id) as session:
        await _existing(session, knowledge_base)
    explained = await _knowledge(
        state,
        "explain",
        tenant_id=str(who.tenant_id),
        knowledge_base=knowledge_base,
        query=q,
        top_k=top_k,
    )
    return SearchTestOut(
        query=q, version=explained.version, embedder=explained.embedder, hits=explained.hits
    )


# --- versions ---------------------------------------------------------------------------


@router.post("/v1/knowledge-bases/{knowledge_base}/reindex", response_model=KnowledgeBaseOut)
async def reindex(
    knowledge_base: KnowledgeBaseSlug, who: CallerDep, audit: AuditDep, state: StateDep
) -> KnowledgeBaseOut:
    """Build a new version from the stored documents beside the live one, then switch to it.

    The live version answers searches until the switch, which is one atomic alias change;
    the previous version stays and can be restored.
    """
    tenant = str(who.tenant_id)
    async with tenant_transaction(state.sessions, who.tenant_id) as session:
        base = await _existing(session, knowledge_base)
        documents = await kb_repo.list_documents(
            session, knowledge_base_id=base.id, with_content=True
        )
        chunking = base.chunking
    version = await _knowledge(
        state, "new_version", tenant_id=tenant, knowledge_base=knowledge_base
    )
    chunk_counts: dict[uuid.UUID, int] = {}
    for document in documents:
        outcome = await _knowledge(
            state,
            "ingest",
            tenant_id=tenant,
            knowledge_base=knowledge_base,
            chunking=chunking,
            filename=document.filename,
            data=document.content,
            version=version,
        )
        if isinstance(outcome, Refusal):
            await _knowledge(
                state,
                "drop_version",
                tenant_id=tenant,
                knowledge_base=knowledge_base,
                version=version,
            )
            raise APIError(
                422,
                "reindex_failed",
                f"{document.filename} could not be indexed again: {outcome.reason}; "
                "the live version is unchanged",
            )
        chunk_counts[document.id] = outcome.chunks
    try:
        await _knowledge(
            state, "activate", tenant_id=tenant, knowledge_base=knowledge_base, version=version
        )
    except APIError:  # an embedder change began meanwhile: what was built is not kept
        await _knowledge(
            state, "drop_version", tenant_id=tenant, knowledge_base=knowledge_base, version=version
        )
        raise
    async with tenant_transaction(state.sessions, who.tenant_id) as session:
        base = await _existing(session, knowledge_base)
        documents = await kb_repo.list_documents(session, knowledge_base_id=base.id)
        for document in documents:
            document.chunks = chunk_counts.get(document.id, document.chunks)
        await audit.record(session, "knowledge_base.reindex", knowledge_base, version=version)
    log.info("re-indexed %s as version %d (%d documents)", knowledge_base, version, len(documents))
    return await _base_out(state, who, base, documents)


@router.post(
    "/v1/knowledge-bases/{knowledge_base}/versions/{version}/activate",
    response_model=KnowledgeBaseOut,
)
async def activate_version(
    knowledge_base: KnowledgeBaseSlug,
    version: Annotated[int, Path(ge=1, le=1_000_000)],
    who: CallerDep,
    audit: AuditDep,
    state: StateDep,
) -> KnowledgeBaseOut:
    """Make ``version`` live again (restore a previous index)."""
    tenant = str(who.tenant_id)
    async with tenant_transaction(state.sessions, who.tenant_id) as session:
        base = await _existing(session, knowledge_base)
        documents = await kb_repo.list_documents(session, knowledge_base_id=base.id)
    live = await _knowledge(state, "state", tenant_id=tenant, knowledge_base=knowledge_base)
    if version not in live.versions:
        raise APIError(404, "version_not_found", f"{knowledge_base!r} has no version {version}")
    await _knowledge(
        state, "activate", tenant_id=tenant, knowledge_base=knowledge_base, version=version
    )
    async with tenant_transaction(state.sessions, who.tenant_id) as session:
        await audit.record(session, "knowledge_base.activate", knowledge_base, version=version)
    return await _base_out(state, who, base, documents)
