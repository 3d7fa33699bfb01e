"""Polite, bounded HTTP fetching: one User-Agent naming Bron, robots.txt, and hard limits.

Every request has a timeout for the whole exchange (connecting, headers and body), a size limit
enforced on the decoded bytes while streaming (the body is never read or inflated past it, whatever
chain of compressions the server claims), a bounded number of redirects (each hop checked against
robots.txt), and at most ``concurrency`` requests run at once. Anything that goes wrong raises
:class:`FetchError` with a reason a user can read; callers skip that page and go on with the rest.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx

from embeddings.settings import FetchConfig

log = logging.getLogger(__name__)

PROJECT_URL = "https://github.com/bron-bot/bron"
HTML_TYPES = ("text/html", "application/xhtml+xml")
PDF_TYPES = ("application/pdf",)
FEED_TYPES = (
    "application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml",
    "text/xml", "application/feed+json", "text/plain",
)
ROBOTS_TTL_S = 24 * 3600
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309: crawlers must read at least 500 KiB
ROBOTS_MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
# Content codings Bron asks for and decodes itself, a piece at a time (see _decoded).
ACCEPT_ENCODING = "gzip, deflate"
MAX_ENCODINGS = 3  # each layer holds a 32 KB window; no real server stacks more than two
_PIECE = 64 * 1024  # the most one decompression step may produce

T = TypeVar("T")
R = TypeVar("R")


def default_user_agent() -> str:
    """``Bron/<version> (+<project URL>)``: names the bot so site owners can find and block it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("bron")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        number = "0"
    return f"Bron/{number} (+{PROJECT_URL})"


@dataclass(frozen=True)
class FetchSettings:
    """Limits for every request; see the ``fetch`` section of config.yaml."""

    user_agent: str = field(default_factory=default_user_agent)
    timeout: float = 15.0
    max_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    respect_robots: bool = True
    concurrency: int = 4

    @classmethod
    def from_config(cls, fetch: FetchConfig) -> FetchSettings:
        """Settings from ``config.fetch`` (an empty user_agent means the default)."""
        values = dataclasses.asdict(fetch)
        values["user_agent"] = values["user_agent"] or default_user_agent()
        return cls(**values)

    @property
    def robots_agent(self) -> str:
        """The product token robots.txt groups are matched against (``Bron``)."""
        return self.user_agent.split("/", 1)[0].split()[0] if self.user_agent.strip() else "Bron"


class FetchError(Exception):
    """A page that could not be fetched; ``str(err)`` says why, ``status`` is the HTTP status if any."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class Page:
    """A fetched response body and what the caller needs to interpret it."""

    url: str
    final_url: str
    status: int
    content_type: str
    charset: str | None
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        """True for a 304 answer to a conditional request."""
        return self.status == 304

    def markup(self) -> str | bytes:
        """The body as text when the server named a usable charset, else bytes (the parser sniffs it)."""
        if self.charset:
            try:
                return self.body.decode(self.charset)
            except (LookupError, UnicodeDecodeError):
                pass
        return self.body


def _content_type(header: str) -> tuple[str, str | None]:
    mime, _, params = header.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip("\"' ")
    return mime.strip().lower(), charset


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"


def _scheme(url: str) -> str:
    """The URL's scheme, or "" for text that does not parse as a URL."""
    try:
        return urlsplit(url).scheme
    except ValueError:
        return ""


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _inflate(pieces: Iterable[bytes], coding: str) -> Iterator[bytes]:
    """Undo one gzip or deflate layer, never producing more than _PIECE bytes per step.

    zlib is asked for bounded output, so a few KB that inflate to gigabytes cost only what the caller
    reads before it stops. "deflate" is meant to be zlib-wrapped but some servers send it raw.
    """
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if coding in ("gzip", "x-gzip") else None
    head = b""
    for piece in pieces:
        if inflater is None:  # deflate: the first two bytes tell zlib-wrapped from raw
            head += piece
            if len(head) < 2:
                continue
            wrapped = head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
            inflater = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            piece = head
        data = piece
        while data and not inflater.eof:
            out = inflater.decompress(data, _PIECE)
            data = inflater.unconsumed_tail
            if out:
                yield out
    if inflater is None and head:  # a one-byte deflate body
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        yield inflater.decompress(head, _PIECE)
    if inflater is not None and not inflater.eof:
        while out := inflater.decompress(b"", _PIECE):  # what zlib still holds back
            yield out


