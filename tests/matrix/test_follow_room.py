"""Topic alerts in Matrix: !follow in a room of a real Synapse, a new article, the push in the room."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.core import Bron
from follow_support import write_articles

from .conftest import LOOP, BotRunner
from .people import Person

pytestmark = [pytest.mark.asyncio(loop_scope=LOOP), pytest.mark.slow, pytest.mark.timeout(240)]


async def test_follow_in_a_room_brings_the_new_article_once(
    bot: BotRunner, people: dict[str, Person], bot_bron: Bron, tmp_path: Path
) -> None:
    alice, me = people["alice"], bot.bot.client.user_id
    room = await alice.room([me], encrypted=False, direct=True, wait_for=me)
    assert (await alice.ask(room, "!follow wolf")).body.startswith("Je volgt nu: wolf")
    assert "1. wolf" in (await alice.ask(room, "!following")).body

    def alerts() -> list:
        return [n for n in alice.notices if n.room_id == room and n.body.startswith("Nieuw over")]

    report = await asyncio.to_thread(bot_bron.ingest, [write_articles(tmp_path / "in", "wolf", "storm")])
    try:
        push = (await alice.until(alerts))[0]
        wolf = next(a for a in bot_bron.library.articles() if a.title.startswith("Wolf"))
        content = push.source["content"]
        assert content["msgtype"] == "m.notice" and "m.relates_to" not in content
        assert content["formatted_body"].startswith("<b>Nieuw over „wolf”:</b>")
        assert "<blockquote><b>Op de Veluwe heeft een wolf vannacht zes schapen doodgebeten" in content["formatted_body"]
        assert '<a href="https://gld.example/wolf">' in content["formatted_body"]
        assert "Omroep Gelderland, 2024-12-03" in push.body and push.body.endswith(f"Samenvatting: !summary {wolf.id}")
        summary = await alice.ask(room, f"!summary {wolf.id}")
        assert summary.body.startswith("Samenvatting van") and "Veluwe" in summary.body
        # Ingesting the same articles again (unchanged) brings nothing; after !unfollow, a new one neither.
        await asyncio.to_thread(bot_bron.ingest, [tmp_path / "in"])
        assert (await alice.ask(room, "!unfollow 1")).body == "Je volgt niet meer: wolf"
        await bot.bot.alerts.round()
        assert len(alerts()) == 1
    finally:
        await asyncio.to_thread(bot_bron.library.remove, report.added_ids)


async def test_alerts_in_an_encrypted_room_are_encrypted_and_readable(
    bot: BotRunner, people: dict[str, Person], bot_bron: Bron, tmp_path: Path
) -> None:
    alice, me = people["alice"], bot.bot.client.user_id
    room = await alice.room([me], encrypted=True, direct=True, wait_for=me)
    assert (await alice.ask(room, "!follow storm Zeeland")).body.startswith("Je volgt nu: storm Zeeland")
    report = await asyncio.to_thread(bot_bron.ingest, [write_articles(tmp_path / "in", "storm")])
    try:
        push = (await alice.until(lambda: [n for n in alice.notices if n.room_id == room and n.body.startswith("Nieuw over")]))[0]
        assert push.decrypted and "Een zware storm raasde dinsdag over Zeeland." in push.body
    finally:
        await alice.ask(room, "!unfollow 1")
        await asyncio.to_thread(bot_bron.library.remove, report.added_ids)
