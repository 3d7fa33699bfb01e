"""Follow topics and briefings on the postgres backend: every Bron instance (bot worker, poller, CLI)
on one database shares the subscriptions, the briefing times, the articles seen and the outbox.

Each test uses two or three Bron instances, each with its own data directory (as on two machines),
so nothing is shared through the file system; one test uses processes killed with SIGKILL."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from bot.core import Bron
from bot.follow import Follow, FollowRunner, Outgoing
from bot.follow.models import BriefingSetting
from bot.follow.pg_store import PgFollowStore
from follow_support import Clock, write_articles
from support import REPO

pytestmark = pytest.mark.timeout(300)

# Tuesday 3 December 2024, 07:00 in Amsterdam.
MORNING = dt.datetime(2024, 12, 3, 6, 0, tzinfo=dt.timezone.utc)
WOLF_TITLE = "Wolf bijt schapen dood op de Veluwe"


@pytest.fixture
def clock() -> Clock:
    return Clock(MORNING)


@pytest.fixture
def instances(make_pg_bron: Callable[..., Bron], clock: Clock):
    """``instances(n)``: n Bron instances on one database, their alerts on the test clock."""
    made: list[Bron] = []

    def make(n: int) -> list[Bron]:
        for _ in range(n):
            bron = make_pg_bron(name=f"worker-{len(made)}")
            bron.follow = Follow(bron.library.data_dir, bron.library, bron.config, now=clock)
            made.append(bron)
        return made[-n:]

    yield make
    for bron in made:
        bron.follow.store.close()


class Outbox:
    """What a chat platform received, from every sender: (sender, kind, chat, article title or None)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, str, str | None]] = []

    def sender(self, name: str):
        async def send(item: Outgoing) -> str:
            await asyncio.sleep(0.05)  # a network round trip: the other sender claims meanwhile
            title = getattr(getattr(item.payload, "article", None), "title", None)
            self.received.append((name, item.kind, item.chat, title))
            return f"{name}-{item.id}"
        return send


async def deliver(*runners: FollowRunner) -> None:
    """Every runner's round at once (claims race in threads), twice: the second round finds nothing."""
    for _ in range(2):
        await asyncio.gather(*(r.round() for r in runners))


def test_a_topic_followed_on_one_worker_is_pushed_once_when_another_ingests(instances, tmp_path: Path) -> None:
    one, two = instances(2)
    assert isinstance(one.follow.store, PgFollowStore)
    one.follow.follow("telegram:1", "wolf", "nl", "nl")
    assert [s.topic for s in two.follow.subscriptions("telegram:1")] == ["wolf"]

    report = two.ingest([write_articles(tmp_path / "in", "wolf", "storm")])
    assert len(report.added_ids) == 2
    assert one.follow.counts() == {"pending": 1}, "the match is recorded once, seen by every instance"
    assert one.follow.scan().pushes == 0 and two.follow.scan().pushes == 0

    outbox = Outbox()
    runners = [FollowRunner(b.follow, "telegram", outbox.sender(name), per_second=0) for name, b in (("one", one), ("two", two))]
    asyncio.run(deliver(*runners))
    assert [(kind, chat, title) for _, kind, chat, title in outbox.received] == [("push", "telegram:1", WOLF_TITLE)]
    assert two.follow.counts() == {"sent": 1}


def test_two_senders_never_send_one_message_twice(instances, tmp_path: Path) -> None:
    """Many pushes for many chats, two workers claiming and sending at once: each delivered exactly once."""
    one, two = instances(2)
    chats = [f"telegram:{n}" for n in range(12)]
    for chat in chats:
        one.follow.follow(chat, "wolf", "nl", "nl")
        two.follow.follow(chat, "storm Zeeland", "nl", "nl")
    one.ingest([write_articles(tmp_path / "in", "wolf", "storm")])
    assert one.follow.counts() == {"pending": 24}

    outbox = Outbox()
    runners = [FollowRunner(b.follow, "telegram", outbox.sender(name), per_second=0) for name, b in (("one", one), ("two", two))]
    asyncio.run(deliver(*runners))
    delivered = [(chat, title) for _, _, chat, title in outbox.received]
    assert len(delivered) == 24 and len(set(delivered)) == 24
    assert set(delivered) == {(c, t) for c in chats for t in (WOLF_TITLE, "Storm raast over Zeeland")}
    assert two.follow.counts() == {"sent": 24}


