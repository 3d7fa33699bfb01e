"""What a running bot counts, as Prometheus metrics (served by :mod:`bot.ops` on ``/metrics``).

Each :class:`Metrics` has its own registry, so a test (or a second bot in one process) starts from
zero. The bots record in their handlers; the answering core knows nothing of this module.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bot.models import AddedArticle, IngestReport, PollReport

# Seconds; answers take 0.05-0.5 s warm on a small box, seconds when it is busy.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Characters of a whole reply (all its messages).
SIZE_BUCKETS = (100, 250, 500, 1000, 2000, 4000, 8000, 16000)
OUTCOMES = ("answered", "declined", "error")


class Metrics:
    """The bot's counters, histograms and gauges in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.questions = Counter(
            "bron_questions", "Questions by platform, question language and outcome (answered, declined, error).",
            ["platform", "language", "outcome"], registry=r,
        )
        self.answer_seconds = Histogram(
            "bron_answer_seconds", "Time from question to rendered reply, in seconds.",
            ["platform"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.reply_chars = Histogram(
            "bron_reply_chars", "Characters in a reply to a question (all its messages).",
            ["platform"], buckets=SIZE_BUCKETS, registry=r,
        )
        self.summaries = Counter("bron_summaries", "Summaries served.", ["platform"], registry=r)
        self.sources = Counter("bron_sources", "Source lists served (/source and source buttons).", ["platform"], registry=r)
        self.ingests = Counter(
            "bron_ingests", "Ingests by what started them (upload, url, feeds) and outcome (ok, error).",
            ["trigger", "outcome"], registry=r,
        )
        self.articles = Counter(
            "bron_ingested_articles", "Articles an ingest added, updated or skipped (skipped: by reason).",
            ["result", "reason"], registry=r,
        )
        self.feed_polls = Counter("bron_feed_polls", "Feed polls by outcome (ok, error).", ["outcome"], registry=r)
        self.feed_errors = Counter("bron_feed_errors", "Feeds that failed within a poll.", registry=r)
        self.api_errors = Counter(
            "bron_platform_api_errors", "Failed calls to the chat platform by kind (rate_limited, server, timeout, network, client).",
            ["platform", "kind"], registry=r,
        )
        self.api_retries = Counter("bron_platform_api_retries", "Calls to the chat platform retried.", ["platform"], registry=r)
        self.rate_limited = Counter("bron_rate_limited", "Messages refused because the user sent too many.", ["platform"], registry=r)
        self.follow_messages = Counter(
            "bron_follow_messages", "Topic alerts and briefings by platform, kind (push, briefing) and outcome (sent, failed).",
            ["platform", "kind", "outcome"], registry=r,
        )
        self.key_requests = Gauge(
            "bron_matrix_key_requests", "Encrypted Matrix messages waiting for a room key right now.", registry=r,
        )
        self.in_flight = Gauge("bron_in_flight", "Messages being handled right now.", registry=r)
        self.ready = Gauge("bron_ready", "1 when models and index are loaded and the platform was reached.", registry=r)

    def watch_index(self, view: Callable[[], object], data_dir: Path) -> None:
        """Report the index size (articles, passages, bytes) from ``view()`` at every scrape."""
        self.registry.register(_IndexCollector(view, data_dir))

    def question(self, platform: str, language: str, outcome: str, seconds: float, chars: int = 0) -> None:
        """Count one question and how long its reply took."""
        self.questions.labels(platform, language or "unknown", outcome).inc()
        self.answer_seconds.labels(platform).observe(seconds)
        if chars:
            self.reply_chars.labels(platform).observe(chars)

    def ingest(self, trigger: str, report: IngestReport | None) -> None:
        """Count an ingest and its articles; ``None`` when it failed outright."""
        self.ingests.labels(trigger, "error" if report is None else "ok").inc()
        if report is None:
            return
        for result, titles in (("added", report.added), ("updated", report.updated)):
            if titles:
                self.articles.labels(result, "").inc(len(titles))
        for _, why in report.skipped:
            self.articles.labels("skipped", skip_reason(why)).inc()

    def feed_poll(self, report: PollReport | None) -> None:
        """Count one poll of the feeds and the feeds in it that failed; ``None`` when the poll failed."""
        self.feed_polls.labels("error" if report is None else "ok").inc()
        if report is None:
            return
        failed = sum(1 for feed in report.feeds if feed.last_error)
        if failed:
            self.feed_errors.inc(failed)
        self.ingest("feeds", report.report)

    def text(self) -> bytes:
        """Everything, in the Prometheus text format."""
        return generate_latest(self.registry)


def added_report(added: AddedArticle) -> IngestReport:
    """What a bot's /add URL did, as an ingest report for :meth:`Metrics.ingest`."""
    report = IngestReport()
    if added.status == "added":
        report.added.append(added.article.title)
    elif added.status == "updated":
        report.updated.append(added.article.title)
    elif added.status == "duplicate":
        report.skipped.append((added.article.url or "", "same text, already indexed"))
    else:
        report.unchanged = 1
    return report


class CountingFeeds:
    """The core's feeds, with every poll counted; everything else goes to the real object."""

    def __init__(self, feeds: object, metrics: Metrics) -> None:
        self._feeds, self._metrics = feeds, metrics

    def poll(self, progress: object = False) -> PollReport:
        """Poll the feeds (blocking, as the real one) and count the poll, its failed feeds and its ingest."""
        try:
            report = self._feeds.poll(progress)  # type: ignore[attr-defined]
        except Exception:
            self._metrics.feed_poll(None)
            raise
        self._metrics.feed_poll(report)
        return report

    def __getattr__(self, name: str) -> object:
        return getattr(self._feeds, name)


def skip_reason(why: str) -> str:
    """A short, bounded label for why an article was skipped (the full text is in the logs)."""
    text = why.lower()
    for needle, label in (
        ("same text", "duplicate"), ("canonical", "duplicate"), ("robots", "robots"), ("too large", "too_large"),
        ("larger than", "too_large"), ("timed out", "timeout"), ("timeout", "timeout"), ("no such file", "missing"),
        ("binary", "unreadable"), ("empty", "empty"), ("no text", "empty"), ("http", "http_error"),
        ("not a", "unsupported"),
    ):
        if needle in text:
            return label
    return "other"


class _IndexCollector(Collector):
    """Index size read when Prometheus scrapes, so it is never stale."""

    def __init__(self, library: Callable[[], object], data_dir: Path) -> None:
        self.library, self.data_dir = library, data_dir

    def collect(self) -> Iterator[GaugeMetricFamily]:
        view = self.library()
        articles = GaugeMetricFamily("bron_index_articles", "Articles in the live index.")
        passages = GaugeMetricFamily("bron_index_passages", "Passages in the live index.")
        size = GaugeMetricFamily("bron_index_bytes", "Bytes on disk of the index (database and segments).")
        articles.add_metric([], view.article_count)
        passages.add_metric([], view.chunk_count)
        size.add_metric([], _folder_bytes(self.data_dir))
        yield from (articles, passages, size)

    def describe(self) -> list:
        # Nothing to check at registration; describing would read the index before it loads.
        return []


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass  # swapped out by an ingest while we counted
    return total
