"""The answering core: questions, summaries, sources and the article list, as plain data.

This module knows nothing of Telegram, Matrix or terminals. Its methods are blocking (they embed
text and search the index); async front ends call them through ``asyncio.to_thread``. They are safe
to call from several threads at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from bot.config import Config
from bot.errors import EmptyCorpus, EmptyQuestion, FetchFailed, NoPreviousAnswer, QuestionTooLong, UnknownArticle
from bot.answering import CANDIDATES, asks_something, decide, latest_first
from bot.memory import ConversationMemory, memory_for
from bot.scope import NEWS, SOFT, Scope, normalise_outlet, read_scope
from bot.models import AddedArticle, Answer, ArticleInfo, ArticlePage, FeedInfo, IngestReport, More, PollReport, Sources, Summary
from embeddings.language import detect_language
from embeddings.library import Library
from embeddings.summarize import summarize_article

log = logging.getLogger(__name__)


def is_number(text: str) -> bool:
    """True for ASCII digits only: ``str.isdigit`` also accepts "²" and "١", which ``int`` refuses or misreads."""
    return text.isascii() and text.isdigit()


class Bron:
    """One Bron instance serves every conversation; state is kept per conversation id."""

    def __init__(
        self, config: Config, library: Library, today: Callable[[], dt.date] = dt.date.today,
        memory: ConversationMemory | None = None,
    ) -> None:
        self.config = config
        self.library = library
        # "vandaag", "vorige week" in questions are read relative to this (tests set the clock).
        self.today = today
        # The last answer per conversation: in this process, or (postgres) shared by every worker.
        self.memory = memory or memory_for(library)
        self._lock = threading.Lock()
        self._web = None
        self._follow = None

    @classmethod
    def open(cls, config: Config, data_dir: Path, progress: bool = False, encoders: list | None = None) -> Bron:
        """Open the index in ``data_dir``, building it from the configured corpus on first use."""
        library = Library.open(data_dir, config, progress=progress, encoders=encoders)
        bron = cls(config, library)
        if library.is_empty():
            paths = config.corpus_paths()
            report = library.ingest([p for p in paths if p.exists()], progress=progress)
            log.info("built index from corpus: %d articles", len(report.added))
        return bron

    # -- the four things a user can ask for ---------------------------------------------------

    def answer(
        self, question: str, conversation: str = "default", exclude: Sequence[int] = (),
        since: dt.date | None = None, until: dt.date | None = None, outlets: Sequence[str] = (),
    ) -> Answer:
        """Quote the passages that answer ``question``, the answering sentence first, or abstain.

        A period or outlet named in the question ("gisteren", "volgens de NOS", see :mod:`bot.scope`)
        or given as ``since``/``until``/``outlets`` limits the articles searched. ``exclude`` leaves
        articles out of the search (evaluation asks questions whose article is gone).
        """
        question = " ".join((question or "").split())
        if not question:
            raise EmptyQuestion()
        limit = self.config.answer.max_question_chars
        if len(question) > limit:
            raise QuestionTooLong(limit=limit)
        language = detect_language(question, self.config.answer.language_fallback)
        scope = read_scope(question, self.today(), set(self.library.outlets()))
        if since or until or outlets:
            scope = Scope(since or dt.date.min, until or dt.date.max, NEWS, tuple(outlets) or scope.outlets, scope.latest, scope.question)
        admitted, scope = _admitted(self.library, scope)
        answer = self._reply(question, language, scope, admitted, exclude)
        if scope.strength == SOFT and not answer.passages and asks_something(scope.question):
            # "Waar moesten de boeren in oktober blijven?": no article of October answers, so "in
            # oktober" is when it happened, not when it was reported (as when no article is of October).
            admitted, scope = _admitted(self.library, scope.without_period())
            answer = self._reply(question, language, scope, admitted, exclude)
        # An abstention keeps the previous answer's sources: /source still names those.
        self.memory.remember(conversation, [a.id for a in answer.articles] if answer.passages else None, answer)
        return answer

    def _reply(
        self, question: str, language: str, scope: Scope, admitted: set[int] | None, exclude: Sequence[int],
    ) -> Answer:
        """The reply to ``question`` from the articles ``admitted`` (None: all), limited as ``scope`` says."""
        limits = {"since": _day(scope.since, dt.date.min), "until": _day(scope.until, dt.date.max), "outlets": scope.outlets}
        if admitted is not None and not admitted:
            return Answer(question, language, scope_empty=True, **limits)
        ranked = self.library.rank(scope.question, language, max(self.config.retrieval.top_k, CANDIDATES), set(exclude), admitted)
        answer = decide(scope.question, language, ranked, self.library.answerability, self.config.retrieval.top_k)
        if admitted is not None and not asks_something(scope.question):
            # "Wat gebeurde er gisteren?": nothing to judge an answer by but the period or outlet,
            # so the best passages of the articles in scope are the news asked for.
            answer = Answer(question, language, ranked[: self.config.retrieval.top_k], ranked[self.config.retrieval.top_k :])
        shown, more = answer.passages, answer.more
        if scope.latest:
            shown, older = latest_first(shown, ranked, self.library.answerability.threshold)
            quoted = {(p.article.id, p.start) for p in shown}
            more = older + [p for p in more if (p.article.id, p.start) not in quoted]
        return Answer(question, language, shown, more, **limits)

    def more(self, conversation: str = "default") -> More:
        """The last answer's quotes in full, and the other passages that came close."""
        answer = self.memory.answer(conversation)
        if answer is None:
            raise NoPreviousAnswer()
        if answer.more:
            self.memory.remember(conversation, [a.id for a in answer.articles] + [p.article.id for p in answer.more])
        return More(question=answer.question, language=answer.language, quotes=answer.passages, others=answer.more)

    def summarize(self, ref: str | None = None, conversation: str = "default") -> Summary:
        """Summarise the article named by ``ref`` (number or title words), else the last answer's."""
        article = self.find_article(ref) if ref and ref.strip() else self._last_article(conversation)
        text = self.library.article_text(article.id)
        sentences = summarize_article(self.library, article.id, self.config.summary.sentences, self.config.summary.diversity)
        self.memory.remember(conversation, [article.id])
        return Summary(article=article, sentences=sentences or [text[:300]])

    def sources(self, conversation: str = "default") -> Sources:
        """The articles quoted in the conversation's last answer."""
        ids = self.memory.articles(conversation)
        if not ids:
            raise NoPreviousAnswer()
        return Sources([a for a in (self.library.article(i) for i in ids) if a is not None])

    def articles(self, page: int = 1, per_page: int = 10) -> ArticlePage:
        """One page of the indexed articles, newest id last; ``page`` is clamped to the valid range."""
        total = self.library.count()
        pages = max(1, math.ceil(total / per_page))
        page = min(max(page, 1), pages)
        chunk = self.library.page((page - 1) * per_page, per_page)
        return ArticlePage(articles=chunk, page=page, pages=pages, total=total)

    # -- corpus management --------------------------------------------------------------------

    def ingest(self, paths: Sequence[Path], progress: bool | Callable[[str], None] = False) -> IngestReport:
        """Add or update the articles in ``paths``; files removed from a given folder leave the index."""
        return self._arrived(self.library.ingest(list(paths), progress=progress))

    # -- topic alerts and briefings -------------------------------------------------------------

    @property
    def follow(self):
        """Followed topics and briefings (:class:`bot.follow.Follow`), made on first use."""
        with self._lock:
            if self._follow is None:
                from bot.follow import Follow

                self._follow = Follow(self.library.data_dir, self.library, self.config)
            return self._follow

    @follow.setter
    def follow(self, follow) -> None:
        self._follow = follow

    def _arrived(self, report: IngestReport) -> IngestReport:
        """After an ingest: match its new and changed articles against the followed topics. A failure
        here never fails the ingest: the articles stay unseen and the bots' next check matches them."""
        if report.added_ids or report.updated_ids:
            try:
                self.follow.scan(updated=report.updated_ids)
            except Exception:  # noqa: BLE001
                log.exception("matching new articles against followed topics failed; the next check retries")
        return report

    def remove(self, ref: str) -> ArticleInfo:
        """Remove one article, named by number or title words."""
        article = self.find_article(ref)
        self.library.remove([article.id])
        return article

    # -- articles from the web ---------------------------------------------------------------

    @property
    def web(self):
        """Fetching and feeds (:class:`embeddings.feeds.Feeds`; ``.web`` fetches pages), made on first use."""
        with self._lock:
            if self._web is None:
                from embeddings.feeds import Feeds
                from embeddings.fetch import FetchSettings
                from embeddings.web import WebSources

                pages = WebSources(self.library, FetchSettings.from_config(self.config.fetch))
                store = lease = None
                if not self.library.embedded:
                    # postgres: the feed state in the database, and one poller at a time across processes.
                    from embeddings.storage.pg_feeds import PgFeedStore, PgPollLease

                    store, lease = PgFeedStore(self.library.store.db), PgPollLease(self.library.store.db)
                self._web = Feeds(pages, self.library.data_dir, self.config.feeds.urls, store, lease)
            return self._web

    def ingest_urls(self, urls: Sequence[str], progress: bool = False) -> IngestReport:
        """Fetch web pages (HTML or PDF) and add or update their articles; failures are skipped with a reason."""
        return self._arrived(self.web.pages.ingest_urls(list(urls), progress=progress).report)

    def add_url(self, url: str) -> AddedArticle:
        """Add one web page (the bots' /add URL); raises :class:`FetchFailed` with the reason if it cannot."""
        result = self.web.pages.ingest_urls([url])
        self._arrived(result.report)
        article_id = result.article_ids.get(url.strip())
        article = self.library.article(article_id) if article_id is not None else None
        if article is None:
            reason = result.report.skipped[0][1] if result.report.skipped else "no article found"
            raise FetchFailed(url=url, reason=reason)
        return AddedArticle(article, result.status[url.strip()])

    def poll_feeds(self, progress: bool = False) -> PollReport:
        """Fetch every feed and ingest its new and changed items."""
        poll = self.web.poll(progress)
        self._arrived(poll.report)
        return poll

    def feeds(self) -> list[FeedInfo]:
        """The polled feeds: from config.yaml and added ones."""
        return self.web.status()

    def add_feed(self, url: str) -> FeedInfo:
        """Check that ``url`` is an RSS/Atom feed and poll it from now on; raises FetchFailed if not."""
        from embeddings.feeds import FeedError

        try:
            return self.web.add(url)
        except FeedError as err:
            raise FetchFailed(url=url, reason=str(err)) from None

    def remove_feed(self, url: str) -> bool:
        """Stop polling an added feed (its articles stay); False if it was not in the list."""
        return self.web.remove(url)

    def find_article(self, ref: str) -> ArticleInfo:
        """The article whose number is ``ref``, or whose title contains all of ``ref``'s words."""
        typed = ref.strip()  # the reply names what the user typed: "/summary #" is not article ''
        ref = typed.lstrip("#")
        if is_number(ref):
            found = self.library.article(int(ref))
            if found:
                return found
            raise UnknownArticle(ref=typed)
        words = ref.lower().split()
        if not words:
            raise UnknownArticle(ref=typed)
        matches = self.library.page(0, 1, title_words=words)
        if not matches:
            raise UnknownArticle(ref=typed)
        return matches[0]

    def _last_article(self, conversation: str) -> ArticleInfo:
        ids = self.memory.articles(conversation)
        if not ids:
            if self.library.is_empty():
                raise EmptyCorpus()
            raise NoPreviousAnswer()
        article = self.library.article(ids[0])
        if article is None:
            raise NoPreviousAnswer()
        return article


