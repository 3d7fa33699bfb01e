"""Topic alerts and briefings in the core: near-duplicate stories, the outbox's exactly-once rules
(also across kill -9), schedules, and ``Library.rank(within=...)``; no chat platform involved."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import load_config
from bot.core import Bron
from bot.errors import ConfigError
from bot.follow import Follow
from bot.follow.core import latest_occurrence, parse_time
from bot.follow.stories import StoryIndex
from bot.render_follow import render_briefing, render_push
from follow_support import ARTICLES, Clock, write_articles
from support import REPO

pytestmark = pytest.mark.timeout(180)

MORNING = dt.datetime(2024, 12, 3, 6, 0, tzinfo=dt.timezone.utc)


def body(name: str) -> str:
    return ARTICLES[name].split("---\n", 2)[2]


def test_near_duplicates_from_other_outlets_are_one_story() -> None:
    index = StoryIndex()
    for article_id, name in enumerate(("stikstof", "storm", "stikstof_copy", "wolf"), 1):
        index.add(index.find(article_id, body(name)))
    assert [index.story_of(i) for i in (1, 2, 3, 4)] == [1, 2, 1, 4]
    # Same agency lede, other body: the same story; a rewritten body with the same facts is not.
    lede = body("stikstof").split("\n\n")[0] + "\n\nEen heel ander verhaal over het weer, de files en de politiek in Den Haag vandaag."
    assert index.find(5, lede).story == 1
    other = "Boeren in Friesland zijn boos over de stikstofregels. Zij rijden woensdag naar Leeuwarden om daar te demonstreren."
    assert index.find(6, other).story == 6


def test_times_and_schedules() -> None:
    assert parse_time("7:30") == (7, 30) and parse_time("07.05") == (7, 5) and parse_time("23:59") == (23, 59)
    assert parse_time("24:00") is None and parse_time("7:3") is None and parse_time("morgen") is None
    at_0731 = dt.datetime(2024, 12, 3, 6, 31, tzinfo=dt.timezone.utc).timestamp()  # 07:31 in Amsterdam (CET)
    assert latest_occurrence("07:30", "Europe/Amsterdam", at_0731) == at_0731 - 60
    assert latest_occurrence("07:30", "Europe/Amsterdam", at_0731 - 120) == at_0731 - 60 - 86400
    # Summer time: 07:30 in Amsterdam is 05:30 UTC.
    summer = dt.datetime(2024, 7, 1, 5, 30, tzinfo=dt.timezone.utc).timestamp()
    assert latest_occurrence("07:30", "Europe/Amsterdam", summer + 1) == summer


def test_follow_config_is_validated() -> None:
    config = load_config(REPO / "config.yaml", environ={})
    assert config.follow.max_pushes_per_hour == 5 and config.follow.timezone == "Europe/Amsterdam"
    for key, value, message in (
        ("BRON_FOLLOW_MAX_PUSHES_PER_HOUR", "0", "greater than 0"),
        ("BRON_FOLLOW_TIMEZONE", "Mars/Olympus", "not a time zone"),
        ("BRON_FOLLOW_SENDS_PER_SECOND", "-1", "0 or more"),
        ("BRON_FOLLOW_BRIEFING_ITEMS", "many", "expected int"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_config(REPO / "config.yaml", environ={key: value})


def test_rank_within_scores_only_the_new_articles_and_ingest_reports_ids(make_bron: Callable[..., Bron], tmp_path: Path) -> None:
    bron = make_bron()
    report = bron.ingest([write_articles(tmp_path / "in", "wolf", "storm")])
    assert len(report.added_ids) == 2 and not report.updated_ids
    wolf = next(a.id for a in bron.library.articles() if a.title.startswith("Wolf"))
    storm = next(i for i in report.added_ids if i != wolf)
    # The storm article answers best overall, but only the wolf article is searched.
    ranked = bron.library.rank("Hoe hard waaide het in Vlissingen?", "nl", top_k=5, within=[wolf])
    assert ranked and {p.article.id for p in ranked} == {wolf}
    assert bron.library.rank("Hoe hard waaide het in Vlissingen?", "nl", top_k=5)[0].article.id == storm
    assert bron.library.rank("wolf", "nl", within=[]) == []
    (tmp_path / "in" / "wolf.md").write_text(ARTICLES["wolf"].replace("zes schapen", "zeven schapen"), encoding="utf-8")
    again = bron.ingest([tmp_path / "in"])
    assert again.updated_ids == [wolf] and not again.added_ids


def test_outbox_rules(make_bron: Callable[..., Bron], tmp_path: Path) -> None:
    clock = Clock(MORNING)
    bron = make_bron(follow_max_pushes_per_hour=2)
    follow = bron.follow = Follow(bron.library.data_dir, bron.library, bron.config, now=clock)
    follow.follow("telegram:1", "wolf", "nl", "nl")
    follow.follow("telegram:1", "storm Zeeland", "nl", "nl")
    follow.follow("telegram:1", "stikstof", "nl", "nl")
    follow.follow("matrix:!room:x", "wolf", "nl", "en")
    bron.ingest([write_articles(tmp_path / "in", "wolf", "storm", "stikstof")])
    assert follow.counts() == {"pending": 4}
    assert [o.chat for o in follow.claim("matrix")] == ["matrix:!room:x"]
    taken = follow.claim("telegram")
    assert len(taken) == 2, "two pushes an hour"
    # The process dies while sending: at start-up the claimed ones go back to the queue, once.
    assert follow.recover("telegram") == 2 and follow.recover("telegram") == 0
    taken = follow.claim("telegram")
    assert len(taken) == 2 and not follow.claim("telegram")
    follow.sent(taken[0].id, "m1")
    follow.failed(taken[1].id, "network", retry=True)
    # The failed one waits a little before its retry; meanwhile the hour has room for the third.
    third = follow.claim("telegram")
    assert len(third) == 1 and third[0].id not in (taken[0].id, taken[1].id)
    follow.sent(third[0].id, "m3")
    clock.advance(5)
    assert not follow.claim("telegram"), "the retry is due, but two went out this hour"
    clock.advance(3600)
    # Unfollowing the topic drops the push still waiting.
    number = next(s.number for s in follow.subscriptions("telegram:1") if taken[1].payload.topic == s.topic)
    follow.unfollow("telegram:1", number)
    assert not follow.claim("telegram")
    clock.advance(-3600)
    # Rendering: one message, quote, source and link; the summary command on Matrix and the terminal.
    push = render_push(taken[0].payload, "nl", "html")
    assert push.count("<blockquote><b>") == 1 and 'href="https://' in push
    assert "Samenvatting: !summary" in render_push(taken[0].payload, "nl", "text", summary_cmd=f"!summary {taken[0].payload.article.id}")
    # Briefings: one per due time, whatever process makes it.
    follow.set_briefing("telegram:1", "08:00", None, "nl")
    clock.set(dt.datetime(2024, 12, 3, 7, 1, tzinfo=dt.timezone.utc))  # 08:01 in Amsterdam
    assert follow.due_briefings() == 1 and follow.due_briefings() == 0
    briefing = follow.claim("telegram")[0].payload
    assert len(briefing.items) == 3 and render_briefing(briefing, "en", "text")[0].startswith("Briefing of 3 December 2024, 08:00")


CHILD = """
import os, signal, sys
from pathlib import Path
from bot.config import load_config
from bot.core import Bron
import bot.follow.core as core

