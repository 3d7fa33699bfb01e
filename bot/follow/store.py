"""``<data dir>/follow.sqlite``: subscriptions, briefing times, the articles seen (with their story),
and the outbox of pushes and briefings. WAL mode; every change is one transaction.

The outbox is what makes alerts survive a crash: a match is written in the same transaction that
records its article as seen, so an article is either not yet seen (and is matched again after a
restart) or seen with all its pushes waiting. Unique indexes make a push per (chat, story) and a
briefing per (chat, time) impossible to record twice.
"""

from __future__ import annotations

import fcntl
import sqlite3
import threading
from array import array
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.follow.backend import HOUR, MAX_ATTEMPTS, PUSH_EXPIRES, Queued, Recorded, Schedule, Subscriber, pick, retry_at
from bot.follow.models import BriefingSetting, Subscription
from bot.follow.stories import Known

FILE = "follow.sqlite"
LOCK = "follow.lock"

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
    """Connections to follow.sqlite; one per call, so any thread may use it. The follow state of the
    embedded backend (see :class:`bot.follow.backend.FollowStore`)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / FILE
        self._lock_path = Path(data_dir) / LOCK
        self._scan_lock = threading.Lock()
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

    def close(self) -> None:
        """Nothing to let go of: every call opens and closes its own connection."""

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """One scan at a time, in this process and across processes (bron ingest beside bron serve)."""
        with self._scan_lock, open(self._lock_path, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- subscriptions ------------------------------------------------------------------------------

    def add_subscription(self, chat: str, topic: str, language: str, ui: str, created: float, limit: int) -> bool:
        with self.write() as db:
            rows = db.execute("SELECT topic FROM subscriptions WHERE chat = ?", (chat,)).fetchall()
            if topic.lower() not in {r["topic"].lower() for r in rows}:
                if len(rows) >= limit:
                    return False
                db.execute(
                    "INSERT INTO subscriptions (chat, topic, language, ui, created) VALUES (?, ?, ?, ?, ?)",
                    (chat, topic, language, ui, created),
                )
        return True

    def subscriptions(self, chat: str) -> list[Subscription]:
        if not self.exists():
            return []
        with self.read() as db:
            rows = db.execute("SELECT id, chat, topic, language FROM subscriptions WHERE chat = ? ORDER BY id", (chat,)).fetchall()
        return [Subscription(r["id"], r["chat"], r["topic"], r["language"], n) for n, r in enumerate(rows, 1)]

    def subscribers(self) -> list[Subscriber]:
        with self.read() as db:
            rows = db.execute("SELECT id, chat, topic, language, ui FROM subscriptions ORDER BY id").fetchall()
        return [Subscriber(r["id"], r["chat"], r["topic"], r["language"], r["ui"]) for r in rows]

    def remove_subscription(self, subscription: int) -> None:
        with self.write() as db:
            db.execute("DELETE FROM subscriptions WHERE id = ?", (subscription,))
            db.execute("UPDATE outbox SET state = 'cancelled' WHERE subscription = ? AND state = 'pending'", (subscription,))

    def forget_chat(self, chat: str) -> None:
        with self.write() as db:
            db.execute("DELETE FROM subscriptions WHERE chat = ?", (chat,))
            db.execute("DELETE FROM briefings WHERE chat = ?", (chat,))
            db.execute("UPDATE outbox SET state = 'cancelled' WHERE chat = ? AND state IN ('pending', 'sending')", (chat,))

    # -- briefings ----------------------------------------------------------------------------------

    def set_briefing(self, chat: str, at: str, tz: str, ui: str, created: float) -> None:
        with self.write() as db:
            db.execute(
                "INSERT INTO briefings (chat, at, tz, ui, created, last) VALUES (?, ?, ?, ?, ?, NULL) "
                "ON CONFLICT (chat) DO UPDATE SET at = excluded.at, tz = excluded.tz, ui = excluded.ui",
                (chat, at, tz, ui, created),
            )

    def remove_briefing(self, chat: str) -> bool:
        if not self.exists():
            return False
        with self.write() as db:
            gone = db.execute("DELETE FROM briefings WHERE chat = ?", (chat,)).rowcount
        return bool(gone)

    def briefing(self, chat: str) -> BriefingSetting | None:
        if not self.exists():
            return None
        with self.read() as db:
            row = db.execute("SELECT at, tz FROM briefings WHERE chat = ?", (chat,)).fetchone()
        return BriefingSetting(chat, row["at"], row["tz"]) if row else None

    def schedules(self) -> list[Schedule]:
        if not self.exists():
            return []
        with self.read() as db:
            rows = db.execute("SELECT chat, at, tz, ui, created, last FROM briefings").fetchall()
        return [Schedule(r["chat"], r["at"], r["tz"], r["ui"], r["created"], r["last"]) for r in rows]

    def record_briefing(self, chat: str, due: float, ui: str, data: str, now: float) -> int:
        with self.write() as db:
            current = db.execute("SELECT last FROM briefings WHERE chat = ?", (chat,)).fetchone()
            if current is None or (current["last"] or 0.0) >= due:
                return 0  # turned off, or made by another process meanwhile
            made = db.execute(
                "INSERT OR IGNORE INTO outbox (chat, kind, due, ui, data, created) VALUES (?, 'briefing', ?, ?, ?, ?)",
                (chat, due, ui, data, now),
            ).rowcount
            db.execute("UPDATE briefings SET last = ? WHERE chat = ?", (due, chat))
        return made

    # -- articles seen ------------------------------------------------------------------------------

    def baseline_done(self) -> bool:
        with self.read() as db:
            return db.execute("SELECT value FROM meta WHERE key = 'baseline'").fetchone() is not None

    def known_articles(self, loaded: Collection[int]) -> list[Known]:
        found = []
        with self.read() as db:
            missing = [i for (i,) in db.execute("SELECT id FROM articles ORDER BY id") if i not in loaded]
            for start in range(0, len(missing), 500):
                part = missing[start : start + 500]
                rows = db.execute(
                    f"SELECT id, story, shingles, lead FROM articles WHERE id IN ({','.join('?' * len(part))}) ORDER BY id", part
                )
                found.extend(Known(row["id"], row["story"], array("I", row["shingles"]), row["lead"]) for row in rows)
        return found

    def record_scan(self, seen: list[Known], now: float, baseline: bool, pushes: Iterable[Recorded]) -> int:
        with self.write() as db:
            db.executemany(
                "INSERT OR IGNORE INTO articles (id, story, seen, baseline, shingles, lead) VALUES (?, ?, ?, ?, ?, ?)",
                [(k.article_id, k.story, now, int(baseline), k.shingles.tobytes(), k.lead) for k in seen],
            )
            recorded = 0
            for push in pushes:
                recorded += db.execute(
                    "INSERT OR IGNORE INTO outbox (chat, kind, story, subscription, ui, data, created) "
                    "VALUES (?, 'push', ?, ?, ?, ?, ?)",
                    (push.subscriber.chat, push.story, push.subscriber.id, push.subscriber.ui, push.data, now),
                ).rowcount
            if baseline:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('baseline', ?)", (str(now),))
        return recorded

    def seen_between(self, since: float, until: float) -> list[tuple[int, int, float]]:
        with self.read() as db:
            rows = db.execute(
                "SELECT id, story, seen FROM articles WHERE baseline = 0 AND seen >= ? AND seen < ? ORDER BY id",
                (since, until),
            ).fetchall()
        return [(r["id"], r["story"], r["seen"]) for r in rows]

    # -- the outbox ---------------------------------------------------------------------------------

    def recover(self, platform: str) -> int:
        if not self.exists():
            return 0
        with self.write() as db:
            return db.execute(
                "UPDATE outbox SET state = 'pending' WHERE state = 'sending' AND chat LIKE ?", (f"{platform}:%",)
            ).rowcount

    def claim(self, platform: str, now: float, quota: int, limit: int) -> list[Queued]:
        if not self.exists():
            return []
        with self.write() as db:
            db.execute(
                "UPDATE outbox SET state = 'expired' WHERE state = 'pending' AND kind = 'push' AND created < ? AND chat LIKE ?",
                (now - PUSH_EXPIRES, f"{platform}:%"),
            )
            rows = db.execute(
                "SELECT id, chat, kind, ui, data FROM outbox WHERE state = 'pending' AND next_try <= ? AND chat LIKE ? ORDER BY id",
                (now, f"{platform}:%"),
            ).fetchall()
            if not rows:
                return []
            used = dict(db.execute(
                "SELECT chat, COUNT(*) FROM outbox WHERE kind = 'push' AND chat LIKE ? "
                "AND (state = 'sending' OR (state = 'sent' AND sent > ?)) GROUP BY chat",
                (f"{platform}:%", now - HOUR),
            ).fetchall())
            taken = pick((Queued(r["id"], r["chat"], r["kind"], r["ui"], r["data"]) for r in rows), used, quota, limit)
            db.executemany(
                "UPDATE outbox SET state = 'sending', attempts = attempts + 1 WHERE id = ?", [(r.id,) for r in taken]
            )
        return taken

    def sent(self, message: int, now: float, ref: str | None) -> None:
        with self.write() as db:
            db.execute("UPDATE outbox SET state = 'sent', sent = ?, ref = ? WHERE id = ?", (now, ref, message))

    def failed(self, message: int, error: str, retry: bool, now: float) -> None:
        with self.write() as db:
            row = db.execute("SELECT attempts FROM outbox WHERE id = ?", (message,)).fetchone()
            again = retry_at(row["attempts"] if row else MAX_ATTEMPTS, retry, now)
            if again is not None:
                db.execute("UPDATE outbox SET state = 'pending', next_try = ?, error = ? WHERE id = ?", (again, error[:500], message))
            else:
                db.execute("UPDATE outbox SET state = 'failed', error = ? WHERE id = ?", (error[:500], message))

    def counts(self) -> dict[str, int]:
        if not self.exists():
            return {}
        with self.read() as db:
            return dict(db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())
