"""BM25 keyword search that grows segment by segment.

Each segment stores its own postings (term -> passages and term frequencies, plus passage lengths)
as arrays that are memory-mapped, never rebuilt when another segment is added. Document
frequencies, the passage count and the mean length are summed over the segments at query time, so
the scores are those of one index over all passages (the Lucene formula bm25s uses by default:
idf = ln(1 + (N - df + 0.5) / (df + 0.5)), k1 = 1.5, b = 0.75). Passages of removed articles keep
counting in N and df until their segment is merged; on newsqa-dev-sized news that moves no ranking.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

K1 = 1.5
B = 0.75
# Stems longer than this are cut (fixed-width arrays); a 32-character stem is already unique.
MAX_TERM = 32
FILES = ("bm25-terms.npy", "bm25-starts.npy", "bm25-rows.npy", "bm25-tf.npy", "bm25-lengths.npy")


@dataclass
class Postings:
    """One segment's postings: for term ``terms[t]``, rows ``rows[starts[t]:starts[t+1]]`` with ``tf``."""

    terms: np.ndarray  # sorted, dtype <U{MAX_TERM}
    starts: np.ndarray  # int64, len(terms) + 1
    rows: np.ndarray  # int32, row of the passage inside its segment
    tf: np.ndarray  # uint16
    lengths: np.ndarray  # int32, tokens per passage row

    @classmethod
    def build(cls, docs: Sequence[Sequence[str]]) -> Postings:
        """Postings of token lists (one per passage row)."""
        triples: list[tuple[str, int, int]] = []
        for row, tokens in enumerate(docs):
            for term, n in Counter(t[:MAX_TERM] for t in tokens).items():
                triples.append((term, row, n))
        lengths = np.asarray([len(d) for d in docs], dtype="int32")
        if not triples:
            empty = np.zeros(0, dtype=f"<U{MAX_TERM}")
            return cls(empty, np.zeros(1, dtype="int64"), np.zeros(0, "int32"), np.zeros(0, "uint16"), lengths)
        terms_all = np.asarray([t[0] for t in triples], dtype=f"<U{MAX_TERM}")
        rows = np.asarray([t[1] for t in triples], dtype="int32")
        tf = np.minimum(np.asarray([t[2] for t in triples]), 65535).astype("uint16")
        return cls._grouped(terms_all, rows, tf, lengths)

    @classmethod
    def _grouped(cls, terms_all: np.ndarray, rows: np.ndarray, tf: np.ndarray, lengths: np.ndarray) -> Postings:
        order = np.lexsort((rows, terms_all))
        terms_all, rows, tf = terms_all[order], rows[order], tf[order]
        terms, first = np.unique(terms_all, return_index=True)
        starts = np.append(first, len(terms_all)).astype("int64")
        return cls(terms, starts, rows.astype("int32"), tf.astype("uint16"), lengths.astype("int32"))

    @classmethod
    def merge(cls, parts: Sequence[tuple[Postings, np.ndarray]], size: int) -> Postings:
        """The postings of a merged segment of ``size`` rows: ``parts`` pairs each old segment's
        postings with the new row of each of its rows (-1 drops the passage). Nothing is re-tokenised.

        Postings are carried as term numbers in the merged vocabulary, never as strings: a string per
        posting is 128 bytes (<U32), which for a merge of ~900k passages (~90M postings) took 22 GB
        and had the process killed; numbers take 8.
        """
        lengths = np.zeros(size, dtype="int32")
        vocabulary = np.unique(np.concatenate([np.asarray(p.terms) for p, _ in parts])) if parts else np.zeros(0, f"<U{MAX_TERM}")
        keys, tfs = [], []
        for postings, new_row in parts:
            new_row = np.asarray(new_row, dtype="int64")
            kept = np.flatnonzero(new_row >= 0)
            lengths[new_row[kept]] = np.asarray(postings.lengths)[kept]
            number = np.searchsorted(vocabulary, np.asarray(postings.terms)).astype("int64")
            term_of = np.repeat(number, np.diff(np.asarray(postings.starts)))
            mapped = new_row[np.asarray(postings.rows)]
            keep = mapped >= 0
            # One sort key per posting: term number, then row.
            keys.append(term_of[keep] * max(size, 1) + mapped[keep])
            tfs.append(np.asarray(postings.tf)[keep])
            del term_of, mapped, keep
        if not sum(len(k) for k in keys):
            empty = np.zeros(0, dtype=f"<U{MAX_TERM}")
            return cls(empty, np.zeros(1, dtype="int64"), np.zeros(0, "int32"), np.zeros(0, "uint16"), lengths)
        key = np.concatenate(keys)
        del keys
        order = np.argsort(key, kind="stable")
        key = key[order]
        tf = np.concatenate(tfs)[order]
        del order, tfs
        term_number, rows = np.divmod(key, max(size, 1))
        del key
        # Sorted already: each term starts where the number changes.
        first = np.flatnonzero(np.concatenate(([True], term_number[1:] != term_number[:-1])))
        present = term_number[first]
        starts = np.append(first, len(term_number)).astype("int64")
        return cls(vocabulary[present], starts, rows.astype("int32"), tf.astype("uint16"), lengths)

    def save(self, folder: Path) -> None:
        """Write the five arrays into ``folder``."""
        for name, array in zip(FILES, (self.terms, self.starts, self.rows, self.tf, self.lengths)):
            np.save(folder / name, array)

    @classmethod
    def load(cls, folder: Path) -> Postings:
        """Memory-map the arrays written by :meth:`save`."""
        # Plain ndarrays over the maps: numpy.memmap's indexing costs ~5 µs a call.
        arrays = [np.load(folder / name, mmap_mode="r", allow_pickle=False).view(np.ndarray) for name in FILES]
        return cls(*arrays)

    def lookup(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows, tf) of one term; empty arrays when the segment lacks it."""
        term = term[:MAX_TERM]
        i = int(np.searchsorted(self.terms, term))
        if i >= len(self.terms) or self.terms[i] != term:
            return np.zeros(0, "int32"), np.zeros(0, "uint16")
        a, b = int(self.starts[i]), int(self.starts[i + 1])
        return np.asarray(self.rows[a:b]), np.asarray(self.tf[a:b])

    def lookup_many(self, terms: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`lookup` of each of ``terms``, with one binary search call for them all."""
        if not terms:
            return []
        wanted = np.asarray([t[:MAX_TERM] for t in terms], dtype=f"<U{MAX_TERM}")
        at = np.minimum(np.searchsorted(self.terms, wanted), max(len(self.terms) - 1, 0))
        present = self.terms[at] == wanted if len(self.terms) else np.zeros(len(terms), dtype=bool)
        out = []
        for i, ok in zip(at.tolist(), present.tolist()):
            if ok:
                a, b = int(self.starts[i]), int(self.starts[i + 1])
                out.append((np.asarray(self.rows[a:b]), np.asarray(self.tf[a:b])))
            else:
                out.append((np.zeros(0, "int32"), np.zeros(0, "uint16")))
        return out

    @cached_property
    def tokens(self) -> int:
        """Total tokens of the segment's passages."""
        # Cached: summing 860k lengths took ~0.4 ms per segment on every question; postings
        # never change once built or loaded.
        return int(np.asarray(self.lengths, dtype="int64").sum())

    @cached_property
    def max_length(self) -> int:
        """The longest passage in tokens (0 without passages)."""
        return int(np.max(self.lengths)) if len(self.lengths) else 0


