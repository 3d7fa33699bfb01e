"""Topic alerts and briefings in Telegram: python-telegram-bot against the Bot API stand-in, articles
from the local news site's feed or from files, and a clock the tests move instead of sleeping."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from telegram.ext import Application

from bot.core import Bron
from bot.follow import Follow
from bot.ops import Ops
from follow_support import SITE_IDS, Clock, as_site_article, write_articles
from standin import ANNA, BOB, BotApiStandIn
from web.newsite import NewsSite, Site

pytestmark = pytest.mark.timeout(150)

StartBot = Callable[..., Awaitable[Application]]
# Tuesday 3 December 2024, 07:00 in Amsterdam.
MORNING = dt.datetime(2024, 12, 3, 6, 0, tzinfo=dt.timezone.utc)
FAST_FETCH = {"fetch_timeout": 2, "fetch_max_bytes": 1_000_000, "fetch_concurrency": 3}


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    """The local news site, serving the follow articles (and newsqa-dev) with an RSS feed."""
    with NewsSite(Site()) as running:
        for name in SITE_IDS:
            article = as_site_article(name)
            running.articles[article["id"]] = article
        running.feed_items[:] = []
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock(MORNING)


@pytest.fixture
def follow_bron(make_bron: Callable[..., Bron], clock: Clock) -> Callable[..., Bron]:
    """A fresh Bron (seed corpus) whose alerts run on the test clock; keyword overrides as make_bron."""

    def make(**overrides: object) -> Bron:
        bron = make_bron(**{**FAST_FETCH, **overrides})
        bron.follow = Follow(bron.library.data_dir, bron.library, bron.config, now=clock)
        return bron

    return make


async def command(api: BotApiStandIn, who: dict, text: str) -> str:
    """Send a command in the user's private chat and return the text of the bot's reply."""
    before = len(api.sent_to(who["id"]))
    api.send_text(who, text)
    return (await api.wait_sent(who["id"], after=before))[0].text


def pushes(api: BotApiStandIn, chat_id: int) -> list:
    return [s for s in api.sent_to(chat_id) if "Nieuw over" in s.text or "New on" in s.text]


async def marked_sent(bron: Bron, count: int) -> None:
    """Wait until the outbox has marked ``count`` messages sent (the stand-in may have them a moment before)."""
    for _ in range(1000):
        if bron.follow.counts().get("sent", 0) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"outbox: {bron.follow.counts()}")


async def settle(app: Application) -> None:
    """One more round of the alert runner: whatever it would send has been sent when this returns (also
    what the runner's own periodic round, running beside it, took)."""
    runner = app.bot_data["follow_runner"]
    await runner.round()
    for _ in range(1000):
        if not runner.follow.counts().get("sending"):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"outbox: {runner.follow.counts()}")


async def test_feed_item_answering_a_followed_topic_is_pushed_once(
    api: BotApiStandIn, start_bot: StartBot, follow_bron, site: Site, tmp_path: Path
) -> None:
    bron = await asyncio.to_thread(follow_bron)
    ops = Ops()
    app = await start_bot(bron, ops=ops)
    assert (await command(api, ANNA, "/follow stikstof boeren")).startswith("Je volgt nu: stikstof boeren")
    assert "1. stikstof boeren" in await command(api, ANNA, "/following")
    await command(api, BOB, "/follow storm")  # another chat, another topic

    site.feed_items[:] = [SITE_IDS["stikstof"], SITE_IDS["wolf"]]
    await asyncio.to_thread(bron.add_feed, site.url("/feeds/news.rss"))
    await asyncio.to_thread(bron.poll_feeds)
    push = (await api.wait_until(ANNA["id"], lambda sent: len(pushes(api, ANNA["id"])) == 1))[-1]
    article = next(a for a in bron.library.articles() if a.url == site.page_url(SITE_IDS["stikstof"]))
    assert push.text.startswith("Nieuw over „stikstof boeren”:")
    quoted = push.html.split("<blockquote><b>", 1)[1].split("</b></blockquote>", 1)[0]
    assert "stikstof" in html.unescape(quoted) and html.unescape(quoted) in bron.library.article_text(article.id)
    assert f'<a href="{site.page_url(SITE_IDS["stikstof"])}">' in push.html
    assert "NOS, 2024-12-03" in push.text and "Duizenden boeren met trekkers naar Den Haag" in push.text
    assert push.button_data() == [f"sum:{article.id}"]

    # The same story from a second outlet, and a story nobody follows: no message.
    site.feed_items[:] = [SITE_IDS["stikstof_copy"], SITE_IDS["storm"]]
    report = await asyncio.to_thread(bron.poll_feeds)
    assert len(report.report.added) == 2
    bob_push = (await api.wait_until(BOB["id"], lambda sent: len(pushes(api, BOB["id"])) == 1))[-1]
    assert "Storm raast over Zeeland" in bob_push.text and "Omroep Zeeland" in bob_push.text
    await settle(app)
    assert len(pushes(api, ANNA["id"])) == 1 and len(pushes(api, BOB["id"])) == 1
    await marked_sent(bron, 2)
    assert bron.follow.counts() == {"sent": 2}
    counted = ops.metrics.registry.get_sample_value
    assert counted("bron_follow_messages_total", {"platform": "telegram", "kind": "push", "outcome": "sent"}) == 2

    # The button under the push gives the article's summary.
    before = len(api.sent_to(ANNA["id"]))
    api.press(ANNA, push, f"sum:{article.id}")
    summary = (await api.wait_sent(ANNA["id"], after=before))[0]
    assert summary.text.startswith("Samenvatting van") and "Den Haag" in summary.text


