"""The article record shared by loaders, the store and the index."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

# A title is a line of a citation: the newsqa-dev titles are under 140 characters.
MAX_TITLE_CHARS = 300
_SURROGATE = re.compile("[\ud800-\udfff]")
_WORDS = re.compile(r"\w+")



def clip_title(title: str) -> str:
    """``title`` on one line, cut at a word boundary to at most MAX_TITLE_CHARS (ending in "…")."""
    title = " ".join(title.split())
    if len(title) <= MAX_TITLE_CHARS:
        return title
    cut = title.rfind(" ", 0, MAX_TITLE_CHARS)
    if cut < MAX_TITLE_CHARS // 2:  # one giant word: cut inside it
        cut = MAX_TITLE_CHARS - 1
    return title[:cut].rstrip() + "…"


def valid_text(text: str) -> str:
    """``text`` with lone surrogates (from JSON escapes such as ``\\ud800``) replaced by U+FFFD:
    they cannot be stored as UTF-8."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@dataclass
class Document:
    """An article as read from a file or page, before indexing.

    ``key`` identifies where it came from (file path, ``path#id`` for JSONL lines, or URL), so that
    re-ingesting the same source updates the article instead of adding a copy.
    """

    key: str
    title: str
    text: str
    outlet: str | None = None
    date: str | None = None
    url: str | None = None
    language: str = ""
    origin: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """Hash of everything that shows in a quote or citation."""
        h = hashlib.sha256()
        for part in (self.title, self.text, self.outlet or "", self.date or "", self.url or "", self.language):
            h.update(part.encode("utf-8"))
            h.update(b"\0")
        return h.hexdigest()


def text_fingerprint(text: str) -> str:
    """Hash of an article's words, blind to whitespace, punctuation and case (finds the same text
    reached under another address)."""
    return hashlib.sha256(" ".join(_WORDS.findall(text.lower())).encode("utf-8")).hexdigest()
