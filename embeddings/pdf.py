"""Articles from text PDFs (pypdf), from a file or from bytes fetched from the web.

Only the text layer is read: a scanned PDF without one is refused with a reason. pypdf returns one
string per page with a line break at every visual line; paragraphs are rebuilt from line lengths
(a line well short of the text width ends its paragraph).
"""

from __future__ import annotations

import io
import logging

from embeddings.documents import Document, clip_title

log = logging.getLogger(__name__)

_SHORT_LINE = 0.8


class PdfError(Exception):
    """A PDF that cannot become an article; the message says why."""


def _paragraphs(page_text: str) -> list[str]:
    """Paragraphs of one page: a line well short of the text width (a paragraph's last line, a
    heading) ends one; a word hyphenated over two lines is joined."""
    lines = [" ".join(line.split()) for line in page_text.split("\n")]
    lengths = sorted(len(line) for line in lines if line)
    # The text width: the longest line, or on a full page the 90th percentile (robust to one overlong line).
    width = lengths[int(0.9 * (len(lengths) - 1))] if len(lengths) >= 10 else max(lengths, default=0)
    paragraphs: list[str] = []
    current = ""
    for line in lines:
        if line:
            joined = current.endswith("-") and line[:1].islower()
            current = current + line if joined else f"{current} {line}".strip()
        if current and (not line or len(line) < _SHORT_LINE * width):
            paragraphs.append(current)
            current = ""
    if current:
        paragraphs.append(current)
    return paragraphs


def _meta(reader: object, name: str) -> str:
    try:
        value = (getattr(reader, "metadata", None) or {}).get(name)
    except Exception:  # noqa: BLE001 - broken metadata must not cost the text
        return ""
    return " ".join(str(value).split()) if value else ""


def read_pdf(data: bytes, key: str, origin: str, url: str | None = None) -> Document:
    """The article in a PDF: title from its metadata or first line, text from every page."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise PdfError("the PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
    except PdfError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise PdfError(f"not a readable PDF ({exc.__class__.__name__})") from None
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types on damaged files
        log.debug("pypdf failed on %s", origin, exc_info=True)
        raise PdfError(f"not a readable PDF ({exc.__class__.__name__})") from None
    paragraphs = [p for page in pages for p in _paragraphs(page)]
    if sum(len(p) for p in paragraphs) < 20:
        raise PdfError("the PDF has no text layer (a scan?)")
    title = clip_title(_meta(reader, "/Title"))
    if not title:
        title, paragraphs = paragraphs[0][:200], paragraphs[1:]
    author = _meta(reader, "/Author")
    # No date: a PDF's CreationDate is when the file was made, not when the article appeared.
    return Document(
        key=key, title=title, text="\n\n".join(paragraphs), url=url, origin=origin,
        extra={"author": author} if author else {},
    )
