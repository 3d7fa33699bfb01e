"""The answer decision: which ranked quotes a reply shows, in which order, or whether it declines.

The answerability model (``embeddings.answering``) has given each quote the probability that it
answers the question and a lead score for its marked sentence. The reply declines when even the most
probable quote is below the model's threshold; otherwise it leads with the sentence of highest lead
score. A further quote is shown only when it, too, reaches the model's ``extra_threshold``; the rest
stay one command away (``/more``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from bot.models import Answer, Passage
from embeddings.answering.model import AnswerabilityModel
from embeddings.answering.questions import read_question

# Quotes ranked and judged per question; the model was fitted on this many.
CANDIDATES = 5
# A leading sentence looked for in a newer report must have at least this many words: a heading
# ("Energie", "Kleurcodes weeralarm") recurs in unrelated articles, a sentence of news does not.
TWIN_WORDS = 4


def asks_something(question: str) -> bool:
    """False for a question of stopwords and question words only ("the of and a", "wat gebeurde er?"):
    it names nothing a quote could answer."""
    terms = read_question(question)
    return bool(terms.content or terms.names)


def latest_first(shown: Sequence[Passage], candidates: Sequence[Passage], threshold: float) -> tuple[list[Passage], list[Passage]]:
    """For "latest" questions: the quotes to show, and those moved out of sight (to ``/more``).

    Which sentence answers stays the lead score's call (:func:`decide`); recency only picks the
    report it is quoted from. When a newer article among the ``candidates`` holds the leading
    sentence word for word (a follow-up report, an update, another outlet's copy of the agency
    text), that article's quote leads, the sentence marked; older quotes of the sentence leave the
    reply (to ``/more``). A newer report on the same story that lacks the sentence never leads: it is
    often the update that no longer holds the answer.

    On dated newsqa-dev with a follow-up report of every article (``bron eval``), ordering the quotes
    the model found at least half as likely to answer as the best by date led with the newest
    answering report for .738 of the "latest" questions, this rule for .791; the lead score itself
    leads with the answer's article (without follow-ups) about as often (.806), so what is left is
    the choice of sentence, not of report.

    With no quote that answers (a period question that asks nothing, "wat is het laatste nieuws
    van vorige week?"), all of them go by date.
    """
    if not shown:
        return [], []
    if max(p.confidence for p in shown) < threshold:
        return sorted(shown, key=lambda p: p.article.date or "", reverse=True), []
    lead = shown[0]
    sentence = lead.text[lead.highlight[0] : lead.highlight[1]]
    twins = []
    for other in candidates:
        if other.article.id == lead.article.id or (other.article.date or "") <= (lead.article.date or ""):
            continue
        found = _find_sentence(sentence, other.text)
        if found is not None:
            twins.append(replace(other, highlight=found))
    if twins:
        lead = max(twins, key=lambda p: p.article.date or "")
    # The reply shows the answering sentence once, from its newest report.
    others = [p for p in shown if (p.article.id, p.start) != (lead.article.id, lead.start)]
    repeats = [p for p in others if _find_sentence(sentence, p.text) is not None]
    return [lead] + [p for p in others if p not in repeats], repeats


def _find_sentence(sentence: str, text: str) -> tuple[int, int] | None:
    """Where ``sentence`` occurs in ``text`` as whole words (any whitespace between them), or None;
    None also for a sentence of fewer than :data:`TWIN_WORDS` words."""
    words = sentence.split()
    if len(words) < TWIN_WORDS:
        return None
    found = re.search(r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)", text)
    return found.span() if found else None


def decide(question: str, language: str, ranked: Sequence[Passage], model: AnswerabilityModel, top_k: int) -> Answer:
    """The reply to ``question`` from its ranked, judged quotes (retrieval order)."""
    by_confidence = sorted(ranked, key=lambda p: -p.confidence)
    if not by_confidence or not asks_something(question) or by_confidence[0].confidence < model.threshold:
        return Answer(question, language, [], list(ranked))
    # Whether to answer is the answer probability's call; which quote leads is the lead score's,
    # among the quotes probable enough to be shown at all.
    showable = [p for p in by_confidence if p.confidence >= model.extra_threshold]
    lead = max(showable, key=lambda p: (p.lead_score, p.confidence))
    rest = [p for p in showable if p is not lead]
    shown = [lead] + rest[: max(top_k - 1, 0)]
    others = [p for p in ranked if p not in shown]
    return Answer(question, language, shown, others)
