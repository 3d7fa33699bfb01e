"""The follow state in the postgres backend: the ``follow_*`` tables (schema 4), shared by every
process on the database, behind the same interface as follow.sqlite (:mod:`bot.follow.backend`).

So a topic followed through one Telegram webhook worker is matched by whichever process ingests
(another worker's feed poll, ``bron ingest`` on another machine), and its push is delivered once by
whichever worker claims it. What the file lock and SQLite's single writer gave the embedded store,
PostgreSQL gives here:

- **one scan at a time**: a session advisory lock (:data:`SCAN_LOCK`) held while a process matches
  new articles, so two processes never both take an article for new;
- **each outbox row to one sender**: claims run one at a time (a transaction advisory lock), move
  rows from ``pending`` to ``sending`` and stamp them with the claiming process's *sender number*;
  a chat's hourly quota counts what every process took;
- **a sender that died**: every process holds an advisory lock on its sender number, on a session
  of its own, for as long as it lives. Rows ``sending`` under a number nobody holds any more go
  back to the queue (at start-up, as with the embedded store, and on the next claim by any other
  process); the rows of a sender that is alive are never taken from it;
- **/unfollow beside a scan**: a scan records pushes only for subscriptions it can lock
  (``FOR SHARE``), so an /unfollow either waits for the scan and then cancels its pushes, or
  commits first and the scan records none.
"""

from __future__ import annotations

import logging
import secrets
import threading
from array import array
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from bot.follow.backend import HOUR, MAX_ATTEMPTS, PUSH_EXPIRES, Queued, Recorded, Schedule, Subscriber, pick, retry_at
from bot.follow.models import BriefingSetting, Subscription
from bot.follow.stories import Known
from embeddings.storage.postgres import WRITER_LOCK

log = logging.getLogger(__name__)

# Advisory lock keys, after the writers' (WRITER_LOCK), the feed state's (+1) and the poller's (+2).
SCAN_LOCK = WRITER_LOCK + 3
CLAIM_LOCK = WRITER_LOCK + 4
# Two-key locks (class, number): per chat while its topics change, and per living sender.
CHAT_LOCK = WRITER_LOCK + 5
SENDER_LOCK = WRITER_LOCK + 6

# Rows claimed by a sender that no session holds the lock of (or, with own, by this one).
_RECOVER = """
UPDATE follow_outbox SET state = 'pending', sender = NULL
WHERE state = 'sending' AND chat LIKE %(platform)s AND (
    sender IS NULL OR (%(own)s AND sender = %(me)s) OR (sender <> %(me)s AND NOT EXISTS (
        SELECT 1 FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid::bigint = %(lock)s AND l.objid::bigint = follow_outbox.sender)))
"""


