"""Matrix message content in and out: who a message addresses, what it asks, how a reply looks.

Pure functions on event content dicts, so they are easy to reason about apart from the network.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import unquote

HTML_FORMAT = "org.matrix.custom.html"
# Replies from older clients start with quoted lines of the replied-to message, then a blank line.
_REPLY_FALLBACK = re.compile(r"\A(?:>[^\n]*\n)+\n?")
_MX_REPLY = re.compile(r"<mx-reply>.*?</mx-reply>", re.S | re.I)
_PILL = re.compile(r'<a\s[^>]*href="https://matrix\.to/#/([^"?]+)[^"]*"[^>]*>(.*?)</a>', re.S | re.I)
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Incoming:
    """A message as the bot reads it: the text without reply quote or mention, and whether it named the bot."""

    text: str
    mentioned: bool


def is_edit(content: dict) -> bool:
    """Edits repeat a message that was already seen; answering them would answer twice."""
    relates = content.get("m.relates_to") or {}
    return relates.get("rel_type") == "m.replace"


def strip_reply_fallback(body: str) -> str:
    """The body without the quoted message a reply starts with."""
    return _REPLY_FALLBACK.sub("", body, count=1)


def _pills(formatted: str, user_id: str) -> list[str]:
    """The link texts of the pills (matrix.to links) that point at ``user_id``."""
    pills = _PILL.findall(formatted)
    return [html.unescape(_TAG.sub("", text)) for target, text in pills if unquote(target) == user_id]


def _name_patterns(user_id: str, display_name: str | None) -> list[re.Pattern[str]]:
    """How a plain body can name the bot: its user id, ``@name`` anywhere, or ``Name:`` up front.

    A bare display name in the middle of a sentence does not count: "bron" is also a Dutch word.
    """
    localpart = user_id[1:].split(":", 1)[0] if user_id.startswith("@") else user_id
    names = {n for n in (display_name, localpart) if n}
    patterns = [re.compile(re.escape(user_id), re.I)]
    for name in names:
        patterns.append(re.compile(rf"(?<!\w)@{re.escape(name)}(?!\w)", re.I))
        patterns.append(re.compile(rf"\A\s*{re.escape(name)}\s*[:,]", re.I))
    return patterns


def read_message(content: dict, user_id: str, display_name: str | None) -> Incoming:
    """What a m.text message says to the bot, and whether it mentions the bot."""
    body = strip_reply_fallback(str(content.get("body") or ""))
    formatted = str(content.get("formatted_body") or "") if content.get("format") == HTML_FORMAT else ""
    formatted = _MX_REPLY.sub("", formatted)
    mentions = content.get("m.mentions") or {}
    mentioned = user_id in (mentions.get("user_ids") or [])
    pills = _pills(formatted, user_id)
    mentioned = mentioned or bool(pills)
    for text in pills:
        if text:
            body = body.replace(text, " ", 1)
    for pattern in _name_patterns(user_id, display_name):
        body, hits = pattern.subn(" ", body)
        mentioned = mentioned or hits > 0
    return Incoming(text=" ".join(body.split()).lstrip(":,; "), mentioned=mentioned)


def notice(html_body: str, text_body: str, reply_to: str, asker: str) -> dict:
    """A bot reply: an m.notice with HTML and plain bodies, as a reply to the asking event."""
    return {
        "msgtype": "m.notice",
        "body": text_body,
        "format": HTML_FORMAT,
        "formatted_body": html_body,
        "m.relates_to": {"m.in_reply_to": {"event_id": reply_to}},
        "m.mentions": {"user_ids": [asker]},
    }


def html_to_text(markup: str) -> str:
    """A plain rendering of our own HTML, for a body that has no text twin."""
    return html.unescape(_TAG.sub("", markup))


def pair_parts(html_parts: list[str], text_parts: list[str]) -> list[tuple[str, str]]:
    """Match the HTML and plain renderings of a reply part by part.

    Both are split at the same block boundaries but may split differently when a reply is long; a
    part without a plain twin gets its HTML stripped of tags.
    """
    if len(html_parts) == len(text_parts):
        return list(zip(html_parts, text_parts))
    return [(part, html_to_text(part)) for part in html_parts]
