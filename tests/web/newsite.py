"""A local news site on 127.0.0.1 for the web-ingest tests and benchmark.

It serves the newsqa-dev articles as realistic news pages (cookie banner, navigation, byline, photo
caption, related-article teasers, footer, OpenGraph and JSON-LD metadata, a canonical link), RSS and
Atom feeds of them, a robots.txt, and routes that fail in the ways real sites do.
"""

from __future__ import annotations

import gzip
import html
import json
import threading
import zlib
import time
from dataclasses import dataclass, field
from email.utils import format_datetime
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

NEWSQA = Path(__file__).resolve().parents[3] / "shared" / "data" / "newsqa-dev"

ROBOTS = """User-agent: *
Disallow: /private/

User-agent: Bron
Disallow: /private/
Disallow: /no-bron/
"""
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
SLOW_SECONDS = 4.0
HUGE_BYTES = 8 * 1024 * 1024
# /bomb/<encodings>: this many zero bytes once decoded, a few KB on the wire when compressed twice.
BOMB_BYTES = 64 * 1024 * 1024
# /slow-headers sends one header byte per tick, for at most this long.
TRICKLE_SECONDS = 8.0
# Location headers no client can follow (/redirect/<name>).
BAD_LOCATIONS = {
    "javascript": "javascript:alert(1)",
    "broken-ipv6": "http://[::1",
    "control-char": "http://example.org/\x00",
    "file": "file:///etc/passwd",
}

NAV = ["Binnenland", "Buitenland", "Economie", "Sport", "Tech", "Cultuur", "Weer"]
COOKIE_TEXT = (
    "Wij gebruiken cookies en vergelijkbare technieken om de website te verbeteren, om advertenties "
    "te tonen die aansluiten bij jouw interesses en om het gebruik van de site te meten. Door op "
    "Accepteren te klikken ga je hiermee akkoord; via Instellingen kun je je keuze altijd aanpassen."
)
FOOTER_TEXT = "Alle rechten voorbehouden. Niets uit deze uitgave mag worden verveelvoudigd zonder toestemming."


def load_articles() -> dict[str, dict]:
    """The newsqa-dev articles by id."""
    rows = (json.loads(line) for line in (NEWSQA / "articles.jsonl").read_text(encoding="utf-8").splitlines() if line.strip())
    return {row["id"]: row for row in rows}


def _short(paragraph: str) -> bool:
    return len(paragraph) < 80 and not paragraph.rstrip().endswith((".", "!", "?", ":", '"', "”", "'"))


def _body_html(text: str) -> str:
    """Paragraphs as <p>; a short unpunctuated line that introduces a real paragraph as <h2>."""
    paras = text.split("\n\n")
    out = []
    for i, p in enumerate(paras):
        heading = _short(p) and i + 1 < len(paras) and not _short(paras[i + 1])
        out.append(f"<h2>{html.escape(p)}</h2>" if heading else f"<p>{html.escape(p)}</p>")
    return "\n".join(out)


def _lead(text: str) -> str:
    first = text.split("\n\n", 1)[0]
    return first[: first.find(". ") + 1] if ". " in first else first[:160]


