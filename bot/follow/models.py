"""Plain data of topic alerts and briefings, as the adapters render them (no Telegram, no Matrix)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.models import ArticleInfo


@dataclass(frozen=True)
class Subscription:
    """A topic a chat follows; ``number`` is its place in the chat's /following list (from 1)."""

    id: int
    chat: str
    topic: str
    language: str
    number: int = 0


@dataclass(frozen=True)
class BriefingSetting:
    """When a chat gets its daily briefing: ``at`` ("07:30") in time zone ``tz``."""

    chat: str
    at: str
    tz: str


@dataclass(frozen=True)
class Following:
    """What /following shows: the chat's topics and its briefing, if any."""

    subscriptions: list[Subscription]
    briefing: BriefingSetting | None


@dataclass(frozen=True)
class Push:
    """One topic alert: the sentence of a new article that answers a followed topic, and its source."""

    topic: str
    sentence: str
    article: ArticleInfo
    confidence: float


@dataclass(frozen=True)
class BriefingItem:
    """One story of a briefing: its lead sentence, the article quoted, and every outlet that carried it."""

    sentence: str
    article: ArticleInfo
    others: list[ArticleInfo] = field(default_factory=list)

    @property
    def outlets(self) -> list[str]:
        """The outlets carrying the story, the quoted one first, each once."""
        names = [a.outlet or "" for a in [self.article, *self.others]]
        return [n for i, n in enumerate(names) if n and n not in names[:i]]


@dataclass(frozen=True)
class Briefing:
    """A daily briefing: the main stories of [since, until) (epoch seconds), most widely carried first."""

    since: float
    until: float
    tz: str
    items: list[BriefingItem]


@dataclass(frozen=True)
class Outgoing:
    """A message waiting in the outbox: a push or a briefing for one chat, in the chat's language.

    ``key`` is stable across retries and restarts (Matrix uses it as the transaction id, so the
    homeserver drops a repeated send).
    """

    id: int
    chat: str
    kind: str  # "push" or "briefing"
    language: str
    payload: Push | Briefing

    @property
    def key(self) -> str:
        return f"bron-{self.kind}-{self.id}"

    @property
    def address(self) -> str:
        """The chat id on its platform (without the ``telegram:`` / ``matrix:`` prefix)."""
        return self.chat.split(":", 1)[1]
