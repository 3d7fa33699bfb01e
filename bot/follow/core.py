"""Follow topics and get a daily briefing: the transport-independent part.

:class:`Follow` keeps subscriptions and briefing times, learns of new articles (:meth:`Follow.scan`),
matches them against every followed topic with the same retrieval and answerability decision as a
question, and keeps the messages to send in an outbox (:meth:`Follow.claim`, :meth:`Follow.done`).
The adapters (Telegram, Matrix) only render and send what it hands out.

Methods block (they embed topics and search the index); async front ends call them through
``asyncio.to_thread``. ``now`` (epoch seconds) is injected, so tests move the clock instead of sleeping.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import json
import logging
import threading
import time
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.answering import CANDIDATES, asks_something
from bot.errors import BronError
from bot.follow.models import Briefing, BriefingItem, BriefingSetting, Following, Outgoing, Push, Subscription
from bot.follow.stories import Known, StoryIndex, first_sentence
from bot.follow.store import Store
from bot.models import ArticleInfo

log = logging.getLogger(__name__)

MAX_TOPICS = 20
MAX_TOPIC_CHARS = 200
HOUR = 3600.0
DAY = 86400.0
# A push that waited this long (rate limit, chat unreachable) is stale: the briefing covers it.
PUSH_EXPIRES = DAY
# Sends that fail for a reason that may pass (network, server) are retried this many times.
MAX_ATTEMPTS = 8
MIN_SENTENCE_WORDS = 6


class FollowUsage(BronError):
    key = "follow_usage"


class TooManyTopics(BronError):
    key = "follow_too_many"


class UnknownSubscription(BronError):
    key = "unfollow_unknown"


class BriefingUsage(BronError):
    key = "briefing_usage"


class UnknownTimeZone(BronError):
    key = "briefing_timezone"


def normalise_topic(topic: str) -> str:
    return " ".join((topic or "").split())


def parse_time(text: str) -> tuple[int, int] | None:
    """(hour, minute) from "07:30", "7.30" or "7:30"; None when it is not a time of day."""
    text = text.strip().replace(".", ":").replace("h", ":")
    hour, _, minute = text.partition(":")
    if not (hour.isascii() and hour.isdigit() and (not minute or (minute.isascii() and minute.isdigit()))):
        return None
    h, m = int(hour), int(minute or 0)
    return (h, m) if 0 <= h < 24 and 0 <= m < 60 and len(minute or "00") == 2 else None


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownTimeZone(tz=name) from None


def latest_occurrence(at: str, tz: str, now: float) -> float:
    """The latest moment <= ``now`` at which the clock in ``tz`` showed ``at`` (HH:MM), as epoch seconds."""
    h, m = parse_time(at) or (0, 0)
    zinfo = zone(tz)
    local = dt.datetime.fromtimestamp(now, zinfo)
    for back in range(0, 3):
        day = local.date() - dt.timedelta(days=back)
        candidate = dt.datetime.combine(day, dt.time(h, m), tzinfo=zinfo).timestamp()
        if candidate <= now:
            return candidate
    return now  # unreachable: one of three days has the time before now


def _info_dict(a: ArticleInfo) -> dict:
    return {"id": a.id, "title": a.title, "outlet": a.outlet, "date": a.date, "url": a.url, "language": a.language}


def _info(d: dict) -> ArticleInfo:
    return ArticleInfo(d["id"], d["title"], d.get("outlet"), d.get("date"), d.get("url"), d.get("language") or "nl")


def payload_json(payload: Push | Briefing) -> str:
    if isinstance(payload, Push):
        return json.dumps({"topic": payload.topic, "sentence": payload.sentence, "article": _info_dict(payload.article),
                           "confidence": payload.confidence}, ensure_ascii=False)
    return json.dumps({
        "since": payload.since, "until": payload.until, "tz": payload.tz,
        "items": [{"sentence": i.sentence, "article": _info_dict(i.article), "others": [_info_dict(o) for o in i.others]}
                  for i in payload.items],
    }, ensure_ascii=False)


def payload_from(kind: str, data: str) -> Push | Briefing:
    d = json.loads(data)
    if kind == "push":
        return Push(d["topic"], d["sentence"], _info(d["article"]), d.get("confidence", 0.0))
    items = [BriefingItem(i["sentence"], _info(i["article"]), [_info(o) for o in i["others"]]) for i in d["items"]]
    return Briefing(d["since"], d["until"], d["tz"], items)


@dataclasses.dataclass
class ScanReport:
    """What one scan did: articles newly seen, pushes recorded."""

    articles: int = 0
    pushes: int = 0
    topics: int = 0
    seconds: float = 0.0


class Follow:
    """Subscriptions, briefings and the outbox of one data directory."""

    def __init__(self, data_dir: Path, library, config, now: Callable[[], float] = time.time) -> None:
        self.library = library
        self.config = config
        self.settings = config.follow
        self.now = now
        self.store = Store(data_dir)
        self._lock_path = Path(data_dir) / "follow.lock"
        self._scan_lock = threading.Lock()
        self._index: StoryIndex | None = None
        # Called (from any thread) after something was added to the outbox: the runners wake up.
        self.listeners: list[Callable[[], None]] = []

    # -- subscriptions ----------------------------------------------------------------------------

    def follow(self, chat: str, topic: str, language: str, ui: str, prefix: str = "/") -> Subscription:
        """Follow ``topic`` in ``chat``; the topic is matched in ``language``, texts are in ``ui``.
        (``prefix`` is the chat's command prefix, for the error messages.)"""
        topic = normalise_topic(topic)
        if not topic or len(topic) > MAX_TOPIC_CHARS or not asks_something(topic):
            raise FollowUsage(p=prefix)
        self._begin()
        with self.store.write() as db:
            rows = db.execute("SELECT topic FROM subscriptions WHERE chat = ?", (chat,)).fetchall()
            if topic.lower() not in {r["topic"].lower() for r in rows}:
                if len(rows) >= MAX_TOPICS:
                    raise TooManyTopics(limit=MAX_TOPICS, p=prefix)
                db.execute(
                    "INSERT INTO subscriptions (chat, topic, language, ui, created) VALUES (?, ?, ?, ?, ?)",
                    (chat, topic, language, ui, self.now()),
                )
        return next(s for s in self.subscriptions(chat) if s.topic.lower() == topic.lower())

    def subscriptions(self, chat: str) -> list[Subscription]:
        """The chat's topics, numbered as /following shows them."""
        if not self.store.exists():
            return []
        with self.store.read() as db:
            rows = db.execute("SELECT id, chat, topic, language FROM subscriptions WHERE chat = ? ORDER BY id", (chat,)).fetchall()
        return [Subscription(r["id"], r["chat"], r["topic"], r["language"], n) for n, r in enumerate(rows, 1)]

    def unfollow(self, chat: str, number: str | int, prefix: str = "/") -> Subscription:
        """Stop following topic ``number`` of /following; its pushes not yet sent are dropped."""
        subs = self.subscriptions(chat)
        text = str(number).strip().lstrip("#")
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= len(subs):
            raise UnknownSubscription(number=text, p=prefix)
        sub = subs[int(text) - 1]
        with self.store.write() as db:
            db.execute("DELETE FROM subscriptions WHERE id = ?", (sub.id,))
            db.execute("UPDATE outbox SET state = 'cancelled' WHERE subscription = ? AND state = 'pending'", (sub.id,))
        return sub

    def following(self, chat: str) -> Following:
        return Following(self.subscriptions(chat), self.briefing_setting(chat))

    # -- briefings ---------------------------------------------------------------------------------

    def set_briefing(self, chat: str, at: str, tz: str | None, ui: str, prefix: str = "/") -> BriefingSetting:
        """A daily briefing for ``chat`` at ``at`` (HH:MM) in ``tz`` (default: follow.timezone)."""
        parsed = parse_time(at)
        if parsed is None:
            raise BriefingUsage(p=prefix)
        tz = tz or self.settings.timezone
        zone(tz)
        at = f"{parsed[0]:02d}:{parsed[1]:02d}"
        self._begin()
        with self.store.write() as db:
            db.execute(
                "INSERT INTO briefings (chat, at, tz, ui, created, last) VALUES (?, ?, ?, ?, ?, NULL) "
                "ON CONFLICT (chat) DO UPDATE SET at = excluded.at, tz = excluded.tz, ui = excluded.ui",
                (chat, at, tz, ui, self.now()),
            )
        return BriefingSetting(chat, at, tz)

    def briefing_off(self, chat: str) -> bool:
        if not self.store.exists():
            return False
        with self.store.write() as db:
            gone = db.execute("DELETE FROM briefings WHERE chat = ?", (chat,)).rowcount
        return bool(gone)

    def briefing_setting(self, chat: str) -> BriefingSetting | None:
        if not self.store.exists():
            return None
        with self.store.read() as db:
            row = db.execute("SELECT at, tz FROM briefings WHERE chat = ?", (chat,)).fetchone()
        return BriefingSetting(chat, row["at"], row["tz"]) if row else None

    def forget_chat(self, chat: str) -> None:
        """The chat is gone (the user blocked the bot, the bot left the room): drop its topics and briefing."""
        with self.store.write() as db:
            db.execute("DELETE FROM subscriptions WHERE chat = ?", (chat,))
            db.execute("DELETE FROM briefings WHERE chat = ?", (chat,))
            db.execute("UPDATE outbox SET state = 'cancelled' WHERE chat = ? AND state IN ('pending', 'sending')", (chat,))

    # -- learning of new articles --------------------------------------------------------------------

    def _begin(self) -> None:
        """On first use, every article already indexed is the baseline: known, never pushed."""
        created = not self.store.exists()
        with self.store.read() as db:
            started = db.execute("SELECT value FROM meta WHERE key = 'baseline'").fetchone()
        if created or not started:
            self.scan(create=True)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One scan at a time, in this process and across processes (bron ingest beside bron serve)."""
        with self._scan_lock, open(self._lock_path, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _stories(self, db) -> StoryIndex:
        """The story index, brought up to date with articles another process recorded."""
        if self._index is None:
            self._index = StoryIndex()
        index = self._index
        missing = [i for (i,) in db.execute("SELECT id FROM articles ORDER BY id") if i not in index]
        for start in range(0, len(missing), 500):
            part = missing[start : start + 500]
            rows = db.execute(
                f"SELECT id, story, shingles, lead FROM articles WHERE id IN ({','.join('?' * len(part))}) ORDER BY id", part
            )
            for row in rows:
                index.add(Known(row["id"], row["story"], array("I", row["shingles"]), row["lead"]))
        return index

    def scan(self, updated: Iterable[int] = (), create: bool = False) -> ScanReport:
        """Learn of the articles indexed since the last scan and record the pushes they make.

        An article is new when follow.sqlite has not seen it; ``updated`` are articles whose text
        changed (they are matched again; a chat never gets the same story twice). The articles' rows
        and their pushes are written in one transaction, after the matching: a crash before it
        leaves the articles unseen, so the next scan matches them again; after it, the pushes wait in
        the outbox. Nothing happens while nobody follows anything (no follow.sqlite).
        """
        if not create and not self.store.exists():
            return ScanReport()
        started = time.perf_counter()
        with self._exclusive():
            with self.store.read() as db:
                index = self._stories(db)
                baseline = db.execute("SELECT value FROM meta WHERE key = 'baseline'").fetchone() is None
                subs = db.execute("SELECT id, chat, topic, language, ui FROM subscriptions ORDER BY id").fetchall()
            live = self._live_ids()
            new = sorted(i for i in live if i not in index)
            changed = sorted({i for i in updated if i in live and i in index})
            infos = {i: info for i in new + changed if (info := self.library.article(i)) is not None}
            if not new and not changed and not baseline:
                return ScanReport()
            now = self.now()
            seen = []
            try:
                for article_id in new:
                    known = index.find(article_id, self.library.article_text(article_id))
                    index.add(known)
                    seen.append(known)
                pushes = [] if baseline else self._match(subs, infos, new + changed, index)
                with self.store.write() as db:
                    db.executemany(
                        "INSERT OR IGNORE INTO articles (id, story, seen, baseline, shingles, lead) VALUES (?, ?, ?, ?, ?, ?)",
                        [(k.article_id, k.story, now, int(baseline), k.shingles.tobytes(), k.lead) for k in seen],
                    )
                    recorded = 0
                    for sub, story, push in pushes:
                        recorded += db.execute(
                            "INSERT OR IGNORE INTO outbox (chat, kind, story, subscription, ui, data, created) "
                            "VALUES (?, 'push', ?, ?, ?, ?, ?)",
                            (sub["chat"], story, sub["id"], sub["ui"], payload_json(push), now),
                        ).rowcount
                    if baseline:
                        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('baseline', ?)", (str(now),))
            except BaseException:
                self._index = None  # the in-memory stories may be ahead of the file: reload next time
                raise
        report = ScanReport(len(seen), recorded, len({(s["topic"].lower(), s["language"]) for s in subs}),
                            time.perf_counter() - started)
        if report.pushes:
            log.info("follow: %d new articles, %d pushes recorded (%.1fs)", report.articles, report.pushes, report.seconds)
            self._notify()
        return report

    def _live_ids(self) -> set[int]:
        """Ids of every indexed article: from the segment store's live-article array when there is one
        (no article rows read), else from the article list."""
        view = getattr(self.library, "view", None)
        if view is not None and hasattr(view, "article_ids"):
            return {int(i) for i in view.article_ids()}
        return {a.id for a in self.library.articles()}

    def _match(self, subs, infos: dict[int, ArticleInfo], candidates: list[int], index: StoryIndex) -> list[tuple[dict, int, Push]]:
        """(subscription, story, push) for every followed topic a candidate article answers."""
        if not subs or not candidates:
            return []
        threshold = self.library.answerability.threshold
        by_topic: dict[tuple[str, str], list] = defaultdict(list)
        for sub in subs:
            by_topic[(sub["topic"].lower(), sub["language"])].append(sub)
        found = []
        for (topic, language), group in by_topic.items():
            ranked = self.library.rank(group[0]["topic"], language, top_k=CANDIDATES, within=candidates)
            best: dict[int, object] = {}
            for passage in ranked:
                aid = passage.article.id
                if passage.confidence >= threshold and (aid not in best or passage.confidence > best[aid].confidence):
                    best[aid] = passage
            for aid, passage in sorted(best.items()):
                if aid not in infos:
                    continue  # removed meanwhile
                hs, he = passage.highlight
                push = Push(group[0]["topic"], passage.text[hs:he].strip() or passage.text.strip(), infos[aid], round(passage.confidence, 4))
                story = index.story_of(aid)
                for sub in group:
                    found.append((sub, story if story is not None else aid, push))
        return found

    # -- briefings due -------------------------------------------------------------------------------

    def due_briefings(self) -> int:
        """Record the briefing of every chat whose time has come (one per chat, however long the bot was away)."""
        if not self.store.exists():
            return 0
        now = self.now()
        with self.store.read() as db:
            rows = db.execute("SELECT chat, at, tz, ui, created, last FROM briefings").fetchall()
        made = 0
        composed: dict[tuple[float, float, str], Briefing] = {}  # chats with the same time share one
        for row in rows:
            due = latest_occurrence(row["at"], row["tz"], now)
            if due <= max(row["last"] or 0.0, row["created"]):
                continue
            since = row["last"] if row["last"] else due - DAY
            key = (since, due, row["tz"])
            briefing = composed[key] = composed.get(key) or self.compose(since, due, row["tz"])
            with self.store.write() as db:
                current = db.execute("SELECT last FROM briefings WHERE chat = ?", (row["chat"],)).fetchone()
                if current is None or (current["last"] or 0.0) >= due:
                    continue  # turned off, or made by another process meanwhile
                made += db.execute(
                    "INSERT OR IGNORE INTO outbox (chat, kind, due, ui, data, created) VALUES (?, 'briefing', ?, ?, ?, ?)",
                    (row["chat"], due, row["ui"], payload_json(briefing), now),
                ).rowcount
                db.execute("UPDATE briefings SET last = ? WHERE chat = ?", (due, row["chat"]))
        if made:
            self._notify()
        return made

    def compose(self, since: float, until: float, tz: str) -> Briefing:
        """The main stories among the articles first seen in [since, until): the stories carried by
        the most outlets first, then the most articles, the newest, and the story id (deterministic).
        Each is quoted by its first article's lead sentence; its other articles are listed by outlet."""
        with self.store.read() as db:
            rows = db.execute(
                "SELECT id, story, seen FROM articles WHERE baseline = 0 AND seen >= ? AND seen < ? ORDER BY id",
                (since, until),
            ).fetchall()
        stories: dict[int, list] = defaultdict(list)
        for row in rows:
            info = self.library.article(row["id"])
            if info is not None:
                stories[row["story"]].append((info, row["seen"]))
        ranked = []
        for story, members in stories.items():
            outlets = {(a.outlet or f"#{a.id}").lower() for a, _ in members}
            newest = max((a.date or "" for a, _ in members))
            ranked.append(((len(outlets), len(members), newest, max(s for _, s in members), -story), members))
        ranked.sort(key=lambda r: r[0], reverse=True)
        items = []
        for _, members in ranked[: self.settings.briefing_items]:
            lead = members[0][0]
            items.append(BriefingItem(self.lead_sentence(lead.id), lead, [a for a, _ in members[1:]]))
        return Briefing(since, until, tz, items)

    def lead_sentence(self, article_id: int) -> str:
        """The article's first sentence of some length, as the index split it (the lede of a news article)."""
        try:
            sentences, _ = self.library.sentence_vectors(article_id)
        except KeyError:
            sentences = []
        for s in sentences:
            if len(s.split()) >= MIN_SENTENCE_WORDS:
                return s.strip()
        if sentences:
            return sentences[0].strip()
        return first_sentence(self.library.article_text(article_id))

    # -- the outbox ------------------------------------------------------------------------------------

    def tick(self) -> None:
        """Scan for new articles and make the briefings that are due (the runners call this periodically)."""
        self.scan()
        self.due_briefings()

    def recover(self, platform: str) -> int:
        """At start-up: messages a crashed sender had claimed go back to the queue (see README:
        on Telegram one may then arrive twice; on Matrix the transaction id makes the homeserver drop it)."""
        if not self.store.exists():
            return 0
        with self.store.write() as db:
            return db.execute(
                "UPDATE outbox SET state = 'pending' WHERE state = 'sending' AND chat LIKE ?", (f"{platform}:%",)
            ).rowcount

    def claim(self, platform: str, limit: int = 500) -> list[Outgoing]:
        """Up to ``limit`` messages for ``platform`` to send now, marked as being sent.

        Per chat at most ``follow.max_pushes_per_hour`` pushes in any hour (sent or being sent);
        the others wait in the outbox, and expire after a day. Briefings are not limited.
        """
        if not self.store.exists():
            return []
        now = self.now()
        quota = self.settings.max_pushes_per_hour
        with self.store.write() as db:
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
            taken = []
            for row in rows:
                if len(taken) >= limit:
                    break
                if row["kind"] == "push":
                    if used.get(row["chat"], 0) >= quota:
                        continue
                    used[row["chat"]] = used.get(row["chat"], 0) + 1
                taken.append(row)
            db.executemany(
                "UPDATE outbox SET state = 'sending', attempts = attempts + 1 WHERE id = ?", [(r["id"],) for r in taken]
            )
        return [Outgoing(r["id"], r["chat"], r["kind"], r["ui"], payload_from(r["kind"], r["data"])) for r in taken]

    def sent(self, message_id: int, ref: str | None = None) -> None:
        """The platform accepted the message."""
        with self.store.write() as db:
            db.execute("UPDATE outbox SET state = 'sent', sent = ?, ref = ? WHERE id = ?", (self.now(), ref, message_id))

    def failed(self, message_id: int, error: str, retry: bool) -> None:
        """Sending failed: try again later (with backoff) when ``retry`` and attempts are left, else give up."""
        now = self.now()
        with self.store.write() as db:
            row = db.execute("SELECT attempts FROM outbox WHERE id = ?", (message_id,)).fetchone()
            attempts = row["attempts"] if row else MAX_ATTEMPTS
            if retry and attempts < MAX_ATTEMPTS:
                db.execute(
                    "UPDATE outbox SET state = 'pending', next_try = ?, error = ? WHERE id = ?",
                    (now + min(2.0 ** attempts, 600.0), error[:500], message_id),
                )
            else:
                db.execute("UPDATE outbox SET state = 'failed', error = ? WHERE id = ?", (error[:500], message_id))

    def counts(self) -> dict[str, int]:
        """Outbox rows by state (for tests, the benchmark and the logs)."""
        if not self.store.exists():
            return {}
        with self.store.read() as db:
            return dict(db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())

    def _notify(self) -> None:
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:  # noqa: BLE001 - a closed loop must not break an ingest
                log.debug("follow listener failed", exc_info=True)
