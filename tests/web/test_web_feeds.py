"""RSS and Atom feeds, and the ``bron feeds`` / ``ingest URL`` / ``articles`` / ``remove`` commands."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

import bot.cli as cli
from bot.core import Bron
from bot.errors import FetchFailed
from embeddings.feeds import FeedError, poll, poll_every
from web.newsite import Site

REPO = Path(__file__).resolve().parents[2]


def test_feeds_bring_new_articles_once_and_updates_replace_them(web_bron: Callable[..., Bron], site: Site) -> None:
    site.feed_items[:] = ["d017", "d069"]
    bron = web_bron()
    rss, atom = site.url("/feeds/news.rss"), site.url("/feeds/news.atom")
    assert bron.add_feed(rss).title == "Nieuwsdienst"
    assert bron.add_feed(atom).title == "Nieuwsdienst (Atom)"
    with pytest.raises(FetchFailed, match="not a supported page type"):
        bron.add_feed(site.page_url("d001"))
    assert [f.url for f in bron.feeds()] == [rss, atom]

    first = bron.poll_feeds()
    titles = {site.articles[i]["title"] for i in ("d017", "d069")}
    assert set(first.report.added) == titles, "items in both feeds are one article each"
    assert first.fetched == 2 and not first.report.skipped
    urls = {a.url for a in bron.library.articles()}
    assert {site.page_url("d017"), site.page_url("d069")} <= urls, "cited by canonical URL, not the feed's tracking link"
    date = next(a.date for a in bron.library.articles() if a.url == site.page_url("d069"))
    assert date == "2023-08-26"

    site.requests.clear()
    again = asyncio.run(poll(bron.web))
    assert again.fetched == 0 and again.seen_before == 4 and not again.report.changed
    assert not any(p.startswith("/news/") for p in site.paths_requested()), "seen items are not fetched again"

    site.overrides["d069"] = {"text": site.articles["d069"]["text"].replace("Falcon 9", "Falcon Heavy")}
    site.updated["d069"] = datetime(2023, 8, 27, 9, 0, tzinfo=timezone.utc).isoformat()
    site.feed_items.append("d046")
    third = bron.poll_feeds()
    assert third.report.added == [site.articles["d046"]["title"]]
    assert third.report.updated == [site.articles["d069"]["title"]], "a changed item replaces its article"
    assert len(bron.library.articles()) == 4
    answer = bron.answer("Which rocket launched the Crew-7 astronauts?", "t")
    assert "Falcon Heavy" in answer.passages[0].text

    assert bron.remove_feed(atom) and [f.url for f in bron.feeds()] == [rss]
    assert len(bron.library.articles()) == 4, "removing a feed keeps its articles"


def test_feed_faults_are_reported_and_config_feeds_are_polled(web_bron: Callable[..., Bron], site: Site) -> None:
    bron = web_bron(feeds_urls=f"{site.url('/feeds/news.rss')},{site.url('/feeds/gone.rss')}")
    site.feed_items[:] = ["d017", "d999"]  # d999: the item's page is a 404
    report = bron.poll_feeds()
    reasons = dict(report.report.skipped)
    assert reasons[site.url("/feeds/gone.rss")] == "HTTP 404 Not Found"
    assert "HTTP 404" in reasons[site.page_url("d999") + "?utm_source=rss"]
    assert report.report.added == [site.articles["d017"]["title"]]
    assert {f.url: f.from_config for f in bron.feeds()} == {site.url("/feeds/news.rss"): True, site.url("/feeds/gone.rss"): True}
    with pytest.raises(FeedError, match="config.yaml"):
        bron.remove_feed(site.url("/feeds/news.rss"))

    site.requests.clear()
    for _ in range(3):
        bron.poll_feeds()
    assert site.paths_requested().count("/news/d999.html") == 2, "a failing item is retried, but not forever"


@pytest.mark.timeout(120)
async def test_poll_every_runs_in_the_background_until_stopped(web_bron: Callable[..., Bron], site: Site) -> None:
    bron = await asyncio.to_thread(web_bron)
    site.feed_items[:] = []
    await asyncio.to_thread(bron.add_feed, site.url("/feeds/news.atom"))
    stop = asyncio.Event()
    task = asyncio.create_task(poll_every(bron.web, 1, stop))
    while site.paths_requested().count("/feeds/news.atom") < 2:  # the first was add_feed's check
        await asyncio.sleep(0.05)  # the event loop stays free while the poll runs in a thread
    stop.set()
    await asyncio.wait_for(task, 10)
    assert bron.feeds()[0].last_poll is not None


def test_cli_ingest_urls_feeds_articles_remove(web_bron: Callable[..., Bron], site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    bron = web_bron()
    monkeypatch.setattr(cli, "open_bron", lambda args, config: bron)  # the CLI on a Bron with shared models

    def run(*argv: str) -> tuple[int, str]:
        code = cli.main(["--config", str(REPO / "config.yaml"), "-q", *argv])
        return code, capsys.readouterr().out

    code, out = run("ingest", site.page_url("d046"), site.url("/missing.html"))
    assert code == 0 and out.startswith("added 1, updated 0, removed 0, unchanged 0, skipped 1")
    assert f"skipped {site.url('/missing.html')}: HTTP 404 Not Found" in out

    code, out = run("articles")
    line = out.strip().splitlines()[-1].split("\t")
    assert line[:4] == ["2", site.articles["d046"]["title"], "The Independent", "2025-11-06"] and line[4].endswith("chunks")

    site.feed_items[:] = ["d046"]
    assert run("feeds", "add", site.url("/feeds/news.rss"))[0] == 0
    code, out = run("feeds", "poll")
    assert code == 0 and "polled 1 feeds: 1 new or changed items" in out and "unchanged 1" in out
    code, out = run("feeds", "list")
    assert out.startswith(f"{site.url('/feeds/news.rss')}\tNieuwsdienst\tadded\t1 articles\tlast poll 20")
    assert run("feeds", "remove", site.url("/feeds/news.rss"))[0] == 0
    assert run("feeds", "remove", site.url("/feeds/news.rss"))[0] == 1

    code, out = run("remove", "2")
    assert code == 0 and out.startswith("removed [2]")
    assert len(run("articles")[1].strip().splitlines()) == 1
