"""Topic alerts across processes and kill -9: ``bron serve telegram`` and ``bron ingest`` as subprocesses."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from follow_support import write_articles
from service import free_port, readiness_seen, service_env, start_service, wait_exit
from standin import ANNA, BotApiStandIn

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def alerts(api: BotApiStandIn) -> list:
    return [s for s in api.sent_to(ANNA["id"]) if s.text.startswith("Nieuw over")]


async def test_bron_ingest_in_another_process_and_kill_9_of_the_bot_lose_and_repeat_nothing(
    api: BotApiStandIn, tmp_path: Path
) -> None:
    port = free_port()
    env = service_env(tmp_path / "data", port, BRON_TELEGRAM_TOKEN=api.token, BRON_TELEGRAM_BASE_URL=api.base_url,
                      BRON_FOLLOW_CHECK_SECONDS="1")

    async def serve() -> asyncio.subprocess.Process:
        process = await start_service("serve", "telegram", env=env)
        await readiness_seen(port, process)
        return process

    async def ingest(*names: str) -> None:
        folder = write_articles(tmp_path / "-".join(names), *names)
        assert await wait_exit(await start_service("ingest", str(folder), env=env), timeout=240) == 0

    bot = await serve()
    try:
        api.send_text(ANNA, "/follow wolf")
        assert (await api.wait_sent(ANNA["id"], timeout=60))[0].text.startswith("Je volgt nu: wolf")
        bot.send_signal(signal.SIGKILL)  # the bot dies ...
        await bot.wait()
        await ingest("wolf", "storm")  # ... `bron ingest` matches the new articles and records the alert ...
        bot = await serve()  # ... and the bot that comes back sends it, once.
        await api.wait_until(ANNA["id"], lambda sent: len(alerts(api)) == 1, timeout=60)
        assert "Op de Veluwe heeft een wolf" in alerts(api)[0].text
        # While the bot runs, another process's ingest is found by the bot's check (follow.check_seconds).
        api.send_text(ANNA, "/follow stikstof")
        await api.wait_sent(ANNA["id"], after=2, timeout=60)
        await ingest("stikstof", "wolf")  # the wolf article is unchanged
        await api.wait_until(ANNA["id"], lambda sent: len(alerts(api)) == 2, timeout=60)
        assert "NOS, 2024-12-03" in alerts(api)[1].text
        await ingest("stikstof_copy")  # the same story from NU.nl
        await asyncio.sleep(3)  # three checks
        assert len(alerts(api)) == 2
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
