"""Turn core results into chat messages: HTML (Telegram, Matrix) or plain text (CLI, Matrix body).

Every piece of user or article text passes through :func:`html.escape` before it meets markup, and
long replies are split between blocks (passages, list items), never inside a tag.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Literal

from bot.models import AddedArticle, Answer, ArticleInfo, ArticlePage, More, Passage, Sources, Summary
from bot.texts import t

Format = Literal["html", "text"]

TELEGRAM_LIMIT = 4096
ELLIPSIS = "…"


def _esc(text: str, fmt: Format) -> str:
    return html.escape(text, quote=True) if fmt == "html" else text


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def safe_url(url: str | None) -> str | None:
    """``url`` when it is a plain http(s) address of sane length, else None (never a javascript: link)."""
    if not url:
        return None
    url = url.strip()
    if len(url) > MAX_URL or not re.match(r"(?i)https?://\S+$", url):
        return None
    return url


MAX_TITLE = 200
MAX_META = 80
MAX_URL = 1000


def citation(article: ArticleInfo, lang: str, fmt: Format) -> str:
    """One line naming an article: title, outlet, date and link (http and https links only)."""
    day = _short(article.date or "", MAX_META)
    if not day and article.first_seen:
        day = t("first_seen", lang, day=article.first_seen)
    parts = [_short(article.outlet or "", MAX_META), day or t("no_date", lang)]
    meta = ", ".join(_esc(p, fmt) for p in parts if p)
    title = _esc(_short(article.title, MAX_TITLE), fmt)
    url = safe_url(article.url)
    if fmt == "html":
        link = f'<a href="{_esc(url, fmt)}">{_esc(_short(url, 120), fmt)}</a>' if url else t("no_link", lang)
        return f"[{article.id}] <i>{title}</i> — {meta} · {link}"
    return f"[{article.id}] {title} — {meta} · {url or t('no_link', lang)}"


def _marked(passage: Passage, fmt: Format) -> str:
    """The whole quote with the answering sentence marked (bold)."""
    text = passage.text
    hs, he = passage.highlight
    before, mark, after = text[:hs], text[hs:he], text[he:]
    if fmt == "html":
        return f"{_esc(before, fmt)}<b>{_esc(mark, fmt)}</b>{_esc(after, fmt)}"
    return f"{before}**{mark}**{after}" if mark.strip() else text


def _around(passage: Passage, fmt: Format, room: int) -> str:
    """The context on either side of the answering sentence (at most ``room`` characters each), with
    the sentence itself, already shown above, left out as "[…]"."""
    hs, he = passage.highlight
    before, after = passage.text[:hs].rstrip(), passage.text[he:].lstrip()
    if len(before) > room:
        tail = before[-room:]
        # Start at a word, not in the middle of one.
        cut = tail.find(" ")
        before = ELLIPSIS + (tail[cut + 1 :] if 0 <= cut < len(tail) // 2 else tail).lstrip()
    if len(after) > room:
        head = after[:room]
        cut = head.rfind(" ")
        after = (head[:cut] if cut > len(head) // 2 else head).rstrip() + ELLIPSIS
    return f"{_esc(before, fmt)} [{ELLIPSIS}] {_esc(after, fmt)}".strip()


def _quote_lines(body: str) -> str:
    return "\n".join("> " + line for line in body.splitlines() or [""])


def _sentence(passage: Passage) -> str:
    hs, he = passage.highlight
    return passage.text[hs:he]


def _has_context(passage: Passage) -> bool:
    return bool(passage.text.strip()) and passage.text.strip() != _sentence(passage).strip()


# Telegram shows about three lines of a collapsed <blockquote expandable> (~40 characters each on a
# phone): what a reader sees of a quote's context before expanding it.
COLLAPSED_PREVIEW = 120
# Matrix and the terminal cannot collapse: the context is this many characters on either side.
CONTEXT_CHARS = 160


def passage_block(passage: Passage, lang: str, fmt: Format, limit: int = TELEGRAM_LIMIT, expandable: bool = False, full: bool = False) -> str:
    """One quote: the answering sentence and its citation first, then its context.

    The context is the whole quote with the sentence marked when ``full``, or in an expandable
    (collapsed) blockquote when ``expandable`` (Telegram); otherwise (Matrix, terminal) it is the
    text around the sentence, at most :data:`CONTEXT_CHARS` on each side. Context, then sentence,
    are shortened further if the block would not fit in ``limit``.
    """
    cite = citation(passage.article, lang, fmt)
    sentence = _sentence(passage) or passage.text
    room = None if full or expandable else CONTEXT_CHARS
    keep = len(sentence)
    while True:
        block = _passage_block(passage, sentence, keep, cite, fmt, room, expandable)
        if length(block) <= limit or ((room or 0) <= 20 and room is not None and keep <= 40):
            return block
        if room is None or room > 20:
            room = int((room or len(passage.text)) * 0.7)
            expandable = False  # past this point the context is cut, so it is shown shortened
        else:
            keep = int(keep * 0.7)


def _passage_block(passage: Passage, sentence: str, keep: int, cite: str, fmt: Format, room: int | None, expandable: bool) -> str:
    shown = sentence if len(sentence) <= keep else sentence[: max(keep - 1, 1)] + ELLIPSIS
    if fmt == "html":
        head = f"<blockquote><b>{_esc(shown, fmt)}</b></blockquote>\n{cite}"
    else:
        head = f"{_quote_lines('**' + shown + '**')}\n{cite}"
    if not _has_context(passage):
        return head
    body = _marked(passage, fmt) if room is None else _around(passage, fmt, room)
    if fmt == "html":
        tag = "blockquote expandable" if expandable else "blockquote"
        return f"{head}\n<{tag}>{body}</blockquote>"
    return f"{head}\n{_quote_lines(body)}"


def length(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP counts two)."""
    return len(text.encode("utf-16-le")) // 2


