"""Web pages into the index: a batch with broken pages, duplicates, updates, removal, PDFs.

Each test ingests only a few articles: embedding is the slow part.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.core import Bron
from bot.errors import FetchFailed, UnknownArticle
from web.newsite import Site

SEED_QUESTION = "Waar verbleef een van de daders?"


def _pdf(title: str | None, paragraphs: list[str]) -> bytes:
    """A real text PDF, as a word processor would write it (fpdf2, core font)."""
    from fpdf import FPDF

    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.add_page()
    pdf.set_font("helvetica", size=11)
    pdf.multi_cell(0, 6, "\n\n".join(paragraphs))
    return bytes(pdf.output())


DIKE = [
    "Het waterschap begint in maart met de versterking van de Lekdijk tussen Schoonhoven en Lekkerkerk. "
    "De werkzaamheden duren naar verwachting drie jaar en kosten 120 miljoen euro.",
    "Tijdens de werkzaamheden is de dijkweg afgesloten voor doorgaand verkeer. Fietsers kunnen een "
    "omleiding volgen via de polder.",
]


def test_a_batch_with_broken_pages_adds_the_good_ones_and_says_why_for_the_rest(web_bron: Callable[..., Bron], site: Site) -> None:
    bron = web_bron()
    bad = {
        "/slow.html": "timed out",
        "/missing.html": "HTTP 404",
        "/error.html": "HTTP 500",
        "/image.png": "image/png",
        "/empty.html": "empty page",
        "/blank.html": "no article text",
        "/huge.html": "limit (stopped reading)",
        "/loop.html": "redirect loop",
        "/private/d004.html": "robots.txt",
    }
    urls = [site.url(p) for p in bad] + [site.page_url("d017")]
    report = bron.ingest_urls(urls)
    assert report.added == [site.articles["d017"]["title"]]
    reasons = dict(report.skipped)
    assert set(reasons) == {site.url(p) for p in bad}
    for path, why in bad.items():
        assert why in reasons[site.url(path)], (path, reasons[site.url(path)])
    answer = bron.answer("Welke code gaf het KNMI af vanwege de storm?", "t")
    assert answer.passages and answer.passages[0].article.url == site.page_url("d017")
    assert answer.passages[0].article.outlet == "112Groningen" and answer.passages[0].article.date == "2017-09-13"
    assert "in Turkije" in bron.answer(SEED_QUESTION, "t").passages[0].text, "the earlier index is intact"

    with pytest.raises(FetchFailed) as err:
        bron.add_url(site.url("/missing.html"))
    assert err.value.params["reason"] == "HTTP 404 Not Found"


def test_same_article_is_indexed_once_and_a_changed_page_replaces_it(web_bron: Callable[..., Bron], site: Site) -> None:
    bron = web_bron()
    first = bron.add_url(site.page_url("d025") + "?utm_source=rss")
    assert first.status == "added" and first.article.url == site.page_url("d025")
    again = bron.add_url(site.page_url("d025"))
    assert again.status == "unchanged" and again.article.id == first.article.id, "same canonical URL"
    mirror = bron.add_url(site.url("/mirror/d025.html"))
    assert mirror.status == "duplicate" and mirror.article.id == first.article.id, "same text under another URL"
    assert len(bron.library.articles()) == 2, "the seed article and d025, nothing twice"

    question = "Waar reden de boeren met hun tractors naartoe?"
    old_text = site.articles["d025"]["text"]
    assert "Binnenhof" in bron.answer(question, "t").passages[0].text
    site.overrides["d025"] = {"text": old_text.replace("Binnenhof", "Malieveld")}
    changed = bron.add_url(site.page_url("d025"))
    assert changed.status == "updated" and changed.article.id == first.article.id
    passages = bron.answer(question, "t").passages
    assert "Malieveld" in passages[0].text
    assert all("Binnenhof" not in p.text for p in passages if p.article.id == first.article.id), "old chunks are gone"
    snapshot = bron.library.view
    assert all("Binnenhof" not in snapshot.chunk_text(c) for c in snapshot.article_chunks(first.article.id))

    removed = bron.remove(str(first.article.id))
    assert removed.url == site.page_url("d025")
    assert [a.title for a in bron.library.articles()] == ["Expert waarschuwt voor verwachte aanvallen van ISIS in Europese landen"]
    with pytest.raises(UnknownArticle):
        bron.find_article(str(first.article.id))
    assert all(p.article.id != first.article.id for p in bron.answer(question, "t").passages)


def test_folders_are_read_recursively_with_pdfs_and_pdfs_come_from_urls_too(
    web_bron: Callable[..., Bron], site: Site, tmp_path: Path
) -> None:
    bron = web_bron()
    nested = tmp_path / "archief" / "2025" / "maart"
    nested.mkdir(parents=True)
    (nested / "dijk.pdf").write_bytes(_pdf("Dijkversterking Lek begint in maart", DIKE))
    (tmp_path / "archief" / "kapot.pdf").write_bytes(b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF")
    (tmp_path / "archief" / "scan.pdf").write_bytes(_pdf(None, [" "]))
    report = bron.ingest([tmp_path / "archief"])
    assert report.added == ["Dijkversterking Lek begint in maart"]
    reasons = {Path(where).name: why for where, why in report.skipped}
    assert "not a readable PDF" in reasons["kapot.pdf"]
    assert "no text layer" in reasons["scan.pdf"]
    answer = bron.answer("Hoeveel kost de versterking van de Lekdijk?", "t")
    assert "120 miljoen euro" in answer.passages[0].text

    url = site.add_file("/rapporten/ter-apel.pdf", "application/pdf", _pdf(None, [
        "Opvang in Ter Apel",
        "Het aanmeldcentrum in Ter Apel bood afgelopen nacht onderdak aan 2100 asielzoekers, terwijl er plaats is voor 2000 mensen.",
    ]))
    added = bron.add_url(url)
    assert added.status == "added" and added.article.title == "Opvang in Ter Apel" and added.article.url == url


def test_questions_are_answered_from_the_previous_index_while_urls_are_ingested(web_bron: Callable[..., Bron], site: Site) -> None:
    bron = web_bron()
    embedding, release = threading.Event(), threading.Event()

    def progress(done: int, total: int) -> None:
        embedding.set()
        assert release.wait(60)

    worker = threading.Thread(target=lambda: bron.web.pages.ingest_urls([site.page_url("d017")], progress=progress))
    worker.start()
    try:
        assert embedding.wait(60), "the ingest reached the embedding step"
        answer = bron.answer(SEED_QUESTION, "t")
        assert "in Turkije" in answer.passages[0].text
        assert len(bron.articles().articles) == 1, "the new article is not visible before its snapshot is complete"
    finally:
        release.set()
        worker.join(60)
    assert len(bron.articles().articles) == 2