async def test_rate_limit_holds_pushes_until_the_hour_is_over(
    api: BotApiStandIn, start_bot: StartBot, follow_bron, clock: Clock, tmp_path: Path
) -> None:
    bron = await asyncio.to_thread(follow_bron, follow_max_pushes_per_hour=1)
    app = await start_bot(bron)
    await command(api, ANNA, "/follow wolf")
    await command(api, ANNA, "/follow storm Zeeland")
    await asyncio.to_thread(bron.ingest, [write_articles(tmp_path / "in", "wolf", "storm")])
    await api.wait_until(ANNA["id"], lambda sent: len(pushes(api, ANNA["id"])) == 1)
    await marked_sent(bron, 1)  # sent at 07:00 by the test clock
    clock.advance(3000)
    await settle(app)
    assert len(pushes(api, ANNA["id"])) == 1, "one push per hour"
    clock.advance(700)  # the first push is now more than an hour old
    await settle(app)
    first, second = pushes(api, ANNA["id"])
    assert {"Wolf bijt schapen dood" in first.text, "Wolf bijt schapen dood" in second.text} == {True, False}
    assert "Storm raast over Zeeland" in first.text + second.text


async def test_unfollow_stops_pushes(api: BotApiStandIn, start_bot: StartBot, follow_bron, tmp_path: Path) -> None:
    bron = await asyncio.to_thread(follow_bron)
    app = await start_bot(bron)
    await command(api, ANNA, "/follow wolf")
    await command(api, ANNA, "/follow stikstof")
    assert (await command(api, ANNA, "/unfollow 1")) == "Je volgt niet meer: wolf"
    assert "Er is geen onderwerp 7" in await command(api, ANNA, "/unfollow 7")
    assert (await command(api, ANNA, "/unfollow")).startswith("Je volgt:\n1. stikstof\nStoppen: /unfollow NUMMER")
    listed = await command(api, ANNA, "/following")
    assert "1. stikstof" in listed and "wolf" not in listed
    await asyncio.to_thread(bron.ingest, [write_articles(tmp_path / "in", "wolf")])
    await settle(app)
    assert not pushes(api, ANNA["id"])


async def test_restart_between_ingest_and_push_still_pushes_exactly_once(
    api: BotApiStandIn, start_bot: StartBot, follow_bron, tmp_path: Path
) -> None:
    bron = await asyncio.to_thread(follow_bron)
    app = await start_bot(bron)
    await command(api, ANNA, "/follow wolf")
    await app.updater.stop()  # the bot goes down ...
    await app.stop()
    await app.post_stop(app)
    await app.shutdown()
    # ... an ingest in another process (bron ingest) records the match in the outbox ...
    other = Follow(bron.library.data_dir, bron.library, bron.config, now=bron.follow.now)
    bron.follow = other
    await asyncio.to_thread(bron.ingest, [write_articles(tmp_path / "in", "wolf")])
    assert other.counts() == {"pending": 1}
    # ... and the bot that starts again sends it, once.
    again = await start_bot(bron)
    await api.wait_until(ANNA["id"], lambda sent: len(pushes(api, ANNA["id"])) == 1)
    await settle(again)
    await asyncio.to_thread(bron.ingest, [write_articles(tmp_path / "in", "wolf", "storm")])
    await settle(again)
    await marked_sent(bron, 1)
    assert len(pushes(api, ANNA["id"])) == 1 and other.counts() == {"sent": 1}


async def test_briefing_at_its_time_merges_stories_from_several_outlets(
    api: BotApiStandIn, start_bot: StartBot, follow_bron, clock: Clock, tmp_path: Path
) -> None:
    bron = await asyncio.to_thread(follow_bron)
    app = await start_bot(bron)
    assert "Elke dag om 07:30 (Europe/Amsterdam)" in await command(api, ANNA, "/briefing 7:30")
    assert "07:30 (Europe/London)" in await command(api, BOB, "/briefing 07:30 Europe/London")
    assert "ken ik niet" in await command(api, ANNA, "/briefing 07:30 Mars/Olympus")
    await asyncio.to_thread(bron.ingest, [write_articles(tmp_path / "in", "storm", "stikstof", "stikstof_copy", "wolf")])
    clock.advance(29 * 60)  # 07:29 in Amsterdam
    await settle(app)
    assert len(api.sent_to(ANNA["id"])) == 2, "no briefing before its time"
    clock.advance(2 * 60)  # 07:31
    await settle(app)
    briefing = api.sent_to(ANNA["id"])[-1]
    text = briefing.text
    assert text.startswith("Briefing van 3 december 2024, 07:30")
    # The story two outlets carried comes first, once, with both outlets; then the others.
    assert text.index("Duizenden boeren zijn dinsdag") < text.index("Een zware storm") and "Op de Veluwe" in text
    assert text.count("Duizenden boeren zijn dinsdag") == 1 and "Ook bij: NU.nl" in text
    assert "<b>Duizenden boeren zijn dinsdag met hun trekkers naar Den Haag gereden" in briefing.html
    assert len(briefing.button_data()) == 3
    await settle(app)
    assert len(api.sent_to(ANNA["id"])) == 3, "one briefing a day"
    assert len(api.sent_to(BOB["id"])) == 1, "Bob's 07:30 is an hour later"
    clock.advance(3600)
    await settle(app)
    assert api.sent_to(BOB["id"])[-1].text.startswith("Briefing of 3 December 2024, 07:30")
    assert (await command(api, ANNA, "/briefing off")) == "De dagelijkse briefing is uitgezet."
    clock.advance(86400)
    await settle(app)
    assert len(api.sent_to(ANNA["id"])) == 4