def visible_chars(answer: Answer) -> int:
    """Characters of quoted text a Telegram reader sees without expanding anything: each shown
    quote's answering sentence plus the collapsed preview of its context."""
    total = 0
    for p in answer.passages:
        total += len(_sentence(p) or p.text)
        if _has_context(p):
            total += min(COLLAPSED_PREVIEW, len(p.text))
    return total


def pack(blocks: Iterable[str], limit: int = TELEGRAM_LIMIT, sep: str = "\n\n") -> list[str]:
    """Join blocks into as few messages as possible, each at most ``limit`` characters."""
    messages: list[str] = []
    current = ""
    for block in blocks:
        if length(block) > limit:
            block = _cut(block, limit)
        candidate = f"{current}{sep}{block}" if current else block
        if length(candidate) <= limit:
            current = candidate
        else:
            messages.append(current)
            current = block
    if current:
        messages.append(current)
    return messages


def _cut(block: str, limit: int) -> str:
    """A block too long for one message, cut to plain text: no tag or entity is left half open."""
    text = html.unescape(re.sub(r"<[^>]*>", "", block))
    out = []
    used = 0
    for ch in text:
        size = length(ch) + (len(html.escape(ch)) - 1 if ch in "<>&\"'" else 0)
        if used + size > limit - 1:
            break
        out.append(ch)
        used += size
    return html.escape("".join(out), quote=True) + ELLIPSIS


MONTH_NAMES = {
    "nl": "januari februari maart april mei juni juli augustus september oktober november december".split(),
    "en": "January February March April May June July August September October November December".split(),
}


def _date(day: str, lang: str, year: bool = True, month: bool = True) -> str:
    y, m, d = (int(x) for x in day.split("-"))
    text = str(d)
    if month:
        text += " " + MONTH_NAMES.get(lang, MONTH_NAMES["en"])[m - 1]
    return f"{text} {y}" if year else text


def scope_text(answer: Answer, lang: str) -> str:
    """The period and outlets an answer was limited to, as words: "van 1–7 december 2026 (NOS)"."""
    since, until = answer.since, answer.until
    frm, to_ = ("van", "tot en met") if lang == "nl" else ("from", "up to")
    if since and until:
        if since == until:
            period = f"{frm} {_date(since, lang)}"
        elif since[:7] == until[:7]:
            period = f"{frm} {_date(since, lang, year=False, month=False)}–{_date(until, lang)}"
        elif since[:4] == until[:4]:
            period = f"{frm} {_date(since, lang, year=False)} – {_date(until, lang)}"
        else:
            period = f"{frm} {_date(since, lang)} – {_date(until, lang)}"
    elif since:
        period = ("vanaf " if lang == "nl" else "since ") + _date(since, lang)
    elif until:
        period = f"{to_} {_date(until, lang)}"
    else:
        period = ""
    outlets = ", ".join(answer.outlets)
    if not period:
        return f"{frm} {outlets}" if outlets else ""
    return f"{period} ({outlets})" if outlets else period


