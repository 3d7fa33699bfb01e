"""Property-based: whatever text, titles and links articles and questions carry, every rendered
Telegram/Matrix message is well-formed HTML with only web links, within the platform limit."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.models import Answer, ArticleInfo, ArticlePage, More, Passage, Sources, Summary
from bot.render import TELEGRAM_LIMIT, length, render_answer, render_articles, render_more, render_sources, render_summary

ALLOWED = {"b", "i", "a", "blockquote"}
ENTITY = re.compile(r"&(?!(amp|lt|gt|quot|#\d+|#x[0-9a-fA-F]+);)")


class Strict(HTMLParser):
    """Records every problem Telegram would reject a message for."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in ALLOWED:
            self.problems.append(f"<{tag}>")
        if tag == "a" and not re.match(r"https?://", dict(attrs).get("href") or "", re.I):
            self.problems.append(f"href {dict(attrs).get('href')!r:.40}")
        if tag == "blockquote" and attrs not in ([], [("expandable", None)]):
            self.problems.append(f"blockquote attrs {attrs}")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.problems.append(f"unbalanced </{tag}>")


def _check(message: str) -> None:
    parser = Strict()
    parser.feed(message)
    parser.close()
    assert not parser.problems and not parser.stack, (parser.problems, parser.stack)
    assert not ENTITY.search(message)
    assert length(message) <= TELEGRAM_LIMIT
    assert length(html.unescape(re.sub(r"<[^>]*>", "", message))) <= TELEGRAM_LIMIT


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=3000)
urls = st.one_of(st.none(), text, st.builds(lambda t: "https://example.org/" + t, text), st.just("javascript:alert(1)"))
articles = st.builds(ArticleInfo, st.integers(1, 10**6), text, st.one_of(st.none(), text), st.one_of(st.none(), text), urls, st.sampled_from(["nl", "en"]))


@st.composite
def passages(draw) -> Passage:
    body = draw(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6000))
    start = draw(st.integers(0, len(body) - 1))
    end = draw(st.integers(start + 1, len(body)))
    return Passage(draw(articles), body, 0, len(body), (start, end), 1.0, 0.5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(passages(), max_size=4), st.lists(passages(), max_size=3), text)
def test_answers_and_more_render_as_valid_telegram_html(shown: list[Passage], others: list[Passage], question: str) -> None:
    for messages in (
        render_answer(Answer(question, "nl", shown, others), "nl", "html", expandable=True, more_hint="/more"),
        render_answer(Answer(question, "en", shown, others), "en", "html"),
        render_more(More(question, "nl", shown, others), "nl", "html"),
    ):
        for message in messages:
            _check(message)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(articles, st.lists(text, max_size=6))
def test_summaries_sources_and_lists_render_as_valid_telegram_html(article: ArticleInfo, sentences: list[str]) -> None:
    for message in render_summary(Summary(article, sentences), "nl", "html"):
        _check(message)
    for message in render_sources(Sources([article, article]), "en", "html"):
        _check(message)
    for message in render_articles(ArticlePage([article] * 3, 1, 1, 3), "nl", "html"):
        _check(message)
