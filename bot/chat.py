"""A text chat session: routes a line (question or command) to the core and renders the reply.

The terminal uses it directly; it is also the reference for what each chat command does.
"""

from __future__ import annotations

import logging
import re

from bot.core import Bron, is_number
from bot.errors import BronError
from bot.render import Format, render_added, render_answer, render_articles, render_error, render_more, render_sources, render_summary
from bot.texts import t
from embeddings.language import detect_language

log = logging.getLogger(__name__)

COMMANDS = ("ask", "summary", "source", "more", "articles", "add", "help", "start", "follow", "following", "unfollow", "briefing")


def parse_command(line: str, prefix: str) -> tuple[str | None, str]:
    """Split ``/cmd args`` into ("cmd", "args"); a plain line is (None, line)."""
    stripped = line.strip()
    if not stripped.startswith(prefix):
        return None, stripped
    head, _, rest = stripped[len(prefix) :].partition(" ")
    name = head.split("@", 1)[0].lower()  # Telegram appends @botname in groups
    return (name, rest.strip()) if name in COMMANDS else (None, stripped)


# A command-like word: "/summry", "!Foo@bron_bot". "/ " or "!!!" is text, not a command.
_COMMAND_WORD = re.compile(r"[a-z][a-z0-9_]*(@\w+)?", re.IGNORECASE)


def unknown_command(line: str, prefix: str) -> str | None:
    """``/name`` of a command-like line whose command Bron does not have (a typo such as ``/summry``),
    else None. Answering it as a question would reply "no passage found", which explains nothing."""
    stripped = line.strip()
    if not stripped.startswith(prefix):
        return None
    head = stripped[len(prefix) :].split(" ", 1)[0].split("\n", 1)[0]  # "/ waar …" has no command word
    if not _COMMAND_WORD.fullmatch(head) or head.split("@", 1)[0].lower() in COMMANDS:
        return None
    return prefix + head.split("@", 1)[0]


class ChatSession:
    """One conversation with the core, rendering replies in ``fmt``."""

    def __init__(self, bron: Bron, conversation: str, prefix: str = "/", fmt: Format = "text", limit: int = 1_000_000) -> None:
        self.bron = bron
        self.conversation = conversation
        self.prefix = prefix
        self.fmt: Format = fmt
        self.limit = limit
        self.language = bron.config.answer.language_fallback

    def welcome(self) -> str:
        """The greeting plus the command list."""
        return f"{t('welcome', self.language)}\n\n{t('help', self.language, p=self.prefix)}"

    def handle(self, line: str) -> list[str]:
        """The reply messages for one line typed by the user."""
        try:
            unknown = unknown_command(line, self.prefix)
            if unknown:
                return [render_error("unknown_command", self.language, self.fmt, cmd=unknown, p=self.prefix)]
            command, arg = parse_command(line, self.prefix)
            if command is None or command == "ask":
                if arg:
                    self.language = detect_language(arg, self.language)
            return self._dispatch(command, arg)
        except BronError as err:
            return [render_error(err.key, self.language, self.fmt, **err.params)]
        except Exception as err:  # one bad line must not end the session: say so and keep going
            log.error("chat line %r failed: %s: %s", line[:80], type(err).__name__, err, exc_info=log.isEnabledFor(logging.DEBUG))
            return [render_error("error", self.language, self.fmt)]

    def _dispatch(self, command: str | None, arg: str) -> list[str]:
        lang, fmt, limit = self.language, self.fmt, self.limit
        if command in (None, "ask"):
            answer = self.bron.answer(arg, self.conversation)
            return render_answer(answer, answer.language, fmt, limit, more_hint=f"{self.prefix}more" if answer.more else "")
        if command == "more":
            more = self.bron.more(self.conversation)
            return render_more(more, more.language, fmt, limit)
        if command == "summary":
            return render_summary(self.bron.summarize(arg or None, self.conversation), lang, fmt, limit)
        if command == "source":
            return render_sources(self.bron.sources(self.conversation), lang, fmt, limit)
        if command == "articles":
            page = int(arg) if is_number(arg) else 1
            return render_articles(self.bron.articles(page), lang, fmt, limit)
        if command == "add":
            # The terminal's user owns the index; the chat bots let only their admins add.
            if not arg:
                return [t("add_usage", lang, p=self.prefix)]
            return [render_added(self.bron.add_url(arg), lang, fmt)]
        if command in ("follow", "following", "unfollow", "briefing"):
            # Alerts and briefings need a chat to arrive in; the terminal has none.
            return [t("follow_terminal", lang)]
        return [t("help", lang, p=self.prefix)]
