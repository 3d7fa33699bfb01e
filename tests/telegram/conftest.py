"""Telegram fixtures: the Bot API stand-in on 127.0.0.1 and the real bot polling it."""

from __future__ import annotations

import copy
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from telegram.ext import Application

from bot.config import Config
from bot.core import Bron
from bot.ops import Ops
from bot.telegram_bot import build_application
from support import REPO
from standin import BotApiStandIn

HAVEN = """---
title: Brand in loods Waalhaven na zes uur onder controle
outlet: Rijnmond
date: 2024-05-02
url: https://example.org/nieuws/brand-haven?id=7&ref=rss
---
De brandweer had de grote brand in een loods in de Rotterdamse Waalhaven na zes uur onder controle.
Volgens een woordvoerder van de veiligheidsregio raakte niemand gewond.

In de loods lagen rubber en autobanden opgeslagen, waardoor een dikke zwarte rookwolk ontstond.
Omwonenden kregen een NL-Alert met het advies ramen en deuren te sluiten.

De oorzaak van de brand is nog niet bekend. De politie doet onderzoek.
"""

HUURWET = """---
title: "Huurwet <script>alert(1)</script> & co aangenomen"
outlet: "Dagblad <Noord>"
date: 2024-06-11
url: https://example.org/huurwet?a=1&b=<2>
---
De Tweede Kamer heeft dinsdag ingestemd met de nieuwe huurwet voor middeldure woningen.

Critici noemen de regel <b>onuitvoerbaar</b> & duur; de minister sprak van een <i>doorbraak</i> voor huurders.
Verhuurders vrezen dat beleggers zich uit de huurmarkt terugtrekken.
"""


@pytest.fixture(scope="session")
def tg_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed plus an article with a link and one full of markup-like text."""
    corpus = tmp_path_factory.mktemp("tg-corpus")
    for seed in (REPO / "corpus").iterdir():
        if seed.is_file():
            shutil.copy(seed, corpus / seed.name)
    (corpus / "haven.md").write_text(HAVEN, encoding="utf-8")
    (corpus / "huurwet.md").write_text(HUURWET, encoding="utf-8")
    return corpus


@pytest.fixture(scope="session")
def tg_bron(config: Config, encoders: list, tg_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Bron:
    """A read-only Bron on the Telegram test corpus, shared by the tests."""
    cfg = copy.deepcopy(config)
    cfg.corpus.paths = [str(tg_corpus)]
    return Bron.open(cfg, tmp_path_factory.mktemp("tg-data"), encoders=encoders)


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    """The Bot API stand-in, listening on a free port of 127.0.0.1."""
    standin = BotApiStandIn()
    await standin.start()
    yield standin
    await standin.stop()


StartBot = Callable[..., Awaitable[Application]]


@pytest.fixture
async def start_bot(api: BotApiStandIn, tg_bron: Bron, tmp_path: Path) -> AsyncIterator[StartBot]:
    """Start the real bot against the stand-in, as ``bron serve telegram`` would; stopped after the test."""
    running: list[Application] = []

    async def start(bron: Bron | None = None, ops: Ops | None = None, **telegram: object) -> Application:
        bron = bron or tg_bron
        cfg = copy.deepcopy(bron.config)
        cfg.telegram.token = api.token
        cfg.telegram.base_url = api.base_url
        cfg.telegram.base_file_url = api.base_file_url
        for key, value in telegram.items():
            target = cfg.telegram.rate_limit if key in ("messages", "per_seconds") else cfg.telegram
            setattr(target, key, value)
        app = build_application(cfg, bron, tmp_path, ops)
        await app.initialize()
        await app.post_init(app)  # type: ignore[misc]
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=1)  # type: ignore[union-attr]
        running.append(app)
        return app

    yield start
    for app in running:  # a test may have stopped its bot already (a restart)
        if app.updater.running:  # type: ignore[union-attr]
            await app.updater.stop()  # type: ignore[union-attr]
        if app.running:
            await app.stop()
            await app.post_stop(app)  # type: ignore[misc]
        await app.shutdown()
