"""Telegram-specific presentation: inline keyboards, callback data, command menus, message addressing.

Pure functions over python-telegram-bot's objects; the handlers in :mod:`bot.telegram_bot` use them.
"""

from __future__ import annotations

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Message, MessageEntity, User

from bot.models import ArticleInfo, ArticlePage
from bot.texts import LANGUAGES, t

MENU = ("ask", "summary", "source", "more", "articles", "follow", "following", "briefing", "help")
# Buttons are offered for this many of the quoted articles; more would bury the answer.
MAX_ARTICLE_BUTTONS = 3


def command_menu(lang: str) -> list[BotCommand]:
    """The command list shown in Telegram's menu, in ``lang``."""
    return [BotCommand(name, t(f"cmd_{name}", lang)) for name in MENU]


def user_language(user: User | None) -> str | None:
    """``nl`` or ``en`` from the user's Telegram language, or None when it is neither."""
    code = ((user.language_code if user else None) or "")[:2].lower()
    return code if code in LANGUAGES else None


def answer_keyboard(articles: list[ArticleInfo], lang: str, more: bool = False) -> InlineKeyboardMarkup | None:
    """Summary and source buttons for the quoted articles (numbered when there are several), and a
    "More sources" button when other passages came close."""
    shown = articles[:MAX_ARTICLE_BUTTONS]
    rows = []
    for article in shown:
        suffix = f" [{article.id}]" if len(shown) > 1 else ""
        rows.append([
            InlineKeyboardButton(t("button_summary", lang) + suffix, callback_data=f"sum:{article.id}"),
            InlineKeyboardButton(t("button_source", lang) + suffix, callback_data=f"src:{article.id}"),
        ])
    if more:
        rows.append([InlineKeyboardButton(t("button_more", lang), callback_data="more:0")])
    return InlineKeyboardMarkup(rows) if rows else None


def summary_keyboard(articles: list[ArticleInfo], lang: str) -> InlineKeyboardMarkup | None:
    """A Summary button per article (numbered when there are several): under a topic alert or a briefing."""
    numbered = len(articles) > 1
    rows = [[InlineKeyboardButton(t("button_summary", lang) + (f" {n}" if numbered else ""), callback_data=f"sum:{a.id}")]
            for n, a in enumerate(articles, 1)]
    return InlineKeyboardMarkup(rows) if rows else None


def page_keyboard(page: ArticlePage, lang: str) -> InlineKeyboardMarkup | None:
    """Previous/next buttons for the article list, when there is more than one page."""
    buttons = []
    if page.page > 1:
        buttons.append(InlineKeyboardButton(t("button_prev", lang), callback_data=f"page:{page.page - 1}"))
    if page.page < page.pages:
        buttons.append(InlineKeyboardButton(t("button_next", lang), callback_data=f"page:{page.page + 1}"))
    return InlineKeyboardMarkup([buttons]) if buttons else None


def parse_callback(data: str | None) -> tuple[str, int] | None:
    """``("sum", 3)`` from ``"sum:3"``; None for data this bot did not make."""
    kind, _, number = (data or "").partition(":")
    if kind in ("sum", "src", "page", "more") and number.isdigit():
        return kind, int(number)
    return None


def mentions_bot(message: Message, bot: User) -> bool:
    """Whether ``message`` names the bot: an @username mention, a text mention, or a reply to it."""
    replied = message.reply_to_message
    if replied and replied.from_user and replied.from_user.id == bot.id:
        return True
    handle = f"@{bot.username}".lower()
    for entity, text in message.parse_entities([MessageEntity.MENTION, MessageEntity.TEXT_MENTION]).items():
        if text.lower() == handle or (entity.user and entity.user.id == bot.id):
            return True
    return False


def strip_mention(text: str, bot: User) -> str:
    """The question without the bot's @username."""
    handle = f"@{bot.username}"
    return " ".join(w for w in text.split() if w.lower().strip(",:") != handle.lower())


def command_target(message: Message) -> str | None:
    """The bot a ``/command@name`` is meant for, or None when it names no bot."""
    text = message.text or ""
    head = text.split(maxsplit=1)[0] if text.startswith("/") else ""
    return head.partition("@")[2] or None
