"""Plain questions about the bundled article, as a new user asks them: answered with the right
sentence leading, in Dutch and English, with and without "?"; off-topic ones declined.

The answerability model is measured on newsqa-dev (README); this guards what a user of the bundled
corpus sees. Figures of the run that fixed these floors are in the README.
"""

from __future__ import annotations

import pytest

from bot.core import Bron

# (question, words of the sentence that must lead the reply)
ON_TOPIC_NL = [
    ("Wie is Mustafa Amin?", "Egyptische expert"),
    ("Welke aanslag was er in Moskou?", "buitenwijken van Moskou"),
    ("Met welk persbureau sprak de expert?", "nieuwsagentschap ANHA"),
    ("Waar verbleef een van de daders?", "in Turkije verbleef"),
    ("Waar verbleef een van de daders", "in Turkije verbleef"),
    ("Welke nationaliteit had een van de daders?", "een Tadzjiek"),
    ("Waarom werden de buitenwijken van Moskou gekozen?", "zacht veiligheidsgebied"),
    ("Hoe noemt de expert de groep die de operatie uitvoerde?", "Krokodillencel"),
    ("Welke aanslag pleegde ISIS kort voor Moskou?", "aanslag op Teheran"),
    ("Hoe zullen de aanslagen in Europa worden uitgevoerd?", "eenzame wolven"),
    ("Wat is volgens Amin een klap in het gezicht van Poetin?", "klap in het gezicht van Poetin"),
    ("Welke tak van ISIS pleegde de aanval?", "Khorasan-tak"),
    ("Wat moeten internationale machten doen?", "lokale partners"),
    ("Waarom kan ISIS groeien in Afrika?", "staatsgrepen"),
    ("Waar worden aanvallen verwacht", "Europa"),
    ("Op welke gebouwen zou ISIS kunnen schieten?", "kerken en synagogen"),
    ("Wie betalen de prijs voor het falen van de internationale gemeenschap?", "Onschuldige mensen"),
    ("Wat zegt het onderzoek over de relatie tussen Turkije en ISIS?", "Turkse staat"),
    ("Waar gebeurde het in Rusland door Russische moslims?", "Russische moslims"),
    ("Wat gebeurt er in Afghanistan?", "gevechten en conflicten"),
]
ON_TOPIC_EN = [
    ("Who is Mustafa Amin?", "Egyptische expert"),
    ("Who is Mustafa Amin", "Egyptische expert"),
    ("Which attack happened in Moscow?", "buitenwijken van Moskou"),
    ("Which news agency did the expert speak to?", "nieuwsagentschap ANHA"),
    ("Where did one of the attackers stay?", "in Turkije verbleef"),
    ("What nationality was one of the attackers?", "een Tadzjiek"),
    ("Why were the suburbs of Moscow chosen?", "zacht veiligheidsgebied"),
    ("What does the expert call the group that carried out the operation?", "Krokodillencel"),
    ("What did ISIS attack shortly before Moscow?", "aanslag op Teheran"),
    ("How will lone wolves carry out attacks in Europe?", "eenzame wolven"),
    ("What did the expert say about Putin?", "Poetin"),
    ("Which branch of ISIS launched the attack?", "Khorasan-tak"),
    ("What should international powers do?", "lokale partners"),
    ("Why can ISIS grow in Africa?", "staatsgrepen"),
    ("Where are attacks expected", "Europa"),
    ("Which buildings might ISIS shoot at?", "kerken en synagogen"),
    ("Who pays the price for the failure of the international community?", "Onschuldige mensen"),
    ("What sheds light on the relationship between Turkey and ISIS?", "Turkse staat"),
    ("What happened in Russia with Russian Muslims?", "Russische moslims"),
    ("What is happening in Afghanistan?", "gevechten en conflicten"),
]
OFF_TOPIC = [
    "Wie won de Tour de France van 2023?",
    "Hoeveel kost een treinkaartje van Utrecht naar Zwolle?",
    "Hoe laat is het?",
    "Wat is een goed recept voor appeltaart?",
    "Wanneer opent de nieuwe bibliotheek in Groningen?",
    "Welke partij won de gemeenteraadsverkiezingen in Utrecht?",
    "Hoe hoog wordt de zorgpremie volgend jaar?",
    "Wie is de trainer van Ajax?",
    "Waarom staat er file op de A12?",
    "Hoeveel inwoners heeft Amsterdam",
    "Who won the 2022 World Cup?",
    "What is the capital of France?",
    "How do I reset my iPhone?",
    "What is the weather in London tomorrow?",
    "Who wrote Pride and Prejudice?",
    "How much does a Tesla Model 3 cost?",
    "When is the next Champions League final?",
    "What is the best pizza recipe",
    "the of and a",
    "SELECT * FROM articles; DROP TABLE articles;",
]


def _lead(bron: Bron, question: str) -> str | None:
    answer = bron.answer(question, "seed")
    if answer.abstained:
        return None
    p = answer.passages[0]
    return p.text[p.highlight[0] : p.highlight[1]]


def _rate(bron: Bron, cases: list[tuple[str, str]]) -> tuple[float, list[str]]:
    misses = []
    for question, needle in cases:
        lead = _lead(bron, question)
        if lead is None or needle not in lead:
            misses.append(f"{question!r} -> {lead!r:.90}")
    return 1 - len(misses) / len(cases), misses


# Measured when these floors were set (README): nl 15/20, en 13/20 lead with the right sentence;
# all 20 off-topic questions declined.
# The goal is 20/20; the floors keep what was reached from slipping back.
@pytest.mark.parametrize(("cases", "floor"), [(ON_TOPIC_NL, 0.70), (ON_TOPIC_EN, 0.60)], ids=["nl", "en"])
def test_questions_about_the_article_lead_with_the_answering_sentence(bron: Bron, cases: list, floor: float) -> None:
    rate, misses = _rate(bron, cases)
    assert rate >= floor, misses


@pytest.mark.parametrize("question", OFF_TOPIC)
def test_off_topic_questions_are_declined(bron: Bron, question: str) -> None:
    answer = bron.answer(question, "seed-off")
    assert answer.abstained, [p.text[p.highlight[0] : p.highlight[1]][:80] for p in answer.passages]
