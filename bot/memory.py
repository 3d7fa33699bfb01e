"""Conversation memory: what ``/source``, ``/summary`` and ``/more`` refer back to.

Per conversation it keeps the articles of the last answer (or summary) and the last answer itself.
Two implementations:

- :class:`LocalMemory` (the embedded backend): in this process, the most recent
  :data:`MAX_CONVERSATIONS` conversations;
- :class:`SharedMemory` (the postgres backend): the ``conversations`` table, so a question answered
  by one bot worker and ``/source`` handled by another give the same sources.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Protocol

from bot.models import Answer, ArticleInfo, Passage

if TYPE_CHECKING:
    from embeddings.library import Library

MAX_CONVERSATIONS = 10_000
# Shared conversations untouched this long are forgotten (looked for every PRUNE_EVERY writes).
KEEP_DAYS = 30
PRUNE_EVERY = 500


class ConversationMemory(Protocol):
    """The last answer of each conversation, and the articles it (or a later summary) named."""

    def remember(self, conversation: str, articles: list[int] | None = None, answer: Answer | None = None) -> None:
        """Keep ``articles`` and/or ``answer`` for ``conversation``; a part given as None stays as it was."""

    def articles(self, conversation: str) -> list[int]:
        """The article ids last remembered (empty when none)."""

    def answer(self, conversation: str) -> Answer | None:
        """The last answer remembered, None when none."""


def memory_for(library: Library) -> ConversationMemory:
    """The memory that matches the library's backend: shared through the database, or this process's."""
    if getattr(library, "embedded", True):
        return LocalMemory()
    return SharedMemory(library.store.db)


class LocalMemory:
    """Conversations in this process's memory, the least recently used forgotten first."""

    def __init__(self, limit: int = MAX_CONVERSATIONS) -> None:
        self._limit = limit
        self._articles: OrderedDict[str, list[int]] = OrderedDict()
        self._answers: OrderedDict[str, Answer] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, conversation: str, articles: list[int] | None = None, answer: Answer | None = None) -> None:
        with self._lock:
            if articles is not None:
                self._put(self._articles, conversation, list(articles))
            if answer is not None:
                self._put(self._answers, conversation, answer)

    def _put(self, table: OrderedDict, conversation: str, value: object) -> None:
        table[conversation] = value
        table.move_to_end(conversation)
        while len(table) > self._limit:
            table.popitem(last=False)

    def articles(self, conversation: str) -> list[int]:
        with self._lock:
            return list(self._articles.get(conversation, []))

    def answer(self, conversation: str) -> Answer | None:
        with self._lock:
            return self._answers.get(conversation)


class SharedMemory:
    """Conversations in the ``conversations`` table of the postgres backend (schema 2).

    ``db`` is the backend's :class:`~embeddings.storage.postgres.PgDatabase`: its pooled
    connections, re-opened (and the statement retried) when the server restarted. Writes are one
    idempotent upsert, so retrying them is safe.
    """

    def __init__(self, db: Any) -> None:
        self.db = db
        self._writes = itertools.count(1)

    def remember(self, conversation: str, articles: list[int] | None = None, answer: Answer | None = None) -> None:
        from psycopg.types.json import Jsonb

        ids = [int(i) for i in articles] if articles is not None else None
        stored = Jsonb(answer_to_json(answer)) if answer is not None else None
        self.db.execute(
            "INSERT INTO conversations (id, articles, answer, updated) VALUES (%s, %s, %s, now())"
            " ON CONFLICT (id) DO UPDATE SET articles = COALESCE(excluded.articles, conversations.articles),"
            " answer = COALESCE(excluded.answer, conversations.answer), updated = now()",
            (conversation, ids, stored),
        )
        if next(self._writes) % PRUNE_EVERY == 0:
            self.db.execute("DELETE FROM conversations WHERE updated < now() - make_interval(days => %s)", (KEEP_DAYS,))

    def articles(self, conversation: str) -> list[int]:
        rows = self.db.query("SELECT articles FROM conversations WHERE id = %s", (conversation,))
        return [int(i) for i in rows[0][0]] if rows and rows[0][0] else []

    def answer(self, conversation: str) -> Answer | None:
        rows = self.db.query("SELECT answer FROM conversations WHERE id = %s", (conversation,))
        return answer_from_json(rows[0][0]) if rows and rows[0][0] else None


def answer_to_json(answer: Answer) -> dict[str, Any]:
    """``answer`` as JSON-able data (:func:`answer_from_json` reads it back).

    A quote not probable enough to lead has the lead score -inf, which JSON (and PostgreSQL's jsonb) cannot
    hold: non-finite scores are stored as null.
    """
    data = dataclasses.asdict(answer)
    for p in data.get("passages", []) + data.get("more", []):
        for key in ("score", "confidence", "lead_score"):
            if isinstance(p.get(key), float) and not math.isfinite(p[key]):
                p[key] = None
    return data


def answer_from_json(data: dict[str, Any]) -> Answer:
    """The :class:`Answer` that :func:`answer_to_json` wrote."""

    def passage(p: dict[str, Any]) -> Passage:
        scores = {k: float("-inf") for k in ("score", "confidence", "lead_score") if k in p and p[k] is None}
        return Passage(**{**p, **scores, "article": ArticleInfo(**p["article"]), "highlight": tuple(p["highlight"])})

    return Answer(**{
        **data,
        "passages": [passage(p) for p in data.get("passages", [])],
        "more": [passage(p) for p in data.get("more", [])],
        "outlets": tuple(data.get("outlets", ())),
    })
