"""The article record shared by loaders, the store and the index."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


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