def test_a_claimed_message_is_not_taken_from_a_living_sender_but_from_a_dead_one(instances, tmp_path: Path) -> None:
    one, two, three = instances(3)
    one.follow.follow("telegram:1", "wolf", "nl", "nl")
    one.ingest([write_articles(tmp_path / "in", "wolf")])
    [claimed] = one.follow.claim("telegram")
    # Another worker starts while the first is sending: it leaves that message alone.
    assert two.follow.recover("telegram") == 0 and two.follow.claim("telegram") == []
    # The first worker dies before the platform answered (its session drops): another sends it.
    one.follow.store.close()
    # The server ends the dead session (and frees its lock) a moment after the socket closes; under
    # load that moment can come after the next claim, which a worker simply repeats later.
    deadline = time.monotonic() + 15
    while not (found := two.follow.claim("telegram")) and time.monotonic() < deadline:
        time.sleep(0.2)
    [again] = found
    assert again.id == claimed.id and again.payload.article.title == WOLF_TITLE
    two.follow.sent(again.id, "m1")
    assert three.follow.recover("telegram") == 0 and three.follow.claim("telegram") == []
    assert three.follow.counts() == {"sent": 1}


def test_unfollow_on_another_worker_stops_the_pushes(instances, tmp_path: Path) -> None:
    one, two = instances(2)
    one.follow.follow("telegram:1", "stikstof", "nl", "nl")
    one.follow.follow("telegram:1", "wolf", "nl", "nl")
    one.follow.follow("telegram:1", "storm Zeeland", "nl", "nl")
    one.ingest([write_articles(tmp_path / "a", "stikstof")])
    assert one.follow.counts() == {"pending": 1}
    # /unfollow 1 and 2 through the other worker: the push waiting for topic 1 is dropped ...
    assert two.follow.unfollow("telegram:1", 1).topic == "stikstof"
    assert two.follow.unfollow("telegram:1", 1).topic == "wolf"
    assert [s.topic for s in one.follow.following("telegram:1").subscriptions] == ["storm Zeeland"]
    assert one.follow.claim("telegram") == []
    # ... and the worker that ingests next matches only the topic still followed.
    one.ingest([write_articles(tmp_path / "b", "wolf", "storm")])
    assert [o.payload.topic for o in one.follow.claim("telegram")] == ["storm Zeeland"]


def test_unfollow_while_another_worker_is_matching_records_no_push(instances, tmp_path: Path) -> None:
    """The topic is dropped after the ingesting worker read the subscriptions, before it recorded
    the pushes: none is recorded for it (the embedded store, one process, has no such window)."""
    one, two = instances(2)
    one.follow.follow("telegram:1", "wolf", "nl", "nl")
    one.follow.follow("telegram:2", "wolf", "nl", "nl")
    match = one.follow._match

    def unfollow_meanwhile(*args, **kwargs):
        found = match(*args, **kwargs)
        two.follow.unfollow("telegram:1", 1)
        return found

    one.follow._match = unfollow_meanwhile
    one.ingest([write_articles(tmp_path / "in", "wolf")])
    assert [o.chat for o in two.follow.claim("telegram")] == ["telegram:2"]
    assert two.follow.counts() == {"sending": 1}


