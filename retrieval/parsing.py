"""Turn uploaded files (PDF, DOCX, TXT, Markdown) into text sections, refusing what is unsafe.

Parsing runs in a separate worker process with an address-space limit and a time limit, so
a decompression bomb or a pathological PDF costs one worker, never the server's memory.
Every refusal is a :class:`DocumentRejected` with a reason a person can act on.
"""

from __future__ import annotations

import io
import re
import resource
import zipfile
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Literal

DocumentKind = Literal["pdf", "docx", "txt", "md"]
KINDS_BY_SUFFIX: dict[str, DocumentKind] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".txt": "txt",
    ".md": "md",
    ".markdown": "md",
}


class DocumentRejected(ValueError):
    """The file cannot be indexed; ``reason`` says why in words for the uploader.

    ``status`` is the HTTP status an API answers with: 415 for a type it does not take,
    413 for a file over the size limit, 422 for everything wrong inside the file.
    """

    def __init__(self, reason: str, *, status: int = 422) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status

    def __reduce__(self):  # keep ``status`` when the error crosses a process boundary
        return (_rejected, (self.reason, self.status))


def _rejected(reason: str, status: int) -> DocumentRejected:
    return DocumentRejected(reason, status=status)


@dataclass(frozen=True)
class ParseLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pages: int = 1000
    max_chars: int = 5_000_000
    docx_max_uncompressed: int = 100 * 1024 * 1024
    docx_max_ratio: float = 200.0
    docx_max_members: int = 2000
    worker_memory_bytes: int = 1024 * 1024 * 1024
    timeout_s: float = 20.0


@dataclass(frozen=True)
class Section:
    text: str
    heading: str | None = None
    page: int | None = None


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    kind: DocumentKind
    sections: list[Section] = field(default_factory=list)

    @property
    def char_count(self) -> int:
        return sum(len(s.text) for s in self.sections)


def kind_of(filename: str) -> DocumentKind:
    suffix = PurePath(filename).suffix.lower()
    if suffix not in KINDS_BY_SUFFIX:
        raise DocumentRejected(
            f"unsupported file type {suffix or '(none)'!r}; upload PDF, DOCX, TXT or Markdown",
            status=415,
        )
    return KINDS_BY_SUFFIX[suffix]


# --- the checks that run before any parser touches the bytes ---------------------------


def _check_envelope(data: bytes, kind: DocumentKind, limits: ParseLimits) -> None:
    if not data:
        raise DocumentRejected("the file is empty")
    if len(data) > limits.max_bytes:
        raise DocumentRejected(
            f"the file is {len(data)} bytes; the limit is {limits.max_bytes}", status=413
        )
    if kind == "pdf" and not data.lstrip()[:5] == b"%PDF-":
        raise DocumentRejected("not a PDF file (no %PDF- header)")
    if kind == "docx":
        _check_docx_zip(data, limits)


def _check_docx_zip(data: bytes, limits: ParseLimits) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise DocumentRejected("not a DOCX file (not a valid zip archive)") from None
    with archive:
        members = archive.infolist()
        if len(members) > limits.docx_max_members:
            raise DocumentRejected(f"the DOCX holds {len(members)} parts; too many")
        total = sum(m.file_size for m in members)
        packed = max(1, sum(m.compress_size for m in members))
        if total > limits.docx_max_uncompressed or total / packed > limits.docx_max_ratio:
            raise DocumentRejected("the DOCX expands far beyond its size (a zip bomb?)")
        names = {m.filename for m in members}
        if "word/document.xml" not in names:
            raise DocumentRejected("not a DOCX file (no word/document.xml)")
        for member in members:
            if member.filename.endswith((".xml", ".rels")):
                head = archive.open(member).read(4096)
                if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
                    raise DocumentRejected("the DOCX declares XML entities; refused")


# --- parsers (run inside the worker process) -------------------------------------------


def _parse_pdf(data: bytes, title: str, limits: ParseLimits) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise DocumentRejected("the PDF is encrypted; upload an unprotected copy")
        if len(reader.pages) > limits.max_pages:
            raise DocumentRejected(
                f"the PDF has {len(reader.pages)} pages; the limit is {limits.max_pages}"
            )
        sections, total = [], 0
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text() or ""
            total += len(text)
            if total > limits.max_chars:
                raise DocumentRejected("the PDF holds more text than one document may")
            if text.strip():
                sections.append(Section(text=text, page=number))
        meta_title = reader.metadata.get("/Title") if reader.metadata else None
    except DocumentRejected:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise DocumentRejected(f"the PDF is damaged or truncated ({type(exc).__name__})") from None
    return ParsedDocument(title=str(meta_title or title), kind="pdf", sections=sections)


def _parse_docx(data: bytes, title: str, limits: ParseLimits) -> ParsedDocument:
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises many types for broken packages
        raise DocumentRejected(f"the DOCX is damaged ({type(exc).__name__})") from None
    sections: list[Section] = []
    heading: str | None = None
    buffer: list[str] = []
    total = 0

    def flush() -> None:
        if buffer:
            sections.append(Section(text="\n".join(buffer), heading=heading))
            buffer.clear()

    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        total += len(text)
        if total > limits.max_chars:
            raise DocumentRejected("the DOCX holds more text than one document may")
        if not text:
            continue
        style = paragraph.style.name if paragraph.style is not None else None
        if (style or "").lower().startswith(("heading", "title")):
            flush()
            heading = text
        else:
            buffer.append(text)
    flush()
    core_title = document.core_properties.title
    return ParsedDocument(title=core_title or title, kind="docx", sections=sections)


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")


def _decode_text(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise DocumentRejected("the file is binary, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DocumentRejected("the text is not UTF-8") from None


def _parse_text(data: bytes, title: str, kind: DocumentKind, limits: ParseLimits) -> ParsedDocument:
    text = _decode_text(data)
    if len(text) > limits.max_chars:
        raise DocumentRejected("the file holds more text than one document may")
    if kind == "txt":
        return ParsedDocument(title=title, kind="txt", sections=[Section(text=text)])
    sections: list[Section] = []
    heading: str | None = None
    first_h1: str | None = None
    buffer: list[str] = []
    for line in text.splitlines():
        match = _MD_HEADING.match(line)
        if match:
            if "".join(buffer).strip():
                sections.append(Section(text="\n".join(buffer).strip(), heading=heading))
            buffer = []
            heading = match.group(2)
            if first_h1 is None and len(match.group(1)) == 1:
                first_h1 = heading
        else:
            buffer.append(line)
    if "".join(buffer).strip():
        sections.append(Section(text="\n".join(buffer).strip(), heading=heading))
    # A Markdown file's first top-level heading names it better than its file name.
    return ParsedDocument(title=first_h1 or title, kind="md", sections=sections)


def parse_in_process(filename: str, data: bytes, limits: ParseLimits) -> ParsedDocument:
    """Parse here, in this process; callers facing untrusted files use :class:`DocumentParser`."""
    kind = kind_of(filename)
    _check_envelope(data, kind, limits)
    title = PurePath(filename).stem
    if kind == "pdf":
        parsed = _parse_pdf(data, title, limits)
    elif kind == "docx":
        parsed = _parse_docx(data, title, limits)
    else:
        parsed = _parse_text(data, title, kind, limits)
    if not any(s.text.strip() for s in parsed.sections):
        raise DocumentRejected("no text could be extracted from the file")
    return parsed


def _limit_worker_memory(max_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def _parse_job(filename: str, data: bytes, limits: ParseLimits) -> ParsedDocument:
    try:
        return parse_in_process(filename, data, limits)
    except MemoryError:
        raise DocumentRejected("the file needs more memory to parse than is allowed") from None


class DocumentParser:
    """Parses untrusted files in a memory-capped worker process with a deadline."""

    def __init__(self, *, limits: ParseLimits | None = None) -> None:
        self.limits = limits or ParseLimits()
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_limit_worker_memory,
                initargs=(self.limits.worker_memory_bytes,),
            )
        return self._pool

    def parse(self, filename: str, data: bytes) -> ParsedDocument:
        # Cheap checks here first: most bad files never reach the worker.
        _check_envelope(data, kind_of(filename), self.limits)
        future = self._executor().submit(_parse_job, filename, data, self.limits)
        try:
            return future.result(timeout=self.limits.timeout_s)
        except DocumentRejected:
            raise
        except TimeoutError:
            self._reset()
            raise DocumentRejected(
                f"parsing took longer than {self.limits.timeout_s:.0f} s"
            ) from None
        except BrokenProcessPool:
            self._reset()
            raise DocumentRejected("the file needs more memory to parse than is allowed") from None

    def _reset(self) -> None:
        if self._pool is not None:
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.kill()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        self._reset()
