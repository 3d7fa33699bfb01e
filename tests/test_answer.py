"""Answering on the bundled seed article: quotes, languages, abstention, bad questions."""

from __future__ import annotations

import pytest

from bot.core import Bron
from bot.errors import EmptyQuestion, QuestionTooLong
from bot.render import render_answer
from support import SEED_QUESTION_EN, SEED_QUESTION_NL


def test_dutch_question_quotes_the_passage_with_its_source(bron: Bron) -> None:
    answer = bron.answer(SEED_QUESTION_NL, "t-nl")
    assert not answer.abstained and answer.language == "nl"
    top = answer.passages[0]
    assert "in Turkije verbleef" in top.text
    hs, he = top.highlight
    assert "in Turkije verbleef" in top.text[hs:he], "the answering sentence is the one marked"
    assert top.article.title == "Expert waarschuwt voor verwachte aanvallen van ISIS in Europese landen"
    assert top.article.outlet == "ANHA"
    assert top.article.url is None and top.article.date is None


def test_quotes_are_exact_slices_of_the_article(bron: Bron) -> None:
    for question in (SEED_QUESTION_NL, "Wat zei Mustafa Amin over Europa?", "Waarom werd Moskou gekozen?"):
        for passage in bron.answer(question, "t-slices").passages:
            text = bron.library.article_text(passage.article.id)
            assert passage.text == text[passage.start : passage.end]
            assert 0 <= passage.highlight[0] < passage.highlight[1] <= len(passage.text)


def test_english_question_finds_the_dutch_passage(bron: Bron) -> None:
    answer = bron.answer(SEED_QUESTION_EN, "t-en")
    assert answer.language == "en" and not answer.abstained
    assert "in Turkije" in answer.passages[0].text


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("Wie won de Tour de France van 2023?", "nl"),
        ("What is a good recipe for apple pie?", "en"),
        ("Hoeveel kost een treinkaartje van Utrecht naar Zwolle?", "nl"),
    ],
)
def test_off_topic_question_abstains_in_the_users_language(bron: Bron, question: str, language: str) -> None:
    answer = bron.answer(question, "t-off")
    assert answer.abstained and answer.language == language
    text = render_answer(answer, answer.language, "text")[0]
    assert text.startswith("Ik heb" if language == "nl" else "I found no passage")


def test_empty_and_huge_questions_get_a_clear_error(bron: Bron) -> None:
    with pytest.raises(EmptyQuestion):
        bron.answer("   \n ", "t-bad")
    with pytest.raises(QuestionTooLong):
        bron.answer("waarom " * 1000, "t-bad")
