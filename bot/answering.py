"""The answer decision: which ranked quotes a reply shows, in which order, or whether it declines.

The answerability model (``embeddings.answering``) has given each quote the probability that it
answers the question and a lead score for its marked sentence. The reply declines when even the most
probable quote is below the model's threshold; otherwise it leads with the sentence of highest lead
score. A further quote is shown only when it, too, reaches the model's ``extra_threshold``; the rest
stay one command away (``/more``).
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.models import Answer, Passage
from embeddings.answering.model import AnswerabilityModel
from embeddings.answering.questions import read_question

# Quotes ranked and judged per question; the model was fitted on this many.
CANDIDATES = 5
# "Latest" questions: a newer report leads when the model finds it at least this share as likely to
# answer as the best quote (dated newsqa-dev with follow-up reports: 0 → .655, .25 → .709, .5 → .748,
# .75 → .733 leading with the newest answering article; 1, i.e. no reordering, .471).
LATEST_SHARE = 0.5


def asks_something(question: str) -> bool:
    """False for a question of stopwords and question words only ("the of and a", "wat gebeurde er?"):
    it names nothing a quote could answer."""
    terms = read_question(question)
    return bool(terms.content or terms.names)


def newest_first(passages: Sequence[Passage], threshold: float) -> list[Passage]:
    """For "latest" questions: the quotes that answer about as well as the best one (at least
    ``threshold`` and :data:`LATEST_SHARE` of the best probability) by their article's date, newest
    first (undated last), then the others as they were.

    A newer article shown only as a further, less certain quote must not lead: it is often a report
    on the same story that does not hold the answer. With no quote that answers (a period question
    that asks nothing, "wat is het laatste nieuws?"), all of them go by date.
    """
    best = max((p.confidence for p in passages), default=0.0)
    bar = max(threshold, LATEST_SHARE * best)
    answering = [p for p in passages if p.confidence >= bar]
    if best < threshold:
        return sorted(passages, key=lambda p: p.article.date or "", reverse=True)
    rest = [p for p in passages if p.confidence < bar]
    return sorted(answering, key=lambda p: p.article.date or "", reverse=True) + rest


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