def search(segments: Sequence[Postings], query: Sequence[str], n: int) -> list[tuple[int, int, float]]:
    """The ``n`` best (segment index, row, score) for the tokens ``query`` over all segments.

    A token repeated in the query counts as often as it occurs, as in bm25s. Best first; equal
    scores rank by segment index, then row, so the cut at ``n`` does not depend on partition order.
    """
    weights = Counter(t[:MAX_TERM] for t in query)
    if not weights or not segments or n <= 0:
        return []
    docs = sum(len(p.lengths) for p in segments)
    if not docs:
        return []
    avgdl = max(sum(p.tokens for p in segments) / docs, 1e-9)
    terms = list(weights)
    per_segment = [p.lookup_many(terms) for p in segments]
    found = {term: [per[i] for per in per_segment] for i, term in enumerate(terms)}
    # The query weight times idf, once per term. Kept float64 and combined in the order the
    # scores always had ((w * idf) * tf / (tf + norm)), so every contribution is bit for bit the same.
    factor: list[tuple[str, np.float64]] = []
    for term, w in weights.items():
        df = sum(len(rows) for rows, _ in found[term])
        if df:
            factor.append((term, w * np.log(1.0 + (docs - df + 0.5) / (df + 0.5))))
    if not factor:
        return []
    # Length normalisation for every passage length at once (passages are chunks of bounded size,
    # so this is a short array); same arithmetic as per posting, so the same bits.
    lengths = np.arange(max(p.max_length for p in segments) + 1, dtype="int32")
    norm_of_length = K1 * (1 - B + B * lengths / avgdl)
    best = _Best(n)
    for s, postings in enumerate(segments):
        hits = [(found[term][s], f) for term, f in factor if len(found[term][s][0])]
        if not hits:
            continue
        scores = np.zeros(len(postings.lengths), dtype="float32")
        for i, ((rows, tf), f) in enumerate(hits):
            part = _contributions(f, tf, postings.lengths.take(rows), norm_of_length)
            # take/put rather than fancy indexing: the same values, about a third less CPU. Adding in float64
            # and storing as float32 is what scores[rows] += part did; the first term only stores.
            if i:
                part += scores.take(rows)
            scores.put(rows, part)
        # Every posting adds a positive amount (tf >= 1, idf > 0), so a passage with a query term
        # scores > 0 and no "touched" mask is needed; and one that does not beat the n-th best so
        # far cannot enter the top n (it would lose the tie to an earlier segment too).
        # Max-score pruning (scoring common terms only for passages that also hold a rarer one) was
        # measured and left out: at 1M the bool mask and the filtering cost more than they saved on
        # the heaviest questions (p95 +4-8 ms CPU), for ~1 ms off the median.
        best.add(s, scores, np.flatnonzero(scores > best.threshold))
    return best.result()


