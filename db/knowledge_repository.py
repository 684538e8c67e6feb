"""Knowledge bases and their uploaded documents, as rows (the chunks live in Qdrant).

Every function runs inside a tenant transaction (:func:`db.engine.tenant_transaction`), so
row-level security limits it to the caller's tenant.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from db.models import KnowledgeBase, KnowledgeDocument
from db.repositories import NotFoundError


async def get_knowledge_base(session: AsyncSession, *, slug: str) -> KnowledgeBase:
    found = await session.scalar(select(KnowledgeBase).where(KnowledgeBase.slug == slug))
    if found is None:
        raise NotFoundError(f"knowledge base {slug!r}")
    return found


async def list_knowledge_bases(session: AsyncSession) -> list[KnowledgeBase]:
    return list(await session.scalars(select(KnowledgeBase).order_by(KnowledgeBase.slug)))


async def ensure_knowledge_base(
    session: AsyncSession, *, tenant_id: uuid.UUID, slug: str, chunking: dict
) -> KnowledgeBase:
    """The knowledge base ``slug``, created with ``chunking`` if it does not exist yet."""
    try:
        return await get_knowledge_base(session, slug=slug)
    except NotFoundError:
        base = KnowledgeBase(tenant_id=tenant_id, slug=slug, chunking=chunking)
        session.add(base)
        await session.flush()
        return base


async def list_documents(
    session: AsyncSession, *, knowledge_base_id: uuid.UUID, with_content: bool = False
) -> list[KnowledgeDocument]:
    query = (
        select(KnowledgeDocument)
        .where(KnowledgeDocument.knowledge_base_id == knowledge_base_id)
        .order_by(KnowledgeDocument.created_at, KnowledgeDocument.filename)
    )
    if with_content:
        query = query.options(undefer(KnowledgeDocument.content))
    return list(await session.scalars(query))


async def document_by_sha(
    session: AsyncSession, *, knowledge_base_id: uuid.UUID, sha256: str
) -> KnowledgeDocument | None:
    return await session.scalar(
        select(KnowledgeDocument).where(
            KnowledgeDocument.knowledge_base_id == knowledge_base_id,
            KnowledgeDocument.sha256 == sha256,
        )
    )


async def get_document(
    session: AsyncSession, *, knowledge_base_id: uuid.UUID, document_id: uuid.UUID
) -> KnowledgeDocument:
    found = await session.scalar(
        select(KnowledgeDocument).where(
            KnowledgeDocument.knowledge_base_id == knowledge_base_id,
            KnowledgeDocument.id == document_id,
        )
    )
    if found is None:
        raise NotFoundError(f"document {document_id}")
    return found


async def delete_document(session: AsyncSession, *, document_id: uuid.UUID) -> None:
    await session.execute(delete(KnowledgeDocument).where(KnowledgeDocument.id == document_id))
