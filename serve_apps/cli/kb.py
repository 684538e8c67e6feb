"""``salesboost kb``: a tenant's knowledge base, through the running API.

The API is the one way in: the knowledge service owns the Qdrant folder (local mode lets
one process open it), and uploads from here take the same checks and the same ingestion
path as uploads from the web.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

kb_app = typer.Typer(
    help="The knowledge base: ingest documents, test search, re-index and restore versions.",
    no_args_is_help=True,
)

UrlOption = Annotated[str, typer.Option(help="Gateway base URL.")]
TenantOption = Annotated[str, typer.Option(help="Tenant slug.")]
UserOption = Annotated[str, typer.Option(help="An admin or manager of the tenant.")]
KbOption = Annotated[str, typer.Option("--kb", help="Knowledge base name.")]

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_ADMIN = "admin@demo.salesboost.local"


@contextmanager
def _client(url: str, tenant: str, user: str) -> Iterator[Any]:
    """An HTTP client on the API; a server that is not there is a message, not a traceback."""
    import httpx

    headers = {"X-Dev-Tenant": tenant, "X-Dev-User": user}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
            yield client
    except httpx.TransportError as exc:
        typer.secho(
            f"no SalesBoost answers at {url} ({type(exc).__name__}); start it with "
            "`salesboost up` or pass --url",
            fg="red",
            err=True,
        )
        raise typer.Exit(code=1) from None


def _fail(response: Any) -> None:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:300]
    typer.secho(f"error {response.status_code}: {message}", fg="red", err=True)
    raise typer.Exit(code=1)


def _ok(response: Any) -> dict:
    """The response's JSON body (200, or 201/202 for what was made or started), or the API's
    error message and exit code 1."""
    if not 200 <= response.status_code < 300:
        _fail(response)
    return response.json()


def _print_state(state: dict) -> None:
    embedder = (state.get("version_embedders") or {}).get(str(state["live_version"]))
    by = f" (embedder {embedder})" if embedder else ""
    typer.echo(
        f"{state['slug']}: live version {state['live_version']}{by} of {state['versions']}, "
        f"chunking {state['chunking']}"
    )
    for document in state["documents"]:
        typer.echo(
            f"  {document['filename']}: {document['title']!r}, {document['chunks']} chunks, "
            f"{document['size_bytes']} bytes ({document['id']})"
        )


@kb_app.command("ingest")
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="PDF, DOCX, TXT or Markdown files.")],
    kb: KbOption = "product",
    url: UrlOption = DEFAULT_URL,
    tenant: TenantOption = "demo",
    user: UserOption = DEFAULT_ADMIN,
) -> None:
    """Upload files into the live version, with a progress bar; refused files say why."""
    from rich.progress import Progress

    refused = 0
    with _client(url, tenant, user) as client, Progress() as progress:
        task = progress.add_task("ingesting", total=len(paths))
        for path in paths:
            try:
                data = path.read_bytes()
            except OSError as exc:
                refused += 1
                progress.console.print(f"[red]unreadable[/] {path}: {exc.strerror}")
                progress.advance(task)
                continue
            response = client.post(
                f"/v1/knowledge-bases/{kb}/documents", files={"file": (path.name, data)}
            )
            body = response.json()
            if response.status_code == 201:
                progress.console.print(
                    f"[green]indexed[/] {path}: {body['title']!r}, {body['chunks']} chunks"
                )
            elif response.status_code == 200:
                progress.console.print(f"[yellow]already there[/] {path}: {body['title']!r}")
            else:
                refused += 1
                reason = body.get("error", {}).get("message", response.text[:200])
                progress.console.print(f"[red]refused[/] {path}: {reason}")
            progress.advance(task)
    if refused:
        raise typer.Exit(code=1)


@kb_app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    kb: KbOption = "product",
    top_k: Annotated[int, typer.Option(min=1, max=50, help="Hits to show.")] = 5,
    url: UrlOption = DEFAULT_URL,
    tenant: TenantOption = "demo",
    user: UserOption = DEFAULT_ADMIN,
) -> None:
    """Search (hybrid + rerank) and show each hit's score and rank at every stage."""
    with _client(url, tenant, user) as client:
        found = _ok(
            client.get(f"/v1/knowledge-bases/{kb}/search", params={"q": query, "top_k": top_k})
        )
    if found.get("version") is not None:
        typer.echo(f"version {found['version']}, query embedded by {found['embedder']}")
    for rank, hit in enumerate(found["hits"], 1):
        chunk = hit["chunk"]
        stages = "  ".join(
            f"{stage}={hit['stages'][stage]['score']:.3f}(#{hit['stages'][stage]['rank']})"
            for stage in ("dense", "sparse", "fused", "reranked")
            if stage in hit["stages"]
        )
        where = chunk["heading"] or (f"page {chunk['page']}" if chunk["page"] else "")
        typer.echo(f"{rank}. {chunk['title']} — {where}\n   {stages}")
        typer.echo(f"   {' '.join(chunk['text'].split())[:160]}")


@kb_app.command("status")
def status(
    kb: KbOption = "product",
    url: UrlOption = DEFAULT_URL,
    tenant: TenantOption = "demo",
    user: UserOption = DEFAULT_ADMIN,
) -> None:
    """The live version, the versions kept, the chunking and the documents."""
    with _client(url, tenant, user) as client:
        _print_state(_ok(client.get(f"/v1/knowledge-bases/{kb}")))


@kb_app.command("versions")
def versions(
    kb: KbOption = "product",
    url: UrlOption = DEFAULT_URL,
    tenant: TenantOption = "demo",
    user: UserOption = DEFAULT_ADMIN,
) -> None:
    """Each version kept, the embedder that built it, and which is live."""
    with _client(url, tenant, user) as client:
        state = _ok(client.get(f"/v1/knowledge-bases/{kb}"))
    embedders = state.get("version_embedders") or {}
    for version in state["versions"]:
        live = "live" if version == state["live_version"] else ""
        typer.echo(f"  v{version:<4} {live:4} {embedders.get(str(version), '?')}")


@kb_app.command("reindex")
def reindex(
    kb: KbOption = "product",
    chunk_words: Annotated[int | None, typer.Option(help="New chunk size in words.")] = None,
    overlap_words: Annotated[int | None, typer.Option(help="New overlap in words.")] = None,
    url: UrlOption = DEFAULT_URL,
    tenant: TenantOption = "demo",
    user: UserOption = DEFAULT_ADMIN,
) -> None:
    """Build a new version beside the live one (optionally with new chunking), then switch."""
    with _client(url, tenant, user) as client:
        if chunk_words is not None or overlap_words is not None:
            chunking = _ok(client.get(f"/v1/knowledge-bases/{kb}"))["chunking"]
            if chunk_words is not None:
                chunking["chunk_words"] = chunk_words
            if overlap_words is not None:
                chunking["overlap_words"] = overlap_words
            _ok(client.put(f"/v1/knowledge-bases/{kb}", json={"chunking": chunking}))
        _print_state(_ok(client.post(f"/v1/knowledge-bases/{kb}/reindex")))


@kb_app.command("restore")
def restore(
    version: Annotated[int, typer.Argument(min=1, help="The version to make live again.")],
    kb: KbOption = "product",
    url: UrlOption = DEFAULT_URL,
    tenant: TenantOption = "demo",
    user: UserOption = DEFAULT_ADMIN,
) -> None:
    """Make an earlier version live again."""
    with _client(url, tenant, user) as client:
        _print_state(_ok(client.post(f"/v1/knowledge-bases/{kb}/versions/{version}/activate")))
