"""Where the follow state lives, behind one interface with two implementations.

- :class:`bot.follow.store.Store`: ``<data dir>/follow.sqlite`` (the embedded backend), one data
  directory's processes, a file lock for the scan;
- :class:`bot.follow.pg_store.PgFollowStore`: the ``follow_*`` tables of the postgres backend
  (schema 4), shared by every bot worker, poller and CLI on the database.

:class:`bot.follow.core.Follow` keeps the rules (what matches, when a briefing is due, how many
pushes an hour); a store keeps the rows and makes each change one transaction. The outbox rules
both stores apply inside their claim and failure transactions are the pure functions here, so
they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from bot.follow.models import BriefingSetting, Subscription
from bot.follow.stories import Known

if TYPE_CHECKING:
    from embeddings.library import Library

HOUR = 3600.0
DAY = 86400.0
# A push that waited this long (rate limit, chat unreachable) is stale: the briefing covers it.
PUSH_EXPIRES = DAY
# Sends that fail for a reason that may pass (network, server) are retried this many times.
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Subscriber:
    """A subscription as matching needs it: who follows what, in which language, texts in ``ui``."""

    id: int
    chat: str
    topic: str
    language: str
    ui: str


@dataclass(frozen=True)
class Schedule:
    """A chat's daily briefing time and when its last briefing was made (epoch seconds, None: never)."""

    chat: str
    at: str
    tz: str
    ui: str
    created: float
    last: float | None


@dataclass(frozen=True)
class Queued:
    """An outbox row as claimed: ``data`` is the payload's JSON (:func:`bot.follow.core.payload_from`)."""

    id: int
    chat: str
    kind: str
    ui: str
    data: str


@dataclass(frozen=True)
class Recorded:
    """A push to record: for ``subscriber``, the article's ``story``, the payload's JSON."""

    subscriber: Subscriber
    story: int
    data: str


@runtime_checkable
class FollowStore(Protocol):
    """The follow state: subscriptions, briefing times, the articles seen and the outbox."""

    def exists(self) -> bool:
        """Whether anyone ever used follow here (nothing is scanned before)."""

    def exclusive(self) -> AbstractContextManager[None]:
        """One scan at a time, across every process that shares this state."""

    # subscriptions
    def add_subscription(self, chat: str, topic: str, language: str, ui: str, created: float, limit: int) -> bool:
        """Add the topic unless the chat follows it already (any case); False when the chat follows
        ``limit`` other topics already."""

    def subscriptions(self, chat: str) -> list[Subscription]:
        """The chat's topics, in the order they were followed, numbered from 1."""

    def subscribers(self) -> list[Subscriber]:
        """Every subscription of every chat."""

    def remove_subscription(self, subscription: int) -> None:
        """Drop a subscription and its pushes not yet claimed; a scan running meanwhile records none for it."""

    def forget_chat(self, chat: str) -> None:
        """Drop the chat's subscriptions and briefing, and cancel its messages not yet sent."""

    # briefings
    def set_briefing(self, chat: str, at: str, tz: str, ui: str, created: float) -> None:
        """Set (or move) the chat's daily briefing."""

    def remove_briefing(self, chat: str) -> bool:
        """Stop the chat's briefing; False when it had none."""

    def briefing(self, chat: str) -> BriefingSetting | None:
        """The chat's briefing time, None when it has none."""

    def schedules(self) -> list[Schedule]:
        """Every chat's briefing time."""

    def record_briefing(self, chat: str, due: float, ui: str, data: str, now: float) -> int:
        """Put the briefing due at ``due`` in the outbox, unless it was made already or turned off; 1 if recorded."""

    # articles seen
    def baseline_done(self) -> bool:
        """Whether the articles indexed before anyone followed anything were recorded."""

    def known_articles(self, loaded: Collection[int]) -> list[Known]:
        """The articles seen (by any process) that are not in ``loaded``, by id."""

    def record_scan(self, seen: list[Known], now: float, baseline: bool, pushes: Iterable[Recorded]) -> int:
        """In one transaction: the articles as seen, the pushes they make (``pushes`` is consumed inside
        it), and the baseline mark when ``baseline``; returns the pushes recorded (none twice per chat and story)."""

    def seen_between(self, since: float, until: float) -> list[tuple[int, int, float]]:
        """(article, story, seen) of the articles first seen in [since, until), baseline excluded, by id."""

    # the outbox
    def recover(self, platform: str) -> int:
        """Messages of ``platform`` claimed by a sender that stopped go back to the queue; how many."""

    def claim(self, platform: str, now: float, quota: int, limit: int) -> list[Queued]:
        """Mark up to ``limit`` messages of ``platform`` as being sent, by :func:`pick`'s rules, and return them."""

    def sent(self, message: int, now: float, ref: str | None) -> None:
        """The platform accepted the message."""

    def failed(self, message: int, error: str, retry: bool, now: float) -> None:
        """Sending failed: back to the queue at :func:`retry_at`, or given up."""

    def counts(self) -> dict[str, int]:
        """Outbox rows by state."""

    def close(self) -> None:
        """Let go of what the store holds for this process (postgres: its sender's session)."""


def pick(rows: Iterable[Queued], used: dict[str, int], quota: int, limit: int) -> list[Queued]:
    """The pending messages (oldest first) to claim: at most ``limit``, and per chat at most ``quota``
    pushes in the hour counting ``used`` (sent or being sent); briefings are not limited."""
    used = dict(used)
    taken: list[Queued] = []
    for row in rows:
        if len(taken) >= limit:
            break
        if row.kind == "push":
            if used.get(row.chat, 0) >= quota:
                continue
            used[row.chat] = used.get(row.chat, 0) + 1
        taken.append(row)
    return taken


def retry_at(attempts: int, retry: bool, now: float) -> float | None:
    """When a failed send is tried again (backoff doubling to ten minutes); None: give up."""
    if retry and attempts < MAX_ATTEMPTS:
        return now + min(2.0**attempts, 600.0)
    return None


def open_store(data_dir: Path, library: Library) -> FollowStore:
    """The follow state for the library's backend: the data directory's file, or the shared database."""
    if getattr(library, "embedded", True):
        from bot.follow.store import Store

        return Store(data_dir)
    from bot.follow.pg_store import PgFollowStore

    return PgFollowStore(library.store.db)
