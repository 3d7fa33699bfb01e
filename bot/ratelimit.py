"""Per-user rate limit for the chat front ends: a sliding window of message times per key."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """Whether a message may be served; if not, when to retry and whether to tell the user."""

    allowed: bool
    retry_after: int = 0
    # Only the first refused message of a burst gets a reply, so a flood does not cause a flood.
    notify: bool = False


class RateLimiter:
    """At most ``messages`` per ``per_seconds`` for each key (a user id).

    Front ends are single-threaded event loops, so no lock is needed.
    """

    def __init__(self, messages: int, per_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.messages = messages
        self.per_seconds = per_seconds
        self._clock = clock
        self._seen: dict[Hashable, deque[float]] = {}
        self._warned: dict[Hashable, float] = {}

    def check(self, key: Hashable) -> Verdict:
        """Record a message from ``key`` and say whether it may be served."""
        now = self._clock()
        window = self._seen.setdefault(key, deque())
        while window and now - window[0] >= self.per_seconds:
            window.popleft()
        if len(window) < self.messages:
            window.append(now)
            self._warned.pop(key, None)
            return Verdict(True)
        retry = max(1, math.ceil(self.per_seconds - (now - window[0])))
        first = key not in self._warned
        self._warned[key] = now
        self._forget_idle(now)
        return Verdict(False, retry, notify=first)

    def _forget_idle(self, now: float) -> None:
        # Keeps memory bounded by the number of recently active users.
        if len(self._seen) > 10_000:
            for key in [k for k, w in self._seen.items() if not w or now - w[-1] >= self.per_seconds]:
                del self._seen[key]
