"""``bron serve matrix`` run as a service against Synapse: readiness, metrics and a graceful SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import pytest

from service import SLOW, free_port, get, readiness_seen, scrape, service_env, start_service, total, until_in_flight, wait_exit
from support import SEED_QUESTION_EN, SEED_QUESTION_NL

from .conftest import LOOP
from .homeserver import Synapse
from .people import Person

pytestmark = [pytest.mark.asyncio(loop_scope=LOOP), pytest.mark.slow, pytest.mark.timeout(420)]

OFF_TOPIC = "Wie won de Tour de France van 2023?"


async def test_serve_is_ready_after_the_first_sync_counts_questions_and_stops_after_the_answer(
    synapse: Synapse, people: dict[str, Person], tmp_path
) -> None:
    alice = people["alice"]
    account = await asyncio.to_thread(synapse.register, "opsbot")
    port = free_port()
    env = service_env(
        tmp_path / "data", port, BRON_MATRIX_HOMESERVER=synapse.url, BRON_MATRIX_USER_ID=account.user_id,
        MATRIX_PASSWORD=account.password, BRON_MATRIX_ALLOWED_USERS=alice.user_id, BRON_MATRIX_ENCRYPTION="false",
    )
    process = await start_service("serve", "matrix", env=env)
    try:
        seen = await readiness_seen(port, process)
        assert seen[0] == (503, "loading the models and the index"), seen
        assert seen[-1] == (200, "ready")
        assert (await get(port, "/healthz")).status_code == 200

        room = await alice.room([account.user_id], encrypted=False, direct=True, wait_for=account.user_id)
        assert "in Turkije verbleef" in (await alice.ask(room, SEED_QUESTION_NL)).body
        assert "date unknown" in (await alice.ask(room, SEED_QUESTION_EN)).body
        await alice.ask(room, OFF_TOPIC)
        await alice.ask(room, "!source")
        samples = await scrape(port)
        questions = "bron_questions_total"
        assert total(samples, questions, platform="matrix", outcome="answered") == 2
        assert total(samples, questions, platform="matrix", outcome="declined") == 1
        assert total(samples, questions, platform="matrix", outcome="error") == 0
        assert total(samples, questions, language="en", outcome="answered") == 1
        assert total(samples, "bron_answer_seconds_count", platform="matrix") == 3
        assert total(samples, "bron_sources_total", platform="matrix") == 1
        assert total(samples, "bron_ready") == 1

        # SIGTERM while an answer is being worked out: it is still sent, then the bot exits 0.
        slow = await alice.say(room, SLOW + SEED_QUESTION_NL)
        await until_in_flight(port)  # the bot synced it and is answering (it takes 4 s more)
        process.send_signal(signal.SIGTERM)
        reply = await alice.reply(slow, timeout=60)
        assert "in Turkije verbleef" in reply.body
        assert await wait_exit(process) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
