"""The Matrix bot in end-to-end encrypted rooms: it reads, answers encrypted, and survives restarts."""

from __future__ import annotations

import asyncio
import secrets
import shutil

import pytest
from nio import MegolmEvent, RoomMessageNotice

from bot.matrix_session import MatrixStartupError, store_path
from support import SEED_QUESTION_NL

from .conftest import LINKED_QUESTION, LOOP, TEST_TIMING, BotRunner, bot_config
from .homeserver import Synapse
from .people import Person, reply_target

pytestmark = [pytest.mark.asyncio(loop_scope=LOOP), pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def rooms() -> dict[str, str]:
    """Rooms created by one test and reused by later ones in this file."""
    return {}


def encrypted_reply(reply: RoomMessageNotice) -> dict:
    """The content of a reply that arrived encrypted and was decrypted by the user's client."""
    assert reply.decrypted, "the bot's reply was not encrypted"
    return reply.source["content"]


async def test_encrypted_direct_question_gets_an_encrypted_reply(bot: BotRunner, people: dict[str, Person], rooms) -> None:
    alice, me = people["alice"], bot.bot.client.user_id
    rooms["dm"] = room = await alice.room([me], encrypted=True, direct=True, wait_for=me)
    assert alice.client.rooms[room].encrypted
    question = await alice.say(room, SEED_QUESTION_NL)
    reply = await alice.reply(question)
    content = encrypted_reply(reply)
    assert reply_target(reply) == question
    assert content["msgtype"] == "m.notice"
    assert "<blockquote>" in content["formatted_body"] and "in Turkije verbleef" in content["formatted_body"]
    assert "Expert waarschuwt voor verwachte aanvallen van ISIS in Europese landen</i> — ANHA" in content["formatted_body"]
    linked = encrypted_reply(await alice.ask(room, LINKED_QUESTION))
    assert '<a href="https://www.nhnieuws.nl/nieuws/n173861/' in linked["formatted_body"]


async def test_summary_and_source_in_an_encrypted_room(bot: BotRunner, people: dict[str, Person], rooms) -> None:
    alice = people["alice"]
    source = encrypted_reply(await alice.ask(rooms["dm"], "!source"))
    assert source["body"].startswith("Bronnen van het laatste antwoord:")
    assert "NH Nieuws" in source["body"] and "https://www.nhnieuws.nl/" in source["body"]
    summary = encrypted_reply(await alice.ask(rooms["dm"], "!summary"))
    assert summary["body"].startswith("Samenvatting van\n[")
    assert "Syrische veiligheidsdiensten" in summary["body"]


async def test_restarted_bot_keeps_decrypting_the_same_room(bot: BotRunner, people: dict[str, Person], rooms) -> None:
    alice = people["alice"]
    device = bot.bot.client.device_id
    await bot.stop()
    await bot.start()
    assert bot.bot.client.device_id == device
    content = encrypted_reply(await alice.ask(rooms["dm"], SEED_QUESTION_NL))
    assert "in Turkije verbleef" in content["body"]


async def test_encrypted_group_room_reply_is_readable_by_every_member(
    bot: BotRunner, people: dict[str, Person], accounts
) -> None:
    alice, bob, me = people["alice"], people["bob"], bot.bot.client.user_id
    room = await alice.room([me, bob.user_id, accounts["carol"].user_id], encrypted=True, direct=False, wait_for=me)
    await bob.until(lambda: room in bob.client.invited_rooms)
    await bob.client.join(room)
    await bob.until(lambda: room in bob.client.rooms)
    ignored = await alice.say(room, "Waar verbleef een van de daders?")
    pill = f'<a href="https://matrix.to/#/{me}">Bron</a>: {SEED_QUESTION_NL}'
    question = await bob.say(room, f"Bron: {SEED_QUESTION_NL}", formatted=pill)
    for person in (alice, bob):
        assert "in Turkije verbleef" in encrypted_reply(await person.reply(question))["body"]
    assert not alice.replies_to(ignored)


async def test_unreadable_message_is_reported_once(bot: BotRunner, people: dict[str, Person], rooms, synapse: Synapse) -> None:
    alice = people["alice"]
    bogus = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "sender_key": alice.client.olm.account.identity_keys["curve25519"],
        "device_id": alice.client.device_id,
        "session_id": secrets.token_urlsafe(32),  # a session the bot never got a key for
        "ciphertext": "AwgAEnAbogusciphertext",
    }
    def send() -> str:
        return synapse.send_raw(alice.client.access_token, rooms["dm"], "m.room.encrypted", bogus)

    first = await asyncio.to_thread(send)
    second = await asyncio.to_thread(send)
    notice = await alice.reply(first)
    assert encrypted_reply(notice)["body"].startswith("Ik kan een versleuteld bericht in deze kamer niet lezen")
    # Both unreadable events belong to one missing session and are given up together.
    follow_up = await alice.ask(rooms["dm"], SEED_QUESTION_NL)
    assert "in Turkije verbleef" in follow_up.body
    assert not alice.replies_to(second)


async def test_plain_room_still_works_with_encryption_on(bot: BotRunner, people: dict[str, Person]) -> None:
    bob, me = people["bob"], bot.bot.client.user_id
    room = await bob.room([me], encrypted=False, direct=True, wait_for=me)
    reply = await bob.ask(room, SEED_QUESTION_NL)
    assert not reply.decrypted and "in Turkije verbleef" in reply.body


async def test_allowlist_trust_keeps_replies_from_other_devices(
    bot_bron, synapse: Synapse, accounts, people: dict[str, Person], tmp_path
) -> None:
    alice, mallory = people["alice"], people["mallory"]
    config = bot_config(synapse, accounts["warden"], [alice.user_id], BRON_MATRIX_TRUST="allowlist")
    warden = BotRunner(config, bot_bron, tmp_path / "warden", **TEST_TIMING)
    me = (await warden.start()).client.user_id
    try:
        room = await alice.room([me, mallory.user_id], encrypted=True, direct=False, wait_for=me)
        await mallory.until(lambda: room in mallory.client.invited_rooms)
        await mallory.client.join(room)
        await alice.until(lambda: (room, f"{mallory.user_id}:join") in alice.joined)
        question = await alice.say(room, f"!ask {SEED_QUESTION_NL}")
        assert "in Turkije verbleef" in encrypted_reply(await alice.reply(question))["body"]
        # mallory sees the reply arrive but got no key for it.
        seen = await mallory.until(lambda: [e for e in mallory.undecryptable + mallory.notices if e.sender == me])
        assert all(isinstance(e, MegolmEvent) for e in seen)
    finally:
        await warden.stop()


async def test_lost_store_is_reported_at_start(bot: BotRunner) -> None:
    await bot.stop()
    store = store_path(bot.data_dir)
    moved = store.with_name("store-moved")
    store.rename(moved)
    try:
        with pytest.raises(MatrixStartupError) as err:
            await bot.start()
        assert "encryption store" in str(err.value) and "is missing" in str(err.value)
        assert "Restore" in str(err.value) and "session.json" in str(err.value)
    finally:
        shutil.rmtree(store, ignore_errors=True)  # the empty folder the failed start made
        moved.rename(store)
        await bot.start()