config = load_config(sys.argv[1], environ={})
config.corpus.paths = []
bron = Bron.open(config, Path(sys.argv[2]))
real = core.payload_json

def die(payload):
    # kill -9 inside the transaction that records the pushes, after the articles' rows were written
    os.kill(os.getpid(), signal.SIGKILL)

core.payload_json = die if sys.argv[4] == "during" else real
bron.ingest([Path(sys.argv[3])])
os.kill(os.getpid(), signal.SIGKILL)  # "after": the pushes are recorded, never sent
"""


def test_kill_9_during_and_after_matching_loses_and_duplicates_nothing(make_bron: Callable[..., Bron], tmp_path: Path) -> None:
    bron = make_bron()
    data = bron.library.data_dir
    bron.follow.follow("telegram:1", "wolf", "nl", "nl")
    bron.follow.follow("telegram:1", "storm Zeeland", "nl", "nl")
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def child(folder: Path, when: str) -> None:
        run = subprocess.run([sys.executable, str(script), str(REPO / "config.yaml"), str(data), str(folder), when],
                             env=env, capture_output=True, text=True, timeout=150)
        assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
        bron.library.refresh(force=True)  # see the child's snapshot now, not after the 2 s re-read interval

    child(write_articles(tmp_path / "a", "wolf"), "during")
    assert bron.follow.counts() == {}, "killed before the commit: nothing recorded"
    # The next scan (the bot's periodic check) finds the article unseen and matches it.
    assert bron.follow.scan().pushes == 1 and bron.follow.scan().pushes == 0
    child(write_articles(tmp_path / "b", "storm"), "after")
    assert bron.follow.counts() == {"pending": 2}
    assert bron.follow.scan().pushes == 0, "recorded once, not again"
    assert sorted(o.payload.article.title for o in bron.follow.claim("telegram")) == [
        "Storm raast over Zeeland", "Wolf bijt schapen dood op de Veluwe"]


def test_alerts_and_briefings_fit_a_telegram_message_and_escape_everything() -> None:
    from bot.follow.models import Briefing, BriefingItem, Push
    from bot.models import ArticleInfo
    from bot.render import length
    from standin import parse_html

    nasty = ArticleInfo(3, "<script>alert(1)</script> & " + "😀" * 300, "Dagblad <Noord> & co", "2024-12-03",
                        "https://example.org/a?x=1&y=<2>", "nl")
    other = ArticleInfo(4, "Kopie", "Krant \"Zuid\"", None, "javascript:alert(1)", "nl")
    push = Push("<b>stikstof</b> & " + "😀" * 200, "😀 " * 1500 + "<i>einde</i>", nasty, 0.9)
    html_push = render_push(push, "nl", "html")
    assert length(html_push) <= 4096 and "<script>" not in html_push
    parse_html(html_push)  # raises where Telegram would refuse the markup
    items = [BriefingItem("Zin <b>" + "😀" * 900, nasty, [other] * 3) for _ in range(5)]
    parts = render_briefing(Briefing(0.0, 1733300000.0, "Europe/Amsterdam", items), "nl", "html")
    for part in parts:
        assert length(part) <= 4096
        text = parse_html(part)
    assert "javascript:" not in "".join(parts) and "Ook bij: Krant &quot;Zuid&quot;" in "".join(parts)
    assert text
