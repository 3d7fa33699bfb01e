"""Hybrid retrieval: BM25 and dense rankings fused, then the answering sentence picked per passage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from embeddings.lexical import tokenize
from embeddings.snapshot import Snapshot


@dataclass(frozen=True)
class Settings:
    """Retrieval knobs (mirrors ``retrieval`` in config.yaml)."""

    top_k: int = 3
    candidates: int = 50
    rrf_k: int = 60
    weight_lexical: float = 1.0
    weights_dense: Mapping[str, float] | None = None
    min_similarity: float = 0.8
    relative_cutoff: float = 0.0


@dataclass(frozen=True)
class Hit:
    """A retrieved passage: chunk id, fused score, similarity, answering sentence span (article offsets)."""

    chunk_id: int
    score: float
    similarity: float
    highlight: tuple[int, int]


def _fuse(rankings: list[tuple[float, list[int]]], rrf_k: int) -> dict[int, float]:
    """Reciprocal rank fusion: each ranking adds weight / (rrf_k + rank)."""
    fused: dict[int, float] = {}
    for weight, ids in rankings:
        for rank, cid in enumerate(ids, start=1):
            fused[cid] = fused.get(cid, 0.0) + weight / (rrf_k + rank)
    return fused


def _overlaps(snapshot: Snapshot, a: int, b: int) -> bool:
    ca, cb = snapshot.data.chunks[a], snapshot.data.chunks[b]
    return ca.article_id == cb.article_id and ca.start < cb.end and cb.start < ca.end


def _highlight(snapshot: Snapshot, chunk_id: int, sentence_query: np.ndarray, query_terms: set[str]) -> tuple[tuple[int, int], float]:
    """The sentence of the passage closest to the question (meaning plus shared words)."""
    chunk = snapshot.data.chunks[chunk_id]
    ids = list(range(chunk.first_sentence, chunk.last_sentence + 1))
    if not ids:
        return (chunk.start, chunk.end), 0.0
    sims = snapshot.data.sentence_vectors[ids] @ sentence_query
    text = snapshot.articles[chunk.article_id].text
    best, best_score = ids[0], -1.0
    for sid, sim in zip(ids, sims):
        s = snapshot.data.sentences[sid]
        terms = set(tokenize(text[s.start : s.end]))
        overlap = len(terms & query_terms) / (len(query_terms) or 1)
        score = float(sim) + 0.5 * overlap
        if score > best_score:
            best, best_score = sid, score
    s = snapshot.data.sentences[best]
    return (s.start, s.end), float(np.max(sims))


def retrieve(
    snapshot: Snapshot,
    question: str,
    query_vectors: Mapping[str, np.ndarray],
    sentence_query: np.ndarray,
    settings: Settings,
) -> tuple[list[Hit], bool]:
    """The best non-overlapping passages for ``question``, best first, and whether to abstain
    (no passage is similar enough to the question to count as an answer)."""
    if not snapshot.data.chunks:
        return [], True
    c = settings.candidates
    rankings = [(settings.weight_lexical, [i for i, _ in snapshot.lexical.search(question, c)])]
    weights = settings.weights_dense or {}
    for name, index in snapshot.dense.items():
        rankings.append((weights.get(name, 1.0), [i for i, _ in index.search(query_vectors[name], c)]))
    fused = _fuse(rankings, settings.rrf_k)
    chosen: list[int] = []
    for cid in sorted(fused, key=fused.__getitem__, reverse=True):
        if any(_overlaps(snapshot, cid, other) for other in chosen):
            continue
        chosen.append(cid)
        if len(chosen) == settings.top_k:
            break
    terms = set(tokenize(question))
    hits = []
    for cid in chosen:
        span, sim = _highlight(snapshot, cid, sentence_query, terms)
        hits.append(Hit(cid, fused[cid], sim, span))
    if not hits:
        return [], True
    abstain = max(h.similarity for h in hits) < settings.min_similarity
    best = hits[0].score
    return [h for h in hits if h.score >= settings.relative_cutoff * best], abstain
