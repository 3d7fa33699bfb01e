"""The bots' background task: look for new articles and due briefings, send what the outbox holds.

Transport-independent: an adapter hands in ``send(outgoing) -> reference`` that renders and sends one
message, raising :class:`SendError` to say whether to retry. Delivery: a message is marked
``sending`` before it goes out and ``sent`` right after the platform accepted it. A message found
``sending`` at start-up (the process died in between) is sent again: at least once in that window,
which on Matrix is exactly once (the transaction id is the outbox row, and the homeserver drops the
repeat), and on Telegram, which has no idempotency key, may show twice. With the postgres backend
several workers run this at once on one outbox: a message is claimed by one of them, and only the
messages of a worker that stopped are taken up again (:mod:`bot.follow.pg_store`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable

from bot.follow.core import Follow
from bot.follow.models import Outgoing

log = logging.getLogger(__name__)

CONCURRENCY = 16
CLAIM = 500


class SendError(Exception):
    """A message that did not go out. ``retry``: the reason may pass (network, server, flood limit);
    ``gone``: the chat cannot be reached any more (blocked, left), so its topics are dropped."""

    def __init__(self, reason: str, retry: bool, gone: bool = False) -> None:
        super().__init__(reason)
        self.retry = retry
        self.gone = gone


Send = Callable[[Outgoing], Awaitable[str | None]]


class FollowRunner:
    """Scan, make briefings and deliver the outbox of one platform, until stopped."""

    def __init__(self, follow: Follow, platform: str, send: Send, every: float | None = None,
                 per_second: float | None = None, concurrency: int = CONCURRENCY) -> None:
        self.follow = follow
        self.platform = platform
        self.send = send
        self.every = every if every is not None else follow.settings.check_seconds
        rate = follow.settings.sends_per_second if per_second is None else per_second
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.concurrency = concurrency
        self._wake: asyncio.Event | None = None
        self._next_slot = 0.0
        self._pace_lock = asyncio.Lock()
        self.delivered = 0

    def poke(self) -> None:
        """Run a round now (tests call it after moving the clock). Safe from any thread once running."""
        if self._wake is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds every ``every`` seconds, and whenever an ingest recorded something, until ``stop``."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.follow.listeners.append(self.poke)
        try:
            recovered = await asyncio.to_thread(self.follow.recover, self.platform)
            if recovered:
                log.warning("follow: %d %s message(s) were being sent when the bot stopped; sending them again",
                            recovered, self.platform)
            while not stop.is_set():
                try:
                    await self.round()
                except Exception:  # noqa: BLE001 - a bad round must not end the alerts
                    log.exception("follow: a round of %s alerts failed", self.platform)
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, timeout=self.every, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                self._wake.clear()
        finally:
            self.follow.listeners.remove(self.poke)

    _loop: asyncio.AbstractEventLoop | None = None

    async def round(self) -> int:
        """Scan, make due briefings, and send everything that may go now; returns how many were sent."""
        await asyncio.to_thread(self.follow.tick)
        sent = 0
        while True:
            batch = await asyncio.to_thread(self.follow.claim, self.platform, CLAIM)
            if not batch:
                return sent
            sent += await self._deliver(batch)

    async def _deliver(self, batch: list[Outgoing]) -> int:
        by_chat: dict[str, list[Outgoing]] = defaultdict(list)
        for item in batch:
            by_chat[item.chat].append(item)
        gate = asyncio.Semaphore(self.concurrency)
        results = await asyncio.gather(*(self._chat(items, gate) for items in by_chat.values()))
        return sum(results)

    async def _chat(self, items: list[Outgoing], gate: asyncio.Semaphore) -> int:
        """One chat's messages, in order."""
        done = 0
        async with gate:
            for item in items:
                await self._pace()
                try:
                    ref = await self.send(item)
                except SendError as err:
                    log.warning("follow: %s %s to %s not sent: %s", item.kind, item.id, item.chat, err)
                    await asyncio.to_thread(self.follow.failed, item.id, str(err), err.retry)
                    if err.gone:
                        await asyncio.to_thread(self.follow.forget_chat, item.chat)
                        return done
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # noqa: BLE001 - log, retry later
                    log.exception("follow: sending %s %s to %s failed", item.kind, item.id, item.chat)
                    await asyncio.to_thread(self.follow.failed, item.id, repr(err), True)
                    continue
                await asyncio.to_thread(self.follow.sent, item.id, ref)
                done += 1
                self.delivered += 1
        return done

    async def _pace(self) -> None:
        """At most ``sends_per_second`` messages per second over all chats (real time, not the test clock)."""
        if not self.interval:
            return
        async with self._pace_lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)
