"""RSS and Atom feeds: the feed list, the items seen, and polling for new articles.

The feeds a user adds and what Bron has seen of them live in ``<data dir>/feeds.json`` (written
atomically, one poll at a time per data directory), or with the postgres backend in the database
(:mod:`embeddings.storage.pg_feeds`), where one process at a time polls: the holder of a lease
that another process takes over when the holder dies. A poll fetches each feed (conditionally, with
its ETag / Last-Modified), and fetches only the items that are new or whose ``updated`` stamp
changed; those pages go through :class:`embeddings.web.WebSources` in one ingest, so an updated
article replaces its old passages and the same article under two addresses is indexed once.
"""

from __future__ import annotations

import asyncio
import fcntl
import io
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from embeddings.extract import clean_url
from embeddings.fetch import FEED_TYPES, Fetcher, FetchError
from embeddings.library import ProgressArg
from embeddings.models import FeedInfo, PollReport
from embeddings.web import WebSources, is_web_address

log = logging.getLogger(__name__)

STATE_FILE = "feeds.json"
# Items whose page failed this many polls in a row are left alone until the feed changes them.
MAX_ATTEMPTS = 3
# How often a process that does not hold the poller's lease tries to take it over.
STANDBY_SECONDS = 5.0


class FeedError(Exception):
    """A feed that cannot be fetched or parsed; the message says why."""


@dataclass
class Entry:
    """One feed item: where the article is, how to recognise it next time, and metadata hints."""

    ident: str
    link: str
    stamp: str
    hints: dict[str, str] = field(default_factory=dict)


@dataclass
class Feed:
    """A fetched and parsed feed."""

    title: str
    entries: list[Entry]
    etag: str | None = None
    modified: str | None = None
    not_modified: bool = False


def _date(parsed: Any) -> str | None:
    return time.strftime("%Y-%m-%d", parsed) if parsed else None


def parse_feed(body: bytes, content_type: str = "") -> tuple[str, list[Entry]]:
    """Title and items of an RSS or Atom document; raises :class:`FeedError` if it is neither."""
    import feedparser

    # A stream, never a string: feedparser would fetch a string that looks like a URL itself.
    parsed = feedparser.parse(io.BytesIO(body), response_headers={"content-type": content_type or "application/xml"})
    if not parsed.get("version") and not parsed.entries:
        problem = parsed.get("bozo_exception")
        raise FeedError(f"not an RSS or Atom feed{f' ({problem})' if problem else ''}")
    title = " ".join(str(parsed.feed.get("title", "")).split())
    entries = []
    for item in parsed.entries:
        link = item.get("link") or ""
        if not is_web_address(link):
            continue
        entries.append(
            Entry(
                ident=str(item.get("id") or link),
                link=link,
                # dict.get: feedparser's own get() maps a missing "updated" to "published" with a warning
                stamp=str(dict.get(item, "updated") or dict.get(item, "published") or ""),
                hints={
                    k: v
                    for k, v in {
                        "title": " ".join(str(item.get("title", "")).split()),
                        "date": _date(dict.get(item, "published_parsed") or dict.get(item, "updated_parsed")),
                        "author": str(item.get("author", "")),
                        "outlet": title,
                    }.items()
                    if v
                },
            )
        )
    return title, entries


def fetch_feed(fetcher: Fetcher, url: str, etag: str | None = None, modified: str | None = None) -> Feed:
    """Fetch and parse one feed, conditionally when ``etag``/``modified`` are known."""
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    try:
        page = fetcher.get(url, accept=FEED_TYPES, headers=headers)
    except FetchError as err:
        raise FeedError(str(err)) from None
    if page.not_modified:
        return Feed("", [], etag, modified, not_modified=True)
    title, entries = parse_feed(page.body, page.content_type)
    return Feed(title, entries, page.headers.get("etag"), page.headers.get("last-modified"))


