"""What the bot says to one chat command or question, rendered as HTML and plain text for Matrix.

Mirrors :class:`bot.chat.ChatSession` but renders each reply twice (Matrix events carry an HTML
``formatted_body`` and a plain ``body``) from a single core call, and keeps the reply language
per room.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

from bot.core import Bron
from bot.follow.commands import COMMANDS as FOLLOW_COMMANDS
from bot.follow.commands import run_command
from bot.errors import BronError
from bot.metrics import Metrics, added_report
from bot.matrix_messages import pair_parts
from bot.render import render_added, render_answer, render_articles, render_error, render_more, render_sources, render_summary
from bot.render_follow import render_follow_result
from bot.texts import t
from embeddings.language import detect_language

log = logging.getLogger(__name__)

# Characters per formatted_body (and per body). An event may be 65 KB of JSON; JSON escapes non-ASCII
# text to six bytes a character and encryption adds a third (base64), so even an all-accented reply
# in an encrypted room stays under the limit: 2 bodies x 4000 x 6 x 4/3 = 64 KB.
MATRIX_LIMIT = 4000
# Matrix HTML ignores newlines; line breaks need <br>, except after a block element.
_NEWLINE = re.compile(r"(?<!</blockquote>)\n")

Pair = tuple[str, str]
QUESTION = (None, "ask")


@dataclass
class Reply:
    """The parts to send and, for a question, how it went (for the metrics)."""

    parts: list[Pair]
    # answered, declined (nothing in the articles answers it, or the question was empty or too
    # long) or error; None for the other commands.
    outcome: str | None = None
    language: str = "unknown"


class Replier:
    """Turns (command, argument) into reply parts for one Bron, remembering each room's language."""

    def __init__(self, bron: Bron, prefix: str = "!", per_page: int = 5, limit: int = MATRIX_LIMIT,
                 metrics: Metrics | None = None) -> None:
        self.bron = bron
        self.metrics = metrics or Metrics()
        self.prefix = prefix
        self.per_page = per_page
        self.limit = limit
        self._languages: dict[str, str] = {}

    def language(self, room_id: str) -> str:
        """The language of the room's last question, else the configured fallback."""
        return self._languages.get(room_id, self.bron.config.answer.language_fallback)

    def text(self, room_id: str, key: str, **params: object) -> Pair:
        """One fixed sentence from :mod:`bot.texts`, in the room's language."""
        return (render_error(key, self.language(room_id), "html", **params), t(key, self.language(room_id), **params))

    async def reply(self, room_id: str, command: str | None, arg: str) -> Reply:
        """The reply parts; the core runs in a worker thread so the sync loop keeps going."""
        if command in QUESTION and arg:
            self._languages[room_id] = detect_language(arg, self.language(room_id))
        lang = self.language(room_id)
        try:
            return await asyncio.to_thread(self._dispatch, room_id, command, arg, lang)
        except BronError as err:
            if command == "add":
                self.metrics.ingest("url", None)
            return Reply([self.text(room_id, err.key, **err.params)], "declined" if command in QUESTION else None)
        except Exception:
            log.exception("matrix: answering %r in %s failed", command or "question", room_id)
            if command == "add":
                self.metrics.ingest("url", None)
            return Reply([self.text(room_id, "error")], "error" if command in QUESTION else None)

    def _dispatch(self, room_id: str, command: str | None, arg: str, lang: str) -> Reply:
        if command in QUESTION:
            answer = self.bron.answer(arg, room_id)
            outcome = "declined" if answer.abstained else "answered"
            hint = f"{self.prefix}more" if answer.more else ""
            parts = self._both(lambda a, lang, fmt, limit: render_answer(a, lang, fmt, limit, more_hint=hint), answer, answer.language)
            return Reply(parts, outcome, answer.language)
        if command == "more":
            more = self.bron.more(room_id)
            return Reply(self._both(render_more, more, more.language))
        if command == "summary":
            parts = self._both(render_summary, self.bron.summarize(arg or None, room_id), lang)
            self.metrics.summaries.labels("matrix").inc()
            return Reply(parts)
        if command == "source":
            parts = self._both(render_sources, self.bron.sources(room_id), lang)
            self.metrics.sources.labels("matrix").inc()
            return Reply(parts)
        if command == "articles":
            page = self.bron.articles(int(arg) if arg.isdigit() else 1, self.per_page)
            return Reply(self._both(render_articles, page, lang))
        if command in FOLLOW_COMMANDS:
            fallback = self.bron.config.answer.language_fallback
            result = run_command(self.bron.follow, f"matrix:{room_id}", command, arg, lang, self.prefix, fallback)
            html_body = _NEWLINE.sub("<br>\n", render_follow_result(result, lang, "html", self.prefix))
            return Reply([(html_body, render_follow_result(result, lang, "text", self.prefix))])
        if command == "add":
            if not arg:
                return Reply([self.text(room_id, "add_usage", p=self.prefix)])
            added = self.bron.add_url(arg.split()[0])
            self.metrics.ingest("url", added_report(added))
            return Reply([(render_added(added, lang, "html"), render_added(added, lang, "text"))])
        help_html = _NEWLINE.sub("<br>\n", render_error("help", lang, "html", p=self.prefix))
        return Reply([(help_html, t("help", lang, p=self.prefix))])

    def _both(self, render, result, lang: str) -> list[Pair]:
        html_parts = [_NEWLINE.sub("<br>\n", part) for part in render(result, lang, "html", self.limit)]
        return pair_parts(html_parts, render(result, lang, "text", self.limit))
