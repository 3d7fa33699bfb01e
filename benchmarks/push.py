"""Topic-alert benchmark: 1,000 chats following 3 topics each, 200 new articles ingested, every alert
sent by the real Telegram bot (python-telegram-bot, real HTTP) to the Bot API stand-in on 127.0.0.1.

Articles: newsqa-dev (80). A quarter (d001, d005, ...) is the existing index; the other 60 are new,
each also carried by two or three other outlets as lightly edited agency copy (another title,
outlet and link, the last paragraph dropped, "(ANP)" added): 60 + 140 = 200 new articles, 60 stories.
Topics: 40 (30 about newsqa-dev stories, 10 about nothing in it); each chat follows 3, drawn with a
fixed seed. The 200 articles are ingested in one batch (as one feed poll would bring them).

Measured: ingest (embedding) time, once (the embedded index is cached between runs, and each run
makes follow.sqlite forget the new articles, so they arrive anew); then matching time and the time
from the end of the ingest (the step that learns of the new articles) to the last alert received
by the stand-in, CPU seconds of each stage, alerts sent and held by the per-chat
hourly limit, and the checks: every alert recorded was received exactly once, no chat got one
story twice, none got more than the hourly limit.

    python benchmarks/push.py [--chats 1000] [--per-second 0]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import random
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NEWSQA = REPO.parent / "shared" / "data" / "newsqa-dev"
sys.path[:0] = [str(REPO), str(REPO / "tests" / "telegram")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

from bot.config import load_config  # noqa: E402
from bot.core import Bron  # noqa: E402
from bot.follow import Follow  # noqa: E402
from bot.logs import setup_logging  # noqa: E402
from bot.telegram_bot import build_application  # noqa: E402
from standin import BotApiStandIn  # noqa: E402

TOPICS = [
    ("boeren protest Den Haag", "nl"), ("stikstof", "nl"), ("huizenprijzen", "nl"), ("sancties Rusland", "nl"),
    ("Iran atoomprogramma", "nl"), ("storing treinverkeer", "nl"), ("staatsbezoek België", "nl"), ("MH17 proces", "nl"),
    ("vrouwen en kinderen uit Syrische kampen", "nl"), ("Bank of England interest rates", "en"), ("Navalny", "en"),
    ("Hezbollah Israël", "nl"), ("griepprik", "nl"), ("Max Verstappen", "nl"), ("Ter Apel asielzoekers", "nl"),
    ("Taghi Marengo proces", "nl"), ("warmste jaar", "nl"), ("SpaceX astronauts", "en"), ("aanslagen Brussel proces", "nl"),
    ("Kaboel evacuatie", "nl"), ("inflatie", "nl"), ("gijzelaars Gaza", "nl"), ("Houthi attacks on ships", "en"),
    ("Mosul offensive", "en"), ("storm code oranje", "nl"), ("terreurverdachten opgepakt", "nl"),
    ("Zelensky offensief", "nl"), ("Koerden Syrië", "nl"), ("Tweede Kamer", "nl"), ("NCTV dreigingsbeeld", "nl"),
    ("Tour de France", "nl"), ("Eurovisie songfestival", "nl"), ("Ajax Feyenoord", "nl"), ("Olympische Spelen", "nl"),
    ("kerncentrale Borssele", "nl"), ("bitcoin koers", "nl"), ("woningbouw Utrecht", "nl"), ("Formule E", "nl"),
    ("wolf Veluwe", "nl"), ("subsidie zonnepanelen", "nl"),
]
OUTLETS = ["ANP", "De Telegraaf", "AD", "Trouw", "RTL Nieuws"]


def articles() -> tuple[list[dict], list[dict]]:
    """(existing, new): 20 newsqa-dev articles, and 60 others plus 140 outlet copies of them."""
    rows = [json.loads(line) for line in (NEWSQA / "articles.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    existing, originals = rows[::4], [r for i, r in enumerate(rows) if i % 4]
    new = []
    for n, original in enumerate(originals):
        new.append(original)
        for k in range(3 if n < 20 else 2):
            outlet = OUTLETS[(n + k) % len(OUTLETS)]
            paragraphs = original["text"].split("\n\n")
            text = "\n\n".join(paragraphs[:-1] if len(paragraphs) >= 3 else paragraphs) + " (ANP)"
            slug = outlet.lower().replace(" ", "")
            new.append({**original, "id": f"{original['id']}-{slug}", "source": outlet, "text": text,
                        "title": f"{original['title']} ({outlet})", "url": f"https://{slug}.example/{original['id']}"})
    return existing, new


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def prepare(cache: Path) -> dict:
    """The index with the existing and the new articles, and follow.sqlite having seen only the
    existing ones, built once into ``cache`` (embedding 200 articles takes minutes on 2 cores); the
    ingest's time and CPU are kept in ``cache/ingest.json``."""
    done = cache / "ingest.json"
    if done.exists():
        return json.loads(done.read_text())
    existing, new = articles()
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "existing.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in existing) + "\n", encoding="utf-8")
    (cache / "new.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in new) + "\n", encoding="utf-8")
    config = load_config(REPO / "config.yaml", environ={})
    config.corpus.paths = [str(cache / "existing.jsonl")]
    bron = Bron.open(config, cache / "data")
    bron.follow.set_briefing("telegram:0", "07:30", None, "nl")  # creates follow.sqlite: the 20 are the baseline
    cpu0, t0 = cpu(), time.perf_counter()
    report = bron.ingest([cache / "new.jsonl"])
    figures = {"ingest_s": round(time.perf_counter() - t0, 1), "ingest_cpu_s": round(cpu() - cpu0, 1),
               "new_articles": len(report.added_ids), "load_average": os.getloadavg()[0]}
    done.write_text(json.dumps(figures))
    return figures


async def run(chats: int, per_second: float, quota: int, cache: Path) -> dict:
    ingest = prepare(cache)
    work = Path(tempfile.mkdtemp(prefix="bron-push-"))
    shutil.copytree(cache / "data", work / "data")
    db = sqlite3.connect(work / "data" / "follow.sqlite", isolation_level=None)
    db.execute("DELETE FROM outbox")
    db.execute("DELETE FROM briefings")
    config = load_config(REPO / "config.yaml", environ={})
    config.corpus.paths = []
    config.follow.sends_per_second = per_second
    config.follow.max_pushes_per_hour = quota
    bron = await asyncio.to_thread(Bron.open, config, work / "data")
    await asyncio.to_thread(bron.library.rank, "warm-up", "nl")
    follow = bron.follow = Follow(bron.library.data_dir, bron.library, config)
    rng = random.Random(13)
    began = time.perf_counter()
    for c in range(chats):
        for topic, language in rng.sample(TOPICS, 3):
            follow.follow(f"telegram:{100_000 + c}", topic, language, "nl")
    subscribe_s = time.perf_counter() - began

    api = BotApiStandIn()
    await api.start()
    cfg = copy.deepcopy(config)
    cfg.telegram.token, cfg.telegram.base_url = api.token, api.base_url
    app = build_application(cfg, bron, work)
    await app.initialize()
    await app.post_init(app)  # type: ignore[misc]
    await app.start()
    await asyncio.sleep(0.5)  # the runner's first (empty) round
    # The new articles arrive: follow.sqlite forgets having seen them, as if the ingest had just happened.
    db.execute("DELETE FROM articles WHERE baseline = 0")
    follow._index = None  # noqa: SLF001 - and so does the follower's in-memory story index

    # What the ingest does after indexing (Bron._arrived): match the new articles and record the alerts.
    cpu0, t0 = cpu(), time.perf_counter()
    scan = await asyncio.to_thread(follow.scan)
    t_matched, cpu_matched = time.perf_counter(), cpu()
    recorded = dict(db.execute("SELECT chat, COUNT(*) FROM outbox WHERE kind = 'push' GROUP BY chat").fetchall())
    expected = sum(min(quota, n) for n in recorded.values())

    def pushes() -> list:
        return [s for s in api.sent if s.text.startswith("Nieuw over")]

    first = None
    while len(received := pushes()) < expected:
        if first is None and received:
            first = time.perf_counter()
        await asyncio.sleep(0.005)
    t_last, cpu_last = time.perf_counter(), cpu()
    await asyncio.sleep(1.0)  # anything more would be a duplicate
    received = pushes()
    await app.stop()
    await app.post_stop(app)  # type: ignore[misc]
    await app.shutdown()
    await api.stop()

    # Checks: exactly the recorded-and-sent rows arrived, once each; one story per chat; the hourly limit.
    rows = db.execute("SELECT chat, story, ref, state FROM outbox WHERE kind = 'push'").fetchall()
    sent_rows = [r for r in rows if r[3] == "sent"]
    refs = Counter(str(s.message_id) for s in received)
    story_of = dict(db.execute("SELECT id, story FROM articles").fetchall())
    per_chat_story = Counter((s.chat_id, story_of[int(s.button_data()[0].split(":")[1])]) for s in received)
    per_chat = Counter(s.chat_id for s in received)
    checks = {
        "received_equals_sent_rows": len(received) == len(sent_rows) == expected,
        "each_sent_row_received_once": all(refs[r[2]] == 1 for r in sent_rows) and len(refs) == len(sent_rows),
        "no_story_twice_in_a_chat": max(per_chat_story.values(), default=1) == 1,
        "hourly_limit_kept": max(per_chat.values(), default=0) <= quota,
    }
    states = Counter(r[3] for r in rows)
    new_ids = [i for i, in db.execute("SELECT id FROM articles WHERE baseline = 0")]
    return {
        "chats": chats, "subscriptions": chats * 3, "distinct_topics": len(TOPICS),
        "new_articles": scan.articles, "stories_among_them": len({story_of[i] for i in new_ids}),
        "ingest_embedding_s (once, cached)": ingest["ingest_s"], "ingest_embedding_cpu_s": ingest["ingest_cpu_s"],
        "subscribe_s": round(subscribe_s, 2),
        "match_s": round(t_matched - t0, 2), "match_cpu_s": round(cpu_matched - cpu0, 2),
        "alerts_recorded": len(rows), "chats_with_alerts": len(recorded),
        "alerts_sent": len(received), "held_by_hourly_limit": states.get("pending", 0),
        "first_push_s": round((first or t_last) - t0, 2),
        "ingest_end_to_last_push_s": round(t_last - t0, 2), "cpu_ingest_end_to_last_push_s": round(cpu_last - cpu0, 2),
        "send_s": round(t_last - t_matched, 2), "send_cpu_s": round(cpu_last - cpu_matched, 2),
        "sends_per_second_limit": per_second, "max_pushes_per_hour": quota,
        "checks": checks, "load_average": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--per-second", type=float, default=0.0, help="follow.sends_per_second (0: unpaced; Telegram allows ~30)")
    parser.add_argument("--quota", type=int, default=5, help="follow.max_pushes_per_hour")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "bron-push-cache"),
                        help="where the embedded index is kept between runs (delete it to measure the ingest again)")
    args = parser.parse_args()
    setup_logging("WARNING")
    print(json.dumps(asyncio.run(run(args.chats, args.per_second, args.quota, Path(args.cache))), indent=1))


if __name__ == "__main__":
    main()
