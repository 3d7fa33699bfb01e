"""The Telegram bot as users meet it: python-telegram-bot's real HTTP stack against the Bot API stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from telegram.ext import Application

from standin import ADMIN, ANNA, BOB, BOT, BotApiStandIn, Fault, group, user
from support import SEED_QUESTION_EN, SEED_QUESTION_NL

pytestmark = pytest.mark.timeout(120)

StartBot = Callable[..., Awaitable[Application]]
HAVEN_Q = "Wanneer had de brandweer de brand in de Waalhaven onder controle?"


async def test_private_question_gets_quote_with_source_link(api: BotApiStandIn, start_bot: StartBot) -> None:
    await start_bot()
    api.send_text(ANNA, HAVEN_Q)
    reply = (await api.wait_sent(ANNA["id"]))[0]
    # The answering sentence leads, then its citation; its context follows, collapsed.
    assert reply.html.startswith("<blockquote><b>De brandweer had de grote brand")
    assert "<blockquote expandable>" in reply.html
    assert '<a href="https://example.org/nieuws/brand-haven?id=7&amp;ref=rss">' in reply.html
    assert "Rijnmond, 2024-05-02" in reply.text
    assert reply.button_data()[:2] == [f"sum:{_article_id(reply.html)}", f"src:{_article_id(reply.html)}"]
    assert ("sendChatAction", {"chat_id": "111", "action": "typing"}) in api.calls


async def test_english_user_gets_english_texts_for_the_dutch_seed(api: BotApiStandIn, start_bot: StartBot) -> None:
    await start_bot()
    api.send_text(BOB, SEED_QUESTION_EN)
    reply = (await api.wait_sent(BOB["id"]))[0]
    assert "date unknown" in reply.text and "no link" in reply.text
    assert "in Turkije verbleef" in reply.text and "ANHA" in reply.text
    assert "Summary" in [b["text"] for row in reply.buttons for b in row][0]


async def test_commands_are_registered_in_dutch_and_english(api: BotApiStandIn, start_bot: StartBot) -> None:
    await start_bot()
    assert {"nl", "en", ""} <= set(api.commands)
    dutch = {c["command"]: c["description"] for c in api.commands["nl"]}
    assert set(dutch) == {"ask", "summary", "source", "more", "articles", "follow", "following", "briefing", "help"}
    assert dutch["summary"] == "Samenvatting van een artikel"
    api.send_text(ANNA, "/start")
    assert "/summary" in (await api.wait_sent(ANNA["id"]))[0].text


async def test_a_mistyped_command_is_named_in_private_and_left_alone_in_groups(api: BotApiStandIn, start_bot: StartBot) -> None:
    await start_bot()
    api.send_text(ANNA, "/summry")
    reply = (await api.wait_sent(ANNA["id"]))[0]
    assert reply.text == "Het commando /summry ken ik niet. /help laat zien wat ik kan."
    room = group()
    api.send_text(ANNA, "/kick", chat=room)  # another bot's command, perhaps
    api.send_text(ANNA, f"/summry@{BOT['username']}", chat=room)
    named = (await api.wait_sent(room["id"]))[0]
    assert named.text.startswith("Het commando /summry ken ik niet.")
    await asyncio.sleep(1.0)
    assert len(api.sent_to(room["id"])) == 1


async def test_group_answers_mentions_and_replies_but_ignores_chatter(api: BotApiStandIn, start_bot: StartBot) -> None:
    await start_bot()
    room = group()
    api.send_text(ANNA, "Heeft iemand de wedstrijd gezien? Waar verbleef de trainer?", chat=room)
    api.send_text(ANNA, "/summary@other_bot", chat=room)
    asked = api.send_text(ANNA, f"@{BOT['username']} {SEED_QUESTION_NL}", chat=room)
    answer = (await api.wait_sent(room["id"]))[0]
    assert answer.reply_to == asked["message_id"]
    assert "in Turkije verbleef" in answer.text
    follow_up = api.send_text(BOB, "And where was the fire?", chat=room, reply_to=api.as_message(answer))
    second = (await api.wait_sent(room["id"], after=1))[0]
    assert second.reply_to == follow_up["message_id"] and "Waalhaven" in second.text
    await asyncio.sleep(1.5)  # time enough for the ignored chatter to have been answered, had it been
    assert len(api.sent_to(room["id"])) == 2


async def test_summary_and_source_after_an_answer(api: BotApiStandIn, start_bot: StartBot) -> None:
    await start_bot()
    api.send_text(ANNA, SEED_QUESTION_NL)
    await api.wait_sent(ANNA["id"])
    api.send_text(ANNA, "/summary")
    summary = (await api.wait_sent(ANNA["id"], after=1))[0]
    assert summary.text.startswith("Samenvatting van") and "Expert waarschuwt" in summary.text
    assert summary.text.count("•") >= 3
    api.send_text(ANNA, "/source")
    source = (await api.wait_sent(ANNA["id"], after=2))[0]
    assert source.text.startswith("Bronnen van het laatste antwoord:") and "ANHA" in source.text


async def test_summary_and_source_buttons(api: BotApiStandIn, start_bot: StartBot) -> None:
    await start_bot()
    api.send_text(ANNA, HAVEN_Q)
    answer = (await api.wait_sent(ANNA["id"]))[-1]
    article = _article_id(answer.html)
    api.press(ANNA, answer, f"src:{article}")
    source = (await api.wait_sent(ANNA["id"], after=1))[0]
    assert 'href="https://example.org/nieuws/brand-haven?id=7&amp;ref=rss"' in source.html
    api.press(ANNA, answer, f"sum:{article}")
    summary = (await api.wait_sent(ANNA["id"], after=2))[0]
    assert "Samenvatting van" in summary.text and "Brand in loods Waalhaven" in summary.text
    assert any(method == "answerCallbackQuery" for method, _ in api.calls)


async def test_article_list_pages_with_buttons(api: BotApiStandIn, start_bot: StartBot) -> None:
    await start_bot(articles_per_page=2)
    api.send_text(ANNA, "/articles")
    first = (await api.wait_sent(ANNA["id"]))[0]
    assert "pagina 1 van 2" in first.text and first.button_data() == ["page:2"]
    api.press(ANNA, first, "page:2")
    edited = (await api.wait_sent(ANNA["id"], after=1))[0]
    assert edited.method == "editMessageText" and edited.message_id == first.message_id
    assert "pagina 2 van 2" in edited.text and edited.button_data() == ["page:1"]


async def test_long_answer_is_split_between_passages(api: BotApiStandIn, start_bot: StartBot, make_bron, tmp_path) -> None:
    corpus = tmp_path / "long"
    corpus.mkdir()
    paragraphs = [" ".join(f"Het windpark bij Urk levert in {year} stroom voor {n} duizend huishoudens, meldt de "
                           f"netbeheerder over windmolens op het IJsselmeer." for n in range(30)) for year in (2021, 2022, 2023)]
    (corpus / "wind.txt").write_text("Windpark Urk levert stroom\n\n" + "\n\n".join(paragraphs) + "\n\nBron: Flevopost\n")
    bron = make_bron(corpus, chunking_max_chars=4000)
    await start_bot(bron)
    api.send_text(ANNA, "Hoeveel huishoudens krijgen stroom van het windpark bij Urk?")
    # The buttons come with the last part, so a message with buttons ends the answer.
    messages = await api.wait_until(ANNA["id"], lambda sent: bool(sent) and bool(sent[-1].button_data()))
    assert len(messages) >= 2 and not any(m.button_data() for m in messages[:-1])
    assert all(len(m.text) <= 4096 for m in messages)  # the stand-in rejects longer or broken HTML with 400
    assert all(m.html.count("<blockquote") == m.html.count("</blockquote>") for m in messages)


async def test_markup_in_questions_and_articles_is_shown_as_text(api: BotApiStandIn, start_bot: StartBot) -> None:
    await start_bot()
    api.send_text(ANNA, "/summary <b>huur</b> & <script>")
    unknown = (await api.wait_sent(ANNA["id"]))[0]
    assert "Ik ken geen artikel '<b>huur</b> & <script>'" in unknown.text
    assert "&lt;script&gt;" in unknown.html
    api.send_text(ANNA, "Hoe noemen critici de nieuwe huurwet? <i>")
    answer = (await api.wait_sent(ANNA["id"], after=1))[0]
    assert "Critici noemen de regel <b>onuitvoerbaar</b> & duur" in answer.text
    assert "Huurwet <script>alert(1)</script> & co aangenomen" in answer.text
    assert "Dagblad <Noord>" in answer.text and "&lt;b&gt;onuitvoerbaar" in answer.html


async def test_strangers_get_one_polite_refusal(api: BotApiStandIn, start_bot: StartBot) -> None:
    await start_bot(allowed_user_ids=[ANNA["id"]])
    stranger = user(333, "en", "Eve")
    api.send_text(stranger, SEED_QUESTION_EN)
    api.send_text(stranger, "/summary 1")
    api.send_text(ANNA, SEED_QUESTION_NL)
    assert "in Turkije verbleef" in (await api.wait_sent(ANNA["id"]))[0].text
    refusals = await api.wait_sent(stranger["id"])
    await asyncio.sleep(1)
    assert [m.text for m in api.sent_to(stranger["id"])] == ["Sorry, this bot is for invited users only."]
    assert refusals[0].button_data() == []


async def test_rate_limit_per_user(api: BotApiStandIn, start_bot: StartBot) -> None:
    await start_bot(messages=2, per_seconds=60)
    for _ in range(4):
        api.send_text(BOB, SEED_QUESTION_EN)
        await asyncio.sleep(0.05)
    api.send_text(ANNA, SEED_QUESTION_NL)
    assert "in Turkije verbleef" in (await api.wait_sent(ANNA["id"]))[0].text  # others are not held up
    await api.wait_sent(BOB["id"], count=3)
    await asyncio.sleep(1)
    texts = [m.text for m in api.sent_to(BOB["id"])]
    assert len(texts) == 3 and sum("Slow down a little: try again in" in t for t in texts) == 1


async def test_admin_adds_an_article_by_sending_a_file(api: BotApiStandIn, start_bot: StartBot, make_bron) -> None:
    await start_bot(make_bron(), admin_ids=[ADMIN["id"]])
    article = "Zeehond Sammie terug in de Waddenzee\n\nDe zeehond Sammie is dinsdag bij Pieterburen teruggezet in de Waddenzee na zes weken opvang.\n\nBron: Dagblad van het Noorden\n"
    api.send_document(ANNA, "sammie.txt", article.encode())
    assert (await api.wait_sent(ANNA["id"]))[0].text == "Alleen beheerders kunnen artikelen toevoegen."
    api.send_document(ADMIN, "foto.png", b"\x89PNG\r\n", mime="image/png")
    assert "Dit bestandstype kan ik niet lezen" in (await api.wait_sent(ADMIN["id"]))[0].text
    api.send_document(ADMIN, "sammie.txt", article.encode())
    assert (await api.wait_sent(ADMIN["id"], after=1))[0].text == "Toegevoegd: Zeehond Sammie terug in de Waddenzee"
    api.send_text(ADMIN, "Waar is de zeehond Sammie teruggezet?")
    assert "Pieterburen" in (await api.wait_sent(ADMIN["id"], after=2))[0].text


async def test_admin_adds_a_web_page_with_add(api: BotApiStandIn, start_bot: StartBot, make_bron) -> None:
    from web.newsite import NewsSite, Site

    await start_bot(make_bron(), admin_ids=[ADMIN["id"]])
    with NewsSite(Site()) as site:
        url = site.page_url("d001")
        api.send_text(ANNA, f"/add {url}")
        assert (await api.wait_sent(ANNA["id"]))[0].text == "Alleen beheerders kunnen artikelen toevoegen."
        api.send_text(ADMIN, f"/add {url}")
        added = (await api.wait_sent(ADMIN["id"]))[0]
        assert added.text == f"Toegevoegd: {site.article('d001')['title']}"
        api.send_text(ADMIN, f"/add {site.url('/missing.html')}")
        assert "Ik kon" in (await api.wait_sent(ADMIN["id"], after=1))[0].text
    api.send_text(ADMIN, "Welk heiligdom wilde IS volgens de Syrische veiligheidsdiensten aanvallen?")
    answer = (await api.wait_sent(ADMIN["id"], after=2))[0]
    # The added page answers, cited with its link.
    assert "IS-aanslag in Damascus verijdeld" in answer.text and f'<a href="{url}">' in answer.html


@pytest.mark.parametrize(
    "fault",
    [
        Fault("getUpdates", "status", status=500),
        Fault("getUpdates", "drop"),
        Fault("sendMessage", "status", status=502),
        Fault("sendMessage", "drop"),
        Fault("sendMessage", "slow", seconds=2.0),
        Fault("sendMessage", "status", status=429, parameters={"retry_after": 1}),
    ],
    ids=["updates-500", "updates-dropped", "send-502", "send-dropped", "send-slow", "send-429"],
)
async def test_bot_carries_on_when_the_api_misbehaves(api: BotApiStandIn, start_bot: StartBot, fault: Fault) -> None:
    await start_bot()
    api.faults.append(fault)
    api.send_text(ANNA, SEED_QUESTION_NL)
    first = await api.wait_sent(ANNA["id"], timeout=60)
    assert "in Turkije verbleef" in first[0].text
    api.send_text(ANNA, "/source")
    assert "ANHA" in (await api.wait_sent(ANNA["id"], after=len(first), timeout=30))[0].text
    assert fault.times == 0  # the fault did happen


async def test_a_failing_handler_apologises_and_the_loop_lives_on(
    api: BotApiStandIn, start_bot: StartBot, make_bron, monkeypatch: pytest.MonkeyPatch
) -> None:
    bron = make_bron()
    real_answer = bron.answer
    calls = {"n": 0}

    def flaky(question: str, conversation: str = "default"):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("index on fire")
        return real_answer(question, conversation)

    monkeypatch.setattr(bron, "answer", flaky)
    await start_bot(bron)
    api.send_text(ANNA, SEED_QUESTION_NL)
    assert (await api.wait_sent(ANNA["id"]))[0].text == "Sorry, er ging iets mis. Probeer het later opnieuw."
    api.send_text(ANNA, SEED_QUESTION_NL)
    assert "in Turkije verbleef" in (await api.wait_sent(ANNA["id"], after=1))[0].text


def _article_id(markup: str) -> int:
    """The number of the first cited article, e.g. 2 from "[2] <i>Brand…"."""
    start = markup.index("</blockquote>\n[") + len("</blockquote>\n[")
    return int(markup[start : markup.index("]", start)])


async def test_webhook_mode_answers_updates_posted_by_telegram(api: BotApiStandIn, tg_bron, tmp_path) -> None:
    import copy
    import socket

    import httpx

    from bot.telegram_bot import build_application, webhook_options

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = copy.deepcopy(tg_bron.config)
    cfg.telegram.token, cfg.telegram.base_url = api.token, api.base_url
    cfg.telegram.mode, cfg.telegram.webhook_port = "webhook", port
    cfg.telegram.webhook_url, cfg.telegram.webhook_secret = "https://bron.example.org/telegram", "s3cret"
    app = build_application(cfg, tg_bron, tmp_path)
    options = webhook_options(cfg)
    options.pop("allowed_updates")
    async with app:
        await app.start()
        try:
            await app.updater.start_webhook(**options)
            assert api.webhook["url"] == "https://bron.example.org/telegram"
            update = {"update_id": 1, "message": {"message_id": 5, "date": 0, "chat": {"id": 111, "type": "private"},
                                                  "from": ANNA, "text": SEED_QUESTION_NL}}
            url = f"http://127.0.0.1:{port}/telegram"
            async with httpx.AsyncClient() as client:
                stranger = await client.post(url, json=update)
                real = await client.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"})
            assert stranger.status_code == 403 and real.status_code == 200
            assert "in Turkije verbleef" in (await api.wait_sent(ANNA["id"]))[0].text
        finally:
            await app.updater.stop()
            await app.stop()


def test_serve_without_a_token_stops_with_the_fix(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if "TELEGRAM" not in k}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--data-dir", str(tmp_path), "serve", "telegram"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert result.returncode == 78
    assert "telegram.token is empty. Set the environment variable TELEGRAM_BOT_TOKEN" in result.stderr
    assert not any(tmp_path.iterdir())  # it stopped before building an index
