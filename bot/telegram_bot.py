"""The Telegram front end: a python-telegram-bot Application that renders what the core returns.

Blocking core work (embedding, search, ingest) runs in threads via ``asyncio.to_thread`` with
``concurrent_updates``, so one user's question never holds up another's.
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions, Message, ReplyParameters, Update
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    SimpleUpdateProcessor,
    TypeHandler,
    filters,
)

from bot import telegram_ui as ui
from bot.chat import unknown_command
from bot.config import Config, ConfigError
from bot.core import Bron, CoreFeeds
from bot.follow import FollowRunner, Outgoing, SendError
from bot.follow.commands import COMMANDS as FOLLOW_COMMANDS
from bot.follow.commands import run_command
from bot.errors import BronError
from bot.metrics import CountingFeeds, Metrics
from bot.metrics import added_report as metrics_added
from bot.models import IngestReport, Sources
from bot.ops import InFlight, Ops
from bot.ratelimit import RateLimiter
from bot.render import TELEGRAM_LIMIT, more_articles, render_added, render_answer, render_articles, render_more, render_sources, render_summary
from bot.render_follow import render_briefing, render_follow_result, render_push
from bot.texts import t
from embeddings.feeds import poll_every
from embeddings.language import detect_language
from embeddings.loaders import SUFFIXES

log = logging.getLogger(__name__)
# Opt in to PTB's coming behaviour (RetryAfter.retry_after as a timedelta); send_with_retry takes both.
os.environ.setdefault("PTB_TIMEDELTA", "1")

MAX_UPLOAD_MB = 5
SEND_ATTEMPTS = 4
TYPING_EVERY_S = 4.5


class TelegramBot:
    """Handlers for one bot; state is the core's plus who was refused and who is sending too fast."""

    def __init__(self, config: Config, bron: Bron, data_dir: Path, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.tg = config.telegram
        self.bron = bron
        self.uploads = data_dir / "uploads"
        limit = self.tg.rate_limit
        self.limiter = RateLimiter(limit.messages, limit.per_seconds)
        self._refused: set[int] = set()

    def register(self, app: Application) -> None:
        """Attach every handler to ``app``; the gate runs first and can stop an update."""
        app.add_handler(TypeHandler(Update, self.gate), group=-1)
        app.add_handler(CommandHandler(["start", "help"], self.on_help))
        app.add_handler(CommandHandler("ask", self.on_ask))
        app.add_handler(CommandHandler("summary", self.on_summary))
        app.add_handler(CommandHandler("source", self.on_source))
        app.add_handler(CommandHandler("more", self.on_more))
        app.add_handler(CommandHandler("articles", self.on_articles))
        app.add_handler(CommandHandler("add", self.on_add))
        app.add_handler(CommandHandler(list(FOLLOW_COMMANDS), self.on_follow))
        app.add_handler(MessageHandler(filters.COMMAND, self.on_unknown_command))  # after every known one
        app.add_handler(MessageHandler(filters.Document.ALL, self.on_document))
        app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, self.on_text))
        app.add_handler(CallbackQueryHandler(self.on_button))
        app.add_error_handler(self.on_error)

    # -- who gets served ------------------------------------------------------------------------

    async def gate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Drop updates not meant for the bot, refuse strangers once, and rate-limit each user."""
        if not self._addressed(update, context.bot):
            raise ApplicationHandlerStop
        user = update.effective_user
        if user is None:
            raise ApplicationHandlerStop
        if not self._allowed(update):
            log.info("refused user %s in chat %s", user.id, update.effective_chat and update.effective_chat.id)
            if user.id not in self._refused:
                self._refused.add(user.id)
                await self._say(update, context, t("unauthorized", self._lang(update)))
            raise ApplicationHandlerStop
        verdict = self.limiter.check(user.id)
        if not verdict.allowed:
            log.info("rate limited user %s for %ss", user.id, verdict.retry_after)
            self.metrics.rate_limited.labels("telegram").inc()
            if verdict.notify:
                await self._say(update, context, t("rate_limited", self._lang(update), seconds=verdict.retry_after))
            raise ApplicationHandlerStop

    def _addressed(self, update: Update, bot: Bot) -> bool:
        if update.callback_query:
            return True
        message = update.message
        if message is None or update.effective_chat is None:
            return False  # edits, channel posts, membership changes
        if message.text and message.text.startswith("/"):
            target = ui.command_target(message)
            return target is None or target.lower() == (bot.username or "").lower()
        if update.effective_chat.type == ChatType.PRIVATE:
            return True
        return bool(message.text) and ui.mentions_bot(message, bot.bot)

    def _allowed(self, update: Update) -> bool:
        user_id = update.effective_user.id if update.effective_user else None
        chat_id = update.effective_chat.id if update.effective_chat else None
        if not self.tg.allowed_user_ids and not self.tg.allowed_chat_ids:
            return True
        return user_id in self.tg.allowed_user_ids or user_id in self.tg.admin_ids or chat_id in self.tg.allowed_chat_ids

    def _lang(self, update: Update, text: str = "") -> str:
        """The user's Telegram language if nl/en, else the language of what they wrote."""
        return ui.user_language(update.effective_user) or detect_language(text, self.config.answer.language_fallback)

    # -- commands and questions ----------------------------------------------------------------

    async def on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/start and /help: what the bot does and its commands."""
        lang = self._lang(update)
        await self._say(update, context, f"{t('welcome', lang)}\n\n{t('help', lang, p='/')}")

    async def on_unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A command the bot does not have (a typo such as /summry): say so, in private chats and when
        it names this bot; a bare /command in a group may be for another bot there."""
        message = update.message
        if message is None or not message.text:
            return
        if update.effective_chat.type != ChatType.PRIVATE and ui.command_target(message) is None:
            return
        unknown = unknown_command(message.text, "/")
        if unknown:
            await self._say(update, context, t("unknown_command", self._lang(update), cmd=unknown, p="/"))

    async def on_ask(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/ask QUESTION."""
        await self._answer(update, context, " ".join(context.args or []))

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A plain message that reached the gate is a question (in groups, minus the mention)."""
        text = update.message.text if update.message else ""
        await self._answer(update, context, ui.strip_mention(text or "", context.bot.bot))

    async def _answer(self, update: Update, context: ContextTypes.DEFAULT_TYPE, question: str) -> None:
        chat = update.effective_chat
        started, outcome, language, chars = time.perf_counter(), "error", "unknown", 0
        try:
            async with self._typing(context.bot, chat.id):
                answer = await self._core(update, context, question, self.bron.answer, question, str(chat.id))
            if answer is None:
                outcome = "declined"  # empty or too long: the user was told why
                return
            language = answer.language
            lang = ui.user_language(update.effective_user) or answer.language
            keyboard = ui.answer_keyboard(answer.articles, lang, more=bool(answer.more))
            messages = render_answer(answer, lang, "html", TELEGRAM_LIMIT, expandable=True, more_hint="" if answer.passages else "/more")
            await self._send(update, context, messages, keyboard)
            outcome, chars = ("declined" if answer.abstained else "answered"), sum(map(len, messages))
        finally:
            self.metrics.question("telegram", language, outcome, time.perf_counter() - started, chars)

    async def on_more(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/more (or the More sources button): the last answer's quotes in full and the other close passages."""
        chat_id = update.effective_chat.id
        more = await self._core(update, context, "", self.bron.more, str(chat_id))
        if more is not None:
            lang = ui.user_language(update.effective_user) or more.language
            await self._send(update, context, render_more(more, lang, "html", TELEGRAM_LIMIT), ui.answer_keyboard(more_articles(more), lang))

    async def on_summary(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/summary [ARTICLE]: of the named article, else of the last answer's."""
        ref = " ".join(context.args or []) or None
        await self._summary(update, context, ref)

    async def _summary(self, update: Update, context: ContextTypes.DEFAULT_TYPE, ref: str | None) -> None:
        chat_id = update.effective_chat.id
        async with self._typing(context.bot, chat_id):
            summary = await self._core(update, context, ref or "", self.bron.summarize, ref, str(chat_id))
        if summary is not None:
            lang = self._lang(update, " ".join(summary.sentences))
            await self._send(update, context, render_summary(summary, lang, "html", TELEGRAM_LIMIT))
            self.metrics.summaries.labels("telegram").inc()

    async def on_source(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/source: the links behind the last answer."""
        sources = await self._core(update, context, "", self.bron.sources, str(update.effective_chat.id))
        if sources is not None:
            await self._send(update, context, render_sources(sources, self._lang(update), "html", TELEGRAM_LIMIT))
            self.metrics.sources.labels("telegram").inc()

    async def on_articles(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/articles [PAGE]: one page of the list, with buttons to turn pages."""
        arg = (context.args or ["1"])[0]
        page = await asyncio.to_thread(self.bron.articles, int(arg) if arg.isdigit() else 1, self.tg.articles_per_page)
        lang = self._lang(update)
        await self._send(update, context, render_articles(page, lang, "html", TELEGRAM_LIMIT), ui.page_keyboard(page, lang))

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Summary, source and page buttons."""
        query = update.callback_query
        await query.answer()
        parsed = ui.parse_callback(query.data)
        if parsed is None:
            return
        kind, number = parsed
        if kind == "more":
            await self.on_more(update, context)
        elif kind == "sum":
            await self._summary(update, context, str(number))
        elif kind == "src":
            article = await self._core(update, context, "", self.bron.find_article, str(number))
            if article is not None:
                await self._send(update, context, render_sources(Sources([article]), self._lang(update), "html"))
                self.metrics.sources.labels("telegram").inc()
        else:
            await self._turn_page(update, number)

    async def _turn_page(self, update: Update, number: int) -> None:
        page = await asyncio.to_thread(self.bron.articles, number, self.tg.articles_per_page)
        lang = self._lang(update)
        text = render_articles(page, lang, "html", TELEGRAM_LIMIT)[0]
        with suppress(BadRequest):  # "message is not modified" when the page did not change
            await update.callback_query.edit_message_text(
                text, parse_mode=ParseMode.HTML, reply_markup=ui.page_keyboard(page, lang),
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )

    # -- following topics and briefings -------------------------------------------------------------

    async def on_follow(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/follow TOPIC, /following, /unfollow N, /briefing HH:MM [TZ] | off."""
        text = update.message.text if update.message else ""
        command = text.split(maxsplit=1)[0][1:].partition("@")[0].lower()
        arg = " ".join(context.args or [])
        lang = self._lang(update, arg)
        chat = f"telegram:{update.effective_chat.id}"
        result = await self._core(update, context, arg, run_command, self.bron.follow, chat, command, arg, lang, "/",
                                  self.config.answer.language_fallback)
        if result is not None:
            await self._send(update, context, [render_follow_result(result, lang, "html", "/")])

    async def send_outgoing(self, bot: Bot, item: Outgoing) -> str | None:
        """Render and send one topic alert or briefing from the outbox (see :mod:`bot.follow.runner`)."""
        lang = item.language
        if item.kind == "push":
            messages = [render_push(item.payload, lang, "html", TELEGRAM_LIMIT)]
            keyboard = ui.summary_keyboard([item.payload.article], lang)
        else:
            messages = render_briefing(item.payload, lang, "html", TELEGRAM_LIMIT)
            keyboard = ui.summary_keyboard([i.article for i in item.payload.items], lang)
        ref = None
        counted = self.metrics.follow_messages
        for i, text in enumerate(messages):
            last = i == len(messages) - 1
            try:
                message = await send_with_retry(bot, int(item.address), text, None, keyboard if last else None, self.metrics)
            except TelegramError as err:
                counted.labels("telegram", item.kind, "failed").inc()
                if isinstance(err, Forbidden):  # blocked by the user, removed from the group
                    raise SendError(str(err), retry=False, gone=True) from None
                if isinstance(err, BadRequest):
                    raise SendError(str(err), retry=False, gone="chat not found" in str(err).lower()) from None
                raise SendError(str(err), retry=True) from None  # network trouble after the retries: later
            ref = str(message.message_id) if message is not None else ref
        counted.labels("telegram", item.kind, "sent").inc()
        return ref

    # -- adding articles ---------------------------------------------------------------------------

    async def on_add(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/add URL: an admin adds a web page to the corpus and gets a one-line confirmation."""
        lang = self._lang(update)
        if update.effective_user.id not in self.tg.admin_ids:
            await self._say(update, context, t("admin_only", lang))
            return
        if not context.args:
            await self._say(update, context, t("add_usage", lang, p="/"))
            return
        async with self._typing(context.bot, update.effective_chat.id):
            added = await self._core(update, context, "", self.bron.add_url, context.args[0])
        self.metrics.ingest("url", None if added is None else metrics_added(added))
        if added is not None:
            await self._send(update, context, [render_added(added, lang, "html")])

    async def on_document(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """An admin's file (.txt, .md, .html, ...) joins the corpus; others are told it is admin-only."""
        lang = self._lang(update)
        document = update.message.document
        if update.effective_user.id not in self.tg.admin_ids:
            await self._say(update, context, t("admin_only", lang))
            return
        name = Path(document.file_name or "upload.txt").name
        if Path(name).suffix.lower() not in SUFFIXES:
            await self._say(update, context, t("upload_type", lang, types=", ".join(SUFFIXES)))
            return
        if (document.file_size or 0) > MAX_UPLOAD_MB * 1024 * 1024:
            await self._say(update, context, t("upload_too_big", lang, mb=MAX_UPLOAD_MB))
            return
        self.uploads.mkdir(parents=True, exist_ok=True)
        path = self.uploads / name
        await (await document.get_file()).download_to_drive(path)
        async with self._typing(context.bot, update.effective_chat.id):
            try:
                report = await asyncio.to_thread(self.bron.ingest, [path])
            except Exception:
                self.metrics.ingest("upload", None)
                raise
        self.metrics.ingest("upload", report)
        await self._say(update, context, ingest_line(report, lang))

    # -- plumbing --------------------------------------------------------------------------------

    async def _core(self, update: Update, context: ContextTypes.DEFAULT_TYPE, text: str,
                    call: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking core call in a thread; a user error becomes a reply and None."""
        try:
            return await asyncio.to_thread(call, *args)
        except BronError as err:
            await self._say(update, context, t(err.key, self._lang(update, text), **err.params))
            return None

    @asynccontextmanager
    async def _typing(self, bot: Bot, chat_id: int) -> AsyncIterator[None]:
        """Show "typing…" until the block ends; Telegram clears it after 5 s, so it is renewed."""
        async def keep_typing() -> None:
            while True:
                with suppress(TelegramError):
                    await bot.send_chat_action(chat_id, ChatAction.TYPING)
                await asyncio.sleep(TYPING_EVERY_S)

        task = asyncio.create_task(keep_typing())
        try:
            yield
        finally:
            task.cancel()

    async def _say(self, update: Update, context: ContextTypes.DEFAULT_TYPE, text: str) -> None:
        """A short plain sentence, escaped for HTML."""
        await self._send(update, context, [html.escape(text, quote=False)])

    async def _send(self, update: Update, context: ContextTypes.DEFAULT_TYPE, messages: list[str],
                    keyboard: InlineKeyboardMarkup | None = None) -> None:
        """Send ``messages`` in order; in groups the first replies to the asker's message."""
        chat = update.effective_chat
        asked = update.message if chat.type != ChatType.PRIVATE else None
        for i, text in enumerate(messages):
            last = i == len(messages) - 1
            reply = ReplyParameters(asked.message_id, allow_sending_without_reply=True) if asked and i == 0 else None
            await send_with_retry(context.bot, chat.id, text, reply, keyboard if last else None, self.metrics)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log any failure with its context; apologise to the user when there is one to tell."""
        if not isinstance(update, Update):
            log.warning("telegram: %s", context.error)  # polling trouble; PTB retries by itself
            self.metrics.api_errors.labels("telegram", api_error_kind(context.error)).inc()
            return
        chat = update.effective_chat
        log.error(
            "update %s failed (chat %s, user %s): %r", update.update_id, chat and chat.id,
            update.effective_user and update.effective_user.id, context.error, exc_info=context.error,
        )
        if chat is not None:
            with suppress(TelegramError):
                await context.bot.send_message(chat.id, t("error", self._lang(update)))


async def send_with_retry(bot: Bot, chat_id: int, text: str, reply: ReplyParameters | None = None,
                          keyboard: InlineKeyboardMarkup | None = None, metrics: Metrics | None = None) -> Message | None:
    """Send an HTML message, waiting out flood limits and retrying network trouble a few times."""
    def count(err: TelegramError, retried: bool) -> None:
        if metrics is not None:
            metrics.api_errors.labels("telegram", api_error_kind(err)).inc()
            if retried:
                metrics.api_retries.labels("telegram").inc()

    for attempt in range(SEND_ATTEMPTS):
        try:
            return await bot.send_message(
                chat_id, text, parse_mode=ParseMode.HTML, reply_parameters=reply, reply_markup=keyboard,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        except (BadRequest, Forbidden) as err:
            count(err, retried=False)
            raise  # retrying cannot help: bad markup, or the user blocked the bot
        except RetryAfter as err:
            count(err, retried=True)
            wait = err.retry_after
            await asyncio.sleep(wait.total_seconds() if hasattr(wait, "total_seconds") else float(wait))
        except NetworkError as err:  # also TimedOut: Telegram may or may not have got it
            count(err, retried=attempt < SEND_ATTEMPTS - 1)
            if attempt == SEND_ATTEMPTS - 1:
                raise
            log.warning("send to chat %s failed (%s); retrying", chat_id, err)
            await asyncio.sleep(0.5 * 2**attempt)
    return None


def api_error_kind(err: BaseException | None) -> str:
    """The ``kind`` label of a failed Bot API call: rate_limited, timeout, server, network or client."""
    if isinstance(err, RetryAfter):
        return "rate_limited"
    if isinstance(err, TimedOut):
        return "timeout"
    if isinstance(err, NetworkError):
        # PTB turns 5xx answers into NetworkError with Telegram's description; connection trouble has its own words.
        text = str(err).lower()
        return "server" if any(w in text for w in ("bad gateway", "internal server", "unavailable", "gateway")) else "network"
    return "client"


def ingest_line(report: IngestReport, lang: str) -> str:
    """One line telling an admin what their upload did."""
    if report.added:
        return t("ingest_added", lang, title=report.added[0])
    if report.updated:
        return t("ingest_updated", lang, title=report.updated[0])
    if report.skipped:
        return t("ingest_skipped", lang, why=report.skipped[0][1])
    return t("ingest_unchanged", lang)


def check_config(config: Config, data_dir: Path | None = None) -> None:
    """Stop start-up early, before the index loads, when the bot cannot run."""
    if not config.telegram.token:
        raise ConfigError(
            "config key telegram.token is empty. Set the environment variable TELEGRAM_BOT_TOKEN "
            "(or BRON_TELEGRAM_TOKEN) to the token BotFather gave you."
        )
    if config.telegram.mode == "webhook":
        webhook_options(config)


class _TrackedUpdates(SimpleUpdateProcessor):
    """PTB's concurrent update processing, counting each update in flight so a stop can wait for it."""

    def __init__(self, max_concurrent_updates: int, inflight: InFlight) -> None:
        super().__init__(max_concurrent_updates)
        self.inflight = inflight

    async def do_process_update(self, update: object, coroutine: Any) -> None:
        """Run the handlers of one update, counted as in flight."""
        async with self.inflight.track():
            await coroutine


def build_application(config: Config, bron: Bron, data_dir: Path, ops: Ops | None = None) -> Application:
    """A ready-to-start Application talking to ``telegram.base_url`` with the configured token."""
    check_config(config)
    tg = config.telegram
    ops = ops or Ops()
    handlers = TelegramBot(config, bron, data_dir, ops.metrics)
    stop_polling_feeds = asyncio.Event()
    # Not app.create_task: Application.stop() waits for those, and this one ends only in post_stop.
    background: set[asyncio.Task] = set()

    async def post_init(app: Application) -> None:
        await app.bot.set_my_commands(ui.command_menu("en"))
        for lang in ("nl", "en"):
            await app.bot.set_my_commands(ui.command_menu(lang), language_code=lang)
        if config.feeds.poll_minutes > 0 and await asyncio.to_thread(bron.feeds):
            feeds = CountingFeeds(CoreFeeds(bron), ops.metrics)
            background.add(asyncio.create_task(poll_every(feeds, config.feeds.poll_minutes, stop_polling_feeds)))
        background.add(asyncio.create_task(runner.run(stop_polling_feeds)))
        log.info("telegram bot @%s ready", app.bot.username)

    async def post_stop(app: Application) -> None:
        stop_polling_feeds.set()
        await asyncio.gather(*background, return_exceptions=True)

    app = (
        Application.builder()
        .token(tg.token)
        .base_url(tg.base_url)
        .base_file_url(tg.base_file_url)
        .concurrent_updates(_TrackedUpdates(tg.concurrent_updates, ops.inflight))
        .post_init(post_init)
        .post_stop(post_stop)
        .build()
    )
    runner = FollowRunner(bron.follow, "telegram", lambda item: handlers.send_outgoing(app.bot, item))
    app.bot_data["follow_runner"] = runner
    handlers.register(app)
    return app


def webhook_options(config: Config) -> dict[str, Any]:
    """Arguments for PTB's webhook server, from ``telegram.webhook_*``."""
    tg = config.telegram
    if not tg.webhook_url:
        raise ConfigError(
            "config key telegram.webhook_url is empty; webhook mode needs the public HTTPS URL that "
            "Telegram calls (set it in config.yaml or BRON_TELEGRAM_WEBHOOK_URL)."
        )
    return {
        "listen": tg.webhook_listen, "port": tg.webhook_port, "url_path": tg.webhook_path,
        "webhook_url": tg.webhook_url, "secret_token": tg.webhook_secret or None,
        "allowed_updates": Update.ALL_TYPES,
    }


async def _reach(app: Application, ops: Ops, stop: asyncio.Event) -> bool:
    """Initialize (PTB calls getMe), retrying while the Bot API is unreachable; False if stopped first."""
    delay = 1.0
    while not stop.is_set():
        ops.readiness.waiting("reaching the Telegram Bot API")
        try:
            await app.initialize()
            return True
        except InvalidToken as err:
            raise ConfigError(
                f"config key telegram.token: Telegram refused the token ({err}). Set TELEGRAM_BOT_TOKEN to the "
                "token BotFather gave you."
            ) from None
        except NetworkError as err:
            ops.metrics.api_errors.labels("telegram", api_error_kind(err)).inc()
            ops.readiness.waiting(f"cannot reach the Telegram Bot API at {app.bot.base_url} ({err}); retrying")
            log.warning("telegram: Bot API unreachable (%s); retrying in %.0fs", err, delay)
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except asyncio.TimeoutError:
            delay = min(delay * 2, 60.0)
    return False


async def serve(config: Config, bron: Bron, data_dir: Path, ops: Ops, stop: asyncio.Event | None = None) -> None:
    """Take updates until SIGTERM/SIGINT (or ``stop``), then stop taking them and let answers finish.

    Readiness flips once Telegram was reached and polling (or the webhook) runs; the caller has
    loaded and warmed up the models and index before.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = build_application(config, bron, data_dir, ops)
    try:
        if not await _reach(app, ops, stop):
            return
        await app.post_init(app)  # type: ignore[misc]
        await app.start()
        if config.telegram.mode == "webhook":
            await app.updater.start_webhook(**webhook_options(config))  # type: ignore[union-attr]
        else:
            # Updates sent while the bot was down are still queued at Telegram and answered now.
            # Polling trouble goes to on_error (logged once, counted), as run_polling does it.
            def polling_error(exc: TelegramError) -> None:
                app.create_task(app.process_error(error=exc, update=None))

            await app.updater.start_polling(  # type: ignore[union-attr]
                allowed_updates=Update.ALL_TYPES, error_callback=polling_error,
            )
        ops.readiness.ready()
        await stop.wait()
        ops.readiness.waiting("stopping")
        log.info("telegram: stopping; no new updates are taken")
        await app.updater.stop()  # type: ignore[union-attr]
        # Updates already fetched are handled too: app.stop() processes the queue before it returns.
        await ops.inflight.drain(ops.drain_seconds)
        await app.stop()
        await app.post_stop(app)  # type: ignore[misc]
        await ops.inflight.drain(ops.drain_seconds)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()


def run(config: Config, bron: Bron, data_dir: Path, ops: Ops | None = None) -> None:
    """Serve until SIGTERM or SIGINT: long polling, or a webhook when ``telegram.mode`` says so."""
    asyncio.run(serve(config, bron, data_dir, ops or Ops()))
