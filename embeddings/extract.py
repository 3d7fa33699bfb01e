"""Main article text and metadata from a fetched web page, with trafilatura.

trafilatura separates the article body from site chrome (navigation, cookie banners, teasers,
footers) and reads title, site name, date and author from OpenGraph, JSON-LD and the markup itself.
This module turns its result into a :class:`Document` keyed by the page's canonical URL, so the same
article reached through different addresses (tracking parameters, redirects) is one article.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from embeddings.documents import Document, clip_title
from embeddings.language import detect_language

log = logging.getLogger(__name__)

# Less than this is a teaser, a paywall stub or a leftover line of site chrome, not an article.
MIN_TEXT_CHARS = 80
# Query parameters that only track where a reader came from; they never change the article.
_TRACKING = ("utm_", "fbclid", "gclid", "mc_cid", "mc_eid", "igshid", "ref_src")
# htmldate's extensive search guesses dates from anywhere on the page (copyright lines, teasers);
# a missing date is better than a wrong one in a citation.
_DATE_PARAMS = {"extensive_search": False, "original_date": True}


def _has(attr: str, word: str) -> str:
    return f"contains(translate(@{attr},'ABCDEFGHIJKLMNOPQRSTUVWXYZ','abcdefghijklmnopqrstuvwxyz'),'{word}')"


# Site chrome removed before extraction. trafilatura skips it when it finds an article, but on a page
# without one its fallbacks would return the cookie banner or the menu as "the article".
_PRUNE = [
    "//*[" + " or ".join(_has(a, w) for a in ("id", "class") for w in ("cookie", "consent", "gdpr")) + "]",
    "//nav",
    "//header[not(ancestor::article)]",
    "//footer[not(ancestor::article)]",
]


# libxml2 (under trafilatura's parser) stops reading a page nested deeper than 256 elements and
# drops the rest without an error: an article inside 300 <div>s came out as "no article text". A
# tree that reaches this depth is parsed again with huge_tree, which follows up to 2,048 levels.
_CUT_DEPTH = 255
_TOO_DEEP = "Excessive depth in document"


class ExtractError(Exception):
    """A page from which no article could be extracted; the message says why."""


def _reached_cut(tree) -> bool:
    """True when some element sits as deep as libxml2's default limit lets it (the page may go on below)."""
    return bool(tree.xpath(f"boolean(//*[count(ancestor::*) >= {_CUT_DEPTH}])"))


def _parse_deep(markup: str | bytes):
    """The page parsed with libxml2's depth limit raised; ExtractError when it is deeper still."""
    import lxml.html
    from trafilatura.utils import decode_file

    text = markup if isinstance(markup, str) else decode_file(markup)
    options = {"huge_tree": True, "remove_comments": True, "remove_pis": True, "collect_ids": False, "default_doctype": False}
    parser = lxml.html.HTMLParser(**options)
    try:
        tree = lxml.html.fromstring(text, parser=parser)
    except ValueError:  # a str that declares its encoding: lxml wants bytes then
        parser = lxml.html.HTMLParser(encoding="utf-8", **options)
        tree = lxml.html.fromstring(text.encode("utf-8"), parser=parser)
    if any(_TOO_DEEP in error.message for error in parser.error_log):
        raise ExtractError("the page nests elements too deeply (over 2,048 levels) to read all of its text")
    return tree


def clean_url(url: str) -> str:
    """``url`` without its fragment and tracking parameters, host lower-cased."""
    parts = urlsplit(url.strip())
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.lower().startswith(_TRACKING)]
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", urlencode(query), ""))


def _canonical(found: str | None, page_url: str) -> str:
    """The page's own canonical link if it is a web address, else the address it was fetched from."""
    if found:
        absolute = urljoin(page_url, found.strip())
        if urlsplit(absolute).scheme in ("http", "https"):
            return clean_url(absolute)
    return clean_url(page_url)


def _page_language(tree) -> str:
    """The two-letter language the page declares (``<html lang>`` or a content-language meta)."""
    declared = tree.get("lang") or tree.get("xml:lang") or ""
    if not declared:
        found = tree.xpath('//meta[@http-equiv="content-language" or @property="og:locale"]/@content')
        declared = found[0] if found else ""
    return declared.strip()[:2].lower()


def _site_name(tree) -> str:
    """og:site_name as the page spells it (trafilatura title-cases names like "de Volkskrant")."""
    found = tree.xpath('//meta[@property="og:site_name"]/@content')
    return " ".join(found[0].split()) if found else ""


def _paragraphs(text: str) -> str:
    """trafilatura puts one block per line; the index expects blank lines between paragraphs."""
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n\n".join(line for line in lines if line)


def extract_article(markup: str | bytes, url: str, hints: dict[str, str] | None = None) -> Document:
    """The article on a page fetched from ``url``.

    ``hints`` (from a feed entry: title, date, outlet, author) fill metadata the page lacks.
    Raises :class:`ExtractError` when the page holds no article text.
    """
    import trafilatura

    hints = hints or {}
    tree = trafilatura.load_html(markup)
    if tree is None:
        raise ExtractError("the page is not readable HTML")
    if _reached_cut(tree):
        tree = _parse_deep(markup)
    language, site_name = _page_language(tree), _site_name(tree)
    found = trafilatura.bare_extraction(
        tree,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_images=False,
        include_links=False,
        prune_xpath=_PRUNE,
        date_extraction_params=_DATE_PARAMS,
    )
    text = _paragraphs(found.text or "") if found is not None else ""
    if len(text) < MIN_TEXT_CHARS:
        raise ExtractError("no article text found on the page")
    canonical = _canonical(found.url, url)
    title = clip_title(found.title or hints.get("title") or "") or clip_title(canonical)
    doc = Document(
        key=canonical,
        title=title,
        text=text,
        outlet=site_name or found.sitename or hints.get("outlet") or urlsplit(canonical).hostname,
        date=found.date or hints.get("date"),
        url=canonical,
        language=language or detect_language(text),
        origin=url,
        extra={k: v for k, v in {"author": found.author or hints.get("author") or ""}.items() if v},
    )
    log.debug("extracted %s: %r (%d chars)", url, doc.title, len(doc.text))
    return doc
