"""``<data dir>/follow.sqlite``: subscriptions, briefing times, the articles seen (with their story),
and the outbox of pushes and briefings. WAL mode; every change is one transaction.

The outbox is what makes alerts survive a crash: a match is written in the same transaction that
records its article as seen, so an article is either not yet seen (and is matched again after a
restart) or seen with all its pushes waiting. Unique indexes make a push per (chat, story) and a
briefing per (chat, time) impossible to record twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FILE = "follow.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
    id INTEGER PRIMARY KEY, chat TEXT NOT NULL, topic TEXT NOT NULL, language TEXT NOT NULL,
    ui TEXT NOT NULL, created REAL NOT NULL, UNIQUE (chat, topic)
);
CREATE TABLE IF NOT EXISTS briefings (
    chat TEXT PRIMARY KEY, at TEXT NOT NULL, tz TEXT NOT NULL, ui TEXT NOT NULL,
    created REAL NOT NULL, last REAL
);
-- Articles the follower has seen; baseline rows were in the index before anyone followed anything.
CREATE TABLE IF NOT EXISTS articles (
    id INTEGER PRIMARY KEY, story INTEGER NOT NULL, seen REAL NOT NULL, baseline INTEGER NOT NULL,
    shingles BLOB NOT NULL, lead TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY, chat TEXT NOT NULL, kind TEXT NOT NULL, story INTEGER, due REAL,
    subscription INTEGER, ui TEXT NOT NULL, data TEXT NOT NULL, created REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0, sent REAL, ref TEXT, error TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS push_once ON outbox (chat, story) WHERE kind = 'push';
CREATE UNIQUE INDEX IF NOT EXISTS briefing_once ON outbox (chat, due) WHERE kind = 'briefing';
CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state, chat);
CREATE INDEX IF NOT EXISTS articles_seen ON articles (seen);
"""


class Store:
    """Connections to follow.sqlite; one per call, so any thread may use it."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / FILE
        self._ready = False

    def exists(self) -> bool:
        return self.path.exists()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        if not self._ready:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
            self._ready = True
        # NORMAL in WAL mode: a commit survives the process being killed (kill -9), not a power cut.
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for reading."""
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE): committed on exit, rolled back on an exception."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()