def test_the_briefing_set_on_one_worker_is_made_once_with_duplicates_merged(instances, clock: Clock, tmp_path: Path) -> None:
    one, two, three = instances(3)
    assert one.follow.set_briefing("telegram:1", "8.00", None, "nl").at == "08:00"
    assert two.follow.briefing_setting("telegram:1") == BriefingSetting("telegram:1", "08:00", "Europe/Amsterdam")
    assert three.follow.following("telegram:1").briefing == BriefingSetting("telegram:1", "08:00", "Europe/Amsterdam")
    clock.advance(60)
    # Two outlets carry the same agency copy, ingested by two workers.
    two.ingest([write_articles(tmp_path / "a", "stikstof", "storm")])
    three.ingest([write_articles(tmp_path / "b", "stikstof_copy")])
    assert one.follow.due_briefings() == 0, "07:01: not yet"
    clock.set(dt.datetime(2024, 12, 3, 7, 1, tzinfo=dt.timezone.utc))  # 08:01 in Amsterdam
    assert sum(b.follow.due_briefings() for b in (one, two, three)) == 1, "every worker looks; one briefing"
    [message] = three.follow.claim("telegram")
    briefing = message.payload
    assert [item.outlets for item in briefing.items] == [["NOS", "NU.nl"], ["Omroep Zeeland"]]
    assert two.follow.briefing_off("telegram:1") and one.follow.briefing_setting("telegram:1") is None
    clock.advance(86400)
    assert one.follow.due_briefings() == 0, "turned off through another worker"


CHILD = """
import os, signal, sys
from pathlib import Path
from bot.config import load_config
from bot.core import Bron
import bot.follow.core as core

config = load_config(sys.argv[1], environ={"BRON_STORAGE_BACKEND": "postgres", "BRON_STORAGE_DSN": sys.argv[2]})
config.corpus.paths = []
bron = Bron.open(config, Path(sys.argv[3]))
real = core.payload_json

def die(payload):
    # kill -9 inside the transaction that records the pushes, after the articles' rows were written
    os.kill(os.getpid(), signal.SIGKILL)

core.payload_json = die if sys.argv[5] == "during" else real
bron.ingest([Path(sys.argv[4])])
os.kill(os.getpid(), signal.SIGKILL)  # "after": the pushes are recorded, never sent
"""


def test_an_ingesting_process_killed_during_or_after_matching_loses_and_duplicates_nothing(
    instances, pg_dsn: str, tmp_path: Path
) -> None:
    one, two = instances(2)
    one.follow.follow("telegram:1", "wolf", "nl", "nl")
    two.follow.follow("telegram:2", "storm Zeeland", "nl", "nl")
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def child(folder: Path, when: str) -> None:
        run = subprocess.run([sys.executable, str(script), str(REPO / "config.yaml"), pg_dsn, str(tmp_path / "child"),
                              str(folder), when], env=env, capture_output=True, text=True, timeout=240)
        assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
        for bron in (one, two):
            bron.library.refresh(force=True)

    child(write_articles(tmp_path / "a", "wolf"), "during")
    assert one.follow.counts() == {}, "killed before the commit: nothing recorded"
    # The next scan, by any worker's periodic check, finds the article unseen and matches it.
    assert two.follow.scan().pushes == 1 and one.follow.scan().pushes == 0
    child(write_articles(tmp_path / "b", "storm"), "after")
    assert one.follow.counts() == {"pending": 2}
    assert one.follow.scan().pushes == 0 and two.follow.scan().pushes == 0, "recorded once, not again"

    outbox = Outbox()
    runners = [FollowRunner(b.follow, "telegram", outbox.sender(name), per_second=0) for name, b in (("one", one), ("two", two))]
    asyncio.run(deliver(*runners))
    assert sorted((chat, title) for _, _, chat, title in outbox.received) == [
        ("telegram:1", WOLF_TITLE), ("telegram:2", "Storm raast over Zeeland")]


