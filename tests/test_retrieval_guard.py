"""Guards for the retrieval gains: fixed Dutch and English questions on the bundled corpus keep
finding their passage in the top 3, and off-topic questions keep being declined."""

from __future__ import annotations

import pytest

from bot.core import Bron
from embeddings.language import detect_language

EXPECTED = [
    ("Waar verbleef een van de daders?", "in Turkije verbleef"),
    ("Where did one of the attackers stay?", "in Turkije verbleef"),
    ("Welke nationaliteit had een van de daders?", "een Tadzjiek"),
    ("Waarom werden de buitenwijken van Moskou gekozen?", "zacht veiligheidsgebied"),
    ("Why were the suburbs of Moscow chosen?", "zacht veiligheidsgebied"),
    ("Hoe noemt de expert de groep die de operatie uitvoerde?", "Krokodillencel"),
    ("How will lone wolves carry out attacks in Europe?", "eenzame wolven"),
    ("Welke aanslag pleegde ISIS kort daarvoor?", "aanslag op Teheran"),
    ("What did ISIS attack shortly before Moscow?", "aanslag op Teheran"),
]

OFF_TOPIC = [
    "Wie won de Tour de France van 2023?",
    "Who won the 2022 World Cup?",
    "Hoeveel kost een treinkaartje van Utrecht naar Zwolle?",
    "What is the capital of France?",
    "Hoe laat is het?",
]


@pytest.mark.parametrize(("question", "needle"), EXPECTED)
def test_question_keeps_its_passage_in_the_top_three(bron: Bron, question: str, needle: str) -> None:
    # Ranking is guarded on its own: answering is decided by the answerability model.
    passages = bron.library.rank(question, detect_language(question), 3)
    assert any(needle in p.text for p in passages), [p.text[:80] for p in passages]


@pytest.mark.parametrize("question", OFF_TOPIC)
def test_off_topic_question_is_declined(bron: Bron, question: str) -> None:
    assert bron.answer(question, "guard").abstained


@pytest.mark.parametrize("question", [question for question, _ in EXPECTED])
def test_longer_ranking_starts_with_the_answer_quotes(bron: Bron, question: str) -> None:
    # Merged neighbours depend on a passage's rank, not on top_k: `bron eval` scores the first
    # three of ten as the three quotes the bot sends. Merged quotes stay exact article slices.
    language = detect_language(question)
    three = bron.library.rank(question, language, 3)
    ten = bron.library.rank(question, language, 10)
    assert [(p.article.id, p.start, p.end, p.highlight) for p in three] == [(p.article.id, p.start, p.end, p.highlight) for p in ten[:3]]
    for p in ten:
        assert p.text == bron.library.article_text(p.article.id)[p.start : p.end]
        assert 0 <= p.highlight[0] < p.highlight[1] <= len(p.text)
    spans = sorted((p.article.id, p.start, p.end) for p in ten)
    assert all(a[0] != b[0] or a[2] <= b[1] for a, b in zip(spans, spans[1:])), "quotes do not overlap"