class FeedStore:
    """``feeds.json`` in the data directory: the added feeds and the state of every polled one."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / STATE_FILE
        self._lock_path = data_dir / "feeds.lock"

    @contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        """The state, exclusively (across processes); written back atomically on exit."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                state = self.read()
                yield state
                self._write(state)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def read(self) -> dict[str, Any]:
        """The state as stored (``{"added": [...], "feeds": {url: {...}}}``)."""
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            state = {}
        except (OSError, ValueError) as exc:
            log.warning("%s is unreadable (%s); starting with no feed state", self.path, exc)
            state = {}
        state.setdefault("added", [])
        state.setdefault("feeds", {})
        return state

    def _write(self, state: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, ensure_ascii=False, indent=1), encoding="utf-8")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class StateStore(Protocol):
    """Where the feed state lives: :class:`FeedStore` (feeds.json) or the database's ``PgFeedStore``."""

    def locked(self) -> Any: ...
    def read(self) -> dict[str, Any]: ...


class PollLease(Protocol):
    """Which of several processes polls: :meth:`hold` is True in exactly one of them at a time."""

    def hold(self) -> bool: ...
    def release(self) -> None: ...


class Feeds:
    """The feed list (config plus stored state) and polling, for the CLI and the bots.

    ``store`` defaults to ``feeds.json`` in ``data_dir``; ``lease``, when given, lets only its holder
    poll on a schedule (:func:`poll_every`).
    """

    def __init__(self, pages: WebSources, data_dir: Path, configured: list[str], store: StateStore | None = None,
                 lease: PollLease | None = None) -> None:
        self.pages = pages
        self.store = store or FeedStore(data_dir)
        self.lease = lease
        self.configured = [clean_feed_url(u) for u in configured]

    def urls(self) -> list[str]:
        """Every feed polled: the configured ones, then the added ones."""
        return list(dict.fromkeys(self.configured + self.store.read()["added"]))

    def status(self) -> list[FeedInfo]:
        """The feeds with what is known of them."""
        state = self.store.read()
        return [self._info(url, state) for url in self.urls()]

    def _info(self, url: str, state: dict[str, Any]) -> FeedInfo:
        s = state["feeds"].get(url, {})
        seen = sum(1 for item in s.get("items", {}).values() if item.get("article"))
        return FeedInfo(url, s.get("title", ""), url in self.configured, seen, s.get("last_poll"), s.get("last_error"))

    def add(self, url: str) -> FeedInfo:
        """Check that ``url`` is a feed and remember it; raises :class:`FeedError` if it is not."""
        if not is_web_address(url):
            raise FeedError("a feed address starts with http:// or https://")
        url = clean_feed_url(url)
        feed = fetch_feed(self.pages.fetcher, url)
        with self.store.locked() as state:
            if url not in state["added"] and url not in self.configured:
                state["added"].append(url)
            state["feeds"].setdefault(url, {})["title"] = feed.title
            info = self._info(url, state)
        log.info("feed added: %s (%s, %d items)", url, feed.title, len(feed.entries))
        return info

    def remove(self, url: str) -> bool:
        """Forget an added feed (its articles stay indexed); False if it was not added.

        A feed listed in config.yaml raises :class:`FeedError`: it has to be removed there.
        """
        url = clean_feed_url(url)
        if url in self.configured:
            raise FeedError("this feed is listed in config.yaml (feeds.urls); remove it there")
        with self.store.locked() as state:
            if url not in state["added"]:
                return False
            state["added"].remove(url)
            state["feeds"].pop(url, None)
        return True

    def poll(self, progress: ProgressArg = False) -> PollReport:
        """Fetch every feed and ingest its new and changed items (one poll at a time)."""
        result = PollReport()
        with self.store.locked() as state:
            wanted: dict[str, Entry] = {}
            sources: dict[str, list[tuple[str, Entry]]] = {}
            for url in self.urls():
                fresh, seen = self._new_entries(url, state)
                result.seen_before += seen
                for entry in fresh:
                    # One fetch per article, however many feeds (or tracking parameters) link to it.
                    page = clean_url(entry.link)
                    wanted.setdefault(page, entry)
                    sources.setdefault(page, []).append((url, entry))
            result.fetched = len(wanted)
            links = [e.link for e in wanted.values()]
            web = self.pages.ingest_urls(links, progress=progress, hints={e.link: e.hints for e in wanted.values()})
            result.report = web.report
            for page, pairs in sources.items():
                article_id = web.article_ids.get(wanted[page].link)
                for feed_url, entry in pairs:
                    self._record(state["feeds"][feed_url].setdefault("items", {}), entry, article_id)
            result.feeds = [self._info(url, state) for url in self.urls()]
        result.report.skipped += [(info.url, info.last_error) for info in result.feeds if info.last_error]
        return result

    @staticmethod
    def _record(items: dict[str, Any], entry: Entry, article_id: int | None) -> None:
        """Remember an item as indexed, or count a failed attempt for its current stamp."""
        if article_id is not None:
            items[entry.ident] = {"stamp": entry.stamp, "article": article_id}
            return
        previous = items.get(entry.ident, {})
        tries = previous.get("failed", 0) + 1 if previous.get("stamp") == entry.stamp else 1
        items[entry.ident] = {"stamp": entry.stamp, "failed": tries}

    def _new_entries(self, url: str, state: dict[str, Any]) -> tuple[list[Entry], int]:
        """The entries of one feed that need fetching, and how many were seen before.

        Records the feed's status (last poll, error, title, validators) in ``state``.
        """
        s = state["feeds"].setdefault(url, {})
        s["last_poll"] = _now()
        try:
            feed = fetch_feed(self.pages.fetcher, url, s.get("etag"), s.get("modified"))
        except FeedError as err:
            s["last_error"] = str(err)
            log.warning("feed %s: %s", url, err)
            return [], 0
        s["last_error"] = None
        if feed.not_modified:
            return [], 0
        s.update(title=feed.title or s.get("title", ""), etag=feed.etag, modified=feed.modified)
        items = s.setdefault("items", {})
        fresh = []
        for entry in feed.entries:
            known = items.get(entry.ident)
            done = known and (known.get("article") or known.get("failed", 0) >= MAX_ATTEMPTS)
            if not (done and known.get("stamp") == entry.stamp):
                fresh.append(entry)
        return fresh, len(feed.entries) - len(fresh)


