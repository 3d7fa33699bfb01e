"""Read article files (.txt, .md, .html, .jsonl, .pdf) into :class:`Document` objects.

A file that cannot become an article (empty, binary, no text, a metadata field of the wrong type)
raises :class:`LoadError` with a reason a user can act on; callers skip it and go on with the rest.
"""

from __future__ import annotations

import codecs
import datetime
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

from embeddings.documents import Document, clip_title, valid_text
from embeddings.language import detect_language

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".jsonl", ".pdf")
MAX_FILE_BYTES = 20 * 1024 * 1024
# Front matter names a title, an outlet, a date: a handful of aliases at most. Each alias can repeat
# everything before it, so a 600-byte file with 50 of them expands to megabytes.
MAX_YAML_ALIASES = 20
_OUTLET_LINE = re.compile(r"^\s*(?:bron|source|src)\s*:\s*(.+?)\s*$", re.IGNORECASE)
_FRONT_MATTER_END = re.compile(r"^(?:-{3,}|\.{3})[ \t]*$", re.MULTILINE)
_LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")
# UTF-32's little-endian mark starts with UTF-16's, so it is tried first.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


class LoadError(Exception):
    """A file that cannot be read as an article; the message says why."""


def display_path(path: Path | str) -> str:
    """``path`` as text that can be stored and printed: a name that is not UTF-8 (``caf\\xe9.txt``)
    gets its odd bytes as ``\\xe9`` escapes instead of the surrogates SQLite and stdout refuse."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, refusing empty and oversized files with a reason."""
    size = path.stat().st_size
    if size == 0:
        raise LoadError("the file is empty")
    if size > MAX_FILE_BYTES:
        raise LoadError(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    return path.read_bytes()


def _decode(raw: bytes) -> str:
    """UTF-8 text, or UTF-16/32 text that says so with a byte order mark."""
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(codec)  # the codec reads and drops the mark
            except UnicodeDecodeError:
                raise LoadError(f"the file starts with a {codec.upper()} byte order mark but is not {codec.upper()} text") from None
    if b"\0" in raw[:8192]:
        raise LoadError("the file is binary, not text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LoadError("the file is not UTF-8 text") from None


# C0 control characters other than tab, line ends and form feed. Text has next to none; random or
# binary data that happens to be valid UTF-8 and holds no NUL byte has about one in ten, and would
# otherwise be indexed as an "article" of noise.
_CONTROL = re.compile(r"[\x01-\x08\x0b\x0e-\x1f\x7f]")


def _read_text(path: Path) -> str:
    text = _decode(_read_bytes(path))
    head = text[:8192]
    if "\0" in head or len(_CONTROL.findall(head)) > max(8, len(head) // 100):
        raise LoadError("the file is binary, not text")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise LoadError("the file has no text")
    return text


def _finish(doc: Document) -> Document:
    doc.key = valid_text(doc.key)
    doc.text = valid_text(doc.text.strip())
    doc.title = clip_title(valid_text(doc.title)) or clip_title(doc.key.rsplit("/", 1)[-1])
    if len(doc.text) < 20:
        raise LoadError("the file has too little text to be an article")
    doc.language = doc.language or detect_language(doc.text)
    for name in ("outlet", "date", "url", "language"):
        value = getattr(doc, name)
        if value:
            setattr(doc, name, valid_text(value))
    doc.extra = {k: valid_text(v) for k, v in doc.extra.items()}
    return doc


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple, set)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (datetime.date, datetime.time)):
        return "a date"
    return f"a {type(value).__name__}"


def _field(row: dict, name: str, kind: str = "text") -> str | None:
    """``row[name]`` as text, None when absent or empty; LoadError naming the field if it has the wrong type.

    ``kind`` is "text" (strings and numbers: a title may be ``1984``), "date" (strings and YAML dates),
    "url" (strings) or "language" (a code such as ``nl`` or ``en-GB``).
    """
    value = row.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value
    elif kind == "text" and isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
    elif kind == "date" and isinstance(value, datetime.date):
        text = str(value)
    else:
        wanted = {"date": "a date as text", "url": "a web address", "language": "a language code"}.get(kind, "text")
        raise LoadError(f"'{name}' is {_kind(value)}, not {wanted}")
    if kind == "language":
        text = text.strip()
        if not _LANGUAGE_CODE.fullmatch(text):
            raise LoadError(f"'{name}' is {text!r}, not a language code such as 'nl' or 'en'")
    return text


def load_txt(path: Path) -> Document:
    """First line the title; a last line like ``Bron: ANHA`` or ``Source: X`` names the outlet."""
    lines = _read_text(path).strip().split("\n")
    title = lines[0].strip()
    outlet = None
    if len(lines) > 1 and (m := _OUTLET_LINE.match(lines[-1])):
        outlet = m.group(1)
        lines = lines[:-1]
    where = display_path(path)
    return _finish(Document(key=where, title=title, text="\n".join(lines[1:]), outlet=outlet, origin=where))


class _FrontMatterLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing more than MAX_YAML_ALIASES aliases (see there)."""

    aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise LoadError(f"the front matter uses more than {MAX_YAML_ALIASES} YAML aliases (*name); write the values out")
        return super().compose_node(parent, index)


def _front_matter(text: str) -> tuple[dict, str]:
    """The YAML front matter of a Markdown text (empty if none) and the text after it."""
    if not text.startswith("---\n"):
        return {}, text
    end = _FRONT_MATTER_END.search(text, 4)
    if end is None:
        raise LoadError("the front matter opened by '---' on the first line is never closed by a '---' line")
    try:
        loaded = yaml.load(text[4 : end.start()], Loader=_FrontMatterLoader)  # noqa: S506 - a SafeLoader
    except RecursionError:
        raise LoadError("the front matter is nested too deeply") from None
    except yaml.YAMLError as exc:
        raise LoadError(f"the front matter is not valid YAML ({exc.__class__.__name__})") from None
    return (loaded if isinstance(loaded, dict) else {}), text[end.end() :]


def load_markdown(path: Path) -> Document:
    """Markdown with optional YAML front matter (title, outlet/source, date, url, language)."""
    meta, text = _front_matter(_read_text(path))
    body = text.strip()
    try:
        title = _field(meta, "title")
        outlet = _field(meta, "outlet") or _field(meta, "source")
        date = _field(meta, "date", "date")
        url = _field(meta, "url", "url") or _field(meta, "link", "url")
        language = _field(meta, "language", "language") or ""
    except LoadError as exc:
        raise LoadError(f"front matter: {exc}") from None
    if not title:
        first, _, rest = body.partition("\n")
        title, body = first.lstrip("# ").strip(), rest
    where = display_path(path)
    return _finish(Document(key=where, title=title, text=body, outlet=outlet, date=date, url=url, language=language, origin=where))


def load_html(path: Path) -> Document:
    """An HTML article: title from <title>/<h1>, paragraphs from block elements; broken markup tolerated."""
    from embeddings.html_text import HTMLTooDeepError, html_to_article

    try:
        title, body, meta = html_to_article(_read_text(path))
    except HTMLTooDeepError as exc:
        raise LoadError(str(exc)) from None
    if not body.strip():
        raise LoadError("no article text found in the HTML")
    where = display_path(path)
    return _finish(
        Document(
            key=where,
            title=title or display_path(path.stem),
            text=body,
            outlet=meta.get("outlet"),
            date=meta.get("date"),
            url=meta.get("url"),
            language=meta.get("language", ""),
            origin=where,
        )
    )


def load_pdf(path: Path) -> Document:
    """A text PDF: title from its metadata or first line (see :mod:`embeddings.pdf`)."""
    from embeddings.pdf import PdfError, read_pdf

    raw = _read_bytes(path)
    try:
        return _finish(read_pdf(raw, key=display_path(path), origin=display_path(path)))
    except PdfError as exc:
        raise LoadError(str(exc)) from None


def load_jsonl(path: Path) -> Iterator[Document | LoadError]:
    """One article per line, in the newsqa-dev format (id, url, title, source, date, language, text)."""
    where = display_path(path)
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.lstrip("\ufeff"))  # a byte order mark where files were concatenated
        except json.JSONDecodeError:
            yield LoadError(f"line {number} is not a JSON object")
            continue
        except RecursionError:
            yield LoadError(f"line {number} is nested too deeply to be an article")
            continue
        if not isinstance(row, dict):
            yield LoadError(f"line {number} is not a JSON object")
            continue
        try:
            ident = row.get("id")
            if isinstance(ident, (bool, float)) or not isinstance(ident, (str, int, type(None))):
                raise LoadError(f"'id' is {_kind(ident)}, not text or a whole number")
            ident = str(ident or number)
            yield _finish(
                Document(
                    key=f"{where}#{ident}",
                    title=_field(row, "title") or "",
                    text=_field(row, "text") or "",
                    outlet=_field(row, "source") or _field(row, "outlet"),
                    date=_field(row, "date", "date"),
                    url=_field(row, "url", "url"),
                    language=_field(row, "language", "language") or "",
                    origin=where,
                    extra={"id": ident},
                )
            )
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


def find_files(path: Path, unreadable: list[tuple[str, str]] | None = None) -> list[Path]:
    """The article files at ``path``: the file itself, or every supported file below a folder.

    Folders that cannot be listed are added to ``unreadable`` as (folder, reason) instead of being
    passed over in silence (as ``Path.rglob`` does).
    """
    if not path.is_dir():
        return [path]

    def note(err: OSError) -> None:
        if unreadable is not None:
            unreadable.append((display_path(err.filename or path), f"cannot read the folder ({err.strerror or err})"))

    found = []
    for folder, _, names in os.walk(path, onerror=note):
        for name in names:
            file = Path(folder, name)
            if file.suffix.lower() in SUFFIXES and not name.startswith(".") and file.is_file():
                found.append(file)
    return sorted(found)
