"""The Matrix bot in unencrypted rooms, as users of a real Synapse see it."""

from __future__ import annotations

import pytest

from conftest import SEED_QUESTION_NL

from .conftest import LOOP, BotRunner, Person, reply_target

pytestmark = [pytest.mark.asyncio(loop_scope=LOOP), pytest.mark.slow, pytest.mark.timeout(240)]


async def test_direct_question_gets_a_quoting_reply(bot: BotRunner, people: dict[str, Person]) -> None:
    alice = people["alice"]
    room = await alice.room([bot.bot.client.user_id], encrypted=False, direct=True, wait_for=bot.bot.client.user_id)
    question = await alice.say(room, SEED_QUESTION_NL)
    reply = await alice.reply(question)
    content = reply.source["content"]
    assert content["msgtype"] == "m.notice"
    assert reply_target(reply) == question
    assert content["format"] == "org.matrix.custom.html"
    assert "<blockquote>" in content["formatted_body"]
    assert "in Turkije verbleef" in content["formatted_body"]
    assert "<b>" in content["formatted_body"]
    assert "ANHA" in content["body"] and "geen link" in content["body"]
    assert content["body"].startswith("Dit staat erover in de bronnen:")
