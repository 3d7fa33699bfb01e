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
from embeddings.snapshot import Snapshot


@dataclass(frozen=True)
class Judged:
    """A retrieved quote with its most answering sentence (article offsets) and that sentence's probability."""

    hit: Hit
    sentence: tuple[int, int]
    probability: float


class ArticleWords:
    """Stems and name prefixes of recently judged articles (an article is judged again and again)."""

    def __init__(self, size: int = 512) -> None:
        self._cache: OrderedDict[tuple[str, int], tuple[frozenset[str], frozenset[str]]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, snapshot: Snapshot, article_id: int) -> tuple[frozenset[str], frozenset[str]]:
        """(stems, name prefixes) of one article of ``snapshot``."""
        key = (snapshot.name, article_id)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        a = snapshot.articles[article_id]
        text = f"{a.title}\n{a.text}"
        value = (frozenset(stem_set(text)), article_prefixes(text))
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return value


def candidate_signals(
    snapshot: Snapshot, question: str, language: str, query: np.ndarray, main: str, hits: list[Hit], words: ArticleWords
) -> list[tuple[int, int, list[float]]]:
    """(hit index, sentence id, signal values) for every sentence of every quote in ``hits``."""
    data = snapshot.data
    terms = read_question(question)
    rows: list[tuple[int, int, Candidate]] = []
    stems_of: dict[int, frozenset[str]] = {}

    def sentence_stems(sid: int) -> frozenset[str]:
        if sid not in stems_of:
            s = data.sentences[sid]
            stems_of[sid] = frozenset(stem_set(snapshot.articles[s.article_id].text[s.start : s.end]))
        return stems_of[sid]

    for h, hit in enumerate(hits):
        article_id = data.chunks[hit.chunk_id].article_id
        article = snapshot.articles[article_id]
        stems, prefixes = words.get(snapshot, article_id)
        article_cos = float(data.article_vectors[snapshot.article_rows[article_id]] @ query)
        for cid in range(hit.first, hit.last + 1):
            chunk = data.chunks[cid]
            passage_cos = float(data.chunk_vectors[main][cid] @ query)
            ids = list(range(chunk.first_sentence, chunk.last_sentence + 1))
            if not ids:
                continue
            sims = data.sentence_vectors[ids] @ query
            for sid, sim in zip(ids, sims):
                s = data.sentences[sid]
                before = sentence_stems(sid - 1) if sid > 0 and data.sentences[sid - 1].article_id == article_id else frozenset()
                candidate = Candidate(
                    article.text[s.start : s.end], sentence_stems(sid), before, float(sim), passage_cos, article_cos, stems, prefixes, article.language != language
                )
                rows.append((h, sid, candidate))
    best = max((c.sentence_cos for _, _, c in rows), default=0.0)
    return [(h, sid, signals(terms, c, best)) for h, sid, c in rows]


def judge(
    snapshot: Snapshot,
    question: str,
    language: str,
    query: np.ndarray,
    main: str,
    hits: list[Hit],
    model: AnswerabilityModel,
    words: ArticleWords,
) -> list[Judged]:
    """Each hit with its most answering sentence and that sentence's probability, in hit order."""
    rows = candidate_signals(snapshot, question, language, query, main, hits, words)
    if not rows:
        return [Judged(hit, (hit.start, hit.end), 0.0) for hit in hits]
    probs = model.probabilities(np.asarray([r[2] for r in rows], dtype="float64"))
    best: dict[int, tuple[float, int]] = {}
    for (h, sid, _), p in zip(rows, probs):
        if h not in best or p > best[h][0]:
            best[h] = (float(p), sid)
    out = []
    for h, hit in enumerate(hits):
        if h not in best:
            out.append(Judged(hit, (hit.start, hit.end), 0.0))
            continue
        p, sid = best[h]
        s = snapshot.data.sentences[sid]
        out.append(Judged(hit, (s.start, s.end), p))
    return out
