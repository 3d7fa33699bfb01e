"""Fetching and extraction against the local news site: what a page becomes, and how pages fail.

These tests need no models: they check the text and metadata a page yields and the reason each kind
of broken page is refused with.
"""

from __future__ import annotations

import time

import pytest

from embeddings.fetch import Fetcher, FetchSettings
from embeddings.web import read_page
from web.newsite import COOKIE_TEXT, FOOTER_TEXT, NAV, Site

FAST = FetchSettings(user_agent="Bron/9.9 (+https://example.org/bron)", timeout=1, max_bytes=1_000_000, concurrency=3)


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def fetcher() -> Fetcher:
    with Fetcher(FAST) as f:
        yield f


@pytest.mark.parametrize("ident", ["d046", "d011", "d025"])
def test_page_becomes_its_article_without_site_chrome(fetcher: Fetcher, site: Site, ident: str) -> None:
    source = site.articles[ident]
    result = read_page(fetcher, site.page_url(ident) + "?utm_source=rss&utm_medium=feed")
    doc = result.doc
    assert doc is not None, result.reason
    assert _words(doc.text) == _words(source["text"]), "the whole body, nothing else"
    assert doc.text.count("\n\n") == source["text"].count("\n\n"), "paragraphs (and intermediate headings) kept"
    for chrome in (COOKIE_TEXT[:40], FOOTER_TEXT[:40], "Meer nieuws", "Deel dit artikel", "Foto: ANP", NAV[3]):
        assert chrome not in doc.text
    teasers = [a["title"] for k, a in site.articles.items() if k != ident]
    assert not any(title in doc.text for title in teasers), "no related-article teasers"
    assert doc.title == source["title"]
    assert doc.outlet == source["source"]
    assert doc.date == source["date"]
    assert doc.language == source["language"]
    assert doc.url == doc.key == site.page_url(ident), "the canonical URL, tracking parameters gone"
    assert doc.extra.get("author") == f"Redactie {source['source']}"


def test_every_newsqa_page_yields_exactly_its_article(fetcher: Fetcher, site: Site) -> None:
    results = fetcher.map(lambda ident: (ident, read_page(fetcher, site.page_url(ident))), list(site.articles))
    wrong = []
    for ident, result in results:
        source, doc = site.articles[ident], result.doc
        got = (_words(doc.text), doc.title, doc.outlet, doc.date, doc.language) if doc else result.reason
        if got != (_words(source["text"]), source["title"], source["source"], source["date"], source["language"]):
            wrong.append(ident)
    assert not wrong, f"pages whose text or metadata differ from the source: {wrong}"


def test_redirect_is_followed_to_the_article(fetcher: Fetcher, site: Site) -> None:
    doc = read_page(fetcher, site.url("/go/d017")).doc
    assert doc is not None and doc.key == site.page_url("d017") and doc.date == "2017-09-13"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/slow.html", "timed out after 1 s"),
        ("/missing.html", "HTTP 404"),
        ("/error.html", "HTTP 500"),
        ("/image.png", "not a supported page type (image/png)"),
        ("/empty.html", "empty page"),
        ("/blank.html", "no article text found"),
        ("/huge.html", "larger than the 976 KB limit (stopped reading)"),
        ("/loop.html", "redirect loop"),
        ("/nowhere.html", "HTTP 302 Found: a redirect without a Location header"),
        ("/private/d004.html", "robots.txt of 127.0.0.1"),
        ("/no-bron/d004.html", "robots.txt of 127.0.0.1"),
    ],
)
def test_bad_pages_are_refused_with_their_reason(fetcher: Fetcher, site: Site, path: str, reason: str) -> None:
    start = time.monotonic()
    result = read_page(fetcher, site.url(path))
    assert result.doc is None and reason in (result.reason or ""), result.reason
    assert time.monotonic() - start < 3.5, "bounded: the timeout and size limit cut the request short"


def test_robots_txt_and_user_agent(site: Site) -> None:
    with Fetcher(FAST) as polite:
        assert read_page(polite, site.url("/private/d004.html")).doc is None
        assert read_page(polite, site.url("/no-bron/d004.html")).doc is None
        assert read_page(polite, site.page_url("d004")).doc is not None
    paths = site.paths_requested()
    assert "/private/d004.html" not in paths and "/no-bron/d004.html" not in paths, "disallowed pages are never requested"
    assert paths.count("/robots.txt") == 1, "robots.txt is read once per site"
    assert {agent for _, agent in site.requests} == {"Bron/9.9 (+https://example.org/bron)"}

    with Fetcher(FetchSettings(timeout=1, respect_robots=False)) as impolite:
        assert read_page(impolite, site.url("/private/d004.html")).doc is not None
    assert site.requests[-1][1].startswith("Bron/"), "the default User-Agent names Bron"


def test_pages_are_fetched_a_few_at_a_time(site: Site) -> None:
    with Fetcher(FAST) as fetcher:
        started = time.monotonic()
        results = fetcher.map(lambda url: read_page(fetcher, url), [site.url("/slow.html")] * 3 + [site.page_url("d001")])
        elapsed = time.monotonic() - started
    assert [r.doc is None for r in results] == [True, True, True, False], "results in input order"
    assert elapsed < 2.8, "three slow pages time out side by side, not one after another"
