"""The Matrix bot in unencrypted rooms, as users of a real Synapse see it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from support import SEED_QUESTION_EN, SEED_QUESTION_NL

from .conftest import LINKED_QUESTION, LOOP, BotRunner
from .homeserver import Synapse
from .people import Person, reply_target

pytestmark = [pytest.mark.asyncio(loop_scope=LOOP), pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def rooms() -> dict[str, str]:
    """Rooms created by one test and reused by later ones in this file."""
    return {}


async def test_direct_question_gets_a_quoting_reply(bot: BotRunner, people: dict[str, Person], rooms) -> None:
    alice, me = people["alice"], bot.bot.client.user_id
    rooms["dm"] = room = await alice.room([me], encrypted=False, direct=True, wait_for=me)
    question = await alice.say(room, SEED_QUESTION_NL)
    reply = await alice.reply(question)
    content = reply.source["content"]
    assert content["msgtype"] == "m.notice"
    assert reply_target(reply) == question
    assert content["format"] == "org.matrix.custom.html"
    html = content["formatted_body"]
    # The answering sentence leads, then its citation, then its context (shortened).
    assert html.startswith("<blockquote><b>") and "in Turkije verbleef" in html.split("</b>")[0]
    assert "Expert waarschuwt voor verwachte aanvallen van ISIS in Europese landen</i> — ANHA" in html
    assert content["body"].startswith("> **") and "in Turkije verbleef" in content["body"].split("\n")[0]
    assert "geen link" in content["body"]
    typo = await alice.ask(room, "!summry")
    assert typo.body == "Het commando !summry ken ik niet. !help laat zien wat ik kan."


async def test_reply_cites_the_link_and_follows_the_question_language(
    bot: BotRunner, people: dict[str, Person], rooms
) -> None:
    alice = people["alice"]
    linked = (await alice.ask(rooms["dm"], LINKED_QUESTION)).source["content"]
    assert "IS-aanslag in Damascus verijdeld" in linked["formatted_body"]
    assert '<a href="https://www.nhnieuws.nl/nieuws/n173861/' in linked["formatted_body"]
    assert "NH Nieuws" in linked["body"] and "https://www.nhnieuws.nl/nieuws/n173861/" in linked["body"]
    english = (await alice.ask(rooms["dm"], SEED_QUESTION_EN)).source["content"]
    assert "date unknown" in english["body"]
    assert "in Turkije verbleef" in english["body"]


async def test_group_room_answers_mentions_and_commands_only(
    bot: BotRunner, people: dict[str, Person], accounts, rooms
) -> None:
    alice, bob, me = people["alice"], people["bob"], bot.bot.client.user_id
    rooms["group"] = room = await alice.room([me, bob.user_id, accounts["carol"].user_id], encrypted=False, direct=False, wait_for=me)
    await bob.until(lambda: room in bob.client.invited_rooms)
    await bob.client.join(room)
    await bob.until(lambda: room in bob.client.rooms)
    chatter = await bob.say(room, "Wat is de bron van dit verhaal? Waar verbleef een van de daders eigenlijk?")
    other_bot = await bob.say(room, "Bron: waar verbleef een van de daders?", msgtype="m.notice")
    pill = f'<a href="https://matrix.to/#/{me}">Bron</a>: {SEED_QUESTION_NL}'
    mention = await alice.say(room, f"Bron: {SEED_QUESTION_NL}", formatted=pill)
    answer = await alice.reply(mention)
    assert "in Turkije verbleef" in answer.body
    by_id = await bob.ask(room, f"{me} where did one of the attackers stay?")
    assert "date unknown" in by_id.body
    # The room is answered in order, so the ignored messages have been seen by now.
    assert not alice.replies_to(chatter) and not alice.replies_to(other_bot)

    source = await alice.ask(room, "!source")
    assert source.body.startswith("Sources of the last answer:")
    assert "[1] Expert waarschuwt voor verwachte aanvallen van ISIS in Europese landen — ANHA" in source.body
    summary = await alice.ask(room, "!summary")
    assert summary.body.startswith("Summary of\n[1] Expert waarschuwt")
    assert summary.source["content"]["formatted_body"].count("• ") >= 3
    asked = await alice.ask(room, f"!ask {SEED_QUESTION_NL}")
    assert asked.body.startswith("> **") and "datum onbekend" in asked.body
    more = await alice.ask(room, "!more")
    assert more.body.startswith("De citaten van het antwoord, volledig:") and "in Turkije verbleef" in more.body
    listing = await alice.ask(room, "!articles")
    assert "Artikelen (2), pagina 1 van 1:" in listing.body
    assert "!ask VRAAG" in (await alice.ask(room, "!help")).body


async def test_invite_from_a_stranger_is_refused(bot: BotRunner, people: dict[str, Person]) -> None:
    mallory, me = people["mallory"], bot.bot.client.user_id
    reply = await mallory.client.room_create(is_direct=True, invite=[me])
    await mallory.until(lambda: (reply.room_id, f"{me}:leave") in mallory.joined)
    assert reply.room_id not in bot.bot.client.rooms


async def test_restart_reuses_the_device_and_answers_what_came_meanwhile_once(
    bot: BotRunner, people: dict[str, Person], rooms
) -> None:
    alice = people["alice"]
    device = bot.bot.client.device_id
    await bot.stop()
    meanwhile = await alice.say(rooms["dm"], "Waar verbleef een van de daders? (gestuurd terwijl de bot uit stond)")
    await bot.start()
    assert bot.bot.client.device_id == device
    assert "in Turkije verbleef" in (await alice.reply(meanwhile)).body  # within matrix.catch_up_minutes
    asked = await alice.say(rooms["dm"], SEED_QUESTION_NL)
    assert "in Turkije verbleef" in (await alice.reply(asked)).body
    # After the restart the bot still knows the group room is a group: chatter stays unanswered.
    chatter = await alice.say(rooms["group"], SEED_QUESTION_NL)
    assert (await alice.ask(rooms["group"], "!source")).body.startswith("Bronnen van het laatste antwoord:")
    assert not alice.replies_to(chatter)

    # Older than the catch-up window: left alone. And nothing is answered twice.
    window = bot.config.matrix.catch_up_minutes
    await bot.stop()
    too_old = await alice.say(rooms["dm"], "Waar verbleef een van de daders? (lang geleden gestuurd)")
    bot.config.matrix.catch_up_minutes = 0.5 / 60
    try:
        await asyncio.sleep(1.0)
        await bot.start()
    finally:
        bot.config.matrix.catch_up_minutes = window
    assert "in Turkije verbleef" in (await alice.ask(rooms["dm"], f"!ask {SEED_QUESTION_NL}")).body
    assert not alice.replies_to(too_old)
    assert len(alice.replies_to(meanwhile)) == 1 and len(alice.replies_to(asked)) == 1


async def test_history_from_before_the_start_is_not_answered_on_joining(
    bot: BotRunner, people: dict[str, Person], accounts
) -> None:
    alice, me = people["alice"], bot.bot.client.user_id
    created = await alice.client.room_create(name="Older room", invite=[accounts["carol"].user_id])
    await alice.until(lambda: created.room_id in alice.client.rooms)
    old = await alice.say(created.room_id, f"!ask {SEED_QUESTION_NL}")
    await bot.stop()
    await bot.start()
    await alice.client.room_invite(created.room_id, me)
    await alice.until(lambda: (created.room_id, f"{me}:join") in alice.joined)
    new = await alice.ask(created.room_id, f"!ask {SEED_QUESTION_NL}")
    assert "in Turkije verbleef" in new.body
    assert not alice.replies_to(old)


async def test_bot_survives_a_homeserver_restart(
    bot: BotRunner, people: dict[str, Person], rooms, synapse: Synapse, caplog: pytest.LogCaptureFixture
) -> None:
    alice = people["alice"]
    caplog.set_level(logging.WARNING, logger="bot.matrix_bot")
    await asyncio.to_thread(synapse.stop)
    await asyncio.to_thread(synapse.start)
    reply = await alice.ask(rooms["dm"], SEED_QUESTION_NL)
    assert "in Turkije verbleef" in reply.body
    assert any("sync failed" in r.getMessage() for r in caplog.records)
    assert any("sync works again" in r.getMessage() for r in caplog.records)


async def test_admin_adds_a_web_page_with_add(bot: BotRunner, people: dict[str, Person], rooms) -> None:
    from web.newsite import NewsSite, Site

    alice, bob = people["alice"], people["bob"]
    with NewsSite(Site()) as site:
        url = site.page_url("d002")
        title = site.article("d002")["title"]
        refused = await bob.ask(rooms["group"], f"!add {url}")
        assert refused.body == "Alleen beheerders kunnen artikelen toevoegen."
        added = await alice.ask(rooms["dm"], f"!add {url}")
        assert added.body == f"Toegevoegd: {title}"
    listing = await alice.ask(rooms["dm"], "!articles")
    assert title in listing.body
