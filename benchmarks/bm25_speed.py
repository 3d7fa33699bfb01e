"""CPU per question of the segment-wise BM25 search, the previous implementation against the current.

usage:
    python benchmarks/bm25_speed.py LIBRARY_DIR [--nq 100] [--n 100] [--runs 3]
        [--questions QUESTIONS.jsonl]

Opens every segment under ``LIBRARY_DIR/segments`` read-only (postings memory-mapped, as a View
does), tokenises ``--nq`` newsqa-dev questions as the retriever does, and times
``bm25.search(..., n)`` per question in CPU time (time.process_time: the machine is shared, wall
time would measure the neighbours). Each run times every question once with the old code and once
with the new, alternating, so drift in load hits both alike; the figures are the medians over
``--runs`` runs of the per-run p50/p95, with their range. Before timing, the two are compared per
question: the same rows with bit-identical scores, or at most a different pick among rows tied
with the n-th score (the old code cut ties in partition order).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from embeddings.lexical import tokenize
from embeddings.storage import bm25
from embeddings.storage.bm25 import B, K1, MAX_TERM, Postings
from embeddings.storage.segment import Segment

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = REPO.parent / "shared" / "data" / "newsqa-dev" / "questions.jsonl"

Search = Callable[[Sequence[Postings], Sequence[str], int], list[tuple[int, int, float]]]


def search_before(segments: Sequence[Postings], query: Sequence[str], n: int) -> list[tuple[int, int, float]]:
    """bm25.search as it was before the bm25-speed branch (commit 31bdbe1), kept as the reference.

    The one change: total tokens are summed from the lengths here, as the old ``Postings.tokens``
    did on every call (it is cached now).
    """
    weights = Counter(t[:MAX_TERM] for t in query)
    if not weights or not segments:
        return []
    docs = sum(len(p.lengths) for p in segments)
    if not docs:
        return []
    avgdl = max(sum(int(np.asarray(p.lengths, dtype="int64").sum()) for p in segments) / docs, 1e-9)
    found = {term: [p.lookup(term) for p in segments] for term in weights}
    idf = {}
    for term, per in found.items():
        df = sum(len(rows) for rows, _ in per)
        if df:
            idf[term] = np.log(1.0 + (docs - df + 0.5) / (df + 0.5))
    out: list[tuple[int, int, float]] = []
    for s, postings in enumerate(segments):
        if not len(postings.lengths):
            continue
        scores = np.zeros(len(postings.lengths), dtype="float32")
        touched = np.zeros(len(postings.lengths), dtype=bool)
        for term, w in weights.items():
            if term not in idf:
                continue
            rows, tf = found[term][s]
            if not len(rows):
                continue
            touched[rows] = True
            tf = tf.astype("float32")
            norm = K1 * (1 - B + B * postings.lengths[rows] / avgdl)
            scores[rows] += w * idf[term] * tf / (tf + norm)
        candidates = np.flatnonzero(touched)
        if not len(candidates):
            continue
        k = min(n, len(candidates))
        sub = scores[candidates]
        top = candidates[np.argpartition(-sub, k - 1)[:k]] if k < len(candidates) else candidates
        out.extend((s, int(r), float(scores[r])) for r in top)
    out.sort(key=lambda t: -t[2])
    return out[:n]


def compare(old: list[tuple[int, int, float]], new: list[tuple[int, int, float]]) -> str:
    """"same", "ties" (only a different pick among rows tied with the last score) or "DIFFERENT"."""
    if len(old) != len(new):
        return "DIFFERENT"
    a = {(s, r): v for s, r, v in old}
    b = {(s, r): v for s, r, v in new}
    if [v for _, _, v in new] != sorted((v for _, _, v in old), reverse=True):
        return "DIFFERENT"
    if any(a[k] != b[k] for k in a.keys() & b.keys()):
        return "DIFFERENT"
    if a.keys() == b.keys():
        return "same"
    last = new[-1][2]
    differ = a.keys() ^ b.keys()
    return "ties" if all({**a, **b}[k] == last for k in differ) else "DIFFERENT"


def time_one(search: Search, postings: Sequence[Postings], query: list[str], n: int) -> float:
    """CPU milliseconds of one search."""
    start = time.process_time()
    search(postings, query, n)
    return (time.process_time() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", type=Path)
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--nq", type=int, default=100)
    parser.add_argument("--n", type=int, default=100, help="candidates asked (config retrieval.candidates)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    folders = sorted(f for f in (args.library / "segments").iterdir() if f.is_dir())
    postings = [Segment(f, i).postings for i, f in enumerate(folders)]
    rows = [json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines() if line.strip()]
    queries = [tokenize(r["question"]) for r in rows[: args.nq]]
    print(f"library {args.library}: {len(postings)} segments, {sum(len(p.lengths) for p in postings):,} passages; "
          f"{len(queries)} questions, n={args.n}; load {os.getloadavg()[0]:.2f}")

    # Also warms the page cache for both, so neither pays the first reads of the maps.
    verdicts = Counter(compare(search_before(postings, q, args.n), bm25.search(postings, q, args.n)) for q in queries)
    print("results:", dict(verdicts))

    per_run: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    for _ in range(args.runs):
        times: dict[str, list[float]] = {"before": [], "after": []}
        for q in queries:
            times["before"].append(time_one(search_before, postings, q, args.n))
            times["after"].append(time_one(bm25.search, postings, q, args.n))
        for name, t in times.items():
            per_run[name].append((float(np.percentile(t, 50)), float(np.percentile(t, 95))))
    figures = {}
    for name, runs in per_run.items():
        p50s, p95s = [r[0] for r in runs], [r[1] for r in runs]
        figures[name] = (statistics.median(p50s), statistics.median(p95s))
        print(f"{name:>6}: CPU ms per question p50 {figures[name][0]:.2f} ({min(p50s):.2f}-{max(p50s):.2f}), "
              f"p95 {figures[name][1]:.2f} ({min(p95s):.2f}-{max(p95s):.2f}) over {args.runs} runs")
    print(f" ratio: p50 {figures['before'][0] / figures['after'][0]:.2f}x, p95 {figures['before'][1] / figures['after'][1]:.2f}x; "
          f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
