"""Feeds with the postgres backend: their state in the database, shared by every process, and one
poller at a time that another process replaces when it dies (even mid-poll)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest

from service import free_port, service_env, start_service, wait_exit
from web.newsite import NewsSite, Site, load_articles


@pytest.fixture(scope="module")
def news_site():
    with NewsSite(Site(articles=load_articles())) as site:
        yield site


@pytest.fixture
def site(news_site: Site) -> Site:
    news_site.overrides.clear()
    news_site.updated.clear()
    news_site.requests.clear()
    news_site.feed_items[:] = ["d017", "d069"]
    return news_site


# The pollers' schedule in this test (the standbys try to take over every STANDBY_SECONDS).
POLL_SECONDS = 6.0


def _pages(site: Site) -> list[str]:
    return [p for p in site.paths_requested() if p.startswith("/news/")]


def test_feed_state_is_shared_and_items_are_ingested_once(make_pg_bron, site):
    one, two = make_pg_bron(name="one"), make_pg_bron(name="two")
    rss = site.url("/feeds/news.rss")
    assert one.add_feed(rss).title == "Nieuwsdienst"
    assert [f.url for f in two.feeds()] == [rss], "a feed added through one process is polled by all"
    assert not (one.library.data_dir / "feeds.json").exists()

    first = one.poll_feeds()
    assert set(first.report.added) == {site.articles[i]["title"] for i in ("d017", "d069")}
    site.requests.clear()
    again = two.poll_feeds()
    assert again.fetched == 0 and again.seen_before == 2 and not again.report.changed
    assert not _pages(site), "items another process ingested are not fetched again"
    assert [f.items_seen for f in two.feeds()] == [2]

    site.overrides["d069"] = {"text": site.articles["d069"]["text"].replace("Falcon 9", "Falcon Heavy")}
    site.updated["d069"] = datetime(2023, 8, 27, 9, 0, tzinfo=timezone.utc).isoformat()
    site.feed_items.append("d046")
    third = two.poll_feeds()
    assert third.report.added == [site.articles["d046"]["title"]]
    assert third.report.updated == [site.articles["d069"]["title"]]
    assert "Falcon Heavy" in one.answer("Which rocket launched the Crew-7 astronauts?", "t").passages[0].text

    assert two.remove_feed(rss) and one.feeds() == []


def test_a_poll_that_died_before_saving_its_state_ingests_nothing_twice(make_pg_bron, site, monkeypatch):
    import embeddings.storage.pg_feeds as pg_feeds

    bron = make_pg_bron()
    bron.add_feed(site.url("/feeds/news.rss"))
    before = bron.library.count()

    def crash(*args):
        raise RuntimeError("the poller died here")

    with monkeypatch.context() as patched:
        patched.setattr(pg_feeds, "_write", crash)
        with pytest.raises(RuntimeError):
            bron.poll_feeds()  # the articles were committed, the feed state was not
    assert bron.library.count() == before + 2
    retry = bron.poll_feeds()
    assert retry.fetched == 2 and not retry.report.added and not retry.report.updated and retry.report.unchanged == 2
    assert bron.library.count() == before + 2
    assert [f.items_seen for f in bron.feeds()] == [2]


def test_a_slow_poll_survives_a_server_that_ends_idle_transactions(make_pg_bron, pg_dsn):
    """The poll's state transaction sits idle while pages are fetched; a server-wide
    idle_in_transaction_session_timeout shorter than that must not lose the poll's state."""
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {admin.info.dbname} SET idle_in_transaction_session_timeout = '300ms'")
    slow = _HeldPages(articles=load_articles(), feed_items=["d017", "d069"])
    slow.released = threading.Event()
    with NewsSite(slow) as site:
        bron = make_pg_bron()
        bron.add_feed(site.url("/feeds/news.rss"))
        threading.Timer(1.5, slow.released.set).start()  # the pages take 1.5 s
        report = bron.poll_feeds()
        assert len(report.report.added) == 2
        assert [f.items_seen for f in bron.feeds()] == [2]


