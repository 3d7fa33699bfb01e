"""Topic alerts, briefings and the /following list as chat messages: HTML (Telegram, Matrix) or text.

Like :mod:`bot.render`, every article or user text is escaped before it meets markup, and a message
never exceeds the limit (Telegram counts UTF-16 units).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from bot.follow.commands import Result
from bot.follow.models import Briefing, Following, Push
from bot.render import MONTH_NAMES, TELEGRAM_LIMIT, Format, _esc, _quote_lines, _short, citation, length, pack, safe_url
from bot.texts import t

MAX_SENTENCE = 1200
MAX_TOPIC = 120


def _quote(sentence: str, fmt: Format) -> str:
    shown = _short(sentence, MAX_SENTENCE)
    if fmt == "html":
        return f"<blockquote><b>{_esc(shown, fmt)}</b></blockquote>"
    return _quote_lines(f"**{shown}**")


def render_push(push: Push, lang: str, fmt: Format, limit: int = TELEGRAM_LIMIT, summary_cmd: str = "") -> str:
    """One alert, one message: the topic, the answering sentence quoted, its source, and (Matrix,
    terminal) the command for the article's summary; Telegram shows a button instead."""
    head = _esc(t("push_header", lang, topic=_short(push.topic, MAX_TOPIC)), fmt)
    if fmt == "html":
        head = f"<b>{head}</b>"
    parts = [head, _quote(push.sentence, fmt), citation(push.article, lang, fmt)]
    if summary_cmd:
        parts.append(_esc(t("push_summary", lang, cmd=summary_cmd), fmt))
    message = "\n".join(parts)
    return message if length(message) <= limit else pack([message], limit)[0]


def _when(moment: float, tz: str, lang: str) -> str:
    local = dt.datetime.fromtimestamp(moment, ZoneInfo(tz))
    month = MONTH_NAMES.get(lang, MONTH_NAMES["en"])[local.month - 1]
    return f"{local.day} {month} {local.year}, {local:%H:%M}"


def _outlet_link(article, fmt: Format) -> str:
    name = _esc(_short(article.outlet or article.title, 80), fmt)
    url = safe_url(article.url)
    if fmt == "html" and url:
        return f'<a href="{_esc(url, fmt)}">{name}</a>'
    return f"{name} ({url})" if url else name


def render_briefing(briefing: Briefing, lang: str, fmt: Format, limit: int = TELEGRAM_LIMIT, summary_prefix: str = "") -> list[str]:
    """A briefing: a heading, then per story its lead sentence quoted, the citation of the article
    quoted, and the other outlets that carried the story."""
    when = _when(briefing.until, briefing.tz, lang)
    if not briefing.items:
        return [_esc(t("briefing_empty", lang, when=when), fmt)]
    title = _esc(t("briefing_title", lang, when=when), fmt)
    blocks = [f"<b>{title}</b>" if fmt == "html" else title]
    for n, item in enumerate(briefing.items, 1):
        lines = [f"{n}.", _quote(item.sentence, fmt), citation(item.article, lang, fmt)]
        others = [a for a in item.others if (a.outlet or "") != (item.article.outlet or "") or a.url != item.article.url]
        if others:
            seen: list[str] = []
            links = []
            for a in others:
                key = (a.outlet or a.title).lower()
                if key not in seen:
                    seen.append(key)
                    links.append(_outlet_link(a, fmt))
            lines.append(_esc(t("briefing_also", lang, outlets="\x00"), fmt).replace("\x00", ", ".join(links)))
        if summary_prefix:
            lines.append(_esc(t("push_summary", lang, cmd=f"{summary_prefix}summary {item.article.id}"), fmt))
        blocks.append("\n".join(lines))
    return pack(blocks, limit)


def render_follow_result(result: Result, lang: str, fmt: Format, prefix: str) -> str:
    """The reply to /follow, /unfollow, /following or /briefing."""
    if isinstance(result, Following):
        return render_following(result, lang, fmt, prefix)
    key, params = result
    return _esc(t(key, lang, **params), fmt)


def render_following(following: Following, lang: str, fmt: Format, prefix: str) -> str:
    """The chat's topics, numbered for /unfollow, and its briefing time."""
    lines = []
    if following.subscriptions:
        lines.append(_esc(t("following_title", lang), fmt))
        lines += [f"{s.number}. {_esc(_short(s.topic, 200), fmt)}" for s in following.subscriptions]
        lines.append(_esc(t("following_unfollow", lang, p=prefix), fmt))
    else:
        lines.append(_esc(t("following_none", lang, p=prefix), fmt))
    if following.briefing:
        lines.append(_esc(t("following_briefing", lang, at=following.briefing.at, tz=following.briefing.tz), fmt))
    return "\n".join(lines)
