"""Rows of the index as the rest of Bron sees them (plain data, no storage details)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArticleRow:
    """One stored article; ``first_seen`` is when Bron first indexed it (UTC, ISO 8601)."""

    id: int
    key: str
    title: str
    outlet: str | None
    date: str | None
    url: str | None
    language: str
    text: str
    hash: str
    origin: str
    first_seen: str = ""


@dataclass(frozen=True)
class ChunkRow:
    """A passage: ``text[start:end]`` of its article; its sentences are first_sentence..last_sentence."""

    id: int
    article_id: int
    start: int
    end: int
    first_sentence: int
    last_sentence: int


@dataclass(frozen=True)
class SentenceRow:
    """A sentence: ``text[start:end]`` of its article."""

    id: int
    article_id: int
    start: int
    end: int
