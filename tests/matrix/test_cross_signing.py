"""Cross-signing: other users see the bot's device signed by its owner; restart and recovery keep that.

Signatures are checked here with PyNaCl (libsodium) over canonical JSON written out in this file,
independently of the bot's own signing code.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import stat
import urllib.request

import nacl.exceptions
import nacl.signing
import pytest
from nio import MegolmEvent

from bot.matrix_api import MatrixAPI, MatrixAPIError
from bot.matrix_crosssign import CrossSigningKeys, keys_file, recovery_file, upload_keys
from bot.matrix_recovery import encode_recovery_key, new_recovery_key
from bot.cli import build_parser, cmd_matrix
from bot.matrix_session import MatrixStartupError
from bot.matrix_status import recovery_key_text, status_text
from support import SEED_QUESTION_NL

from .conftest import LOOP, TEST_TIMING, BotRunner, bot_config
from .homeserver import Synapse
from .people import Person

pytestmark = [pytest.mark.asyncio(loop_scope=LOOP), pytest.mark.slow, pytest.mark.timeout(240)]


def canonical(value: dict) -> bytes:
    """The spec's canonical JSON of a signed object (signatures and unsigned are not signed)."""
    body = {k: v for k, v in value.items() if k not in ("signatures", "unsigned")}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def verify(signed: dict, user_id: str, public: str) -> None:
    """Raise unless ``signed`` carries a valid ed25519 signature by ``public``."""
    signature = signed["signatures"][user_id][f"ed25519:{public}"]
    nacl.signing.VerifyKey(unb64(public)).verify(canonical(signed), unb64(signature))


def only_key(key_object: dict) -> str:
    (public,) = key_object["keys"].values()
    return public