class PgFollowStore:
    """Subscriptions, briefings, the articles seen and the outbox in the database behind ``db`` (the
    backend's :class:`~embeddings.storage.postgres.PgDatabase`: pooled connections, re-opened after
    a server restart; reads are retried, each write is one transaction that changes all or nothing)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._started = False
        self._scan_lock = threading.Lock()
        self._sender_lock = threading.Lock()
        self._sender_con: Any = None
        self.sender = 0  # this process's sender number, chosen when it first claims

    def exists(self) -> bool:
        # The tables are always there: follow is in use once the baseline was recorded (follow and
        # briefing do that before they write anything), and never stops being.
        if not self._started:
            self._started = self.baseline_done()
        return self._started

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """One scan at a time in this process, and across every process on the database."""
        import psycopg

        with self._scan_lock, self.db.pool().connection() as con:
            con.execute("SELECT pg_advisory_lock(%s)", (SCAN_LOCK,))
            try:
                yield
            finally:
                try:
                    con.execute("SELECT pg_advisory_unlock(%s)", (SCAN_LOCK,))
                except psycopg.Error:
                    pass  # the connection is gone, and the lock with it

    # -- subscriptions ------------------------------------------------------------------------------

    def add_subscription(self, chat: str, topic: str, language: str, ui: str, created: float, limit: int) -> bool:
        with self.db.transaction() as con:
            # Two workers adding topics to one chat at once must not pass the limit together.
            con.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (CHAT_LOCK, chat))
            topics = [t for (t,) in con.execute("SELECT topic FROM follow_subscriptions WHERE chat = %s", (chat,))]
            if topic.lower() in {t.lower() for t in topics}:
                return True
            if len(topics) >= limit:
                return False
            con.execute(
                "INSERT INTO follow_subscriptions (chat, topic, language, ui, created) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (chat, topic) DO NOTHING",
                (chat, topic, language, ui, created),
            )
        return True

    def subscriptions(self, chat: str) -> list[Subscription]:
        rows = self.db.query("SELECT id, chat, topic, language FROM follow_subscriptions WHERE chat = %s ORDER BY id", (chat,))
        return [Subscription(int(i), c, t, lang, n) for n, (i, c, t, lang) in enumerate(rows, 1)]

    def subscribers(self) -> list[Subscriber]:
        rows = self.db.query("SELECT id, chat, topic, language, ui FROM follow_subscriptions ORDER BY id")
        return [Subscriber(int(i), c, t, lang, ui) for i, c, t, lang, ui in rows]

    def remove_subscription(self, subscription: int) -> None:
        with self.db.transaction() as con:
            # Waits for a scan that locked the subscription; its pushes are then pending, and cancelled here.
            con.execute("DELETE FROM follow_subscriptions WHERE id = %s", (subscription,))
            con.execute("UPDATE follow_outbox SET state = 'cancelled' WHERE subscription = %s AND state = 'pending'", (subscription,))

    def forget_chat(self, chat: str) -> None:
        with self.db.transaction() as con:
            con.execute("DELETE FROM follow_subscriptions WHERE chat = %s", (chat,))
            con.execute("DELETE FROM follow_briefings WHERE chat = %s", (chat,))
            con.execute("UPDATE follow_outbox SET state = 'cancelled' WHERE chat = %s AND state IN ('pending', 'sending')", (chat,))

    # -- briefings ----------------------------------------------------------------------------------

    def set_briefing(self, chat: str, at: str, tz: str, ui: str, created: float) -> None:
        # One upsert: safe to retry after a lost connection.
        self.db.execute(
            "INSERT INTO follow_briefings (chat, at, tz, ui, created, last) VALUES (%s, %s, %s, %s, %s, NULL)"
            " ON CONFLICT (chat) DO UPDATE SET at = excluded.at, tz = excluded.tz, ui = excluded.ui",
            (chat, at, tz, ui, created),
        )

    def remove_briefing(self, chat: str) -> bool:
        with self.db.transaction() as con:
            return con.execute("DELETE FROM follow_briefings WHERE chat = %s", (chat,)).rowcount > 0

    def briefing(self, chat: str) -> BriefingSetting | None:
        rows = self.db.query("SELECT at, tz FROM follow_briefings WHERE chat = %s", (chat,))
        return BriefingSetting(chat, rows[0][0], rows[0][1]) if rows else None

    def schedules(self) -> list[Schedule]:
        rows = self.db.query("SELECT chat, at, tz, ui, created, last FROM follow_briefings ORDER BY chat")
        return [Schedule(*row) for row in rows]

    def record_briefing(self, chat: str, due: float, ui: str, data: str, now: float) -> int:
        with self.db.transaction() as con:
            # The row locked: two processes making the same briefing record it once.
            row = con.execute("SELECT last FROM follow_briefings WHERE chat = %s FOR UPDATE", (chat,)).fetchone()
            if row is None or (row[0] or 0.0) >= due:
                return 0  # turned off, or made by another process meanwhile
            made = con.execute(
                "INSERT INTO follow_outbox (chat, kind, due, ui, data, created) VALUES (%s, 'briefing', %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (chat, due, ui, data, now),
            ).rowcount
            con.execute("UPDATE follow_briefings SET last = %s WHERE chat = %s", (due, chat))
        return made

    # -- articles seen ------------------------------------------------------------------------------

    def baseline_done(self) -> bool:
        return bool(self.db.query("SELECT 1 FROM follow_meta WHERE key = 'baseline'"))

    def known_articles(self, loaded: Collection[int]) -> list[Known]:
        def work(con) -> list[Known]:
            missing = [int(i) for (i,) in con.execute("SELECT id FROM follow_articles ORDER BY id") if int(i) not in loaded]
            found = []
            for start in range(0, len(missing), 5000):
                rows = con.execute(
                    "SELECT id, story, shingles, lead FROM follow_articles WHERE id = ANY(%s) ORDER BY id",
                    (missing[start : start + 5000],),
                )
                found.extend(Known(int(i), int(story), array("I", bytes(sh)), lead) for i, story, sh, lead in rows)
            return found

        return self.db.run(work)

    def record_scan(self, seen: list[Known], now: float, baseline: bool, pushes: Iterable[Recorded]) -> int:
        recorded = 0
        with self.db.transaction() as con:
            with con.cursor() as cur:
                cur.executemany(
                    "INSERT INTO follow_articles (id, story, seen, baseline, shingles, lead) VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (id) DO NOTHING",
                    [(k.article_id, k.story, now, baseline, k.shingles.tobytes(), k.lead) for k in seen],
                )
            pushes = list(pushes)
            ids = sorted({p.subscriber.id for p in pushes})
            # Only for subscriptions still there, locked until the commit: see the module's docstring.
            live = {int(i) for (i,) in con.execute(
                "SELECT id FROM follow_subscriptions WHERE id = ANY(%s) ORDER BY id FOR SHARE", (ids,))} if ids else set()
            for push in pushes:
                if push.subscriber.id not in live:
                    continue
                recorded += con.execute(
                    "INSERT INTO follow_outbox (chat, kind, story, subscription, ui, data, created)"
                    " VALUES (%s, 'push', %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (push.subscriber.chat, push.story, push.subscriber.id, push.subscriber.ui, push.data, now),
                ).rowcount
            if baseline:
                con.execute(
                    "INSERT INTO follow_meta (key, value) VALUES ('baseline', %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(now),),
                )
        if baseline:
            self._started = True
        return recorded

    def seen_between(self, since: float, until: float) -> list[tuple[int, int, float]]:
        rows = self.db.query(
            "SELECT id, story, seen FROM follow_articles WHERE NOT baseline AND seen >= %s AND seen < %s ORDER BY id",
            (since, until),
        )
        return [(int(i), int(story), float(seen)) for i, story, seen in rows]

    # -- the outbox ---------------------------------------------------------------------------------

    def hold_sender(self) -> int:
        """This process's sender number, with its advisory lock held on a session of its own (taken
        on first use, and again, under the same number if still free, after the session dropped)."""
        import psycopg

        with self._sender_lock:
            con = self._sender_con
            if con is not None and not con.closed:
                try:
                    con.execute("SELECT 1")
                    return self.sender
                except psycopg.Error:
                    log.warning("follow: lost the sender's session; messages it was sending may be sent again")
                    self._close_sender()
            con = self.db.connect()
            try:
                number = self.sender or secrets.randbelow(2**31 - 2) + 1
                while not con.execute("SELECT pg_try_advisory_lock(%s, %s)", (SENDER_LOCK, number)).fetchone()[0]:
                    number = secrets.randbelow(2**31 - 2) + 1  # taken by a living process: another number
            except BaseException:
                con.close()
                raise
            self._sender_con, self.sender = con, number
            return number

    def _close_sender(self) -> None:
        con, self._sender_con = self._sender_con, None
        if con is not None:
            try:
                con.close()
            except Exception:  # noqa: BLE001 - a session already gone is closed
                pass

    def close(self) -> None:
        """Stop being a sender: the rows this process was sending go back to the queue for the others."""
        with self._sender_lock:
            self._close_sender()

    def recover(self, platform: str) -> int:
        if not self.exists():
            return 0
        me = self.hold_sender()
        with self.db.transaction() as con:
            return con.execute(_RECOVER, {"platform": f"{platform}:%", "own": True, "me": me, "lock": SENDER_LOCK}).rowcount

    def claim(self, platform: str, now: float, quota: int, limit: int) -> list[Queued]:
        if not self.exists():
            return []
        me = self.hold_sender()
        with self.db.transaction() as con:
            # Claims one at a time across every process: a pending row goes to one sender, and a
            # chat's quota counts what the others took a moment ago.
            con.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK,))
            orphans = con.execute(_RECOVER, {"platform": f"{platform}:%", "own": False, "me": me, "lock": SENDER_LOCK}).rowcount
            if orphans:
                log.warning("follow: %d %s message(s) of a sender that stopped go out again", orphans, platform)
            con.execute(
                "UPDATE follow_outbox SET state = 'expired'"
                " WHERE state = 'pending' AND kind = 'push' AND created < %s AND chat LIKE %s",
                (now - PUSH_EXPIRES, f"{platform}:%"),
            )
            rows = con.execute(
                "SELECT id, chat, kind, ui, data FROM follow_outbox WHERE state = 'pending' AND next_try <= %s"
                " AND chat LIKE %s ORDER BY id FOR UPDATE SKIP LOCKED",
                (now, f"{platform}:%"),
            ).fetchall()
            if not rows:
                return []
            used = {chat: int(n) for chat, n in con.execute(
                "SELECT chat, count(*) FROM follow_outbox WHERE kind = 'push' AND chat LIKE %s"
                " AND (state = 'sending' OR (state = 'sent' AND sent > %s)) GROUP BY chat",
                (f"{platform}:%", now - HOUR),
            )}
            taken = pick((Queued(int(i), c, k, ui, d) for i, c, k, ui, d in rows), used, quota, limit)
            if taken:
                con.execute(
                    "UPDATE follow_outbox SET state = 'sending', attempts = attempts + 1, sender = %s WHERE id = ANY(%s)",
                    (me, [r.id for r in taken]),
                )
        return taken

    def sent(self, message: int, now: float, ref: str | None) -> None:
        # Idempotent: safe to retry after a lost connection.
        self.db.execute("UPDATE follow_outbox SET state = 'sent', sent = %s, ref = %s WHERE id = %s", (now, ref, message))

    def failed(self, message: int, error: str, retry: bool, now: float) -> None:
        with self.db.transaction() as con:
            row = con.execute("SELECT attempts FROM follow_outbox WHERE id = %s FOR UPDATE", (message,)).fetchone()
            again = retry_at(row[0] if row else MAX_ATTEMPTS, retry, now)
            if again is not None:
                con.execute(
                    "UPDATE follow_outbox SET state = 'pending', next_try = %s, error = %s, sender = NULL WHERE id = %s",
                    (again, error[:500], message),
                )
            else:
                con.execute("UPDATE follow_outbox SET state = 'failed', error = %s WHERE id = %s", (error[:500], message))

    def counts(self) -> dict[str, int]:
        return {state: int(n) for state, n in self.db.query("SELECT state, count(*) FROM follow_outbox GROUP BY state")}