def test_a_schema_3_database_is_refused_until_upgraded(pg_server, encoders, tmp_path: Path) -> None:
    """Bron does not start on the schema before shared follow state; `bron db upgrade` adds it."""
    from bot.errors import DataDirError
    from embeddings.library import Library
    from embeddings.storage.postgres import MIGRATIONS, SCHEMA_VERSION, upgrade
    from pg_testserver import pg_config

    dsn = pg_server.create_database("bron_schema_3")
    with psycopg.connect(dsn, autocommit=True) as con:
        for number in (1, 2, 3):
            con.execute(MIGRATIONS[number])
        con.execute("INSERT INTO bron_meta VALUES ('schema', '3')")
    with pytest.raises(DataDirError, match=rf"schema 3, this Bron needs {SCHEMA_VERSION}; back it up, then run `bron db upgrade`"):
        Library.open(tmp_path / "d", pg_config(dsn), encoders=encoders)
    with psycopg.connect(dsn, autocommit=True) as con:
        assert con.execute("SELECT to_regclass('follow_outbox')").fetchone()[0] is None, "never migrated silently"
    assert upgrade(dsn) == (3, SCHEMA_VERSION)
    library = Library.open(tmp_path / "d", pg_config(dsn), encoders=encoders)
    assert library.store.db.query("SELECT count(*) FROM follow_outbox")[0][0] == 0
    library.store.db.close()


def test_bron_migrate_carries_the_followed_topics_over(make_bron, make_pg_bron, pg_dsn: str, tmp_path: Path, monkeypatch, capsys) -> None:
    """An embedded bot's chats keep their topics, briefing and waiting alert on the postgres backend."""
    from bot.cli import main

    embedded = make_bron()
    embedded.follow.follow("telegram:1", "wolf", "nl", "nl")
    embedded.follow.follow("telegram:1", "storm Zeeland", "nl", "nl")
    embedded.follow.set_briefing("telegram:1", "07:30", None, "nl")
    embedded.ingest([write_articles(tmp_path / "a", "storm")])
    assert embedded.follow.counts() == {"pending": 1}
    embedded.library.store.db.close()

    config_file = tmp_path / "config.yaml"
    config_file.write_text((REPO / "config.yaml").read_text(encoding="utf-8").replace("paths: [corpus]", f"paths: [{REPO / 'corpus'}]"))
    database = pg_dsn.rsplit("/", 1)[0] + "/bron_migrate_follow"
    with psycopg.connect(pg_dsn.rsplit("/", 1)[0] + "/postgres", autocommit=True) as con:
        con.execute('DROP DATABASE IF EXISTS "bron_migrate_follow" WITH (FORCE)')
        con.execute('CREATE DATABASE "bron_migrate_follow"')
    from embeddings.storage.postgres import upgrade

    upgrade(database)
    monkeypatch.setenv("BRON_STORAGE_DSN", database)
    argv = ["--config", str(config_file), "-q", "migrate", "--from", str(embedded.library.data_dir), "--to", "postgres"]
    assert main(argv) == 0
    assert "copied 2 followed topics, 1 briefings and 1 outbox messages" in capsys.readouterr().out

    pg = make_pg_bron(name="after", dsn=database)
    assert isinstance(pg.follow.store, PgFollowStore)
    following = pg.follow.following("telegram:1")
    assert [s.topic for s in following.subscriptions] == ["wolf", "storm Zeeland"]
    assert following.briefing == BriefingSetting("telegram:1", "07:30", "Europe/Amsterdam")
    [waiting] = pg.follow.claim("telegram")
    assert waiting.payload.topic == "storm Zeeland"
    # The articles seen came along (the storm is not new), and new ones are matched.
    pg.ingest([write_articles(tmp_path / "b", "storm", "wolf")])
    assert [o.payload.topic for o in pg.follow.claim("telegram")] == ["wolf"]
    assert pg.follow.follow("telegram:1", "stikstof", "nl", "nl").number == 3
    pg.follow.store.close()