def _decoded(pieces: Iterable[bytes], content_encoding: str) -> Iterator[bytes]:
    """The body with every content coding undone, last applied first, lazily."""
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if len(codings) > MAX_ENCODINGS:
        raise FetchError(f"the server stacked {len(codings)} content encodings ({content_encoding})")
    unknown = [c for c in codings if c not in ("gzip", "x-gzip", "deflate")]
    if unknown:
        raise FetchError(f"the server used a content encoding Bron cannot read ({', '.join(unknown)})")
    for coding in reversed(codings):
        pieces = _inflate(pieces, coding)
    return iter(pieces)


class _Redirect(Exception):
    """A redirect, raised from a response hook: httpx would otherwise parse the Location itself, even
    when not following it, and fail on a malformed one (``javascript:alert(1)``) with no FetchError."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def _stop_at_redirect(response: httpx.Response) -> None:
    if response.status_code in _REDIRECTS and response.headers.get("location"):
        raise _Redirect(response.headers["location"])


class _Deadline:
    """Cuts a request's connection when its time is up.

    httpx's timeouts apply to each read, so a server that sends a header byte every second would
    never time out; this timer bounds the whole request. It learns the socket through httpx's
    ``trace`` extension when the connection opens (connections are not reused, see Fetcher).
    """

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpx trace hook: remember the socket of each new connection."""
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                self._cut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._cut(sock)

    @staticmethod
    def _cut(sock: socket.socket) -> None:
        try:
            # shutdown() wakes a blocked read at once (close() would not); the base class method,
            # because SSLSocket's own would drop its TLS state under the reading thread's feet
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass  # already closed, or detached when TLS took the socket over


