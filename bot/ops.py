"""Running a bot as a service: the ops HTTP endpoints, readiness, and a graceful stop.

``bron serve`` starts :class:`OpsServer` on ``ops.listen`` before anything slow happens, so a
supervisor sees ``/healthz`` at once and ``/readyz`` say why the bot is not ready yet:

- ``GET /healthz``: 200 while the process runs;
- ``GET /readyz``: 503 and the reason until the models and index are loaded and the chat platform
  was reached, then 200;
- ``GET /metrics``: :mod:`bot.metrics` in the Prometheus text format.

The server runs in its own thread, so it answers while the models load and the event loop is busy.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from bot.metrics import Metrics

log = logging.getLogger(__name__)


def parse_listen(value: str) -> tuple[str, int] | None:
    """``host:port`` as a pair, None when empty (ops endpoints off); ValueError says what is wrong."""
    value = value.strip()
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isascii() or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:9464)")
    return host, int(port)


class Readiness:
    """Ready or not, and why not; written by the bot, read by the HTTP thread."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._lock = threading.Lock()
        self._ready = False
        self._reason = "starting"
        self._metrics = metrics

    def waiting(self, reason: str) -> None:
        """Not ready, because of ``reason`` (shown by ``/readyz``)."""
        with self._lock:
            if reason != self._reason or self._ready:
                log.info("not ready: %s", reason)
            self._ready, self._reason = False, reason
        if self._metrics:
            self._metrics.ready.set(0)

    def ready(self) -> None:
        """Taking updates with models, index and platform in place."""
        with self._lock:
            self._ready, self._reason = True, "ready"
        if self._metrics:
            self._metrics.ready.set(1)
        log.info("ready")

    def state(self) -> tuple[bool, str]:
        """(ready, reason)."""
        with self._lock:
            return self._ready, self._reason


class InFlight:
    """The handlers at work, so a stop can let them finish (and cancel them after a bound)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._tasks)

    @asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        """Count the current task as in flight until the block ends."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._idle.clear()
        try:
            yield
        finally:
            self._tasks.discard(task)
            if not self._tasks:
                self._idle.set()

    async def drain(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the work in flight to end; cancel what is left. True if all ended."""
        if not self._tasks:
            return True
        log.info("waiting up to %.0fs for %d answer(s) in flight", seconds, len(self._tasks))
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            log.warning("stopping: %d answer(s) still running after %.0fs are cancelled", len(self._tasks), seconds)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            return False


@dataclass
class Ops:
    """What a bot shares with the ops endpoints: its metrics, its readiness, its work in flight."""

    metrics: Metrics = field(default_factory=Metrics)
    readiness: Readiness = field(init=False)
    inflight: InFlight = field(default_factory=InFlight)
    # Seconds a stop waits for answers in flight (ops.drain_seconds).
    drain_seconds: float = 20.0

    def __post_init__(self) -> None:
        self.readiness = Readiness(self.metrics)
        self.metrics.in_flight.set_function(lambda: len(self.inflight))


class OpsServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` on one address, served from a daemon thread."""

    def __init__(self, host: str, port: int, ops: Ops) -> None:
        self.ops = ops
        self._server = ThreadingHTTPServer((host, port), _handler(ops))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) it listens on; port 0 in the config becomes a free one."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve in the background."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="bron-ops", daemon=True)
        self._thread.start()
        log.info("ops endpoints on http://%s:%d", *self.address)

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()


def start_server(listen: str, ops: Ops) -> OpsServer | None:
    """The ops server on ``listen`` (``ops.listen``), started; None when it is empty."""
    address = parse_listen(listen)
    if address is None:
        return None
    server = OpsServer(*address, ops)
    server.start()
    return server


def _handler(ops: Ops) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "bron-ops"

        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._reply(200, b"ok\n")
            elif path == "/readyz":
                ready, reason = ops.readiness.state()
                self._reply(200 if ready else 503, f"{reason}\n".encode())
            elif path == "/metrics":
                self._reply(200, ops.metrics.text(), CONTENT_TYPE_LATEST)
            else:
                self._reply(404, b"not found: try /healthz, /readyz or /metrics\n")

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("ops: " + format, *args)  # scrapes every few seconds: keep them out of the log

    return Handler


def warm_up(bron: object) -> None:
    """Load every encoder and the answerability model and run one search, so the first question
    does not wait for the models."""
    library = bron.library  # type: ignore[attr-defined]
    library.encoders  # noqa: B018 - loads the models
    language = bron.config.answer.language_fallback  # type: ignore[attr-defined]
    library.rank("opwarmen van de modellen", language, 1)
