"""Fit the answerability model on questions with known answers, cross-validated by article.

Training data come from a folder in the newsqa-dev format (``articles.jsonl``, ``questions.jsonl``):

- every answerable question asked of the whole collection: a sentence is positive when it comes
  from the question's article and contains the answer span; every other candidate is negative;
- the same question asked with its own article left out of the search (no re-embedding needed):
  on-topic negatives, the case a single cosine threshold cannot tell from an answer;
- the unanswerable questions: negatives.

Folds group questions by article, so the reported figures predict articles the model has not seen.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from embeddings.answering.judge import ArticleWords, candidate_signals
from embeddings.answering.model import AnswerabilityModel
from embeddings.answering.signals import FEATURES, LEAD_ONLY
from embeddings.language import detect_language
from embeddings.retriever import retrieve

DEPTH = 5
# A further quote is shown when its best sentence reaches this share of the decline threshold: on
# newsqa-dev (cross-validated) 0.5 put the answer in a shown quote for 88% of the answerable
# questions at a median of ~510 visible characters; 1.0 gave 87% at ~380, 0.25 gave 90% at ~620.
EXTRA_FACTOR = 0.5
# At most this share of answerable questions may be declined (on held-out articles), by default.
FALSE_ABSTAIN = 0.035
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "‚": "'", "«": '"', "»": '"'})


def normalise(text: str) -> str:
    """Whitespace collapsed and typographic quotes made plain, for answer-span matching."""
    return re.sub(r"\s+", " ", text.translate(_QUOTES)).strip()


@dataclass
class Asked:
    """One question asked of the index: its candidate sentences and what a reader would see."""

    qid: str
    group: str  # the fold key: the answering article, or the question for unanswerable ones
    kind: str  # "present" (its article indexed), "removed" (its article left out) or "unanswerable"
    language: str
    x: np.ndarray  # one row of signals per candidate sentence
    y: np.ndarray  # 1 where the sentence contains the answer (present only)
    hit_of_row: np.ndarray  # which quote (0..DEPTH-1) each row belongs to
    quote_hits: list[bool] = field(default_factory=list)  # per quote: from the article and holds the answer


def collect(library, questions: Sequence[dict], keys: dict[int, str], progress: Callable[[int, int], None] | None = None) -> list[Asked]:
    """Ask every question of ``library`` (and every answerable one again without its article).

    ``keys`` maps the library's article ids to the set's article ids.
    """
    snap = library.view
    main = library.sentence_encoder
    settings = library.settings()
    settings = type(settings)(**{**settings.__dict__, "top_k": DEPTH})
    ids_of = {v: k for k, v in keys.items()}
    words = ArticleWords(4096)
    out: list[Asked] = []
    for n, q in enumerate(questions):
        query = main.encode_query([q["question"]])[0]
        # The language the bot would detect, not the set's label: training must see what serving sees.
        language = detect_language(q["question"], library.config.answer.language_fallback)
        gold = q.get("article_id")
        runs = [("present", frozenset())]
        if gold is not None:
            runs.append(("removed", frozenset({ids_of[gold]})))
        for kind, exclude in runs:
            hits = retrieve(snap, q["question"], language, {main.name: query}, main.name, settings, exclude)
            rows = candidate_signals(snap, q["question"], language, query, main.name, hits, words)
            answer = normalise(q["answer"]) if gold is not None and kind == "present" else None
            y, hit_of_row = [], []
            for h, sid, _ in rows:
                s = snap.sentence(sid)
                text = snap.article(s.article_id).text[s.start : s.end]
                ok = answer is not None and keys.get(s.article_id) == gold and answer in normalise(text)
                y.append(1.0 if ok else 0.0)
                hit_of_row.append(h)
            quote_hits = []
            for hit in hits:
                article_id = snap.chunk(hit.chunk_id).article_id
                quote = snap.article(article_id).text[hit.start : hit.end]
                quote_hits.append(answer is not None and keys.get(article_id) == gold and answer in normalise(quote))
            out.append(
                Asked(
                    q["id"], gold or q["id"], kind if gold is not None else "unanswerable", q["language"],
                    np.asarray([r[2] for r in rows], dtype="float64").reshape(-1, len(FEATURES)),
                    np.asarray(y), np.asarray(hit_of_row, dtype=int), quote_hits,
                )
            )
        if progress:
            progress(n + 1, len(questions))
    return out


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 50) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(mean, scale, weights, bias) of an L2-regularised logistic regression, by Newton's method."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    w = np.zeros(z.shape[1])
    penalty = np.eye(z.shape[1]) * l2
    penalty[0, 0] = 0.0  # the bias is not shrunk
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -50, 50)))
        gradient = z.T @ (p - y) + penalty @ w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return mean, scale, w[1:], float(w[0])


def fit_probability(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """:func:`fit_logistic` over every signal but :data:`LEAD_ONLY` (whose weights are 0): (mean, scale,
    weights, bias) of the answer probability, mean and scale over all signals for the lead score."""
    keep = [i for i, name in enumerate(FEATURES) if name not in LEAD_ONLY]
    mean, scale, kept, bias = fit_logistic(x[:, keep], y, l2)
    full_mean, full_scale = x.mean(axis=0), x.std(axis=0)
    full_scale[full_scale < 1e-9] = 1.0
    full_mean[keep], full_scale[keep] = mean, scale
    weights = np.zeros(len(FEATURES))
    weights[keep] = kept
    return full_mean, full_scale, weights, bias


def fit_lead(asked: Sequence[Asked], mean: np.ndarray, scale: np.ndarray, l2: float = 1.0, iterations: int = 30) -> np.ndarray:
    """Weights of the lead score: a conditional logit over each answerable question's candidates.

    It learns which sentence *of one question's candidates* holds the answer (softmax within the
    question) from every signal, :data:`LEAD_ONLY` included: where a sentence sits and what comes
    before it say which sentence answers, not whether the articles answer at all.
    """
    groups = [((a.x - mean) / scale, a.y / a.y.sum()) for a in asked if a.kind == "present" and len(a.x) > 1 and a.y.any()]
    w = np.zeros(len(mean))
    if not groups:
        return w
    for _ in range(iterations):
        gradient = l2 * w
        hessian = l2 * np.eye(len(w))
        for z, y in groups:
            s = z @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            gradient += z.T @ (p - y)
            centre = p @ z
            hessian += (z * p[:, None]).T @ z - np.outer(centre, centre)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def _stack(asked: Sequence[Asked]) -> tuple[np.ndarray, np.ndarray]:
    xs = [a.x for a in asked if len(a.x)]
    ys = [a.y for a in asked if len(a.x)]
    return (np.vstack(xs), np.concatenate(ys)) if xs else (np.zeros((0, len(FEATURES))), np.zeros(0))


def best_probability(model: AnswerabilityModel, asked: Asked) -> float:
    """The probability of the most answering candidate sentence (0 when there is none)."""
    return float(model.probabilities(asked.x).max()) if len(asked.x) else 0.0


def fit(asked: Sequence[Asked], false_abstain: float = FALSE_ABSTAIN, l2: float = 1.0, info: dict | None = None) -> AnswerabilityModel:
    """The model fitted on ``asked``, with its threshold set for at most ``false_abstain``.

    The threshold is chosen on out-of-fold probabilities (inner folds by article), because
    in-sample probabilities of a fitted model are optimistic.
    """
    x, y = _stack(asked)
    mean, scale, weights, bias = fit_probability(x, y, l2)
    inner = folds_of(asked, 5)
    oof_best: list[tuple[Asked, float]] = []
    for test_groups in inner:
        train = [a for a in asked if a.group not in test_groups]
        tx, ty = _stack(train)
        m = AnswerabilityModel(FEATURES, *fit_probability(tx, ty, l2), 0.5, 0.5, {})
        oof_best += [(a, best_probability(m, a)) for a in asked if a.group in test_groups]
    present = sorted(p for a, p in oof_best if a.kind == "present")
    allowed = int(np.floor(false_abstain * len(present)))
    threshold = float(min(max(present[allowed] - 1e-6, 0.01), 0.99)) if present else 0.5
    lead = fit_lead(asked, mean, scale, l2)
    return AnswerabilityModel(FEATURES, mean, scale, weights, bias, threshold, threshold * EXTRA_FACTOR, dict(info or {}), lead)


def folds_of(asked: Sequence[Asked], k: int) -> list[set[str]]:
    """``k`` sets of fold keys (articles), assigned in a fixed order so results repeat."""
    groups = sorted({a.group for a in asked})
    rng = np.random.default_rng(13)
    order = rng.permutation(len(groups))
    return [{groups[i] for i in order[f::k]} for f in range(k)]


def reader_view(model: AnswerabilityModel, asked: Asked, top_k: int = 3) -> tuple[bool, bool, bool, list[int]]:
    """What a reader sees: (answered, a shown quote holds the answer, the lead sentence holds it,
    indexes of the shown quotes, best first)."""
    if not len(asked.x):
        return False, False, False, []
    probs = model.probabilities(asked.x)
    if probs.max() < model.threshold:
        return False, False, False, []
    per_quote: dict[int, float] = {}
    for h, p in zip(asked.hit_of_row, probs):
        per_quote[h] = max(per_quote.get(h, 0.0), float(p))
    # As ``judge`` marks and ``decide`` orders: the best lead score among the quotes that may be shown.
    scores = np.where([per_quote[h] >= model.extra_threshold for h in asked.hit_of_row], model.lead_scores(asked.x), -np.inf)
    best_row = int(np.argmax(scores))
    lead = int(asked.hit_of_row[best_row])
    shown = [lead] + [h for h, p in sorted(per_quote.items(), key=lambda kv: -kv[1]) if h != lead and p >= model.extra_threshold]
    shown = shown[:top_k]
    hit = any(asked.quote_hits[h] for h in shown)
    return True, hit, bool(asked.y[best_row]), shown


def cross_validate(asked: Sequence[Asked], folds: int = 5, false_abstain: float = FALSE_ABSTAIN, l2: float = 1.0) -> tuple[dict[str, float], list[tuple[Asked, AnswerabilityModel]]]:
    """Figures of models fitted without the test articles, and each question with the model that judged it."""
    judged: list[tuple[Asked, AnswerabilityModel]] = []
    for test_groups in folds_of(asked, folds):
        train = [a for a in asked if a.group not in test_groups]
        model = fit(train, false_abstain, l2)
        judged += [(a, model) for a in asked if a.group in test_groups]
    return figures(judged), judged


def figures(judged: Sequence[tuple[Asked, AnswerabilityModel]]) -> dict[str, float]:
    """answered_hit@3, lead_sentence_hit and the abstention rates, overall and by language."""
    out: dict[str, float] = {}
    for suffix, lang in (("", None), ("_nl", "nl"), ("_en", "en")):
        rows = [(a, m) for a, m in judged if lang is None or a.language == lang]
        present = [reader_view(m, a) for a, m in rows if a.kind == "present"]
        removed = [reader_view(m, a)[0] for a, m in rows if a.kind == "removed"]
        unanswerable = [reader_view(m, a)[0] for a, m in rows if a.kind == "unanswerable"]
        n = len(present) or 1
        out[f"answered_hit@3{suffix}"] = sum(v[1] for v in present) / n
        out[f"lead_sentence_hit{suffix}"] = sum(v[2] for v in present) / n
        out[f"false_abstain_rate{suffix}"] = sum(not v[0] for v in present) / n
        out[f"abstain_rate{suffix}"] = sum(not v for v in unanswerable) / (len(unanswerable) or 1)
        out[f"abstain_removed_rate{suffix}"] = sum(not v for v in removed) / (len(removed) or 1)
    return {k: round(v, 4) for k, v in out.items()}