def clean_feed_url(url: str) -> str:
    """A feed address in one spelling (fragment dropped, host lower-cased), so it is listed once."""
    return clean_url(url)


async def poll(feeds: Feeds, progress: ProgressArg = False) -> PollReport:
    """:meth:`Feeds.poll` for asyncio front ends: runs in a worker thread, never blocks the loop."""
    return await asyncio.to_thread(feeds.poll, progress)


async def poll_every(feeds: Feeds, minutes: float, stop: asyncio.Event | None = None) -> None:
    """Poll the feeds every ``minutes`` until ``stop`` is set (or the task is cancelled).

    A failing poll is logged and the schedule goes on. ``minutes <= 0`` returns at once. With a
    lease (``feeds.lease``, the postgres backend) only its holder polls; the others try to take it
    every :data:`STANDBY_SECONDS`, and the one that does polls at once (the holder it replaces may
    have died mid-poll: items it ingested are found unchanged, not ingested twice).
    """
    if minutes <= 0:
        return
    stop = stop or asyncio.Event()
    lease: PollLease | None = getattr(feeds, "lease", None)
    try:
        while not stop.is_set():
            if lease is not None and not await asyncio.to_thread(lease.hold):
                await _wait(stop, STANDBY_SECONDS)
                continue
            try:
                report = await poll(feeds)
                log.info("feeds polled: %d new or changed items, %d added", report.fetched, len(report.report.added))
            except Exception:  # noqa: BLE001 - a bad poll must not end the schedule
                log.exception("polling the feeds failed")
            await _wait(stop, minutes * 60)
    finally:
        if lease is not None:
            lease.release()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass
