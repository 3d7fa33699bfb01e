"""The feeds in the postgres backend: their state in tables, and the lease of the one process that polls.

:class:`PgFeedStore` keeps what ``feeds.json`` keeps for the embedded backend (the added feeds, each
feed's validators and status, the items seen) in the ``feeds`` and ``feed_items`` tables (schema 3),
behind the same two methods as :class:`embeddings.feeds.FeedStore`, so polling works the same on
both backends.

:class:`PgPollLease` decides which process polls: the holder of a session advisory lock, taken with
``pg_try_advisory_lock`` on a connection of its own. When that process dies, its connection drops,
the server releases the lock, and the next process that tries takes it over.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from embeddings.storage.postgres import WRITER_LOCK, PgDatabase

log = logging.getLogger(__name__)

# Advisory lock keys, next to the writers' one: the feed state (held by a transaction while it
# changes) and the poller's lease (held by a session as long as it polls).
FEED_STATE_LOCK = WRITER_LOCK + 1
POLLER_LOCK = WRITER_LOCK + 2

_FEED_FIELDS = ("title", "etag", "modified", "last_poll", "last_error")


class PgFeedStore:
    """The feed state in the database, as the dictionary :class:`embeddings.feeds.Feeds` works on."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    @contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        """The state, exclusively (across every process on the database); the changes made to it are
        written when the block ends, in the same transaction (nothing is written if it raises).

        A poll holds this transaction while it fetches and ingests, as the embedded backend holds
        its file lock: polls and feed changes wait for each other."""
        with self.db.transaction() as con:
            # Idle while pages are fetched: a server that ends idle transactions sooner would make
            # every poll's state write fail (and the next poll fetch everything again).
            con.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            con.execute("SELECT pg_advisory_xact_lock(%s)", (FEED_STATE_LOCK,))
            state = _read(con)
            before = copy.deepcopy(state)
            yield state
            _write(con, before, state)

    def read(self) -> dict[str, Any]:
        """The state as stored (``{"added": [...], "feeds": {url: {...}}}``)."""
        return self.db.run(_read)


def _read(con) -> dict[str, Any]:
    state: dict[str, Any] = {"added": [], "feeds": {}}
    rows = con.execute("SELECT url, added, title, etag, modified, last_poll, last_error FROM feeds ORDER BY added, url").fetchall()
    for url, added, *fields in rows:
        if added is not None:
            state["added"].append(url)
        state["feeds"][url] = {**dict(zip(_FEED_FIELDS, fields)), "items": {}}
    for feed, ident, stamp, article, failed in con.execute("SELECT feed, ident, stamp, article, failed FROM feed_items"):
        item = {"stamp": stamp, "article": int(article)} if article is not None else {"stamp": stamp, "failed": failed}
        state["feeds"][feed]["items"][ident] = item
    return state


def _feed_rows(state: dict[str, Any]) -> dict[str, tuple]:
    urls = list(dict.fromkeys([*state["added"], *state["feeds"]]))
    position = {url: i for i, url in enumerate(state["added"])}
    return {url: (url, position.get(url), *(state["feeds"].get(url, {}).get(f) for f in _FEED_FIELDS)) for url in urls}


def _item_rows(state: dict[str, Any]) -> dict[tuple[str, str], tuple]:
    rows = {}
    for url, feed in state["feeds"].items():
        for ident, item in feed.get("items", {}).items():
            article = item.get("article")
            rows[(url, ident)] = (url, ident, item.get("stamp") or "", article, 0 if article else int(item.get("failed", 0)))
    return rows


def _write(con, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Write what changed between ``before`` and ``after`` (a poll touches a few rows of many)."""
    old_feeds, new_feeds = _feed_rows(before), _feed_rows(after)
    old_items, new_items = _item_rows(before), _item_rows(after)
    with con.cursor() as cur:
        gone = [url for url in old_feeds if url not in new_feeds]
        if gone:
            cur.execute("DELETE FROM feeds WHERE url = ANY(%s)", (gone,))  # their items go with them
        changed = [row for url, row in new_feeds.items() if old_feeds.get(url) != row]
        if changed:
            cur.executemany(
                "INSERT INTO feeds (url, added, title, etag, modified, last_poll, last_error) VALUES (%s,%s,%s,%s,%s,%s,%s)"
                " ON CONFLICT (url) DO UPDATE SET added = excluded.added, title = excluded.title, etag = excluded.etag,"
                " modified = excluded.modified, last_poll = excluded.last_poll, last_error = excluded.last_error",
                changed,
            )
        dropped = [key for key in old_items if key not in new_items and key[0] in new_feeds]
        if dropped:
            cur.executemany("DELETE FROM feed_items WHERE feed = %s AND ident = %s", dropped)
        changed = [row for key, row in new_items.items() if old_items.get(key) != row]
        if changed:
            cur.executemany(
                "INSERT INTO feed_items (feed, ident, stamp, article, failed) VALUES (%s,%s,%s,%s,%s)"
                " ON CONFLICT (feed, ident) DO UPDATE SET stamp = excluded.stamp, article = excluded.article,"
                " failed = excluded.failed",
                changed,
            )


class PgPollLease:
    """Whether this process is the one that polls the feeds (see the module's docstring).

    :meth:`hold` is cheap and never blocks: the holder checks its connection is still there, the
    others try to take the lock. A holder whose connection dropped (a database restart) has lost
    the lease and competes for it again like the others.
    """

    def __init__(self, db: PgDatabase) -> None:
        self.db = db
        self._con = None
        self._held = False

    def hold(self) -> bool:
        """True when this process holds the lease (taking it if it is free)."""
        import psycopg

        try:
            if self._con is None or self._con.closed:
                self._con = self.db.connect()
                self._held = False
            if self._held:
                self._con.execute("SELECT 1")
                return True
            self._held = bool(self._con.execute("SELECT pg_try_advisory_lock(%s)", (POLLER_LOCK,)).fetchone()[0])
            if self._held:
                log.info("this process polls the feeds now (it holds the poller's lock)")
            return self._held
        except psycopg.Error as exc:
            if self._held:
                log.warning("lost the feed poller's lock (%s); trying to take it again", str(exc).strip()[:120])
            self.release()
            return False

    def release(self) -> None:
        """Give the lease up (closing the session releases the lock)."""
        con, self._con, self._held = self._con, None, False
        if con is not None:
            try:
                con.close()
            except Exception:  # noqa: BLE001 - a connection already gone is closed
                pass
