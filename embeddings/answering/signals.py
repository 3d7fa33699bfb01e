"""The signals of "does this sentence answer this question", computed from plain inputs.

Few and general on purpose: they must mean the same on a one-article collection as on a large one,
so none depends on collection statistics (no IDF, no score normalised by the collection).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from embeddings.answering.questions import QuestionTerms, counts_asked, has_kind, has_new_of_kind

FEATURES = (
    "sentence_cos",  # cos(question, sentence)
    "passage_cos",  # cos(question, the sentence's passage)
    "article_cos",  # cos(question, the article's title and lead)
    "sentence_gap",  # sentence_cos minus the best sentence_cos among the candidates (<= 0)
    "words_in_sentence",  # share of the question's content words found in the sentence
    "words_in_window",  # ... in the sentence or the one before it ("Hij wilde ..." answers about the man named before)
    "words_in_article",  # share found anywhere in the article
    "names_missing",  # share of the question's names and numbers absent from the article
    "kind_missing",  # 1 when the question asks for a number/time/name and the sentence has none
    "cross_lingual",  # 1 when question and article languages differ
    "window_cos",  # cos(question, sentence and the one before it), from their summed vectors
    "names_in_window",  # share of the question's names and numbers in the sentence or the one before it
    "kind_new",  # 1 when the sentence holds something of the asked kind the question does not say
    "quote_agreement",  # share of the first 3 quotes that come from the sentence's article
    "counted_number",  # 1 when a how-many question's counted word follows a new number ("Hoeveel doden" - "36 doden")
)
# Signals of *which* sentence answers, not of *whether* the quotes answer at all: only the lead
# score uses them (the answer probability gives them no weight). Held out of the probability they
# cost nothing; in it, the window cosine lowered abstain_removed, the other three lowered abstain
# (unanswerable questions). In the lead score, names_in_window, kind_new and quote_agreement together
# raised lead_sentence_hit .682 -> .710 (mean of 8 fold splits by article on newsqa-dev, every split
# better, en .639 -> .678, nl .709 -> .730). What they tell:
# a sentence that adds the asked-for name/number/date, in the article most first quotes come from,
# rather than its neighbour or a report on the same story. names_in_window is a correction to
# words_in_window: the fitted lead weight is negative, so a window matching only the question's names
# (the story's recurring people and places, named all over the article) leads less than one matching
# its other words.
# counted_number is kind_new made specific for how-many questions: of an article's sentences that hold
# a number, the one that puts it before the counted thing ("twee aanslagen", not "in 2016" or "beide
# dossiers") answers. Lead-only it raised lead_sentence_hit .707 -> .725 (mean of 20 fold splits,
# all 20 better; nl .729 -> .752, en .672 -> .681: an English question on a Dutch article rarely
# shares the counted word), the other figures unchanged; in the probability too, it lowered abstain
# .710 -> .660 (8 splits).
LEAD_ONLY = frozenset({"window_cos", "names_in_window", "kind_new", "quote_agreement", "counted_number"})

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Candidate:
    """One candidate answering sentence with what is known of it."""

    sentence: str
    sentence_stems: frozenset[str]
    previous_stems: frozenset[str]  # of the sentence before it in the article (empty for the first)
    sentence_cos: float
    passage_cos: float
    article_cos: float
    article_stems: frozenset[str]
    article_prefixes: frozenset[str]
    cross_lingual: bool
    window_cos: float  # cos(question, sentence vector + previous sentence's vector, normalised)
    previous: str  # the sentence before it in the article ("" for the first)
    quote_agreement: float  # share of the question's first 3 quotes from this sentence's article


def name_prefix(word: str) -> str:
    """Names are matched on their first letters, so Syrië/Syria and Turkije/Turkey meet."""
    return word[:4]


def article_prefixes(text: str) -> frozenset[str]:
    """Lower-cased word prefixes of an article, for :func:`signals`' name check."""
    return frozenset(name_prefix(w) for w in _WORD.findall(text.lower()))


def _share(words: tuple[frozenset[str], ...], stems: frozenset[str]) -> float:
    if not words:
        return 0.0
    return sum(1 for w in words if w & stems) / len(words)


def names_in_window(names: tuple[str, ...], sentence: str, previous: str) -> float:
    """Share of ``names`` (lower-cased) found, by :func:`name_prefix`, in ``sentence`` or ``previous``;
    1 when there are none (lead score only: see :data:`LEAD_ONLY` for what its weight says)."""
    if not names:
        return 1.0
    found = {name_prefix(w) for w in _WORD.findall(f"{previous} {sentence}".lower())}
    return sum(1 for n in names if name_prefix(n) in found) / len(names)


def signals(terms: QuestionTerms, candidate: Candidate, best_sentence_cos: float) -> list[float]:
    """The values of :data:`FEATURES` for one candidate sentence, in that order."""
    names = terms.names
    missing = sum(1 for n in names if name_prefix(n) not in candidate.article_prefixes) / len(names) if names else 0.0
    return [
        candidate.sentence_cos,
        candidate.passage_cos,
        candidate.article_cos,
        candidate.sentence_cos - best_sentence_cos,
        _share(terms.content, candidate.sentence_stems),
        _share(terms.content, candidate.sentence_stems | candidate.previous_stems),
        _share(terms.content, candidate.article_stems),
        missing,
        0.0 if has_kind(terms.kind, candidate.sentence, names) else 1.0,
        1.0 if candidate.cross_lingual else 0.0,
        candidate.window_cos,
        names_in_window(names, candidate.sentence, candidate.previous),
        1.0 if has_new_of_kind(terms, candidate.sentence) else 0.0,
        candidate.quote_agreement,
        1.0 if counts_asked(terms, candidate.sentence) else 0.0,
    ]
