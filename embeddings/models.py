"""Plain results built by the storage and retrieval layer: articles, quotes, ingest and poll reports.

They live here, at the bottom, because ``embeddings/`` builds them and must not import ``bot/``
(layers point one way). :mod:`bot.models` re-exports them next to the answering core's own results
(``Answer``, ``Summary``, ...), so front ends keep importing everything from one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ArticleInfo", "FeedInfo", "IngestReport", "Passage", "PollReport"]


@dataclass(frozen=True)
class ArticleInfo:
    """What a reader needs to cite an article."""

    id: int
    title: str
    outlet: str | None
    date: str | None
    url: str | None
    language: str
    chunks: int = 0
    # When Bron first indexed the article (ISO day): shown, marked as such, when ``date`` is unknown.
    first_seen: str | None = None


@dataclass(frozen=True)
class Passage:
    """A verbatim quote: ``text == article_text[start:end]``.

    ``highlight`` is the (start, end) of the answering sentence inside ``text``; ``confidence`` the
    probability, by the answerability model, that the quote answers the question; ``lead_score`` how
    strongly its marked sentence should lead the reply (comparable among one question's quotes only).
    """

    article: ArticleInfo
    text: str
    start: int
    end: int
    highlight: tuple[int, int]
    score: float
    confidence: float = 0.0
    lead_score: float = float("-inf")


@dataclass
class IngestReport:
    """What an ingest did, for the summary line a user sees."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # Article ids, for whatever follows an ingest (pushes to followers).
    added_ids: list[int] = field(default_factory=list)
    updated_ids: list[int] = field(default_factory=list)
    removed_ids: list[int] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether the index was rewritten."""
        return bool(self.added or self.updated or self.removed)

    def merged(self, other: IngestReport) -> IngestReport:
        """Both reports as one, e.g. files and web pages ingested by one command."""
        return IngestReport(
            self.added + other.added, self.updated + other.updated, self.removed + other.removed,
            self.unchanged + other.unchanged, self.skipped + other.skipped,
        )


@dataclass(frozen=True)
class FeedInfo:
    """A polled RSS/Atom feed."""

    url: str
    title: str = ""
    from_config: bool = False
    items_seen: int = 0
    last_poll: str | None = None
    last_error: str | None = None


@dataclass
class PollReport:
    """What one poll of the feeds did: per feed status, and the ingest of their new items."""

    feeds: list[FeedInfo] = field(default_factory=list)
    report: IngestReport = field(default_factory=IngestReport)
    fetched: int = 0
    seen_before: int = 0
