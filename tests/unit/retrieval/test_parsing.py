"""Uploads: good files parse into sections; bad ones are refused fast with a reason."""

import io
import time
import zipfile

import pytest

from retrieval.parsing import DocumentParser, DocumentRejected, ParseLimits, parse_in_process
from tests.documents import make_docx, make_pdf

LIMITS = ParseLimits()


def test_markdown_sections_follow_headings():
    parsed = parse_in_process("guide.md", b"# Pricing\nIntro.\n## Discounts\nUp to 10%.\n", LIMITS)
    assert parsed.title == "Pricing"  # the first top-level heading names the file
    assert parse_in_process("notes.md", b"## Only a subheading\nText.\n", LIMITS).title == "notes"
    assert [(s.heading, s.text) for s in parsed.sections] == [
        ("Pricing", "Intro."),
        ("Discounts", "Up to 10%."),
    ]


def test_docx_paragraphs_grouped_under_headings():
    data = make_docx([("heading", "Security"), ("p", "SOC 2 Type II."), ("p", "SSO via SAML.")])
    parsed = parse_in_process("sheet.docx", data, LIMITS)
    assert parsed.sections[0].heading == "Security"
    assert parsed.sections[0].text == "SOC 2 Type II.\nSSO via SAML."


def test_pdf_text_keeps_its_page():
    parsed = parse_in_process("price.pdf", make_pdf("CloudCRM costs 49 USD per seat"), LIMITS)
    assert parsed.sections[0].page == 1
    assert "49 USD" in parsed.sections[0].text


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "empty"),
        ("blank.md", b"   \n\n", "no text"),
        ("binary.txt", b"\x00\x01\x02abc", "binary"),
        ("latin.txt", "café".encode("latin-1"), "not UTF-8"),
        ("sheet.xlsx", b"whatever", "unsupported file type"),
        ("noext", b"text", "unsupported file type"),
        ("fake.pdf", b"hello, not a pdf", "not a PDF"),
        ("trunc.pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog", "damaged or truncated"),
        ("fake.docx", b"PK\x03\x04 nope", "not a DOCX"),
    ],
)
def test_bad_files_are_refused_with_a_reason(name, data, reason):
    with pytest.raises(DocumentRejected, match=reason):
        parse_in_process(name, data, LIMITS)


def test_encrypted_pdf_is_refused():
    with pytest.raises(DocumentRejected, match="encrypted"):
        parse_in_process("locked.pdf", make_pdf("secret prices", encrypt=True), LIMITS)


def test_docx_zip_bomb_is_refused_before_parsing():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"<w:document/>")
        archive.writestr("word/bomb.xml", b"0" * (200 * 1024 * 1024))
    started = time.monotonic()
    with pytest.raises(DocumentRejected, match="zip bomb"):
        parse_in_process("bomb.docx", out.getvalue(), LIMITS)
    assert time.monotonic() - started < 5


def test_docx_with_xml_entities_is_refused():
    data = make_docx([("p", "hello")])
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for item in source.infolist():
            body = source.read(item.filename)
            if item.filename == "word/document.xml":
                body = body.replace(
                    b"?>", b'?><!DOCTYPE d [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>', 1
                )
            archive.writestr(item, body)
    with pytest.raises(DocumentRejected, match="entities"):
        parse_in_process("billion.docx", out.getvalue(), LIMITS)


def test_oversized_upload_is_refused_without_parsing():
    with pytest.raises(DocumentRejected, match="limit"):
        parse_in_process("big.txt", b"a" * 2048, ParseLimits(max_bytes=1024))


def test_worker_parses_and_survives_a_memory_blowup():
    parser = DocumentParser(limits=ParseLimits(worker_memory_bytes=768 * 1024 * 1024))
    try:
        assert parser.parse("a.md", b"# T\nbody").sections[0].text == "body"
        # More text than the worker's memory cap allows: refused, and the parser still works.
        huge = ("word " * 60_000_000).encode()
        with pytest.raises(DocumentRejected):
            DocumentParser(
                limits=ParseLimits(
                    max_bytes=len(huge) + 1, max_chars=10**10, worker_memory_bytes=256 * 1024 * 1024
                )
            ).parse("huge.txt", huge)
        assert parser.parse("b.txt", b"still fine").sections[0].text == "still fine"
    finally:
        parser.close()
