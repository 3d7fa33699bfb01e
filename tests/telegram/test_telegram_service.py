"""``bron serve telegram`` run as a service: readiness, metrics and a graceful SIGTERM, in one subprocess."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from service import SLOW, free_port, get, readiness_seen, scrape, service_env, start_service, total, until_in_flight, wait_exit
from standin import ANNA, BOB, BotApiStandIn, Fault
from support import REPO, SEED_QUESTION_EN, SEED_QUESTION_NL

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

OFF_TOPIC = "Wie won de Tour de France van 2023?"


async def test_serve_is_ready_after_loading_counts_questions_and_stops_after_the_answer(
    api: BotApiStandIn, tmp_path: Path
) -> None:
    port = free_port()
    env = service_env(tmp_path / "data", port, BRON_TELEGRAM_TOKEN=api.token, BRON_TELEGRAM_BASE_URL=api.base_url)
    process = await start_service("serve", "telegram", env=env)
    try:
        # Sent while the bot starts: Telegram keeps it, and the bot answers it once it is up.
        api.send_text(ANNA, SEED_QUESTION_NL)
        seen = await readiness_seen(port, process)
        assert seen[0] == (503, "loading the models and the index"), seen
        assert seen[-1] == (200, "ready")
        assert (await get(port, "/healthz")).status_code == 200
        assert "in Turkije verbleef" in (await api.wait_sent(ANNA["id"], timeout=60))[0].text

        api.faults.append(Fault("getUpdates", "status", status=500))  # counted, and polling goes on
        api.send_text(BOB, SEED_QUESTION_EN)
        await api.wait_sent(BOB["id"], timeout=60)
        api.send_text(ANNA, OFF_TOPIC)
        await api.wait_sent(ANNA["id"], after=1, timeout=60)
        samples = await scrape(port)
        questions = "bron_questions_total"
        assert total(samples, questions, platform="telegram", outcome="answered") == 2
        assert total(samples, questions, platform="telegram", outcome="declined") == 1
        assert total(samples, questions, platform="telegram", outcome="error") == 0
        assert total(samples, questions, language="en", outcome="answered") == 1
        assert total(samples, "bron_answer_seconds_count", platform="telegram") == 3
        assert total(samples, "bron_index_articles") == 1 and total(samples, "bron_index_passages") > 1
        assert total(samples, "bron_ready") == 1
        assert total(samples, "bron_platform_api_errors_total", platform="telegram", kind="server") == 1

        # SIGTERM while an answer is being worked out: it is still delivered, then the bot exits 0.
        api.send_text(ANNA, SLOW + SEED_QUESTION_NL)
        await until_in_flight(port)  # the bot took the update and is answering (it takes 4 s more)
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        stopping = await get(port, "/readyz")
        assert stopping is not None and (stopping.status_code, stopping.text.strip()) == (503, "stopping")
        api.send_text(BOB, SEED_QUESTION_EN)  # after the stop: left for the next start
        assert await wait_exit(process) == 0
        last = api.sent_to(ANNA["id"])
        assert len(last) == 3 and "in Turkije verbleef" in last[-1].text
        assert len(api.sent_to(BOB["id"])) == 1
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_doctor_checks_the_token_with_the_bot_api(api: BotApiStandIn, tmp_path: Path, capsys, monkeypatch) -> None:
    from bot.cli import main

    monkeypatch.setenv("BRON_TELEGRAM_BASE_URL", api.base_url)
    argv = ["--config", str(REPO / "config.yaml"), "--data-dir", str(tmp_path), "doctor", "telegram"]
    monkeypatch.setenv("BRON_TELEGRAM_TOKEN", api.token)
    assert await asyncio.to_thread(main, argv) == 0  # the stand-in answers on this loop meanwhile
    assert "ok    telegram: token accepted: @bron_test_bot" in capsys.readouterr().out
    monkeypatch.setenv("BRON_TELEGRAM_TOKEN", "123456:revoked")
    assert await asyncio.to_thread(main, argv) == 1
    out = capsys.readouterr().out
    assert "FAIL  telegram: Telegram refused the token" in out and "fix: set TELEGRAM_BOT_TOKEN" in out


async def test_api_errors_retries_and_rate_limits_are_counted(api: BotApiStandIn, start_bot) -> None:
    from bot.ops import Ops

    ops = Ops()
    await start_bot(ops=ops, messages=1, per_seconds=60)
    api.faults += [Fault("sendMessage", "status", status=429, parameters={"retry_after": 1}),
                   Fault("sendMessage", "status", status=502)]
    api.send_text(ANNA, SEED_QUESTION_NL)
    await api.wait_sent(ANNA["id"], timeout=60)
    api.send_text(ANNA, SEED_QUESTION_NL)  # over the limit of 1 a minute
    await api.wait_sent(ANNA["id"], after=1, timeout=60)
    value = ops.metrics.registry.get_sample_value
    assert value("bron_platform_api_errors_total", {"platform": "telegram", "kind": "rate_limited"}) == 1
    assert value("bron_platform_api_errors_total", {"platform": "telegram", "kind": "server"}) == 1
    assert value("bron_platform_api_retries_total", {"platform": "telegram"}) == 2
    assert value("bron_rate_limited_total", {"platform": "telegram"}) == 1
    assert value("bron_questions_total", {"platform": "telegram", "language": "nl", "outcome": "answered"}) == 1