@dataclass
class Site:
    """The served content; tests change it between requests (pages, feeds, overrides)."""

    articles: dict[str, dict] = field(default_factory=load_articles)
    feed_items: list[str] = field(default_factory=lambda: ["d001", "d002", "d003"])
    overrides: dict[str, dict] = field(default_factory=dict)
    updated: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    base: str = ""
    stop: threading.Event = field(default_factory=threading.Event)

    def article(self, ident: str) -> dict:
        """The article as currently served (with any override applied)."""
        gone = {"title": f"Artikel {ident}", "text": "Dit artikel is verwijderd.", "source": "", "date": None, "language": "nl"}
        return {**self.articles.get(ident, gone), **self.overrides.get(ident, {})}

    def url(self, path: str) -> str:
        return self.base + path

    def page_url(self, ident: str) -> str:
        """The article's canonical address on this site."""
        return self.url(f"/news/{ident}.html")

    def paths_requested(self) -> list[str]:
        return [path for path, _ in self.requests]

    def add_file(self, path: str, ctype: str, data: bytes) -> str:
        """Serve ``data`` at ``path``; returns its URL."""
        self.files[path] = (ctype, data)
        return self.url(path)

    # -- pages ----------------------------------------------------------------------------------

    def render_article(self, ident: str, canonical: bool = True) -> str:
        """A full news page around one article's text."""
        a = self.article(ident)
        e = html.escape
        outlet, title, lang = a["source"], a["title"], a["language"]
        canon = self.page_url(ident)
        date = a.get("date")
        author = f"Redactie {outlet}"
        body = _body_html(a["text"])
        others = [k for k in self.articles if k != ident][int(ident[1:]) % 70 :][:3]
        teasers = "\n".join(
            f'<li class="teaser"><a href="/news/{k}.html"><h3>{e(self.articles[k]["title"])}</h3>'
            f"<p>{e(_lead(self.articles[k]['text']))}</p></a></li>"
            for k in others
        )
        ld = {
            "@context": "https://schema.org",
            "@type": "NewsArticle",
            "headline": title,
            "author": {"@type": "Person", "name": author},
            "publisher": {"@type": "Organization", "name": outlet},
            "inLanguage": lang,
        }
        meta = [
            f'<meta property="og:type" content="article">',
            f'<meta property="og:title" content="{e(title)}">',
            f'<meta property="og:site_name" content="{e(outlet)}">',
            f'<meta name="author" content="{e(author)}">',
            f'<meta name="description" content="{e(_lead(a["text"]))}">',
        ]
        if canonical:
            meta += [f'<link rel="canonical" href="{e(canon)}">', f'<meta property="og:url" content="{e(canon)}">']
            ld["mainEntityOfPage"] = canon
        if date:
            meta.append(f'<meta property="article:published_time" content="{date}T08:30:00+01:00">')
            ld["datePublished"] = f"{date}T08:30:00+01:00"
        byline_date = f'<time datetime="{date}">{date}</time>' if date else ""
        nav = "".join(f'<li><a href="/{n.lower()}">{n}</a></li>' for n in NAV)
        return f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<title>{e(title)} | {e(outlet)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
{chr(10).join(meta)}
<script type="application/ld+json">{json.dumps(ld, ensure_ascii=False)}</script>
<style>body{{font-family:sans-serif}} .cookie-consent{{position:fixed;bottom:0}}</style>
<script>window.dataLayer = window.dataLayer || []; dataLayer.push({{"page": "article"}});</script>
</head>
<body>
<div id="cookie-consent" class="cookie-consent" role="dialog">
<p>{COOKIE_TEXT}</p>
<button>Accepteren</button> <button>Instellingen</button>
</div>
<header class="site-header">
<a class="logo" href="/">{e(outlet)}</a>
<nav class="main-nav"><ul>{nav}</ul></nav>
<form action="/zoeken"><input name="q" placeholder="Zoeken"></form>
</header>
<main>
<article class="article">
<div class="breadcrumbs"><a href="/">Home</a> › <a href="/buitenland">Buitenland</a></div>
<h1 class="article-title">{e(title)}</h1>
<div class="byline">Door <span class="author">{e(author)}</span> {byline_date}</div>
<figure><img src="/img/{ident}.jpg" alt=""><figcaption>Foto: ANP / archief</figcaption></figure>
<div class="article-body">
{body}
</div>
<div class="share">Deel dit artikel: <a href="#">Facebook</a> <a href="#">X</a> <a href="#">WhatsApp</a></div>
</article>
<aside class="related">
<h2>Meer nieuws</h2>
<ul>
{teasers}
</ul>
</aside>
</main>
<footer class="site-footer">
<ul><li><a href="/privacy">Privacy</a></li><li><a href="/cookies">Cookiebeleid</a></li><li><a href="/contact">Contact</a></li></ul>
<p>© 2025 {e(outlet)}. {FOOTER_TEXT}</p>
</footer>
</body>
</html>"""

    def render_blank(self) -> str:
        """A page with the site's chrome and no article."""
        page = self.render_article("d001")
        start, end = page.index("<main>"), page.index("</main>")
        return page[:start] + "<main></main>" + page[end + len("</main>") :]

    # -- feeds ----------------------------------------------------------------------------------

    def _stamp(self, ident: str) -> datetime:
        day = self.article(ident).get("date") or "2025-01-15"
        stamp = datetime.fromisoformat(f"{day}T08:30:00+00:00")
        if ident in self.updated:
            stamp = datetime.fromisoformat(self.updated[ident])
        return stamp

    def render_rss(self) -> str:
        e = html.escape
        items = "\n".join(
            f"<item><title>{e(self.article(i)['title'])}</title><link>{e(self.page_url(i))}?utm_source=rss</link>"
            f"<guid isPermaLink=\"false\">{i}</guid><pubDate>{format_datetime(self._stamp(i))}</pubDate>"
            f"<description>{e(_lead(self.article(i)['text']))}</description></item>"
            for i in self.feed_items
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>Nieuwsdienst</title>'
            f"<link>{self.base}/</link><description>Het laatste nieuws</description>{items}</channel></rss>"
        )

    def render_atom(self) -> str:
        e = html.escape
        entries = "\n".join(
            f"<entry><title>{e(self.article(i)['title'])}</title><link href=\"{e(self.page_url(i))}\"/>"
            f"<id>urn:newsqa:{i}</id><updated>{self._stamp(i).isoformat()}</updated>"
            f"<summary>{e(_lead(self.article(i)['text']))}</summary></entry>"
            for i in self.feed_items
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>Nieuwsdienst (Atom)</title><id>{self.base}/</id><updated>2025-01-15T08:30:00Z</updated>"
            f"{entries}</feed>"
        )


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet test server
        pass

    def _send(self, status: int, body: bytes | str, ctype: str = "text/html; charset=utf-8", headers: dict | None = None) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        site = self.server.site
        path = urlsplit(self.path).path
        site.requests.append((path, self.headers.get("User-Agent", "")))
        name = path.rsplit("/", 1)[-1].removesuffix(".html")
        if path == "/robots.txt":
            self._send(200, ROBOTS, "text/plain")
        elif path.startswith("/news/") and name in site.articles:
            self._send(200, site.render_article(name))
        elif path.startswith("/mirror/") and name in site.articles:
            self._send(200, site.render_article(name, canonical=False))
        elif path.startswith(("/private/", "/no-bron/")) and name in site.articles:
            self._send(200, site.render_article(name, canonical=False))
        elif path.startswith("/go/") and name in site.articles:
            self._send(301, "", headers={"Location": f"/news/{name}.html"})
        elif path == "/feeds/news.rss":
            self._send(200, site.render_rss(), "application/rss+xml; charset=utf-8")
        elif path == "/feeds/news.atom":
            self._send(200, site.render_atom(), "application/atom+xml; charset=utf-8")
        elif path == "/slow.html":
            site.stop.wait(SLOW_SECONDS)
            self._send(200, site.render_article("d001"))
        elif path == "/error.html":
            self._send(500, "<h1>Internal Server Error</h1>")
        elif path == "/image.png":
            self._send(200, PNG, "image/png")
        elif path == "/empty.html":
            self._send(200, b"")
        elif path == "/blank.html":
            self._send(200, site.render_blank())
        elif path == "/huge.html":
            self._stream_huge()
        elif path == "/nowhere.html":  # a redirect without a Location, its body a whole article
            self._send(302, site.render_article("d001"))
        elif path == "/loop.html":
            self._send(302, "", headers={"Location": "/loop-again.html"})
        elif path == "/loop-again.html":
            self._send(302, "", headers={"Location": "/loop.html"})
        elif path.startswith("/bomb/"):
            self._send_encoded(_bomb(tuple(path.split("/")[2].split(","))), path.split("/")[2])
        elif path.startswith("/encoded/") and name in site.articles:
            self._send_encoded(_compress(site.render_article(name).encode(), path.split("/")[2].split(",")), path.split("/")[2])
        elif path == "/slow-headers":
            self._trickle_headers()
        elif path.startswith("/redirect/") and path.removeprefix("/redirect/") in BAD_LOCATIONS:
            self._send(302, "", headers={"Location": BAD_LOCATIONS[path.removeprefix("/redirect/")]})
        elif path in site.files:
            ctype, data = site.files[path]
            self._send(200, data, ctype)
        else:
            self._send(404, "<h1>Not Found</h1>")

    def _send_encoded(self, body: bytes, encodings: str) -> None:
        """A body already compressed with ``encodings`` (e.g. ``gzip,gzip``, in the order applied)."""
        self._send(200, body, headers={"Content-Encoding": ", ".join(encodings.split(","))})

    def _trickle_headers(self) -> None:
        """A status line, then one header byte at a time: each read succeeds, the headers never end."""
        deadline = time.monotonic() + TRICKLE_SECONDS
        try:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            self.wfile.flush()
            while time.monotonic() < deadline and not self.server.site.stop.wait(0.1):
                self.wfile.write(b"a")
                self.wfile.flush()
        except OSError:
            pass  # the client gave up, as it should
        self.close_connection = True

    def _stream_huge(self) -> None:
        """An endless-looking page without Content-Length: the client must stop reading by itself."""
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        chunk = ("<p>" + "opvulling " * 100 + "</p>\n").encode()
        sent = 0
        try:
            self.wfile.write(b"<html><body>")
            while sent < HUGE_BYTES and not self.server.site.stop.is_set():
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the client hung up, as it should


_BOMBS: dict[tuple[str, ...], bytes] = {}


def _compress(data: bytes, encodings: list[str] | tuple[str, ...]) -> bytes:
    """``data`` compressed by each HTTP content coding in turn (gzip, deflate = zlib format)."""
    for name in encodings:
        data = gzip.compress(data, 9) if name == "gzip" else zlib.compress(data, 9) if name == "deflate" else data
    return data


def _bomb(encodings: tuple[str, ...]) -> bytes:
    """BOMB_BYTES of zeros, compressed by each encoding in order (built once per chain)."""
    if encodings not in _BOMBS:
        _BOMBS[encodings] = _compress(b"\0" * BOMB_BYTES, encodings)
    return _BOMBS[encodings]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: Site

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hanging up mid-response are expected here


class NewsSite:
    """Start with ``with NewsSite() as site:``; ``site.base`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, site: Site | None = None) -> None:
        self.site = site or Site()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.site = self.site
        self.site.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Site:
        self._thread.start()
        return self.site

    def __exit__(self, *exc: object) -> None:
        self.site.stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


if __name__ == "__main__":  # pragma: no cover - manual browsing: python tests/web/newsite.py
    with NewsSite() as running:
        print(running.base, flush=True)
        while True:
            time.sleep(3600)
