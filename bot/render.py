"""Turn core results into chat messages: HTML (Telegram, Matrix) or plain text (CLI, Matrix body).

Every piece of user or article text passes through :func:`html.escape` before it meets markup, and
long replies are split between blocks (passages, list items), never inside a tag.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Literal

from bot.models import AddedArticle, Answer, ArticleInfo, ArticlePage, Passage, Sources, Summary
from bot.texts import t

Format = Literal["html", "text"]

TELEGRAM_LIMIT = 4096
ELLIPSIS = "…"


def _esc(text: str, fmt: Format) -> str:
    return html.escape(text, quote=True) if fmt == "html" else text


def citation(article: ArticleInfo, lang: str, fmt: Format) -> str:
    """One line naming an article: title, outlet, date and link."""
    parts = [article.outlet or "", article.date or t("no_date", lang)]
    meta = ", ".join(_esc(p, fmt) for p in parts if p)
    title = _esc(article.title, fmt)
    if fmt == "html":
        link = (
            f'<a href="{_esc(article.url, fmt)}">{_esc(article.url, fmt)}</a>'
            if article.url
            else t("no_link", lang)
        )
        return f"[{article.id}] <i>{title}</i> — {meta} · {link}"
    link = article.url or t("no_link", lang)
    return f"[{article.id}] {title} — {meta} · {link}"


def _quote(passage: Passage, fmt: Format, max_chars: int | None = None) -> str:
    text = passage.text
    hs, he = passage.highlight
    before, mark, after = text[:hs], text[hs:he], text[he:]
    if max_chars is not None and len(text) > max_chars:
        # Keep the answering sentence whole where possible; trim the context around it first.
        room = max(max_chars - len(mark), 0)
        before = ELLIPSIS + before[-(room // 2):] if len(before) > room // 2 else before
        after = after[: room - len(before)] + ELLIPSIS if len(after) > room - len(before) else after
        if len(mark) > max_chars:
            mark, before, after = mark[: max_chars - 1] + ELLIPSIS, "", ""
    if fmt == "html":
        body = f"{_esc(before, fmt)}<b>{_esc(mark, fmt)}</b>{_esc(after, fmt)}"
        return f"<blockquote>{body}</blockquote>"
    body = f"{before}**{mark}**{after}" if mark.strip() else text
    return "\n".join("> " + line for line in body.splitlines() or [""])


def passage_block(passage: Passage, lang: str, fmt: Format, limit: int = TELEGRAM_LIMIT) -> str:
    """A quoted passage followed by its citation, shortened so that it fits in ``limit``."""
    cite = citation(passage.article, lang, fmt)
    block = f"{_quote(passage, fmt)}\n{cite}"
    max_chars = len(passage.text)
    while len(block) > limit and max_chars > 20:
        max_chars = int(max_chars * 0.8)
        block = f"{_quote(passage, fmt, max_chars)}\n{cite}"
    return block


def pack(blocks: Iterable[str], limit: int = TELEGRAM_LIMIT, sep: str = "\n\n") -> list[str]:
    """Join blocks into as few messages as possible, each at most ``limit`` characters."""
    messages: list[str] = []
    current = ""
    for block in blocks:
        block = block[:limit]
        candidate = f"{current}{sep}{block}" if current else block
        if len(candidate) <= limit:
            current = candidate
        else:
            messages.append(current)
            current = block
    if current:
        messages.append(current)
    return messages


def answer_blocks(answer: Answer, lang: str, fmt: Format, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """The blocks of an answer: an intro line and one block per passage, or the abstention."""
    if answer.abstained:
        return [_esc(t("abstain", lang), fmt)]
    blocks = [_esc(t("answer_intro", lang), fmt)]
    blocks += [passage_block(p, lang, fmt, limit) for p in answer.passages]
    return blocks


def render_answer(answer: Answer, lang: str, fmt: Format, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """An answer as one or more messages of at most ``limit`` characters."""
    return pack(answer_blocks(answer, lang, fmt, limit), limit)


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
