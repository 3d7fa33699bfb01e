"""Plain article text and metadata from a local HTML file (lxml's forgiving parser)."""

from __future__ import annotations

import lxml.html
from lxml import etree

_DROP = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe", "svg", "button")
_BLOCKS = ("h1", "h2", "h3", "h4", "p", "li", "blockquote", "pre")
# libxml2 stops reading a document nested deeper than 256 elements, and everything after that point
# is silently missing (an article inside 300 unclosed <div>s came out empty, one inside nested
# quotes came out without its text). huge_tree raises the limit to libxml2's hard cap (2048 levels).
_TOO_DEEP = "Excessive depth in document"


class HTMLTooDeepError(ValueError):
    """The markup nests elements deeper than the parser can follow, so part of its text is unreadable."""


def _meta(doc: lxml.html.HtmlElement, *names: str) -> str | None:
    for name in names:
        for attr in ("property", "name", "itemprop"):
            found = doc.xpath(f'//meta[@{attr}="{name}"]/@content')
            if found and found[0].strip():
                return str(found[0]).strip()
    return None


def html_to_article(markup: str) -> tuple[str, str, dict[str, str]]:
    """Return (title, body text with blank lines between paragraphs, metadata).

    Raises :class:`HTMLTooDeepError` when the markup nests deeper than the parser follows: what lies
    deeper is lost, and a partial article (or an empty one) would be worse than a clear refusal.
    """
    parser = lxml.html.HTMLParser(huge_tree=True)
    try:
        doc = lxml.html.document_fromstring(markup, parser=parser)
    except (etree.ParserError, ValueError):
        doc = None
    if any(_TOO_DEEP in error.message for error in parser.error_log):
        raise HTMLTooDeepError("the HTML nests elements too deeply (over 2,048 levels) to read all of its text")
    if doc is None:
        return "", "", {}
    meta = {
        "outlet": _meta(doc, "og:site_name", "publisher"),
        "date": _meta(doc, "article:published_time", "datePublished", "date"),
        "url": _meta(doc, "og:url") or next(iter(doc.xpath('//link[@rel="canonical"]/@href')), None),
        "language": (doc.get("lang") or "")[:2].lower() or None,
    }
    h1 = doc.xpath("//h1")
    title = _meta(doc, "og:title") or (h1[0].text_content().strip() if h1 else "") or (doc.findtext(".//title") or "")
    for element in doc.xpath("|".join(f"//{tag}" for tag in _DROP)):
        element.drop_tree()
    root = (doc.xpath("//article") or doc.xpath("//main") or doc.xpath("//body") or [doc])[0]
    paragraphs = []
    for block in root.iter(*_BLOCKS):
        if block.tag == "h1" or any(a.tag in _BLOCKS for a in block.iterancestors()):
            continue
        text = " ".join(block.text_content().split())
        if text:
            paragraphs.append(text)
    if not paragraphs:
        text = " ".join(root.text_content().split())
        paragraphs = [text] if text else []
    return " ".join(title.split()), "\n\n".join(paragraphs), {k: v for k, v in meta.items() if v}
