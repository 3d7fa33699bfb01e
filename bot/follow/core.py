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
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.answering import CANDIDATES, asks_something
from bot.errors import BronError
# HOUR, MAX_ATTEMPTS and PUSH_EXPIRES (the outbox rules, applied by the stores) are kept importable from here.
from bot.follow.backend import DAY, HOUR, MAX_ATTEMPTS, PUSH_EXPIRES, FollowStore, Recorded, Subscriber, open_store  # noqa: F401
from bot.follow.models import Briefing, BriefingItem, BriefingSetting, Following, Outgoing, Push, Subscription
from bot.follow.stories import StoryIndex, first_sentence
from bot.models import ArticleInfo

log = logging.getLogger(__name__)

MAX_TOPICS = 20
MAX_TOPIC_CHARS = 200
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
    """Subscriptions, briefings and the outbox of one data directory, or (postgres) of every process
    on the database: ``store`` is opened for the library's backend unless given."""

    def __init__(self, data_dir: Path, library, config, now: Callable[[], float] = time.time,
                 store: FollowStore | None = None) -> None:
        self.library = library
        self.config = config
        self.settings = config.follow
        self.now = now
        self.store = store or open_store(data_dir, library)
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
        if not self.store.add_subscription(chat, topic, language, ui, self.now(), MAX_TOPICS):
            raise TooManyTopics(limit=MAX_TOPICS, p=prefix)
        return next(s for s in self.subscriptions(chat) if s.topic.lower() == topic.lower())

    def subscriptions(self, chat: str) -> list[Subscription]:
        """The chat's topics, numbered as /following shows them."""
        return self.store.subscriptions(chat)

    def unfollow(self, chat: str, number: str | int, prefix: str = "/") -> Subscription:
        """Stop following topic ``number`` of /following; its pushes not yet sent are dropped."""
        subs = self.subscriptions(chat)
        text = str(number).strip().lstrip("#")
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= len(subs):
            raise UnknownSubscription(number=text, p=prefix)
        sub = subs[int(text) - 1]
        self.store.remove_subscription(sub.id)
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
        self.store.set_briefing(chat, at, tz, ui, self.now())
        return BriefingSetting(chat, at, tz)

    def briefing_off(self, chat: str) -> bool:
        return self.store.remove_briefing(chat)

    def briefing_setting(self, chat: str) -> BriefingSetting | None:
        return self.store.briefing(chat)

    def forget_chat(self, chat: str) -> None:
        """The chat is gone (the user blocked the bot, the bot left the room): drop its topics and briefing."""
        self.store.forget_chat(chat)

    # -- learning of new articles --------------------------------------------------------------------

    def _begin(self) -> None:
        """On first use, every article already indexed is the baseline: known, never pushed."""
        created = not self.store.exists()
        if created or not self.store.baseline_done():
            self.scan(create=True)

    def _stories(self) -> StoryIndex:
        """The story index, brought up to date with articles another process recorded."""
        if self._index is None:
            self._index = StoryIndex()
        index = self._index
        for known in self.store.known_articles(index):
            index.add(known)
        return index

    def scan(self, updated: Iterable[int] = (), create: bool = False) -> ScanReport:
        """Learn of the articles indexed since the last scan and record the pushes they make.

        An article is new when the follow state (follow.sqlite, or the database's) has not seen it;
        ``updated`` are articles whose text changed (they are matched again; a chat never gets the
        same story twice). The articles' rows and their pushes are written in one transaction, after
        the matching: a crash before it leaves the articles unseen, so the next scan matches them
        again; after it, the pushes wait in the outbox. Nothing happens while nobody follows anything.
        """
        if not create and not self.store.exists():
            return ScanReport()
        started = time.perf_counter()
        with self.store.exclusive():
            index = self._stories()
            baseline = not self.store.baseline_done()
            subs = self.store.subscribers()
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
                # A generator: the payloads are made inside the store's transaction.
                recorded = self.store.record_scan(
                    seen, now, baseline, (Recorded(sub, story, payload_json(push)) for sub, story, push in pushes)
                )
            except BaseException:
                self._index = None  # the in-memory stories may be ahead of the store: reload next time
                raise
        report = ScanReport(len(seen), recorded, len({(s.topic.lower(), s.language) for s in subs}),
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

    def _match(self, subs: list[Subscriber], infos: dict[int, ArticleInfo], candidates: list[int],
               index: StoryIndex) -> list[tuple[Subscriber, int, Push]]:
        """(subscription, story, push) for every followed topic a candidate article answers."""
        if not subs or not candidates:
            return []
        threshold = self.library.answerability.threshold
        by_topic: dict[tuple[str, str], list[Subscriber]] = defaultdict(list)
        for sub in subs:
            by_topic[(sub.topic.lower(), sub.language)].append(sub)
        found = []
        for (topic, language), group in by_topic.items():
            ranked = self.library.rank(group[0].topic, language, top_k=CANDIDATES, within=candidates)
            best: dict[int, object] = {}
            for passage in ranked:
                aid = passage.article.id
                if passage.confidence >= threshold and (aid not in best or passage.confidence > best[aid].confidence):
                    best[aid] = passage
            for aid, passage in sorted(best.items()):
                if aid not in infos:
                    continue  # removed meanwhile
                hs, he = passage.highlight
                push = Push(group[0].topic, passage.text[hs:he].strip() or passage.text.strip(), infos[aid], round(passage.confidence, 4))
                story = index.story_of(aid)
                for sub in group:
                    found.append((sub, story if story is not None else aid, push))
        return found

    # -- briefings due -------------------------------------------------------------------------------

    def due_briefings(self) -> int:
        """Record the briefing of every chat whose time has come (one per chat, however long the bot was away)."""
        now = self.now()
        made = 0
        composed: dict[tuple[float, float, str], Briefing] = {}  # chats with the same time share one
        for row in self.store.schedules():
            due = latest_occurrence(row.at, row.tz, now)
            if due <= max(row.last or 0.0, row.created):
                continue
            since = row.last if row.last else due - DAY
            key = (since, due, row.tz)
            briefing = composed[key] = composed.get(key) or self.compose(since, due, row.tz)
            # Not made when turned off, or when another process made it meanwhile.
            made += self.store.record_briefing(row.chat, due, row.ui, payload_json(briefing), now)
        if made:
            self._notify()
        return made

    def compose(self, since: float, until: float, tz: str) -> Briefing:
        """The main stories among the articles first seen in [since, until): the stories carried by
        the most outlets first, then the most articles, the newest, and the story id (deterministic).
        Each is quoted by its first article's lead sentence; its other articles are listed by outlet."""
        stories: dict[int, list] = defaultdict(list)
        for article_id, story, seen in self.store.seen_between(since, until):
            info = self.library.article(article_id)
            if info is not None:
                stories[story].append((info, seen))
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
        return self.store.recover(platform)

    def claim(self, platform: str, limit: int = 500) -> list[Outgoing]:
        """Up to ``limit`` messages for ``platform`` to send now, marked as being sent.

        Per chat at most ``follow.max_pushes_per_hour`` pushes in any hour (sent or being sent);
        the others wait in the outbox, and expire after a day. Briefings are not limited.
        """
        taken = self.store.claim(platform, self.now(), self.settings.max_pushes_per_hour, limit)
        return [Outgoing(r.id, r.chat, r.kind, r.ui, payload_from(r.kind, r.data)) for r in taken]

    def sent(self, message_id: int, ref: str | None = None) -> None:
        """The platform accepted the message."""
        self.store.sent(message_id, self.now(), ref)

    def failed(self, message_id: int, error: str, retry: bool) -> None:
        """Sending failed: try again later (with backoff) when ``retry`` and attempts are left, else give up."""
        self.store.failed(message_id, error, retry, self.now())

    def counts(self) -> dict[str, int]:
        """Outbox rows by state (for tests, the benchmark and the logs)."""
        return self.store.counts()

    def _notify(self) -> None:
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:  # noqa: BLE001 - a closed loop must not break an ingest
                log.debug("follow listener failed", exc_info=True)
