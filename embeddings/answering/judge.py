"""Judge retrieved quotes: the signals of every sentence they hold, scored by the model."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from embeddings.answering.model import AnswerabilityModel
from embeddings.answering.questions import read_question
from embeddings.answering.signals import Candidate, article_prefixes, signals
from embeddings.lexical import stem_set
from embeddings.retriever import Hit
from embeddings.storage.view import View


# quote_agreement counts the article's share of this many first quotes (serving shows 3 by default).
AGREEMENT_QUOTES = 3


@dataclass(frozen=True)
class Judged:
    """A retrieved quote with the sentence to mark (article offsets): the one of its sentences with the
    highest lead score; ``probability`` is the highest answer probability of its sentences."""

    hit: Hit
    sentence: tuple[int, int]
    probability: float
    lead_score: float = float("-inf")


class ArticleWords:
    """Stems and name prefixes of recently judged articles (an article is judged again and again)."""

    def __init__(self, size: int = 512) -> None:
        self._cache: OrderedDict[tuple[str, int], tuple[frozenset[str], frozenset[str]]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, view: View, article_id: int) -> tuple[frozenset[str], frozenset[str]]:
        """(stems, name prefixes) of one article of ``view``."""
        a = view.article(article_id)
        if a is None:
            return frozenset(), frozenset()
        key = (a.hash, article_id)  # an updated article has another hash
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        text = f"{a.title}\n{a.text}"
        value = (frozenset(stem_set(text)), article_prefixes(text))
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return value


def candidate_signals(
    view: View, question: str, language: str, query: np.ndarray, main: str, hits: list[Hit], words: ArticleWords
) -> list[tuple[int, int, list[float]]]:
    """(hit index, sentence id, signal values) for every sentence of every quote in ``hits``."""
    terms = read_question(question)
    rows: list[tuple[int, int, Candidate]] = []
    stems_of: dict[int, frozenset[str]] = {}

    def sentence_stems(sid: int, text: str) -> frozenset[str]:
        if sid not in stems_of:
            s = view.sentence(sid)
            stems_of[sid] = frozenset(stem_set(text[s.start : s.end]))
        return stems_of[sid]

    # Which article each of the first quotes comes from: the answer's article tends to hold several of
    # them, a report on the same story one (lead score only, see signals.LEAD_ONLY).
    first_articles = [view.chunk(hit.chunk_id).article_id for hit in hits[:AGREEMENT_QUOTES]]
    for h, hit in enumerate(hits):
        article_id = view.chunk(hit.chunk_id).article_id
        article = view.article(article_id)
        if article is None:
            continue
        agreement = first_articles.count(article_id) / AGREEMENT_QUOTES
        stems, prefixes = words.get(view, article_id)
        vector = view.article_vector(article_id)
        article_cos = float(vector @ query) if vector is not None else 0.0
        chunk_ids = list(range(hit.first, hit.last + 1))
        passage_cos = view.chunk_vectors(chunk_ids, main) @ query
        chunks = [view.chunk(cid) for cid in chunk_ids]
        spans = [(float(pcos), range(c.first_sentence, c.last_sentence + 1)) for c, pcos in zip(chunks, passage_cos)]
        ids = sorted({sid for _, r in spans for sid in r})
        if not ids:
            continue
        # One read for the quote's sentences and the one before them: the window of a sentence is it
        # and the sentence before it in the same article (the first sentence's window is itself).
        head = _sentence_or_none(view, ids[0] - 1)
        before_first = head is not None and head.article_id == article_id
        read = ([ids[0] - 1] if before_first else []) + ids
        vector_of = dict(zip(read, view.sentence_vectors(read).astype("float64")))
        for pcos, span in spans:
            for sid in span:
                own = vector_of[sid]
                window = own + vector_of.get(sid - 1, own)
                s = view.sentence(sid)
                previous = _sentence_or_none(view, sid - 1)
                same = previous is not None and previous.article_id == article_id
                before = sentence_stems(sid - 1, article.text) if same else frozenset()
                candidate = Candidate(
                    article.text[s.start : s.end], sentence_stems(sid, article.text), before, float(own @ query), pcos,
                    article_cos, stems, prefixes, article.language != language,
                    float(window @ query / max(np.linalg.norm(window), 1e-9)),
                    article.text[previous.start : previous.end] if same else "", agreement,
                )
                rows.append((h, sid, candidate))
    best = max((c.sentence_cos for _, _, c in rows), default=0.0)
    return [(h, sid, signals(terms, c, best)) for h, sid, c in rows]


def _sentence_or_none(view: View, sentence_id: int):
    """The sentence, or None when no segment of the view holds that id."""
    try:
        return view.sentence(sentence_id) if sentence_id >= 0 else None
    except KeyError:
        return None


def judge(
    view: View,
    question: str,
    language: str,
    query: np.ndarray,
    main: str,
    hits: list[Hit],
    model: AnswerabilityModel,
    words: ArticleWords,
) -> list[Judged]:
    """Each hit with its most answering sentence and that sentence's probability, in hit order."""
    rows = candidate_signals(view, question, language, query, main, hits, words)
    if not rows:
        return [Judged(hit, (hit.start, hit.end), 0.0) for hit in hits]
    x = np.asarray([r[2] for r in rows], dtype="float64")
    probs, leads = model.probabilities(x), model.lead_scores(x)
    best: dict[int, tuple[float, float, int]] = {}  # hit -> (probability, lead score, marked sentence)
    for (h, sid, _), p, lead in zip(rows, probs, leads):
        p, lead = float(p), float(lead)
        if h not in best:
            best[h] = (p, lead, sid)
            continue
        top_p, top_lead, top_sid = best[h]
        best[h] = (max(p, top_p), *((lead, sid) if lead > top_lead else (top_lead, top_sid)))
    out = []
    for h, hit in enumerate(hits):
        if h not in best:
            out.append(Judged(hit, (hit.start, hit.end), 0.0))
            continue
        p, lead, sid = best[h]
        s = view.sentence(sid)
        out.append(Judged(hit, (s.start, s.end), p, lead))
    return out