async def keys_seen_by(person: Person, synapse: Synapse, user_id: str) -> dict:
    """What another user's client gets from /keys/query for ``user_id``."""
    def query() -> dict:
        request = urllib.request.Request(
            f"{synapse.url}/_matrix/client/v3/keys/query",
            data=json.dumps({"device_keys": {user_id: []}}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {person.client.access_token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())
    return await asyncio.to_thread(query)


async def assert_cross_signed(person: Person, synapse: Synapse, user_id: str, device_id: str) -> str:
    """Check master -> self-signing -> device as a client would; returns the master key."""
    keys = await keys_seen_by(person, synapse, user_id)
    master = keys["master_keys"][user_id]
    self_signing = keys["self_signing_keys"][user_id]
    assert master["usage"] == ["master"] and self_signing["usage"] == ["self_signing"]
    verify(self_signing, user_id, only_key(master))
    verify(keys["device_keys"][user_id][device_id], user_id, only_key(self_signing))
    return only_key(master)


async def trust_only_cross_signed(person: Person, synapse: Synapse, user_id: str) -> set[str]:
    """Make ``person`` share room keys only with ``user_id``'s cross-signed devices; returns the excluded ones."""
    if person.client.should_query_keys:
        await person.client.keys_query()
    keys = await keys_seen_by(person, synapse, user_id)
    self_signing = keys["self_signing_keys"][user_id]
    verify(self_signing, user_id, only_key(keys["master_keys"][user_id]))
    excluded = set()
    for device in person.client.device_store.active_user_devices(user_id):
        try:
            verify(keys["device_keys"][user_id][device.id], user_id, only_key(self_signing))
        except (KeyError, nacl.exceptions.BadSignatureError):
            person.client.blacklist_device(device)
            excluded.add(device.id)
        else:
            person.client.verify_device(device)
    return excluded


@pytest.fixture(scope="module")
def state() -> dict:
    """The keeper bot and what earlier tests in this file learned about it."""
    return {}


async def test_new_bot_device_is_cross_signed_and_recovery_key_shown_once(
    bot_bron, synapse: Synapse, people: dict[str, Person], tmp_path_factory, state, capsys
) -> None:
    alice = people["alice"]
    account = await asyncio.to_thread(synapse.register, "keeper")
    config = bot_config(synapse, account, [alice.user_id])
    runner = BotRunner(config, bot_bron, tmp_path_factory.mktemp("keeper"), **TEST_TIMING)
    state.update(runner=runner, account=account)
    client = (await runner.start()).client
    state["master"] = await assert_cross_signed(alice, synapse, client.user_id, client.device_id)
    recovery = recovery_file(runner.data_dir).read_text().strip()
    assert recovery.startswith("Es") and len(recovery.replace(" ", "")) == 48
    assert recovery in capsys.readouterr().err
    for private in (recovery_file(runner.data_dir), keys_file(runner.data_dir)):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    state["recovery"] = recovery


async def test_restart_keeps_the_identity_without_uploading_again(
    synapse: Synapse, people: dict[str, Person], state, capsys, caplog: pytest.LogCaptureFixture
) -> None:
    runner: BotRunner = state["runner"]
    caplog.set_level(logging.INFO, logger="bot.matrix_crosssign")
    device = runner.bot.client.device_id
    await runner.stop()
    await runner.start()
    assert runner.bot.client.device_id == device
    assert await assert_cross_signed(people["alice"], synapse, runner.bot.client.user_id, device) == state["master"]
    assert not [r for r in caplog.records if "uploaded" in r.getMessage() or "now cross-signed" in r.getMessage()]
    assert state["recovery"] not in capsys.readouterr().err


async def backup_count(synapse: Synapse, access_token: str) -> int:
    """How many room keys the account's current key backup holds."""
    def get() -> dict:
        request = urllib.request.Request(f"{synapse.url}/_matrix/client/v3/room_keys/version",
                                         headers={"Authorization": f"Bearer {access_token}"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())
    return (await asyncio.to_thread(get)).get("count", 0)


async def test_room_keys_of_a_conversation_reach_the_key_backup(
    synapse: Synapse, people: dict[str, Person], state
) -> None:
    runner: BotRunner = state["runner"]
    alice, client = people["alice"], runner.bot.client
    room = await alice.room([client.user_id], encrypted=True, direct=True, wait_for=client.user_id)
    question = await alice.say(room, SEED_QUESTION_NL)
    assert "in Turkije verbleef" in (await alice.reply(question)).body
    state["before"] = (room, question)
    for _ in range(60):
        if await backup_count(synapse, client.access_token) >= 1:
            break
        await asyncio.sleep(0.5)
    assert await backup_count(synapse, client.access_token) >= 1


async def test_fresh_store_with_the_recovery_key_restores_and_signs_the_new_device(
    bot_bron, synapse: Synapse, people: dict[str, Person], tmp_path, state
) -> None:
    runner: BotRunner = state["runner"]
    old_device = runner.bot.client.device_id
    user_id = runner.bot.client.user_id
    await runner.stop()
    alice = people["alice"]

    wrong = bot_config(synapse, state["account"], [alice.user_id],
                       BRON_MATRIX_RECOVERY_KEY=encode_recovery_key(new_recovery_key()))
    refused = BotRunner(wrong, bot_bron, tmp_path / "wrong", **TEST_TIMING)
    try:
        with pytest.raises(MatrixStartupError, match="not the recovery key"):
            await refused.start()
    finally:
        await refused.stop()

    config = bot_config(synapse, state["account"], [alice.user_id], MATRIX_RECOVERY_KEY=state["recovery"])
    restored = BotRunner(config, bot_bron, tmp_path / "restored", **TEST_TIMING)
    client = (await restored.start()).client
    try:
        assert client.device_id != old_device
        assert await assert_cross_signed(alice, synapse, user_id, client.device_id) == state["master"]
        assert recovery_file(restored.data_dir).read_text().strip() == state["recovery"]
        # The message alice sent to the old device is readable with the keys from the backup.
        old_room, old_question = state["before"]
        fetched = await client.room_get_event(old_room, old_question)
        assert not isinstance(fetched.event, MegolmEvent), "the restored bot cannot read the old message"
        assert fetched.event.decrypted and fetched.event.body == SEED_QUESTION_NL
        # The restored bot converses in a new encrypted DM, and its status says what the operator needs.
        room = await alice.room([user_id], encrypted=True, direct=True, wait_for=user_id)
        # alice shares room keys only with devices the bot's owner signed ("exclude insecure devices"):
        # the device of the refused start above, never signed, gets nothing; the restored one answers.
        excluded = await trust_only_cross_signed(alice, synapse, user_id)
        assert excluded and client.device_id not in excluded
        question = await alice.client.room_send(room, "m.room.message", {"msgtype": "m.text", "body": SEED_QUESTION_NL},
                                                ignore_unverified_devices=False)
        reply = await alice.reply(question.event_id)
        assert reply.decrypted and "in Turkije verbleef" in reply.body
        # The same in an encrypted group: the bot's unsigned device stays excluded (blacklisted), bob's get keys.
        bob = people["bob"]
        group = await alice.room([user_id, bob.user_id], encrypted=True, direct=False, wait_for=user_id)
        await bob.until(lambda: group in bob.client.invited_rooms)
        await bob.client.join(group)
        await bob.until(lambda: group in bob.client.rooms)
        await trust_only_cross_signed(alice, synapse, user_id)
        asked = await alice.client.room_send(group, "m.room.message", {"msgtype": "m.text", "body": f"!ask {SEED_QUESTION_NL}"},
                                             ignore_unverified_devices=True)
        answer = await alice.reply(asked.event_id)
        assert answer.decrypted and "in Turkije verbleef" in answer.body
        status = await asyncio.to_thread(status_text, restored.data_dir)
        assert f"device:        {client.device_id}" in status and "cross-signed:  yes" in status
        assert "identity keys: kept in this store" in status
        assert "key backup:    version 1" in status and "(this store has its key)" in status
        assert f"  {room}  encrypted" in status
        assert recovery_key_text(restored.data_dir).startswith(state["recovery"] + "\n")
        assert build_parser().parse_args(["matrix", "recovery-key"]).func is cmd_matrix
    finally:
        await restored.stop()


async def test_replacing_keys_answers_the_password_challenge(synapse: Synapse, people: dict[str, Person]) -> None:
    account = await asyncio.to_thread(synapse.register, "resetter")
    async with MatrixAPI(synapse.url, account.access_token) as api:
        await upload_keys(api, CrossSigningKeys.generate(), account.user_id, account.password)
        # Replacing existing keys needs the user-interactive auth: a wrong password is refused.
        with pytest.raises(MatrixAPIError, match="401"):
            await upload_keys(api, CrossSigningKeys.generate(), account.user_id, "not-the-password")
        replacement = CrossSigningKeys.generate()
        await upload_keys(api, replacement, account.user_id, account.password)
    keys = await keys_seen_by(people["alice"], synapse, account.user_id)
    assert only_key(keys["master_keys"][account.user_id]) == replacement.master.public
