"""BM25 keyword search with Dutch and English stemming."""

from __future__ import annotations

import re
from functools import lru_cache

import bm25s
import numpy as np
import Stemmer

_TOKEN = re.compile(r"\w+", re.UNICODE)

STOPWORDS = frozenset(
    """de het een en van in op te dat die is zijn was werd worden wordt met voor aan door om bij als
    er niet ook maar nog naar uit over dan tot zich zo al hoe wat wie waar waarom wanneer welke welk
    hij zij ze we wij ik je jij u hun haar hem dit deze of heeft hebben had kan kunnen zou zullen
    moet moeten the a an and of in on to that is are was were be been by with for at as from it its
    this these those or not but what who where why when which how did does do has have had will
    would can could should their his her they he she we you i about into than then there""".split()
)


@lru_cache(maxsize=2)
def _stemmer(language: str) -> Stemmer.Stemmer:
    return Stemmer.Stemmer("dutch" if language == "nl" else "english")


def word_stems(word: str) -> set[str]:
    """The Dutch and English stems of one lower-cased word."""
    return {_stemmer("nl").stemWord(word), _stemmer("en").stemWord(word)}


def stem_set(text: str) -> set[str]:
    """Every stem of every word of ``text`` (stopwords included: a set for matching, not ranking)."""
    words = set(_TOKEN.findall(text.lower()))
    return set(_stemmer("nl").stemWords(list(words))) | set(_stemmer("en").stemWords(list(words)))


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens without stopwords, each stemmed as Dutch and as English.

    Both stems go in because a question may be in the other language than the article: names and
    shared words (Turkije/Turkey stay apart, but "Mosul", "IAEA", "sancties/sanctions") still meet.
    """
    words = [w for w in _TOKEN.findall(text.lower()) if w not in STOPWORDS]
    nl = _stemmer("nl").stemWords(words)
    en = _stemmer("en").stemWords(words)
    return [s for pair in zip(nl, en) for s in (pair if pair[0] != pair[1] else pair[:1])]


class LexicalIndex:
    """A BM25 index over passages (ids 0..n-1)."""

    def __init__(self, texts: list[str]) -> None:
        self._size = len(texts)
        self._bm25 = bm25s.BM25()
        corpus = [tokenize(t) or ["_empty_"] for t in texts]
        if corpus:
            self._bm25.index(corpus, show_progress=False)

    def __len__(self) -> int:
        return self._size

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` best passage ids for ``query`` with their BM25 score (only positive scores)."""
        tokens = tokenize(query)
        if not tokens or not self._size:
            return []
        scores = np.asarray(self._bm25.get_scores(tokens))
        k = min(k, self._size)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]
