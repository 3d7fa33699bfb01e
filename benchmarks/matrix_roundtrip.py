"""Matrix round trip: message sent by a user -> the bot's reply received, plain vs encrypted room.

    python benchmarks/matrix_roundtrip.py [--questions 50] [--data-dir DIR]

Needs the ``test`` extra (matrix-synapse). Building the index of the 80 articles takes a few
minutes on 2 cores; ``--data-dir`` keeps it for the next run.

Starts a throw-away Synapse on 127.0.0.1 (as the tests do), builds Bron's index of the newsqa-dev
articles, runs the bot in-process, and lets a real matrix-nio user (encryption on) send the same
questions one at a time in a plain direct room and in an encrypted one. A round trip is the time
from the user's ``room_send`` to the reply arriving through the user's own sync. It prints the
Synapse start time, p50/p95 per room kind, the core's own answer time for comparison, and the size
of the bot's encryption store afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bot.config import load_config  # noqa: E402
from bot.core import Bron  # noqa: E402
from bot.logs import setup_logging  # noqa: E402
from bot.matrix_bot import MatrixBot  # noqa: E402
from bot.matrix_session import store_path  # noqa: E402
from matrix.homeserver import Synapse  # noqa: E402
from matrix.people import Person  # noqa: E402

NEWSQA = Path("/work/shared/data/newsqa-dev")


def questions(folder: Path, count: int) -> list[str]:
    """``count`` questions spread over the whole file (both languages, some unanswerable)."""
    rows = [json.loads(line) for line in (folder / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    step = max(1, len(rows) // count)
    return [r["question"] for r in rows[::step][:count]]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def describe(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{name:<22} n={len(ms):<3} p50 {percentile(ms, 50):7.0f} ms   p95 {percentile(ms, 95):7.0f} ms   "
        f"mean {statistics.mean(ms):7.0f} ms   max {max(ms):7.0f} ms"
    )


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def core_seconds(bron: Bron, question: str) -> float:
    """How long the core alone takes to answer, for comparison with the round trip."""
    began = time.perf_counter()
    bron.answer(question, "core-only")
    return time.perf_counter() - began


async def round_trips(person: Person, room_id: str, asked: list[str]) -> list[float]:
    """Ask each question in turn and time it until the reply arrives."""
    times = []
    for question in asked:
        began = time.perf_counter()
        await person.ask(room_id, question)
        times.append(time.perf_counter() - began)
    return times


async def run(args: argparse.Namespace, work: Path) -> None:
    synapse = Synapse(work / "synapse")
    started = synapse.start()
    print(f"synapse start: {started:.2f} s (until /_matrix/client/versions answers)")
    try:
        bot_account, user_account = synapse.register("bron"), synapse.register("alice")
        environ = {
            "BRON_MATRIX_HOMESERVER": synapse.url,
            "BRON_MATRIX_USER_ID": bot_account.user_id,
            "MATRIX_PASSWORD": bot_account.password,
        }
        config = load_config(ROOT / "config.yaml", environ=environ)
        config.corpus.paths = [str(args.folder / "articles.jsonl")]
        began = time.perf_counter()
        bron = Bron.open(config, args.data_dir or work / "index")
        print(f"index: {len(bron.library.articles())} articles ready in {time.perf_counter() - began:.1f} s")
        asked = questions(args.folder, args.questions)
        for q in asked[:3]:
            bron.answer(q, "warm-up")  # first calls load lazily initialised parts of the models

        bot = MatrixBot(config, bron, work / "bot")
        await bot.start()
        syncing = asyncio.create_task(bot.run_forever())
        await bot.live.wait()
        alice = Person(synapse, user_account, work / "alice")
        await alice.start()
        me = bot.client.user_id
        try:
            plain_room = await alice.room([me], encrypted=False, direct=True, wait_for=me)
            plain = await round_trips(alice, plain_room, asked)
            secret_room = await alice.room([me], encrypted=True, direct=True, wait_for=me)
            encrypted = await round_trips(alice, secret_room, asked)
        finally:
            await alice.stop()
            syncing.cancel()
            await bot.close()
        print(describe("core answer only", [core_seconds(bron, q) for q in asked]))
        print(describe("plain room", plain))
        print(describe("encrypted room", encrypted))
        store = store_path(work / "bot")
        print(f"bot crypto store after {len(asked)} encrypted questions: {folder_size(store) / 1024:.0f} KiB ({store})")
    finally:
        synapse.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=NEWSQA, help="newsqa-format folder (articles.jsonl, questions.jsonl)")
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--data-dir", type=Path, help="keep Bron's index here between runs (default: a temp dir)")
    args = parser.parse_args(argv)
    setup_logging("WARNING")
    with tempfile.TemporaryDirectory(prefix="bron-matrix-bench-") as tmp:
        asyncio.run(run(args, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
