"""Extractive summaries: central yet diverse sentences (centroid + maximal marginal relevance)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from embeddings.library import Library

MIN_WORDS = 6


def pick_sentences(vectors: np.ndarray, candidates: list[int], n: int, diversity: float) -> list[int]:
    """MMR over ``candidates``: relevance to the article centroid minus redundancy with picks so far."""
    if not candidates:
        return []
    centroid = vectors[candidates].mean(axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    relevance = vectors @ centroid
    chosen: list[int] = []
    pool = list(candidates)
    while pool and len(chosen) < n:
        def mmr(i: int) -> float:
            redundancy = max((float(vectors[i] @ vectors[j]) for j in chosen), default=0.0)
            return (1 - diversity) * float(relevance[i]) - diversity * redundancy

        best = max(pool, key=mmr)
        chosen.append(best)
        pool.remove(best)
    return sorted(chosen)


def summarize_article(library: Library, article_id: int, n: int = 4, diversity: float = 0.3) -> list[str]:
    """``n`` sentences of the article that together cover it, in article order.

    The lead sentence gets a small bonus: news articles put their gist first.
    """
    sentences, vectors = library.sentence_vectors(article_id)
    candidates = [i for i, s in enumerate(sentences) if len(s.split()) >= MIN_WORDS]
    if len(candidates) <= n:
        return [sentences[i] for i in candidates] or sentences[:n]
    picked = pick_sentences(vectors, candidates, n - 1, diversity)
    lead = candidates[0]
    if lead not in picked:
        picked = sorted([lead, *picked])
    else:
        rest = [i for i in candidates if i not in picked]
        picked = sorted(picked + pick_sentences(vectors, rest, 1, 0.0))
    return [sentences[i] for i in picked]
