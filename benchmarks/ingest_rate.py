"""Fresh-ingest rate: articles embedded per CPU-second of a real `bron ingest`, median of N runs.

usage: python benchmarks/ingest_rate.py [ARTICLES] [--runs 3] [--work /tmp/ingest-rate] [--keep]
                                       [--precision int8,bfloat16,...]

Each run is `bron -q --data-dir WORK/run-i ingest ARTICLES` into an empty data dir, started in WORK
(no config.yaml there, so the shipped defaults apply). CPU time is user + system of the child
process (resource usage of children), which, unlike wall time, barely moves with the load of a
shared machine; the load average before and after each run is printed with it. The vectors of
each kind in the last run's snapshot are printed too, so a rate can be told apart from a change
in what gets embedded. ARTICLES defaults to newsqa-dev's articles.jsonl next to the repo.
--precision compares values of embeddings.e5_precision (set through BRON_EMBEDDINGS_E5_PRECISION):
their runs alternate, so a change of the machine's load falls on each alike, and each gets its own
summary with its rate relative to the first one's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO.parent / "shared" / "data" / "newsqa-dev" / "articles.jsonl"


def count_articles(path: Path) -> int:
    """Articles in a .jsonl file (one per non-empty line); 1 for any other file."""
    if path.suffix != ".jsonl":
        return 1
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def vectors(data_dir: Path) -> dict:
    """Vectors per kind stored in the data dir's segments."""
    from embeddings.storage.store import Store

    store = Store(data_dir)
    try:
        view = store.view()
        out: dict[str, int] = {}
        for seg in view.segments:
            for name, v in seg.chunk_vectors.items():
                out[f"passages[{name}]"] = out.get(f"passages[{name}]", 0) + len(v)
            out["sentences"] = out.get("sentences", 0) + len(seg.sentence_vectors)
            out["articles"] = out.get("articles", 0) + len(seg.article_vectors)
        return out
    finally:
        store.db.close()


def one_run(articles: Path, work: Path, i: int, precision: str | None = None) -> dict:
    data = work / (f"run-{i}" if precision is None else f"run-{precision}-{i}")
    env = dict(os.environ)
    if precision is not None:
        env["BRON_EMBEDDINGS_E5_PRECISION"] = precision
    shutil.rmtree(data, ignore_errors=True)
    bron = Path(sys.executable).parent / "bron"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    t = time.perf_counter()
    p = subprocess.run([str(bron), "-q", "--data-dir", str(data), "ingest", str(articles)], cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        raise SystemExit(p.stdout + p.stderr)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2),
            "max_rss_mb": round(after.ru_maxrss / 1024), "data": data}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("articles", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ingest-rate"))
    ap.add_argument("--keep", action="store_true", help="keep the data dirs (e.g. for bron eval)")
    ap.add_argument("--precision", help="comma-separated values of embeddings.e5_precision to compare")
    args = ap.parse_args()
    precisions: list[str | None] = args.precision.split(",") if args.precision else [None]
    articles = args.articles.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    n = count_articles(articles)
    runs: dict[str | None, list[dict]] = {p: [] for p in precisions}
    for i in range(args.runs):
        for precision in precisions:
            run = one_run(articles, args.work, i, precision)
            run["articles_per_cpu_s"] = round(n / run["cpu_s"], 3)
            runs[precision].append(run)
            print(json.dumps({"precision": precision, **{k: v for k, v in run.items() if k != "data"}}), flush=True)
    first = None
    for precision, done in runs.items():
        rates = [r["articles_per_cpu_s"] for r in done]
        summary = {
            "precision": precision,
            "articles": n,
            "runs": len(done),
            "articles_per_cpu_s_median": round(statistics.median(rates), 3),
            "min": min(rates),
            "max": max(rates),
            "cpu_s_median": round(statistics.median(r["cpu_s"] for r in done), 2),
            "load": [min(r["load_before"] for r in done), max(r["load_after"] for r in done)],
            "vectors": vectors(done[-1]["data"]),
        }
        first = first or summary["articles_per_cpu_s_median"]
        summary["rate_vs_first"] = round(summary["articles_per_cpu_s_median"] / first, 2)
        print(json.dumps(summary), flush=True)
    if not args.keep:
        for done in runs.values():
            for r in done:
                shutil.rmtree(r["data"], ignore_errors=True)


if __name__ == "__main__":
    main()
