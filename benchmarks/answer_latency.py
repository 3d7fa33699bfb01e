"""Answer latency on newsqa-dev: what each question costs, and how much of it the answerability model takes.

Ingests newsqa-dev into a throw-away index (or uses ``--data-dir``), then asks every question
``--runs`` times through ``Bron.answer``. Printed per stage (query encoding, retrieval, judging the
candidates, the rest): wall and CPU milliseconds per question as median (min–max over runs) of the
per-run p50, and the judge's share of the CPU time. CPU time holds up better than wall time when
the machine is shared; the load average is printed with the figures.

    python benchmarks/answer_latency.py [--runs 3] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NEWSQA = REPO.parent / "shared" / "data" / "newsqa-dev"
sys.path[:0] = [str(REPO)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import embeddings.library as library_module  # noqa: E402
from bot.config import load_config  # noqa: E402
from bot.core import Bron  # noqa: E402
from embeddings.library import Library  # noqa: E402

SPENT: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])


def timed(name: str, fn):
    """``fn`` that adds its wall and CPU seconds to SPENT[name]."""

    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[name][0] += time.perf_counter() - wall
            SPENT[name][1] += time.process_time() - cpu

    return wrapper


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data-dir", help="an index of newsqa-dev to reuse (built there if empty)")
    args = parser.parse_args()
    config = load_config(REPO / "config.yaml", environ={})
    questions = [json.loads(line)["question"] for line in (NEWSQA / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    with tempfile.TemporaryDirectory(prefix="bron-latency-") as tmp:
        library = Library.open(Path(args.data_dir or tmp), config)
        library.ingest([NEWSQA / "articles.jsonl"])
        bron = Bron(config, library)
        encoder = library.sentence_encoder
        encoder.encode_query = timed("encode", encoder.encode_query)
        library_module.retrieve = timed("retrieve", library_module.retrieve)
        library_module.judge = timed("judge", library_module.judge)
        for q in questions[:5]:
            bron.answer(q, "bench")
        per_run: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for _ in range(args.runs):
            samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
            for q in questions:
                SPENT.clear()
                wall, cpu = time.perf_counter(), time.process_time()
                bron.answer(q, "bench")
                total = (time.perf_counter() - wall, time.process_time() - cpu)
                samples["total"].append(total)
                for stage in ("encode", "retrieve", "judge"):
                    samples[stage].append(tuple(SPENT[stage]))
            for stage, values in samples.items():
                per_run[stage].append((p50([v[0] for v in values]) * 1000, p50([v[1] for v in values]) * 1000))
    load = os.getloadavg()
    print(f"{len(questions)} questions x {args.runs} runs; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| stage | wall ms p50 | CPU ms p50 |")
    print("|---|---|---|")
    for stage in ("encode", "retrieve", "judge", "total"):
        walls = [r[0] for r in per_run[stage]]
        cpus = [r[1] for r in per_run[stage]]
        print(f"| {stage} | {p50(walls):.1f} ({min(walls):.1f}–{max(walls):.1f}) | {p50(cpus):.1f} ({min(cpus):.1f}–{max(cpus):.1f}) |")
    share = p50([r[1] for r in per_run["judge"]]) / (p50([r[1] for r in per_run["total"]]) or 1)
    print(f"judge share of CPU per question: {share:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
