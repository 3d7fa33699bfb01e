"""Articles from web addresses: fetch, extract, drop duplicates, and ingest in one transaction.

A batch of URLs is fetched a few at a time (:mod:`embeddings.fetch`), each page becomes a
:class:`Document` keyed by its canonical URL (:mod:`embeddings.extract`, or :mod:`embeddings.pdf`
for PDFs), and the whole batch goes into the library as one new segment. A page that fails is
skipped with its reason and the rest goes on. The same article is never indexed twice: the same
canonical URL updates the article in place, and the same text under another address is skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from embeddings.documents import text_fingerprint, Document
from embeddings.extract import ExtractError, clean_url, extract_article
from embeddings.fetch import HTML_TYPES, PDF_TYPES, Fetcher, FetchError, FetchSettings
from embeddings.library import Library, ProgressArg
from embeddings.models import IngestReport
from embeddings.pdf import PdfError, read_pdf

log = logging.getLogger(__name__)



def is_web_address(text: str) -> bool:
    """True for ``http://`` and ``https://`` addresses (what ``bron ingest`` fetches)."""
    return text.strip().lower().startswith(("http://", "https://"))


@dataclass
class PageResult:
    """One URL after fetching and extraction: a document, or the reason there is none."""

    url: str
    doc: Document | None = None
    reason: str | None = None
    fetch_s: float = 0.0
    extract_s: float = 0.0


@dataclass
class WebIngest:
    """What a batch of URLs did: the ingest report, where each URL ended up, and time per stage."""

    report: IngestReport
    # requested URL -> id of the article it is indexed as (new, updated, unchanged or the duplicate's original)
    article_ids: dict[str, int] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    fetch_s: float = 0.0
    extract_s: float = 0.0
    index_s: float = 0.0
    wall_s: float = 0.0


def read_page(fetcher: Fetcher, url: str, hints: dict[str, str] | None = None) -> PageResult:
    """Fetch ``url`` and extract its article; never raises for a bad page."""
    result = PageResult(url)
    start = time.perf_counter()
    try:
        page = fetcher.get(url, accept=HTML_TYPES + PDF_TYPES)
    except FetchError as err:
        result.reason = str(err)
        result.fetch_s = time.perf_counter() - start
        return result
    result.fetch_s = time.perf_counter() - start
    start = time.perf_counter()
    try:
        if page.content_type in PDF_TYPES or page.body[:5] == b"%PDF-":
            key = clean_url(page.final_url)
            result.doc = read_pdf(page.body, key=key, origin=url, url=key)
        else:
            result.doc = extract_article(page.markup(), page.final_url, hints)
            result.doc.origin = url
    except (ExtractError, PdfError) as err:
        result.reason = str(err)
    result.extract_s = time.perf_counter() - start
    return result


def _fetch_progress(progress: ProgressArg, total: int) -> Callable[[], None]:
    """A 'Fetching' bar on stderr when ``progress`` is True; a no-op otherwise."""
    if progress is not True or total < 2:
        return lambda: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc="Fetching", unit="page", leave=False)

    def step() -> None:
        bar.update(1)
        if bar.n >= total:
            bar.close()

    return step


class WebSources:
    """Web pages and feeds into one library, through one polite fetcher."""

    def __init__(self, library: Library, settings: FetchSettings) -> None:
        self.library = library
        self.fetcher = Fetcher(settings)

    def close(self) -> None:
        """Close the fetcher's connections."""
        self.fetcher.close()

    def read_pages(self, urls: Sequence[str], hints: dict[str, dict[str, str]] | None = None, progress: ProgressArg = False) -> list[PageResult]:
        """Fetch and extract every URL, a few at a time, in input order."""
        step = _fetch_progress(progress, len(urls))

        def one(url: str) -> PageResult:
            result = read_page(self.fetcher, url, (hints or {}).get(url))
            step()
            return result

        return self.fetcher.map(one, urls)

    def ingest_urls(self, urls: Sequence[str], progress: ProgressArg = False, hints: dict[str, dict[str, str]] | None = None) -> WebIngest:
        """Fetch, extract and index ``urls``; failures are skipped with their reason."""
        started = time.perf_counter()
        urls = list(dict.fromkeys(u.strip() for u in urls if u.strip()))
        pages = self.read_pages(urls, hints, progress)
        before = {k: h for k, (_, h) in self.library.by_keys([p.doc.key for p in pages if p.doc is not None]).items()}
        docs, skipped, duplicates = self._dedupe(pages)
        start = time.perf_counter()
        report = self.library.ingest_documents(docs, progress=progress, skipped=skipped)
        result = WebIngest(report, fetch_s=sum(p.fetch_s for p in pages), extract_s=sum(p.extract_s for p in pages))
        result.index_s = time.perf_counter() - start
        self._locate(result, pages, duplicates, before)
        result.wall_s = time.perf_counter() - started
        return result

    def _dedupe(self, pages: list[PageResult]) -> tuple[list[Document], list[tuple[str, str]], dict[str, int]]:
        """Documents to ingest, pages skipped with a reason, and URLs whose text is already indexed (-> id)."""
        docs_in = [p.doc for p in pages if p.doc is not None]
        known_keys = set(self.library.by_keys([d.key for d in docs_in]))
        known_text = self.library.by_fingerprints([text_fingerprint(d.text) for d in docs_in])
        batch_text: dict[str, str] = {}  # fingerprint -> key
        batch_keys: dict[str, tuple[str, str]] = {}  # key -> (url, fingerprint)
        docs: list[Document] = []
        skipped: list[tuple[str, str]] = []
        duplicates: dict[str, int] = {}
        for page in pages:
            if page.doc is None:
                skipped.append((page.url, page.reason or "unknown error"))
                continue
            key, fingerprint = page.doc.key, text_fingerprint(page.doc.text)
            same = known_text.get(fingerprint)
            if same is not None and same[1] != key and key not in known_keys:
                same_id, _, same_url, same_title = same
                duplicates[page.url] = same_id
                skipped.append((page.url, f"same text as article {same_id} ({same_url or same_title}), already indexed"))
                continue
            if key in batch_keys:
                first_url, first_fingerprint = batch_keys[key]
                if first_fingerprint != fingerprint:
                    skipped.append((page.url, f"names the same canonical URL as {first_url} with another text"))
                continue  # the same article reached twice (e.g. with and without tracking parameters)
            if batch_text.setdefault(fingerprint, key) != key:
                skipped.append((page.url, f"same text as {batch_text[fingerprint]} in this batch"))
                continue
            batch_keys[key] = (page.url, fingerprint)
            docs.append(page.doc)
        return docs, skipped, duplicates

    def _locate(self, result: WebIngest, pages: list[PageResult], duplicates: dict[str, int], before: dict[str, str]) -> None:
        """Fill in which article each URL is now, and whether it was added, updated or unchanged."""
        by_key = {k: i for k, (i, _) in self.library.by_keys([p.doc.key for p in pages if p.doc is not None]).items()}
        for page in pages:
            if page.url in duplicates:
                result.article_ids[page.url] = duplicates[page.url]
                result.status[page.url] = "duplicate"
            elif page.doc is not None and page.doc.key in by_key:
                result.article_ids[page.url] = by_key[page.doc.key]
                old = before.get(page.doc.key)
                result.status[page.url] = "added" if old is None else "unchanged" if old == page.doc.content_hash else "updated"
