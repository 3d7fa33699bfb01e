"""Rendering replies: escaping, the answering sentence marked, and splitting within platform limits."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from bot.models import Answer, ArticleInfo, More, Passage
from bot.render import TELEGRAM_LIMIT, length, render_answer, render_more

EVIL = ArticleInfo(7, 'Title <b>with</b> "quotes" & more', "Outlet<script>", None, "https://example.org/a?x=1&y=<2>", "nl")


class TagBalance(HTMLParser):
    """Fails on a closing tag that does not match the innermost open one."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"


def _passage(text: str, mark: str, article: ArticleInfo = EVIL) -> Passage:
    start = text.index(mark)
    return Passage(article, text, 0, len(text), (start, start + len(mark)), 1.0)


def _assert_balanced(message: str) -> None:
    parser = TagBalance()
    parser.feed(message)
    parser.close()
    assert parser.stack == []


def test_article_and_link_text_is_escaped() -> None:
    passage = _passage("Voor. <script>alert(1)</script> is het antwoord. Na.", "<script>alert(1)</script> is het antwoord.")
    (message,) = render_answer(Answer("q <i>", "nl", [passage]), "nl", "html")
    assert "<script>" not in message and "&lt;script&gt;alert(1)&lt;/script&gt;" in message
    assert "<b>&lt;script&gt;alert(1)&lt;/script&gt; is het antwoord.</b>" in message
    assert "Title &lt;b&gt;with&lt;/b&gt; &quot;quotes&quot; &amp; more" in message
    assert '<a href="https://example.org/a?x=1&amp;y=&lt;2&gt;">' in message
    _assert_balanced(message)


def test_long_full_quotes_split_between_passages_within_the_limit() -> None:
    passages = [_passage(f"Zin {i}. " + "Lange tekst met <tekens> & meer. " * 40 + "Het antwoord staat hier.", "Het antwoord staat hier.") for i in range(8)]
    messages = render_more(More("vraag", "nl", passages[:2], passages[2:]), "nl", "html")
    assert len(messages) > 1
    for message in messages:
        assert len(message) <= TELEGRAM_LIMIT
        _assert_balanced(message)
    # Each quote is its answering sentence, then the whole quote as context.
    assert sum(m.count("<blockquote>") for m in messages) == 16, "no passage is lost or cut in two"
    assert sum(m.count("Lange tekst") for m in messages) == 8 * 40


def test_the_reply_leads_with_the_answering_sentence_and_collapses_the_context() -> None:
    passage = _passage("Eerst de aanloop. Dan het antwoord: 42. En nog wat daarna.", "Dan het antwoord: 42.")
    (telegram,) = render_answer(Answer("vraag", "nl", [passage]), "nl", "html", expandable=True)
    assert telegram.startswith("<blockquote><b>Dan het antwoord: 42.</b></blockquote>\n[7]")
    assert "<blockquote expandable>Eerst de aanloop. <b>Dan het antwoord: 42.</b> En nog wat daarna.</blockquote>" in telegram
    _assert_balanced(telegram.replace("blockquote expandable", "blockquote"))
    (text,) = render_answer(Answer("vraag", "nl", [passage]), "nl", "text")
    assert text.startswith("> **Dan het antwoord: 42.**\n[7]")


def test_a_single_huge_passage_is_shortened_around_the_answer() -> None:
    text = "Inleiding. " * 600 + "Dit is het antwoord. " + "Slot. " * 600
    (message,) = render_answer(Answer("vraag", "nl", [_passage(text, "Dit is het antwoord.")]), "nl", "html")
    assert len(message) <= TELEGRAM_LIMIT
    assert "<b>Dit is het antwoord.</b>" in message and "…" in message
    _assert_balanced(message)


def test_only_web_links_are_rendered_as_links() -> None:
    evil = ArticleInfo(3, "Titel", "Outlet", None, "javascript:alert(document.cookie)", "nl")
    (message,) = render_answer(Answer("vraag", "nl", [_passage("Het antwoord.", "Het antwoord.", evil)]), "nl", "html")
    assert "javascript" not in message and "<a " not in message and "geen link" in message


def test_telegram_length_counts_utf16_units_and_never_cuts_markup() -> None:
    emoji = "😀" * 3288  # 3,288 characters, 6,576 UTF-16 units
    wide = ArticleInfo(4, "Titel " + "😀" * 3000, "Outlet & co", None, "https://example.org/" + "a" * 900, "nl")
    passages = [_passage(emoji + " Het antwoord & meer.", "Het antwoord & meer.", wide), _passage("Kort. Antwoord <x>.", "Antwoord <x>.", wide)]
    for messages in (
        render_answer(Answer("vraag", "nl", passages), "nl", "html", expandable=True),
        render_more(More("vraag", "nl", passages, passages), "nl", "html"),
    ):
        for message in messages:
            assert length(message) <= TELEGRAM_LIMIT
            _assert_balanced(message.replace("blockquote expandable", "blockquote"))
            assert not re.search(r"&(?!(amp|lt|gt|quot|#\d+);)", message), "no entity is split"
