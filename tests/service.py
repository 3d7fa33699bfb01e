"""``bron serve`` as a service manager runs it: a subprocess, watched over its ops endpoints.

The bot runs as ``python tests/service.py ARGS...``: ``bron`` itself, except that a question starting
with ``SLOW`` takes ``BRON_TEST_SLOW_SECONDS`` longer, so a test can stop the bot mid-answer.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from support import REPO

SLOW = "SLOW "
START_TIMEOUT = 240.0  # loading the models on a busy shared box


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_env(data_dir: Path, ops_port: int, **extra: str) -> dict[str, str]:
    """The environment of a bot under test: offline, its own data dir and ops port, no feed polling."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRON_", "TELEGRAM_", "MATRIX_"))}
    env.update(
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
        TOKENIZERS_PARALLELISM="false", BRON_CONFIG=str(REPO / "config.yaml"), BRON_DATA_DIR=str(data_dir),
        BRON_OPS_LISTEN=f"127.0.0.1:{ops_port}", BRON_FEEDS_POLL_MINUTES="0", BRON_TEST_SLOW_SECONDS="4",
        PYTHONPATH=str(REPO),
    )
    env.update(extra)
    return env


async def start_service(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    """``bron -q ARGS`` (with slow questions) as a subprocess; output goes to the test's output."""
    return await asyncio.create_subprocess_exec(sys.executable, __file__, "-q", *args, env=env)


async def get(port: int, path: str) -> httpx.Response | None:
    """GET an ops endpoint; None while nothing listens yet."""
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.get(f"http://127.0.0.1:{port}{path}")
    except httpx.TransportError:
        return None


async def readiness_seen(port: int, process: asyncio.subprocess.Process) -> list[tuple[int, str]]:
    """Poll ``/readyz`` until it says 200; every distinct (status, reason) seen on the way, in order."""
    seen: list[tuple[int, str]] = []
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert process.returncode is None, f"bron serve exited with {process.returncode} before it was ready"
        response = await get(port, "/readyz")
        if response is not None:
            state = (response.status_code, response.text.strip())
            if not seen or seen[-1] != state:
                seen.append(state)
            if response.status_code == 200:
                return seen
        await asyncio.sleep(0.2)
    raise AssertionError(f"never ready within {START_TIMEOUT}s; /readyz said {seen}")


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` parsed with prometheus-client's parser: {(sample name, sorted labels): value}."""
    response = await get(port, "/metrics")
    assert response is not None and response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


async def until_in_flight(port: int, timeout: float = 60.0) -> None:
    """Wait until ``/metrics`` shows a message being handled."""
    deadline = time.monotonic() + timeout
    while total(await scrape(port), "bron_in_flight") < 1:
        assert time.monotonic() < deadline, "no message in flight"
        await asyncio.sleep(0.05)


async def wait_exit(process: asyncio.subprocess.Process, timeout: float = 60.0) -> int:
    """The exit code, once the process ended."""
    return await asyncio.wait_for(process.wait(), timeout)


def _main() -> int:
    import bot.core
    from bot.cli import main

    real_answer = bot.core.Bron.answer

    def answer(self, question: str, conversation: str = "default"):
        if question.startswith(SLOW):
            time.sleep(float(os.environ.get("BRON_TEST_SLOW_SECONDS", "4")))
            question = question[len(SLOW):]
        return real_answer(self, question, conversation)

    bot.core.Bron.answer = answer
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(_main())
