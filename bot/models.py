"""Plain data returned by the answering core.

Front ends (CLI, Telegram, Matrix) only render these objects; they never reach into the index.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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


@dataclass(frozen=True)
class Answer:
    """The reply to a question: the quotes that answer it, best first, or an abstention.

    ``more`` holds the other candidates, closest first: shown only when the user asks for more
    (after an abstention they are the closest passages, which do not answer).
    """

    question: str
    language: str
    passages: list[Passage] = field(default_factory=list)
    more: list[Passage] = field(default_factory=list)
    # The period (ISO days, inclusive) and outlets the question was limited to, if any; ``scope_empty``
    # when no article falls in them, so nothing was searched.
    since: str | None = None
    until: str | None = None
    outlets: tuple[str, ...] = ()
    scope_empty: bool = False

    @property
    def abstained(self) -> bool:
        """True when nothing in the corpus answers the question."""
        return not self.passages

    @property
    def articles(self) -> list[ArticleInfo]:
        """The distinct articles behind the passages, best first."""
        seen: dict[int, ArticleInfo] = {}
        for passage in self.passages:
            seen.setdefault(passage.article.id, passage.article)
        return list(seen.values())


@dataclass(frozen=True)
class More:
    """What ``/more`` shows: the last answer's quotes in full, then the other passages that came
    close (which the answerability model did not judge to answer)."""

    question: str
    language: str
    quotes: list[Passage]
    others: list[Passage]


@dataclass(frozen=True)
class Summary:
    """An extractive summary: sentences of the article, in article order."""

    article: ArticleInfo
    sentences: list[str]


@dataclass(frozen=True)
class Sources:
    """The articles behind the last answer of a conversation."""

    articles: list[ArticleInfo]


@dataclass(frozen=True)
class ArticlePage:
    """One page of the indexed articles (``page`` counts from 1)."""

    articles: list[ArticleInfo]
    page: int
    pages: int
    total: int


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
class AddedArticle:
    """One web page added with ``Bron.add_url``: the article as indexed and what happened.

    ``status`` is ``added``, ``updated``, ``unchanged`` or ``duplicate`` (the same text was already
    indexed under another address; ``article`` is that one).
    """

    article: ArticleInfo
    status: str


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