def _contributions(f: np.float64, tf: np.ndarray, lengths: np.ndarray, norm_of_length: np.ndarray) -> np.ndarray:
    """float64 ``f * tf / (tf + norm)`` per posting, tf computed in float32 as always."""
    kinds = int(tf.max()) + 1
    if kinds * len(norm_of_length) > len(tf):
        tf = tf.astype("float32")
        return f * tf / (tf + norm_of_length.take(lengths))
    # A term with many postings: the score part depends only on (length, tf), a few hundred
    # pairs, so compute each pair once and look the postings up: one gather instead of five
    # passes of arithmetic, with the same values element for element.
    tfs = np.arange(kinds).astype("float32")
    table = f * tfs[None, :] / (tfs[None, :] + norm_of_length[:, None])
    key = lengths * kinds
    key += tf
    return table.ravel().take(key)


class _Best:
    """The ``n`` best (score, segment, row) seen so far, best first, ties to the lower segment and row."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.scores = np.zeros(0, dtype="float32")
        self.segment = np.zeros(0, dtype="int64")
        self.rows = np.zeros(0, dtype="int64")
        self.threshold = np.float32(0.0)

    def add(self, segment: int, scores: np.ndarray, candidates: np.ndarray) -> None:
        """Offer the rows ``candidates`` (ascending) of ``segment`` with their ``scores`` (by row)."""
        if not len(candidates):
            return
        sub = scores[candidates]
        if len(candidates) > self.n:
            # Narrow to n with a partition, keeping the lowest rows among those equal to the n-th
            # score (candidates ascend, so the first ones).
            kth = np.partition(sub, len(sub) - self.n)[len(sub) - self.n]
            above = sub > kth
            equal = np.flatnonzero(sub == kth)[: self.n - int(above.sum())]
            above[equal] = True
            candidates, sub = candidates[above], sub[above]
        scores_all = np.concatenate((self.scores, sub))
        segment_all = np.concatenate((self.segment, np.full(len(sub), segment, dtype="int64")))
        rows_all = np.concatenate((self.rows, candidates.astype("int64")))
        order = np.lexsort((rows_all, segment_all, -scores_all))[: self.n]
        self.scores, self.segment, self.rows = scores_all[order], segment_all[order], rows_all[order]
        if len(self.scores) == self.n:
            self.threshold = self.scores[-1]

    def result(self) -> list[tuple[int, int, float]]:
        """The kept hits as (segment index, row, score), best first."""
        return [(int(s), int(r), float(v)) for s, r, v in zip(self.segment, self.rows, self.scores)]
