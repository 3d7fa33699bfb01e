"""Read article files (.txt, .md, .html, .jsonl, .pdf) into :class:`Document` objects.

A file that cannot become an article (empty, binary, no text) raises :class:`LoadError` with a reason
a user can act on; callers skip it and go on with the rest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

from embeddings.documents import Document
from embeddings.language import detect_language

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".jsonl", ".pdf")
MAX_FILE_BYTES = 20 * 1024 * 1024
_OUTLET_LINE = re.compile(r"^\s*(?:bron|source|src)\s*:\s*(.+?)\s*$", re.IGNORECASE)


class LoadError(Exception):
    """A file that cannot be read as an article; the message says why."""


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, refusing empty and oversized files with a reason."""
    size = path.stat().st_size
    if size == 0:
        raise LoadError("the file is empty")
    if size > MAX_FILE_BYTES:
        raise LoadError(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    return path.read_bytes()


def _read_text(path: Path) -> str:
    raw = _read_bytes(path)
    if b"\0" in raw[:8192]:
        raise LoadError("the file is binary, not text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LoadError("the file is not UTF-8 text") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise LoadError("the file has no text")
    return text


def _finish(doc: Document) -> Document:
    doc.text = doc.text.strip()
    doc.title = " ".join(doc.title.split()) or doc.key.rsplit("/", 1)[-1]
    if len(doc.text) < 20:
        raise LoadError("the file has too little text to be an article")
    doc.language = doc.language or detect_language(doc.text)
    return doc


def load_txt(path: Path) -> Document:
    """First line the title; a last line like ``Bron: ANHA`` or ``Source: X`` names the outlet."""
    lines = _read_text(path).strip().split("\n")
    title = lines[0].strip()
    outlet = None
    if len(lines) > 1 and (m := _OUTLET_LINE.match(lines[-1])):
        outlet = m.group(1)
        lines = lines[:-1]
    return _finish(Document(key=str(path), title=title, text="\n".join(lines[1:]), outlet=outlet, origin=str(path)))


def _scalar(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def load_markdown(path: Path) -> Document:
    """Markdown with optional YAML front matter (title, outlet/source, date, url, language)."""
    text = _read_text(path)
    meta: dict[str, object] = {}
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            try:
                loaded = yaml.safe_load(text[4:end])
            except yaml.YAMLError as exc:
                raise LoadError(f"the front matter is not valid YAML ({exc.__class__.__name__})") from None
            meta = loaded if isinstance(loaded, dict) else {}
            text = text[end + 4 :].lstrip("-\n")
    body = text.strip()
    title = _scalar(meta.get("title"))
    if not title:
        first, _, rest = body.partition("\n")
        title, body = first.lstrip("# ").strip(), rest
    return _finish(
        Document(
            key=str(path),
            title=title,
            text=body,
            outlet=_scalar(meta.get("outlet") or meta.get("source")),
            date=_scalar(meta.get("date")),
            url=_scalar(meta.get("url") or meta.get("link")),
            language=_scalar(meta.get("language")) or "",
            origin=str(path),
        )
    )


def load_html(path: Path) -> Document:
    """An HTML article: title from <title>/<h1>, paragraphs from block elements; broken markup tolerated."""
    from embeddings.html_text import html_to_article

    title, body, meta = html_to_article(_read_text(path))
    if not body.strip():
        raise LoadError("no article text found in the HTML")
    return _finish(
        Document(
            key=str(path),
            title=title or path.stem,
            text=body,
            outlet=meta.get("outlet"),
            date=meta.get("date"),
            url=meta.get("url"),
            language=meta.get("language", ""),
            origin=str(path),
        )
    )


def load_pdf(path: Path) -> Document:
    """A text PDF: title from its metadata or first line (see :mod:`embeddings.pdf`)."""
    from embeddings.pdf import PdfError, read_pdf

    raw = _read_bytes(path)
    try:
        return _finish(read_pdf(raw, key=str(path), origin=str(path)))
    except PdfError as exc:
        raise LoadError(str(exc)) from None


def load_jsonl(path: Path) -> Iterator[Document | LoadError]:
    """One article per line, in the newsqa-dev format (id, url, title, source, date, language, text)."""
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ident = str(row.get("id") or number)
            yield _finish(
                Document(
                    key=f"{path}#{ident}",
                    title=str(row.get("title") or ""),
                    text=str(row.get("text") or ""),
                    outlet=_scalar(row.get("source") or row.get("outlet")),
                    date=_scalar(row.get("date")),
                    url=_scalar(row.get("url")),
                    language=_scalar(row.get("language")) or "",
                    origin=str(path),
                    extra={"id": ident},
                )
            )
        except (json.JSONDecodeError, AttributeError):
            yield LoadError(f"line {number} is not a JSON object")
        except LoadError as exc:
            yield LoadError(f"line {number}: {exc}")


def load_file(path: Path) -> Iterator[Document | LoadError]:
    """Documents from one file, or a LoadError for each part that could not be read."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            yield from load_jsonl(path)
        elif suffix in (".md", ".markdown"):
            yield load_markdown(path)
        elif suffix in (".html", ".htm"):
            yield load_html(path)
        elif suffix == ".txt":
            yield load_txt(path)
        elif suffix == ".pdf":
            yield load_pdf(path)
        else:
            yield LoadError(f"unsupported file type {suffix or '(none)'}; use {', '.join(SUFFIXES)}")
    except LoadError as exc:
        yield exc
    except OSError as exc:
        yield LoadError(f"cannot read the file ({exc.strerror or exc})")


def find_files(path: Path) -> list[Path]:
    """The article files at ``path``: the file itself, or every supported file below a folder."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith("."))
    return [path]