def answer_blocks(answer: Answer, lang: str, fmt: Format, limit: int = TELEGRAM_LIMIT, expandable: bool = False, more_hint: str = "") -> list[str]:
    """The blocks of an answer: one per quote, the answering one first; or the abstention.

    ``more_hint`` (e.g. "/more") is named at the end when other passages can be shown.
    """
    scope = scope_text(answer, lang)
    if answer.scope_empty:
        return [_esc(t("scope_empty", lang, what=scope), fmt)]
    blocks = answer_body(answer, lang, fmt, limit, expandable, more_hint)
    if scope:
        blocks.insert(0, _esc(t("scope_header", lang, what=scope), fmt))
    return blocks


def answer_body(answer: Answer, lang: str, fmt: Format, limit: int = TELEGRAM_LIMIT, expandable: bool = False, more_hint: str = "") -> list[str]:
    """The quotes of an answer, the answering one first, or the abstention."""
    if answer.abstained:
        blocks = [_esc(t("abstain", lang), fmt)]
        if answer.more and more_hint:
            blocks[0] += " " + _esc(t("abstain_more", lang, cmd=more_hint), fmt)
        return blocks
    blocks = [passage_block(p, lang, fmt, limit, expandable) for p in answer.passages]
    if answer.more and more_hint:
        blocks.append(_esc(t("more_hint", lang, cmd=more_hint), fmt))
    return blocks


def render_answer(answer: Answer, lang: str, fmt: Format, limit: int = TELEGRAM_LIMIT, expandable: bool = False, more_hint: str = "") -> list[str]:
    """An answer as one or more messages of at most ``limit`` characters."""
    return pack(answer_blocks(answer, lang, fmt, limit, expandable, more_hint), limit)


def more_articles(more: More) -> list[ArticleInfo]:
    """The distinct articles behind a ``/more`` reply, in the order shown."""
    seen: dict[int, ArticleInfo] = {}
    for p in [*more.quotes, *more.others]:
        seen.setdefault(p.article.id, p.article)
    return list(seen.values())


def render_more(more: More, lang: str, fmt: Format, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """The last answer's quotes in full, then the other close passages, labelled as not answering."""
    blocks: list[str] = []
    if more.quotes:
        blocks.append(_esc(t("more_quotes", lang), fmt))
        blocks += [passage_block(p, lang, fmt, limit, full=True) for p in more.quotes]
    if more.others:
        blocks.append(_esc(t("more_others", lang), fmt))
        blocks += [passage_block(p, lang, fmt, limit, full=True) for p in more.others]
    if not blocks:
        blocks.append(_esc(t("more_none", lang), fmt))
    return pack(blocks, limit)


def render_summary(summary: Summary, lang: str, fmt: Format, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """A summary: heading with citation, then the chosen sentences."""
    head = f"{_esc(t('summary_of', lang), fmt)}\n{citation(summary.article, lang, fmt)}"
    body = [_esc(s, fmt) for s in summary.sentences]
    if fmt == "html":
        body = [f"• {s}" for s in body]
    else:
        body = [f"- {s}" for s in body]
    return pack([head, *body], limit, sep="\n")


def render_sources(sources: Sources, lang: str, fmt: Format, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """The articles behind the last answer, one citation a line."""
    lines = [_esc(t("sources_title", lang), fmt)]
    lines += [citation(a, lang, fmt) for a in sources.articles]
    return pack(lines, limit, sep="\n")


def render_articles(page: ArticlePage, lang: str, fmt: Format, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """A page of the article list."""
    if not page.total:
        return [_esc(t("empty_corpus", lang), fmt)]
    head = _esc(t("articles_title", lang, total=page.total, page=page.page, pages=page.pages), fmt)
    return pack([head, *(citation(a, lang, fmt) for a in page.articles)], limit, sep="\n")


ADDED_KEYS = {"added": "ingest_added", "updated": "ingest_updated", "duplicate": "ingest_duplicate"}


def render_added(added: AddedArticle, lang: str, fmt: Format) -> str:
    """The one-line confirmation of ``/add URL``, naming the article."""
    key = ADDED_KEYS.get(added.status, "ingest_unchanged")
    return t(key, lang, title=_esc(added.article.title, fmt))


def render_error(key: str, lang: str, fmt: Format, **params: object) -> str:
    """A translated error message, escaped for ``fmt``."""
    return _esc(t(key, lang, **params), fmt)
