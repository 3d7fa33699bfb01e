"""``matrix.encryption: false``: the bot stays out of encrypted rooms and never writes plaintext into one."""

from __future__ import annotations

import asyncio
import logging

import pytest

from support import SEED_QUESTION_NL

from .conftest import LOOP, TEST_TIMING, BotRunner, bot_config
from .homeserver import Synapse
from .people import ENCRYPTION_STATE, Person

pytestmark = [pytest.mark.asyncio(loop_scope=LOOP), pytest.mark.slow, pytest.mark.timeout(240)]


def from_bot(person: Person, room_id: str, bot_id: str) -> list:
    """Every message of the bot that ``person`` has seen in ``room_id``, readable or not."""
    return [e for e in person.notices + person.undecryptable
            if e.sender == bot_id and getattr(e, "room_id", room_id) == room_id]


async def test_bot_without_encryption_leaves_encrypted_rooms_silently(
    bot_bron, synapse: Synapse, people: dict[str, Person], tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.matrix_plain")
    alice = people["alice"]
    account = await asyncio.to_thread(synapse.register, "plainbot")
    config = bot_config(synapse, account, [alice.user_id], BRON_MATRIX_ENCRYPTION="false")
    runner = BotRunner(config, bot_bron, tmp_path / "plain", **TEST_TIMING)
    me = (await runner.start()).client.user_id
    try:
        # Invited into an encrypted DM: it leaves at once, without a word.
        secret_room = await alice.room([me], encrypted=True, direct=True, wait_for=me)
        await alice.until(lambda: (secret_room, f"{me}:leave") in alice.joined)

        # A plain DM works, until alice turns encryption on: then it leaves without answering.
        room = await alice.room([me], encrypted=False, direct=True, wait_for=me)
        reply = await alice.ask(room, SEED_QUESTION_NL)
        assert not reply.decrypted and "in Turkije verbleef" in reply.body
        await alice.client.room_put_state(room, "m.room.encryption", ENCRYPTION_STATE["content"])
        await alice.until(lambda: alice.client.rooms[room].encrypted)
        await alice.say(room, SEED_QUESTION_NL)
        await alice.until(lambda: (room, f"{me}:leave") in alice.joined)
        # Long enough for the "cannot read" notice the bot would have sent after key_wait.
        await asyncio.sleep(TEST_TIMING["key_wait"] + 3)
        assert from_bot(alice, secret_room, me) == []
        assert from_bot(alice, room, me) == [reply]
        left = [r.getMessage() for r in caplog.records if "leaving" in r.getMessage()]
        assert any(secret_room in m and "matrix.encryption is false" in m for m in left)
        assert any(room in m for m in left)
    finally:
        await runner.stop()