class CoreFeeds:
    """The feeds as the bots' background poll sees them: each poll goes through :meth:`Bron.poll_feeds`,
    so its new articles reach the followed topics at once."""

    def __init__(self, bron: Bron) -> None:
        self._bron = bron

    def poll(self, progress: bool = False) -> PollReport:
        return self._bron.poll_feeds(progress)

    def __getattr__(self, name: str) -> object:
        return getattr(self._bron.web, name)


def _admitted(library, scope: Scope) -> tuple[set[int] | None, Scope]:
    """Ids of the articles in ``scope`` (None: no limit), and the scope as applied.

    A period named by an event-or-news phrase ("on Monday") is dropped when no dated article falls
    in it: the question is then about when something happened, not when it was reported (and
    :meth:`Bron.answer` drops it when none of the articles in it answers).
    """
    period = None
    if scope.since is not None and scope.until is not None:
        period = (
            None if scope.since == dt.date.min else scope.since.isoformat(),
            None if scope.until == dt.date.max else scope.until.isoformat(),
        )
    if period is None and not scope.outlets:
        return None, scope
    if scope.strength == SOFT and period is not None and not library.in_scope(period, None, limit=1):
        return _admitted(library, scope.without_period())
    names = None
    if scope.outlets:
        wanted = {normalise_outlet(o) for o in scope.outlets}
        names = [o for o in library.outlets() if normalise_outlet(o) in wanted]
    return library.in_scope(period, names), scope


def _day(day: dt.date | None, open_end: dt.date) -> str | None:
    """An ISO day for the reply, None for no limit on that side."""
    return day.isoformat() if day is not None and day != open_end else None