def test_one_process_holds_the_pollers_lease_until_its_connection_drops(pg_dsn):
    from embeddings.storage.pg_feeds import PgPollLease
    from embeddings.storage.postgres import PgDatabase

    first, second = PgPollLease(PgDatabase(pg_dsn)), PgPollLease(PgDatabase(pg_dsn))
    try:
        assert first.hold() and first.hold()
        assert not second.hold()
        with psycopg.connect(pg_dsn, autocommit=True) as admin:  # the holder's session ends as if it died
            admin.execute("SELECT pg_terminate_backend(%s)", (first._con.info.backend_pid,))
        deadline = time.monotonic() + 10
        while not second.hold():
            assert time.monotonic() < deadline, "the lease was never taken over"
            time.sleep(0.1)
        assert not first.hold(), "the former holder knows it lost the lease"
        second.release()
        assert first.hold()
    finally:
        first.release()
        second.release()


def _connected(dsn: str) -> set[str]:
    """The application names of the pollers connected to the database."""
    with psycopg.connect(dsn, autocommit=True) as con:
        rows = con.execute("SELECT DISTINCT application_name FROM pg_stat_activity WHERE application_name LIKE 'poller-%'")
        return {r[0] for r in rows}


class _HeldPages(Site):
    """The news site, but article pages wait until ``released`` is set: a poll stays in the middle."""

    released: threading.Event

    def render_article(self, ident: str, canonical: bool = True) -> str:
        self.released.wait(60)
        return super().render_article(ident, canonical)


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_one_poller_polls_and_another_takes_over_when_it_is_killed_mid_poll(make_pg_bron, pg_dsn, tmp_path: Path):
    held = _HeldPages(articles=load_articles(), feed_items=["d017", "d069", "d046"])
    held.released = threading.Event()
    held.released.set()
    with NewsSite(held) as site:
        bron = make_pg_bron()
        bron.add_feed(site.url("/feeds/news.rss"))
        before = bron.library.count()
        pollers = {}
        for name in ("A", "B"):
            env = service_env(tmp_path / name, free_port(), BRON_STORAGE_BACKEND="postgres",
                              BRON_STORAGE_DSN=f"{pg_dsn}?application_name=poller-{name}",
                              BRON_FETCH_USER_AGENT=f"Bron-poller-{name}")
            pollers[name] = await start_service("feeds", "poll", "--every", str(POLL_SECONDS / 60), env=env)

        def pollers_seen() -> set[str]:
            return {agent.removeprefix("Bron-poller-") for p, agent in site.requests if p.startswith(("/feeds/", "/news/"))}

        try:
            deadline = time.monotonic() + 240
            while _connected(pg_dsn) != {"poller-A", "poller-B"} or [f.items_seen for f in bron.feeds()] != [3]:
                assert time.monotonic() < deadline, "the pollers never started"
                assert all(p.returncode is None for p in pollers.values())
                await asyncio.sleep(0.2)
            site.requests.clear()
            await asyncio.sleep(2 * POLL_SECONDS)
            seen = pollers_seen()
            assert len(seen) == 1, f"pollers {sorted(seen)} polled the feed: one should stand by"
            (leader,) = seen
            other = "B" if leader == "A" else "A"

            held.released.clear()  # the next poll stays in the middle, fetching the new items' pages
            site.feed_items += ["d001", "d002"]
            while not any(p.startswith(("/news/d001", "/news/d002")) for p, _ in site.requests):
                assert time.monotonic() < deadline, "the leader never polled the new items"
                await asyncio.sleep(0.1)
            pollers[leader].send_signal(signal.SIGKILL)
            await wait_exit(pollers[leader])
            site.requests.clear()
            held.released.set()

            deadline = time.monotonic() + 120
            while [f.items_seen for f in bron.feeds()] != [5]:
                assert time.monotonic() < deadline, f"{other} never took over: {bron.feeds()}"
                await asyncio.sleep(0.3)
            assert pollers_seen() == {other}
            assert bron.library.count() == before + 5, "each item indexed once"
            urls = [a.url for a in bron.library.articles()]
            assert len(urls) == len(set(urls))
        finally:
            held.released.set()
            for process in pollers.values():
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            for process in pollers.values():
                try:
                    await wait_exit(process, 60)
                except asyncio.TimeoutError:
                    process.kill()
                    await process.wait()
