"""Fixtures for the web tests: the local news site on 127.0.0.1 and Brons that fetch from it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from web.newsite import NewsSite, Site, load_articles

# Short limits so the fault routes fail fast: the slow page answers after 4 s, the huge one is 8 MB.
FAST_FETCH = {"fetch_timeout": 1, "fetch_max_bytes": 1_000_000, "fetch_concurrency": 3}


@pytest.fixture(scope="session")
def news_site() -> Iterator[Site]:
    """The site, started once for the web tests."""
    with NewsSite(Site(articles=load_articles())) as site:
        yield site


@pytest.fixture
def site(news_site: Site) -> Site:
    """The site with its content reset (tests change pages and feeds) and its request log cleared."""
    news_site.overrides.clear()
    news_site.updated.clear()
    news_site.files.clear()
    news_site.requests.clear()
    news_site.feed_items[:] = ["d001", "d002", "d003"]
    return news_site


@pytest.fixture
def web_bron(make_bron: Callable, site: Site) -> Callable:
    """A fresh Bron (bundled corpus) whose fetcher uses the short test limits; keyword overrides as make_bron."""

    def make(**overrides: object):
        return make_bron(**{**FAST_FETCH, **overrides})

    return make
