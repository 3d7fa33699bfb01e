"""Exact vs approximate vector search (embeddings/index.py) on real and synthetic e5 vectors.

Real vectors: every sentence, every run of 2-3 consecutive sentences, every Bron passage, every title
and every window of 8/12/16/24/32 words (stride 4) of the newsqa-dev articles, embedded once with e5
(passage prefix) and cached as .npy; queries are the e5 query vectors of the newsqa-dev questions.
Synthetic vectors for the larger sizes: random mixtures of 2-3 real vectors plus gaussian noise,
renormalised, so they keep the real vectors' anisotropy (e5 cosines sit in 0.7-0.9, not around 0).

Prints one line per (kind, size, params): build CPU s, bytes in memory and on disk, open time
(plain and mmap), query p50/p95 CPU and wall (median of 3 passes), recall@10/@100 against exact search.

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python benchmarks/ann_recall.py --embed [--shard 0/2]  # once
    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python benchmarks/ann_recall.py --sizes real,100000,460000,1000000
    ... --sizes 4600000 --kinds ivf-sq8  # the optional large case (~9 GB RAM; exact too: ~16 GB)

Figures of 2026-12-03 (2-core box shared with 3 other agents, load average 5-9; 1 faiss thread;
the embedding was stopped at 16 384 of the 21 123 texts, so "real" is 16 k real vectors and the
100 k / 460 k sets top those up with synthetic ones, the 1 M set tops up 12 288; 231 queries, k=100,
latency p50/p95 of one-query searches, median of 3 passes (1 pass at 1 M), open times warm-cache):

| set | kind | params | build CPU | disk/RAM | open / mmap | CPU p50/p95 ms | wall p95 ms | R@10 | R@100 |
|---|---|---|---|---|---|---|---|---|---|
| real 16 k | exact | | 0.0 s | 24 MB | 0.09 / 0.00 s | 1.5 / 1.9 | 17 | 1 | 1 |
| real 16 k | exact, 2 threads | | | | | 24 / 30 | 101 | 1 | 1 |
| real 16 k | ivf-sq8 | nlist 512, nprobe 64 (1/8) | 1.4 s | 7 MB | 0.07 / 0.00 s | 0.23 / 0.48 | 12 | 0.984 | 0.968 |
| real 16 k | ivf-sq8 | nprobe 128 (1/4) | | | | 0.54 / 0.89 | 11 | 0.991 | 0.987 |
| real 16 k | hnsw M32 | efSearch 128 | 2.5 s | 28 MB | 0.18 s | 0.35 / 0.79 | 13 | 0.991 | 0.974 |
| 100 k | exact | | 0.1 s | 147 MB | 1.0 / 0.02 s | 9.7 / 10.9 | 54 | 1 | 1 |
| 100 k | ivf-sq8 | nlist 1024, nprobe 128 (1/8) | 6.2 s | 39 MB | 0.15 / 0.00 s | 2.3 / 2.7 | 18 | 0.983 | 0.977 |
| 100 k | hnsw M32 | efSearch 256 | 38 s | 173 MB | 0.73 s | 1.6 / 2.5 | 23 | 0.995 | 0.970 |
| 460 k | exact | | 0.6 s | 677 MB | 2.4 / 0.15 s | 37.5 / 41.7 | 166 | 1 | 1 |
| 460 k | ivf-sq8 | nlist 2048, nprobe 256 (1/8) | 31 s | 175 MB | 0.59 / 0.01 s | 5.0 / 6.0 | 11 | 0.982 | 0.979 |
| 1 M | exact | | 1.4 s | 1473 MB | 7.3 / 0.32 s | 69 / 73 | 371 | 1 | 1 |
| 1 M | ivf-sq8 | nlist 4096, nprobe 512 (1/8) | 120 s | 380 MB | 1.4 / 0.03 s | 9.4 / 11.3 | 66 | 0.971 | 0.968 |
| 1 M | ivf-sq8 | nprobe 1024 (1/4) | | | | 19 / 22 | 133 | 0.978 | 0.982 |
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embeddings.chunking import chunk_text, sentences  # noqa: E402

DATA = Path(os.environ.get("NEWSQA_DIR", "/work/shared/data/newsqa-dev"))
CACHE = Path(os.environ.get("ANN_CACHE", "/tmp/ann-cache"))
WORD_WINDOWS = (8, 12, 16, 24, 32)
WORD_STRIDE = 4
SENTENCE_RUNS = range(1, 4)


def real_texts() -> list[str]:
    """Distinct real texts cut from the newsqa-dev articles (see the module docstring)."""
    texts: list[str] = []
    for line in (DATA / "articles.jsonl").read_text(encoding="utf-8").splitlines():
        article = json.loads(line)
        text = article["text"]
        texts.append(article["title"])
        spans = sentences(text)
        for run in SENTENCE_RUNS:
            for i in range(len(spans) - run + 1):
                texts.append(text[spans[i][0] : spans[i + run - 1][1]])
        texts.extend(text[c.start : c.end] for c in chunk_text(text))
        words = text.split()
        for size in WORD_WINDOWS:
            for i in range(0, max(1, len(words) - size + 1), WORD_STRIDE):
                texts.append(" ".join(words[i : i + size]))
    return list(dict.fromkeys(t.strip() for t in texts if t.strip()))


def questions() -> list[str]:
    lines = (DATA / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines]


def embed(batch: int = 64, shard: int = 0, shards: int = 1) -> None:
    """Embed real_texts() and questions() with e5 into CACHE (resumable: parts are kept).

    ``shards`` processes (one e5 thread each) can share the work: each embeds parts i with
    i % shards == shard; the one that finds all parts present writes passages.npy."""
    from embeddings.e5 import E5Encoder

    CACHE.mkdir(parents=True, exist_ok=True)
    enc = E5Encoder()
    qpath = CACHE / "queries.npy"
    if not qpath.exists():
        np.save(qpath, enc.encode_query(questions()))
    texts = real_texts()
    print(f"{len(texts)} texts", flush=True)
    part_size = 2048
    parts = []
    t0, c0 = time.perf_counter(), time.process_time()
    for p in range(0, len(texts), part_size):
        path = CACHE / f"part-{p // part_size:04d}.npy"
        if not path.exists() and (p // part_size) % shards == shard:
            chunk = texts[p : p + part_size]
            vecs = np.concatenate([enc.encode(chunk[i : i + batch]) for i in range(0, len(chunk), batch)])
            np.save(path, vecs)
            done = p + len(chunk)
            print(
                f"{done}/{len(texts)} wall {time.perf_counter() - t0:.0f}s cpu {time.process_time() - c0:.0f}s",
                flush=True,
            )
        if path.exists():
            parts.append(np.load(path))
    if len(parts) == -(-len(texts) // part_size):
        np.save(CACHE / "passages.npy", np.concatenate(parts))


def real_vectors() -> tuple[np.ndarray, np.ndarray]:
    """(passage vectors, query vectors) from the cache; run --embed first.

    While --embed is still running, the parts embedded so far (a warning says how many vectors)."""
    queries = np.load(CACHE / "queries.npy")
    if (CACHE / "passages.npy").exists():
        return np.load(CACHE / "passages.npy"), queries
    parts = sorted(CACHE.glob("part-*.npy"))
    vectors = np.concatenate([np.load(p) for p in parts])
    print(f"WARNING: embedding unfinished, using the {len(vectors)} real vectors of {len(parts)} parts", flush=True)
    return vectors, queries


def synthetic(real: np.ndarray, n: int, seed: int = 0, noise: float = 0.35) -> np.ndarray:
    """``real`` followed by n - len(real) vectors that look like them: a random convex mixture of 2-3
    real vectors plus isotropic gaussian noise (norm ~``noise``), renormalised."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, real.shape[1]), dtype="float32")
    out[: min(n, len(real))] = real[:n]
    step = 200_000
    for start in range(len(real), n, step):
        m = min(step, n - start)
        parts = rng.integers(2, 4)
        w = rng.dirichlet(np.ones(parts), size=m).astype("float32")
        v = np.zeros((m, real.shape[1]), dtype="float32")
        for j in range(parts):
            v += w[:, j : j + 1] * real[rng.integers(0, len(real), m)]
        v += rng.normal(scale=noise / np.sqrt(real.shape[1]), size=v.shape).astype("float32")
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[start : start + m] = v
    return out


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def exact_topk(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ids (row numbers) of the exact top k per query, computed in slices (no index kept)."""
    best_s = np.full((len(queries), 0), -np.inf, dtype="float32")
    best_i = np.zeros((len(queries), 0), dtype="int64")
    step = 500_000
    for start in range(0, len(vectors), step):
        s = queries @ vectors[start : start + step].T
        kk = min(k, s.shape[1])
        top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        best_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], axis=1)
        best_i = np.concatenate([best_i, top + start], axis=1)
        keep = np.argsort(-best_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    return best_i


def latency(index, queries: np.ndarray, k: int, passes: int = 3) -> dict:
    """p50/p95 of one-query searches, CPU and wall ms, median over passes; and the results."""
    runs = []
    results = None
    for _ in range(passes):
        cpu, wall, res = [], [], []
        for q in queries:
            w0, c0 = time.perf_counter(), time.process_time()
            hits = index.search(q, k)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            res.append([i for i, _ in hits])
        runs.append([np.percentile(x, p) * 1000 for x in (cpu, wall) for p in (50, 95)])
        results = res
    med = np.median(np.array(runs), axis=0)
    return {"cpu_p50": med[0], "cpu_p95": med[1], "wall_p50": med[2], "wall_p95": med[3], "results": results}


PROBE = """
import json, sys, time
import numpy as np
from embeddings.index import VectorIndex
def rss():
    return int([x for x in open("/proc/self/status") if x.startswith("VmRSS")][0].split()[1]) / 1024
queries = np.load(sys.argv[3])
r0 = rss()
w0 = time.perf_counter()
index = VectorIndex.load(sys.argv[1], mmap=sys.argv[2] == "1")
out = {"open_s": round(time.perf_counter() - w0, 3), "rss_mb": round(rss() - r0, 1)}
for q in queries[:20]:
    index.search(q, 100)
out["rss_mb_after_20q"] = round(rss() - r0, 1)
print(json.dumps(out))
"""


def open_probe(path: Path, mmap: bool) -> dict:
    """Open ``path`` in a fresh process (warm page cache): open time, RSS growth, RSS after 20 queries."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), "1" if mmap else "0", str(CACHE / "queries.npy")],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def recall(results: list[list[int]], truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(r[:k]) & set(t[:k].tolist())) / k for r, t in zip(results, truth)]))


def run_size(label: str, vectors: np.ndarray, queries: np.ndarray, args, out) -> None:
    import faiss

    from embeddings import index as vindex
    from embeddings.index import VectorIndex

    n = len(vectors)
    truth = exact_topk(vectors, queries, 100)
    work = CACHE / "work"
    work.mkdir(exist_ok=True)
    kinds = [k for k in ("exact", "ivf-sq8") if k in args.kinds]
    if n <= args.hnsw_max and "hnsw" in args.kinds:
        kinds.append("hnsw")
    for kind in kinds:
        c0, w0 = time.process_time(), time.perf_counter()
        if kind == "hnsw":
            raw = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
            raw.hnsw.efConstruction = 40
            raw = faiss.IndexIDMap2(raw)
            raw.add_with_ids(vectors, np.arange(n, dtype="int64"))
            idx = VectorIndex(raw)
        else:
            idx = VectorIndex.build(vectors, approximate=(kind != "exact"))
        build_cpu, build_wall = time.process_time() - c0, time.perf_counter() - w0
        path = work / f"{label}-{kind}.faiss"
        idx.save(path)
        disk = path.stat().st_size
        del idx
        opened = {mmap: open_probe(path, mmap) for mmap in ((False, True) if kind != "hnsw" else (False,))}
        idx = VectorIndex.load(path)
        if kind == "exact":
            settings = [("-", None)]
        elif kind == "hnsw":
            settings = [(f"efSearch={e}", e) for e in (64, 128, 256)]
        else:
            settings = [(f"nprobe={p}", p) for p in args.nprobes]
        ivf = faiss.try_extract_index_ivf(idx._index)
        base = ""
        if ivf is not None:
            base = f"nlist={ivf.nlist} "
        for name, value in settings:
            if kind == "hnsw":
                faiss.downcast_index(idx._index.index).hnsw.efSearch = value
            elif value is not None:
                ivf.nprobe = value
            for threads in args.threads:
                faiss.omp_set_num_threads(threads)
                lat = latency(idx, queries, 100, passes=args.passes)
                res = [[int(i) for i in r] for r in lat.pop("results")]
                row = {
                    "size": label, "n": n, "kind": kind, "params": base + name, "threads": threads,
                    "build_cpu_s": round(build_cpu, 1), "build_wall_s": round(build_wall, 1),
                    "disk_mb": round(disk / 2**20, 1), "open_s": opened[False]["open_s"],
                    "open_rss_mb": opened[False]["rss_mb"],
                    "mmap_open_s": opened.get(True, {}).get("open_s", float("nan")),
                    "mmap_rss_mb": opened.get(True, {}).get("rss_mb", float("nan")),
                    "mmap_rss_mb_after_20q": opened.get(True, {}).get("rss_mb_after_20q", float("nan")),
                    **{key: round(v, 2) for key, v in lat.items()},
                    "recall10": round(recall(res, truth, 10), 4), "recall100": round(recall(res, truth, 100), 4),
                }
                print(
                    f"{label:>8} {kind:8} {row['params']:22} thr={threads} build {build_cpu:7.1f}s cpu "
                    f"disk {row['disk_mb']:7.1f}MB open {row['open_s']:6.3f}s +{row['open_rss_mb']:.0f}MB "
                    f"mmap-open {row['mmap_open_s']:6.3f}s +{row['mmap_rss_mb']:.0f}MB "
                    f"(+{row['mmap_rss_mb_after_20q']:.0f}MB after 20q) | "
                    f"cpu p50/p95 {lat['cpu_p50']:6.2f}/{lat['cpu_p95']:6.2f}ms wall p50/p95 "
                    f"{lat['wall_p50']:6.2f}/{lat['wall_p95']:6.2f}ms | R@10 {row['recall10']:.3f} "
                    f"R@100 {row['recall100']:.3f}",
                    flush=True,
                )
                out.write(json.dumps(row) + "\n")
                out.flush()
        faiss.omp_set_num_threads(vindex.FAISS_THREADS)
        del idx
        path.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embed", action="store_true", help="embed the real texts and questions into the cache")
    ap.add_argument("--shard", default="0/1", help="with --embed: I/N, this process's share")
    ap.add_argument("--sizes", default="real,100000,200000,460000,1000000",
                    help="comma list: 'real' (the real vectors alone) and/or vector counts (real + synthetic)")
    ap.add_argument("--kinds", default="exact,ivf-sq8,hnsw")
    ap.add_argument("--nprobes", default="16,32,64,128")
    ap.add_argument("--threads", default="1", help="faiss OpenMP threads to measure search with, e.g. 1,2")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--nq", type=int, default=0, help="use only the first NQ questions (0: all)")
    ap.add_argument("--hnsw-max", type=int, default=100_000, help="also measure HNSW (M=32) up to this size")
    ap.add_argument("--out", default=str(CACHE / "ann_recall.jsonl"))
    args = ap.parse_args()
    if args.embed:
        shard, shards = (int(x) for x in args.shard.split("/"))
        embed(shard=shard, shards=shards)
        return
    args.nprobes = [int(x) for x in args.nprobes.split(",")]
    args.kinds = args.kinds.split(",")
    args.threads = [int(x) for x in args.threads.split(",")]
    real, queries = real_vectors()
    if args.nq:
        queries = queries[: args.nq]
    print(f"real vectors {real.shape}, queries {queries.shape}; {os.uname().nodename} load {os.getloadavg()}",
          flush=True)
    with open(args.out, "a", encoding="utf-8") as out:
        for size in args.sizes.split(","):
            vectors = real if size == "real" else synthetic(real, int(size))
            run_size(size, vectors, queries, args, out)
            del vectors
    print(f"load {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
