"""Load benchmark for the Telegram bot: simulated users asking questions through the Bot API stand-in.

The real bot (python-telegram-bot, real HTTP on 127.0.0.1) answers questions from
``shared/data/newsqa-dev`` on its 80 articles. Each simulated user asks its questions one after the
other, waiting for each reply, as a person would. Printed: throughput (replies/s) and reply latency
(user's message -> bot's reply) p50/p95, as the median and spread of several runs, for 1 user and
for N users at once.

    python benchmarks/telegram_load.py [--users 50] [--questions 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NEWSQA = REPO.parent / "shared" / "data" / "newsqa-dev"
sys.path[:0] = [str(REPO), str(REPO / "tests" / "telegram")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

from bot.config import load_config  # noqa: E402
from bot.core import Bron  # noqa: E402
from bot.logs import setup_logging  # noqa: E402
from bot.telegram_bot import build_application  # noqa: E402
from standin import BotApiStandIn, user  # noqa: E402


def questions(n: int) -> list[str]:
    """The first ``n`` answerable questions of newsqa-dev, Dutch and English mixed."""
    rows = [json.loads(line) for line in (NEWSQA / "questions.jsonl").read_text().splitlines() if line.strip()]
    return [r["question"] for r in rows if r.get("answer")][:n]


async def simulate(bron: Bron, users: int, per_user: int, asked: list[str]) -> tuple[float, list[float]]:
    """Run one load: returns (seconds in all, latency of every reply in ms)."""
    api = BotApiStandIn()
    await api.start()
    cfg = copy.deepcopy(bron.config)
    cfg.telegram.token, cfg.telegram.base_url = api.token, api.base_url
    cfg.telegram.rate_limit.messages = per_user + 1  # the benchmark measures serving, not refusing
    app = build_application(cfg, bron, Path(tempfile.mkdtemp()))
    await app.initialize()
    await app.start()
    await app.updater.start_polling(poll_interval=0, timeout=10)
    latencies: list[float] = []

    async def one_user(uid: int) -> None:
        person = user(10_000 + uid, "nl", f"user{uid}")
        for i in range(per_user):
            before = len(api.sent_to(person["id"]))
            start = time.perf_counter()
            api.send_text(person, asked[(uid * per_user + i) % len(asked)])
            await api.wait_sent(person["id"], after=before, timeout=300)
            latencies.append((time.perf_counter() - start) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(one_user(u) for u in range(users)))
    elapsed = time.perf_counter() - began
    await app.updater.stop()
    await app.stop()
    await app.shutdown()
    await api.stop()
    return elapsed, latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f}  ({min(values):.1f}–{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--questions", type=int, default=10, help="questions per user")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "bron-bench-telegram"))
    args = parser.parse_args()
    setup_logging("ERROR")
    config = load_config(REPO / "config.yaml", environ={})
    config.corpus.paths = [str(NEWSQA / "articles.jsonl")]
    bron = Bron.open(config, Path(args.data_dir), progress=True)
    asked = questions(200)
    bron.answer(asked[0], "warm-up")
    print(f"Telegram load through the Bot API stand-in: {len(bron.library.articles())} articles, "
          f"{args.runs} runs each, median (min–max)")
    print(f"{'users':>6} {'replies':>8} {'replies/s':>22} {'p50 ms':>22} {'p95 ms':>22}")
    for users in (1, args.users):
        runs = [asyncio.run(simulate(bron, users, args.questions, asked)) for _ in range(args.runs)]
        rate = [len(lat) / elapsed for elapsed, lat in runs]
        p50 = [pct(lat, 0.50) for _, lat in runs]
        p95 = [pct(lat, 0.95) for _, lat in runs]
        print(f"{users:>6} {users * args.questions:>8} {spread(rate):>22} {spread(p50):>22} {spread(p95):>22}")


if __name__ == "__main__":
    main()
