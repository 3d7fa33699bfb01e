"""What recording the Prometheus metrics costs an answer, measured with and without in one run.

A bot's question handler does: answer (embed, search, re-score), render for Telegram, and, with
metrics, record the outcome, latency and reply size (``Metrics.question``). This benchmark runs that
path on the newsqa-dev articles for many questions, each question once with and once without the
recording, in alternating order, so both see the same machine load. Printed: answer p50 and p95 for
each, the ratio, the spread of the p50 over blocks of questions, the median ratio of each
question's pair of runs and the recording's own share of each answer; then the recording and a
``/metrics`` scrape on their own.

    python benchmarks/metrics_cost.py [--questions 120] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NEWSQA = REPO.parent / "shared" / "data" / "newsqa-dev"
sys.path[:0] = [str(REPO)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bot.config import load_config  # noqa: E402
from bot.core import Bron  # noqa: E402
from bot.logs import setup_logging  # noqa: E402
from bot.metrics import Metrics  # noqa: E402
from bot.ops import warm_up  # noqa: E402
from bot.render import TELEGRAM_LIMIT, render_answer  # noqa: E402


def questions(n: int) -> list[str]:
    """The first ``n`` questions of newsqa-dev (answerable and not), Dutch and English mixed."""
    rows = [json.loads(line) for line in (NEWSQA / "questions.jsonl").read_text().splitlines() if line.strip()]
    return [r["question"] for r in rows][:n]


def handle(bron: Bron, question: str, metrics: Metrics | None) -> tuple[float, float, float]:
    """One question as the Telegram handler treats it; (wall, CPU, recording) seconds taken.

    CPU time (all threads of this process) hardly moves when other processes load the machine, so
    it shows a small difference that wall time on a shared box hides in noise.
    """
    started, cpu = time.perf_counter(), time.process_time()
    answer = bron.answer(question, "bench")
    messages = render_answer(answer, answer.language, "html", TELEGRAM_LIMIT)
    recording = 0.0
    if metrics is not None:
        outcome = "declined" if answer.abstained else "answered"
        before = time.perf_counter()
        metrics.question("telegram", answer.language, outcome, before - started, sum(map(len, messages)))
        recording = time.perf_counter() - before
    return time.perf_counter() - started, time.process_time() - cpu, recording


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=3, help="times each question is asked (each time with and without)")
    parser.add_argument("--blocks", type=int, default=6, help="blocks of the run the spread of the p50 is taken over")
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "bron-bench-metrics"))
    args = parser.parse_args()
    setup_logging("ERROR")
    config = load_config(REPO / "config.yaml", environ={})
    config.corpus.paths = [str(NEWSQA / "articles.jsonl")]
    bron = Bron.open(config, Path(args.data_dir), progress=True)
    warm_up(bron)
    asked = questions(args.questions)
    metrics = Metrics()
    with_ms: list[float] = []
    without_ms: list[float] = []
    cpu_ms: dict[bool, list[float]] = {True: [], False: []}
    share: list[float] = []  # the recording's part of its own answer's time
    for round_ in range(args.rounds):
        for i, question in enumerate(asked):
            # Alternate which goes first, so neither always gets the warmer cache.
            first_with = (i + round_) % 2 == 0
            for recording in ((True, False) if first_with else (False, True)):
                seconds, cpu, recorded = handle(bron, question, metrics if recording else None)
                (with_ms if recording else without_ms).append(seconds * 1000)
                cpu_ms[recording].append(cpu * 1000)
                if recording:
                    share.append(recorded / seconds)

    n = len(with_ms)
    size = max(1, n // args.blocks)
    blocks = [(statistics.median(with_ms[i:i + size]), statistics.median(without_ms[i:i + size]))
              for i in range(0, n - size + 1, size)]
    ratios = [w / wo for w, wo in blocks]
    print(f"Answer path (answer + render, + record) on {len(bron.library.articles())} articles: "
          f"{len(asked)} questions x {args.rounds} rounds, with and without metrics interleaved ({n} each)")
    print(f"{'':>16} {'p50 ms':>8} {'p95 ms':>8} {'p50 per block (min-max)':>26}")
    for name, values, idx in (("with metrics", with_ms, 0), ("without metrics", without_ms, 1)):
        per_block = [b[idx] for b in blocks]
        print(f"{name:>16} {statistics.median(values):8.1f} {pct(values, 0.95):8.1f} "
              f"{min(per_block):12.1f} - {max(per_block):<10.1f}")
    ratio = statistics.median(with_ms) / statistics.median(without_ms)
    print(f"p50 ratio with/without: {ratio:.3f} ({(ratio - 1) * 100:+.1f}%); per block: "
          f"median {statistics.median(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f}")

    cpu_with, cpu_without = statistics.median(cpu_ms[True]), statistics.median(cpu_ms[False])
    print(f"CPU time p50: with {cpu_with:.1f} ms, without {cpu_without:.1f} ms, ratio {cpu_with / cpu_without:.3f} "
          f"({(cpu_with / cpu_without - 1) * 100:+.1f}%)")
    paired = [w / wo for w, wo in zip(with_ms, without_ms)]
    print(f"paired (same question, back to back): median ratio {statistics.median(paired):.3f}, "
          f"quartiles {pct(paired, 0.25):.3f}-{pct(paired, 0.75):.3f}")

    print(f"in the run, recording took {statistics.median(share) * 100:.4f}% of its answer's time (p50), "
          f"{pct(share, 0.99) * 100:.4f}% (p99)")

    calls = 100_000
    record_us = timeit.timeit(lambda: metrics.question("telegram", "nl", "answered", 0.2, 900), number=calls) / calls * 1e6
    scrape_ms = timeit.timeit(metrics.text, number=200) / 200 * 1000
    print(f"recording one question alone: {record_us:.1f} µs; one /metrics scrape (render): {scrape_ms:.2f} ms")
    print(f"machine: load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
