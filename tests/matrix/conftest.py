"""Fixtures for the Matrix bot tests: a real Synapse, the bot running in-process, real nio users.

Everything here lives for the whole test session on one event loop (the bot's sync loop keeps
running between tests), so the whole Matrix suite pays for Synapse, the index and the login once.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
import pytest_asyncio
from nio import (
    AsyncClient,
    AsyncClientConfig,
    LoginResponse,
    MegolmEvent,
    RoomCreateResponse,
    RoomMemberEvent,
    RoomMessageNotice,
    RoomSendResponse,
)

from bot.config import Config, load_config
from bot.core import Bron
from bot.matrix_bot import MatrixBot
from conftest import NEWSQA, REPO

from .homeserver import Synapse, User

LOOP = "session"
WAIT = 90.0  # generous: the box is shared with another test run
# Short retry waits so that reconnects and "cannot read" notices happen within a test.
TEST_TIMING = {"backoff": (0.2, 2.0), "key_wait": 2.0}
ENCRYPTION_STATE = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
# A newsqa-dev article with a link, to see links in replies (the seed article has none).
LINKED_ARTICLE = "d001"
LINKED_QUESTION = "Welk heiligdom wilde IS volgens de Syrische veiligheidsdiensten aanvallen?"


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Synapse:
    """A running Synapse, stopped at the end of the session."""
    server = Synapse(tmp_path_factory.mktemp("synapse"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def accounts(synapse: Synapse) -> dict[str, User]:
    """The bots' accounts (bron; warden with trust: allowlist) and the people who talk to them.

    mallory is on no allowlist.
    """
    return {name: synapse.register(name) for name in ("bron", "warden", "alice", "bob", "carol", "mallory")}


@pytest.fixture(scope="session")
def bot_corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The seed article plus one newsqa-dev article that has a link."""
    folder = tmp_path_factory.mktemp("corpus")
    shutil.copytree(REPO / "corpus", folder / "seed")
    lines = (NEWSQA / "articles.jsonl").read_text(encoding="utf-8").splitlines()
    linked = [line for line in lines if json.loads(line)["id"] == LINKED_ARTICLE]
    (folder / "linked.jsonl").write_text("\n".join(linked) + "\n", encoding="utf-8")
    return [folder / "seed", folder / "linked.jsonl"]


def bot_config(synapse: Synapse, bot: User, allowed: list[str], **extra: str) -> Config:
    """The repository's config.yaml pointed at the test Synapse, the password from the environment."""
    environ = {
        "BRON_MATRIX_HOMESERVER": synapse.url,
        "BRON_MATRIX_USER_ID": bot.user_id,
        "MATRIX_PASSWORD": bot.password,
        "BRON_MATRIX_ALLOWED_USERS": ",".join(allowed),
        **extra,
    }
    return load_config(REPO / "config.yaml", environ=environ)


@pytest.fixture(scope="session")
def bot_bron(synapse, accounts, bot_corpus, encoders, tmp_path_factory) -> Bron:
    """The core the bot answers with, on the seed article and one linked article."""
    allowed = [accounts[n].user_id for n in ("alice", "bob", "carol")]
    config = bot_config(synapse, accounts["bron"], allowed)
    config.corpus.paths = [str(p) for p in bot_corpus]
    return Bron.open(config, tmp_path_factory.mktemp("bot-index"), encoders=encoders)


class BotRunner:
    """The bot as ``bron serve matrix`` runs it, but as a task on the test loop, restartable."""

    def __init__(self, config: Config, bron: Bron, data_dir: Path, **options: object) -> None:
        self.config, self.bron, self.data_dir, self.options = config, bron, data_dir, options
        self.bot: MatrixBot | None = None
        self.task: asyncio.Task | None = None

    async def start(self) -> MatrixBot:
        """Start the bot and wait until its first sync is done."""
        self.bot = MatrixBot(self.config, self.bron, self.data_dir, **self.options)
        await self.bot.start()
        self.task = asyncio.create_task(self.bot.run_forever())
        await asyncio.wait_for(self.bot.live.wait(), WAIT)
        return self.bot

    async def stop(self) -> None:
        """Stop syncing and close the client, like SIGTERM does."""
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.bot:
            await self.bot.close()


@pytest_asyncio.fixture(scope="session", loop_scope=LOOP)
async def bot(bot_bron: Bron, tmp_path_factory: pytest.TempPathFactory) -> BotRunner:
    """The running bot (encryption on, trust tofu); tests may restart it through the runner."""
    runner = BotRunner(bot_bron.config, bot_bron, tmp_path_factory.mktemp("bot-data"), **TEST_TIMING)
    await runner.start()
    yield runner
    await runner.stop()