class _RobotsCache:
    """robots.txt per site, read once a day, following RFC 9309 on failures."""

    def __init__(self, fetcher: Fetcher) -> None:
        self._fetcher = fetcher
        self._rules: dict[str, tuple[float, RobotFileParser, str]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def refusal(self, url: str) -> str | None:
        """Why robots.txt forbids ``url``, or None when it may be fetched."""
        origin = _origin(url)
        rules, note = self._for(origin)
        if rules.can_fetch(self._fetcher.settings.robots_agent, url):
            return None
        return note or f"robots.txt of {urlsplit(url).netloc} disallows it"

    def _for(self, origin: str) -> tuple[RobotFileParser, str]:
        with self._guard:
            lock = self._locks.setdefault(origin, threading.Lock())
        with lock:  # concurrent fetches from one site read its robots.txt once
            cached = self._rules.get(origin)
            if cached and time.monotonic() - cached[0] < ROBOTS_TTL_S:
                return cached[1], cached[2]
            rules, note = self._load(origin)
            self._rules[origin] = (time.monotonic(), rules, note)
            return rules, note

    def _load(self, origin: str) -> tuple[RobotFileParser, str]:
        rules = RobotFileParser(origin + "/robots.txt")
        try:
            page = self._fetcher.get(
                origin + "/robots.txt", accept=(), check_robots=False, allow_empty=True,
                max_bytes=ROBOTS_MAX_BYTES, max_redirects=ROBOTS_MAX_REDIRECTS,
            )
        except FetchError as err:
            if err.status is not None and 400 <= err.status < 500:
                rules.allow_all = True  # no robots.txt: everything is allowed
                return rules, ""
            rules.disallow_all = True  # unreachable: RFC 9309 says assume the site is closed
            return rules, f"robots.txt of {urlsplit(origin).netloc} could not be read ({err}), so the site is treated as closed"
        rules.parse(page.body[:ROBOTS_MAX_BYTES].decode("utf-8", "replace").splitlines())
        return rules, ""


class Fetcher:
    """An HTTP client with Bron's politeness rules; thread-safe, reuse one per process."""

    def __init__(self, settings: FetchSettings | None = None) -> None:
        self.settings = settings or FetchSettings()
        s = self.settings
        self._client = httpx.Client(
            headers={"User-Agent": s.user_agent, "Accept-Language": "nl, en;q=0.8, *;q=0.5", "Accept-Encoding": ACCEPT_ENCODING},
            timeout=httpx.Timeout(s.timeout),
            follow_redirects=False,  # followed by hand, so every hop is counted and checked
            # No keep-alive: a fresh connection per request is one _Deadline can cut when time is up.
            limits=httpx.Limits(max_connections=s.concurrency, max_keepalive_connections=0),
            event_hooks={"response": [_stop_at_redirect]},
        )
        self._robots = _RobotsCache(self)
        self._slots = threading.BoundedSemaphore(s.concurrency)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(
        self,
        url: str,
        accept: tuple[str, ...] = HTML_TYPES,
        headers: dict[str, str] | None = None,
        *,
        check_robots: bool = True,
        allow_empty: bool = False,
        max_bytes: int | None = None,
        max_redirects: int | None = None,
    ) -> Page:
        """GET ``url``, following redirects; raise :class:`FetchError` with the reason on any failure.

        ``accept`` lists the content types wanted (empty: any); a 304 answer is returned as is.
        """
        limit = self.settings.max_redirects if max_redirects is None else max_redirects
        seen = [url]
        current = url
        while True:
            if _scheme(current) not in ("http", "https"):
                raise FetchError(f"not a web address: {current}")
            if check_robots and self.settings.respect_robots:
                refusal = self._robots.refusal(current)
                if refusal:
                    raise FetchError(refusal)
            with self._slots:
                result = self._request(current, accept, headers, allow_empty, max_bytes or self.settings.max_bytes)
            if isinstance(result, Page):
                result.url = url
                return result
            try:
                current = urljoin(current, result)
            except ValueError:
                raise FetchError(f"redirected to a malformed address ({result!r})") from None
            if current in seen:
                raise FetchError(f"redirect loop ({' -> '.join(seen + [current])})")
            seen.append(current)
            if len(seen) - 1 > limit:
                raise FetchError(f"more than {limit} redirects")

    def _request(self, url: str, accept: tuple[str, ...], headers: dict[str, str] | None, allow_empty: bool, max_bytes: int) -> Page | str:
        """One request: a Page, or the Location of a redirect."""
        timeout = self.settings.timeout
        deadline = _Deadline(timeout)
        try:
            with deadline, self._client.stream("GET", url, headers=headers, extensions={"trace": deadline.trace}) as r:
                page = self._response(r, url, accept, allow_empty, max_bytes)
            if deadline.expired:  # the cut connection can look like the end of the body
                raise FetchError(f"timed out after {timeout:g} s", r.status_code)
            return page
        except _Redirect as redirect:
            return redirect.location  # checked by get() like any address
        except httpx.TimeoutException:
            raise FetchError(f"timed out after {timeout:g} s") from None
        except httpx.InvalidURL as exc:
            raise FetchError(f"not a valid web address ({exc})") from None
        except httpx.ConnectError as exc:
            raise FetchError(f"cannot connect ({exc})") from None
        except httpx.HTTPError as exc:
            if deadline.expired:
                raise FetchError(f"timed out after {timeout:g} s") from None
            raise FetchError(f"network error ({exc.__class__.__name__}: {exc})") from None

    def _response(self, r: httpx.Response, url: str, accept: tuple[str, ...], allow_empty: bool, max_bytes: int) -> Page:
        """Check a response's status and type, then read its body up to ``max_bytes`` decoded bytes."""
        kept = {k: r.headers[k] for k in ("etag", "last-modified") if k in r.headers}
        ctype, charset = _content_type(r.headers.get("content-type", ""))
        if r.status_code == 304:
            return Page(url, str(r.url), 304, ctype, charset, b"", kept)
        if r.status_code >= 400:
            raise FetchError(f"HTTP {r.status_code} {r.reason_phrase}".strip(), r.status_code)
        if r.status_code in _REDIRECTS:
            # A redirect with a Location never gets here (the response hook follows it). Without one,
            # its body is the server's "moved" note, not the page: reading it as the article gave
            # "no article text found", or indexed the note.
            status = f"HTTP {r.status_code} {r.reason_phrase}".strip()
            raise FetchError(f"{status}: a redirect without a Location header, so there is no page to follow", r.status_code)
        if accept and ctype and ctype not in accept:
            raise FetchError(f"not a supported page type ({ctype})", r.status_code)
        declared = r.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(f"larger than the {_size(max_bytes)} limit ({_size(int(declared))})", r.status_code)
        body = bytearray()
        encoding = r.headers.get("content-encoding", "")
        try:
            # iter_raw, decoded here: httpx would inflate each layer of a nested encoding in one go
            for chunk in _decoded(r.iter_raw(), encoding):
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError(f"larger than the {_size(max_bytes)} limit (stopped reading)", r.status_code)
        except zlib.error:
            raise FetchError(f"the page's compression ({encoding}) is broken", r.status_code) from None
        if not body and not allow_empty:
            raise FetchError("the server sent an empty page", r.status_code)
        return Page(url, str(r.url), r.status_code, ctype, charset, bytes(body), kept)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(item) ...]`` with at most ``concurrency`` running at once, in input order."""
        items = list(items)
        if len(items) <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.settings.concurrency, len(items)), thread_name_prefix="bron-fetch") as pool:
            return list(pool.map(fn, items))
