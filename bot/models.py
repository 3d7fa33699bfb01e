"""Plain data returned by the answering core.

Front ends (CLI, Telegram, Matrix) only render these objects; they never reach into the index.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The plain results that embeddings/ builds live there (the bottom layer); re-exported here, the same
# classes, so front ends and tests keep importing them from bot.models.
from embeddings.models import ArticleInfo, FeedInfo, IngestReport, Passage, PollReport  # noqa: F401

__all__ = [
    "AddedArticle", "Answer", "ArticleInfo", "ArticlePage", "FeedInfo", "IngestReport", "More", "Passage",
    "PollReport", "Sources", "Summary",
]


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


@dataclass(frozen=True)
class AddedArticle:
    """One web page added with ``Bron.add_url``: the article as indexed and what happened.

    ``status`` is ``added``, ``updated``, ``unchanged`` or ``duplicate`` (the same text was already
    indexed under another address; ``article`` is that one).
    """

    article: ArticleInfo
    status: str