class Person:
    """A Matrix user with a real nio client (encryption on), syncing in the background."""

    def __init__(self, synapse: Synapse, account: User, store: Path) -> None:
        store.mkdir(parents=True, exist_ok=True)
        self.account = account
        self.user_id = account.user_id
        self.client = AsyncClient(
            synapse.url, account.user_id, store_path=str(store),
            config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
        )
        self.notices: list[RoomMessageNotice] = []
        self.undecryptable: list[MegolmEvent] = []
        self.joined: set[tuple[str, str]] = set()
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Log in as a new device and keep syncing."""
        reply = await self.client.login(self.account.password, device_name="test")
        assert isinstance(reply, LoginResponse), reply
        self.client.add_event_callback(self._on_notice, RoomMessageNotice)
        self.client.add_event_callback(self._on_megolm, MegolmEvent)
        self.client.add_event_callback(self._on_member, RoomMemberEvent)
        await self.client.sync(timeout=0)
        await self._keys()
        self._task = asyncio.create_task(self.client.sync_forever(timeout=10_000))

    async def _keys(self) -> None:
        if self.client.should_upload_keys:
            await self.client.keys_upload()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.close()

    async def _on_notice(self, room, event: RoomMessageNotice) -> None:
        event.room_id = room.room_id
        self.notices.append(event)
        self._changed.set()

    async def _on_megolm(self, room, event: MegolmEvent) -> None:
        self.undecryptable.append(event)
        self._changed.set()

    async def _on_member(self, room, event: RoomMemberEvent) -> None:
        if event.membership in ("join", "leave"):
            self.joined.add((room.room_id, f"{event.state_key}:{event.membership}"))
            self._changed.set()

    async def until(self, predicate, timeout: float = WAIT):
        """Wait until ``predicate()`` returns something truthy (checked whenever an event arrives)."""
        async def poll():
            while not (found := predicate()):
                self._changed.clear()
                await self._changed.wait()
            return found

        return await asyncio.wait_for(poll(), timeout)

    async def room(self, invite: list[str], encrypted: bool, direct: bool, wait_for: str) -> str:
        """Create a room, invite people, and wait until ``wait_for`` (the bot) has joined."""
        reply = await self.client.room_create(
            is_direct=direct,
            invite=invite,
            name=None if direct else "Bron test group",
            initial_state=[ENCRYPTION_STATE] if encrypted else [],
        )
        assert isinstance(reply, RoomCreateResponse), reply
        await self.until(lambda: (reply.room_id, f"{wait_for}:join") in self.joined)
        return reply.room_id

    async def say(self, room_id: str, body: str, formatted: str | None = None, **extra: object) -> str:
        """Send an m.text message; returns its event id."""
        content: dict = {"msgtype": "m.text", "body": body, **extra}
        if formatted:
            content.update(format="org.matrix.custom.html", formatted_body=formatted)
        reply = await self.client.room_send(room_id, "m.room.message", content, ignore_unverified_devices=True)
        assert isinstance(reply, RoomSendResponse), reply
        return reply.event_id

    def replies_to(self, event_id: str) -> list[RoomMessageNotice]:
        """The notices received so far that reply to ``event_id``."""
        return [n for n in self.notices if reply_target(n) == event_id]

    async def reply(self, event_id: str, timeout: float = WAIT) -> RoomMessageNotice:
        """The first notice that replies to ``event_id``."""
        return (await self.until(lambda: self.replies_to(event_id), timeout))[0]

    async def ask(self, room_id: str, body: str, **kwargs: object) -> RoomMessageNotice:
        """Say something and wait for the bot's reply to it."""
        return await self.reply(await self.say(room_id, body, **kwargs))


def reply_target(event) -> str | None:
    """The event id an event replies to, if any."""
    relates = event.source.get("content", {}).get("m.relates_to") or {}
    return (relates.get("m.in_reply_to") or {}).get("event_id")


@pytest_asyncio.fixture(scope="session", loop_scope=LOOP)
async def people(synapse: Synapse, accounts: dict[str, User], tmp_path_factory) -> dict[str, Person]:
    """alice, bob and mallory, logged in and syncing."""
    folder = tmp_path_factory.mktemp("people")
    people = {name: Person(synapse, accounts[name], folder / name) for name in ("alice", "bob", "mallory")}
    await asyncio.gather(*(p.start() for p in people.values()))
    yield people
    await asyncio.gather(*(p.stop() for p in people.values()))
