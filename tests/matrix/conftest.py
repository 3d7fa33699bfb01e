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

from bot.config import Config, load_config
from bot.core import Bron
from bot.matrix_bot import MatrixBot
from support import NEWSQA, REPO

from .homeserver import Synapse, User
from .people import WAIT, Person, cancel

LOOP = "session"
# Short retry waits so that reconnects and "cannot read" notices happen within a test; Synapse runs on
# this machine's clock, so no margin is needed to tell old messages from new ones.
TEST_TIMING = {"backoff": (0.2, 2.0), "key_wait": 2.0, "clock_margin": 0.0}
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
    config = bot_config(synapse, accounts["bron"], allowed, BRON_MATRIX_ADMIN_USERS=accounts["alice"].user_id)
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
            await cancel(self.task)
        if self.bot:
            await self.bot.close()


@pytest_asyncio.fixture(scope="session", loop_scope=LOOP)
async def bot(bot_bron: Bron, tmp_path_factory: pytest.TempPathFactory) -> BotRunner:
    """The running bot (encryption on, trust tofu); tests may restart it through the runner."""
    runner = BotRunner(bot_bron.config, bot_bron, tmp_path_factory.mktemp("bot-data"), **TEST_TIMING)
    await runner.start()
    yield runner
    await runner.stop()


@pytest_asyncio.fixture(scope="session", loop_scope=LOOP)
async def people(synapse: Synapse, accounts: dict[str, User], tmp_path_factory) -> dict[str, Person]:
    """alice, bob and mallory, logged in and syncing."""
    folder = tmp_path_factory.mktemp("people")
    people = {name: Person(synapse, accounts[name], folder / name) for name in ("alice", "bob", "mallory")}
    await asyncio.gather(*(p.start() for p in people.values()))
    yield people
    await asyncio.gather(*(p.stop() for p in people.values()))
