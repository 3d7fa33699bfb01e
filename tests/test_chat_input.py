"""Odd chat commands: non-ASCII digits and failures inside a command never end `bron chat`."""

from __future__ import annotations

import io
import logging

import pytest

import bot.cli as cli
from bot.chat import ChatSession
from bot.core import Bron, is_number
from support import REPO


@pytest.mark.parametrize(("text", "number"), [("12", True), ("²", False), ("١", False), ("1²", False), ("", False), ("-1", False)])
def test_only_ascii_digits_are_numbers(text: str, number: bool) -> None:
    assert is_number(text) is number


def test_superscript_and_arabic_digits_are_not_article_numbers(bron: Bron) -> None:
    chat = ChatSession(bron, "t-digits")
    assert "Ik ken geen artikel '²'" in chat.handle("/summary ²")[0]
    assert "Ik ken geen artikel '١'" in chat.handle("/summary ١")[0]
    assert "Ik ken geen artikel '#'" in chat.handle("/summary #")[0], "not article ''"
    assert "pagina 1 van 1" in chat.handle("/articles ²")[0]
    assert "pagina 1 van 1" in chat.handle("/articles 99999999999999999999")[0]


def test_a_failing_command_answers_with_an_error_and_the_session_goes_on(
    bron: Bron, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    chat = ChatSession(bron, "t-crash")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(bron, "add_url", broken)
    with caplog.at_level(logging.ERROR):
        reply = chat.handle("/add https://example.org/x")
    assert reply == ["Sorry, er ging iets mis. Probeer het later opnieuw."]
    assert "chat line '/add https://example.org/x' failed: RuntimeError: disk on fire" in caplog.text
    assert "pagina 1 van 1" in chat.handle("/articles")[0]


def test_bron_chat_survives_odd_lines_and_bytes(bron: Bron, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    lines = "/summary \u00b2\n/articles \u00b2\n".encode() + b"\xff\xfe\n/help\n/quit\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(lines), encoding="utf-8"))
    monkeypatch.setattr(cli, "open_bron", lambda args, config: bron)
    try:
        assert cli.main(["--config", str(REPO / "config.yaml"), "chat"]) == 0
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    out, err = capsys.readouterr()
    assert "Ik ken geen artikel '²'" in out and "pagina 1 van 1" in out and out.count("/summary [ARTIKEL]") == 2
    assert "Traceback" not in err


def test_a_mistyped_command_is_named_not_answered_as_a_question(bron: Bron) -> None:
    chat = ChatSession(bron, "t-typo")
    assert chat.handle("/summry") == ["Het commando /summry ken ik niet. /help laat zien wat ik kan."]
    assert chat.handle("/Foo@bron_bot iets") == ["Het commando /Foo ken ik niet. /help laat zien wat ik kan."]
    # Known commands still work, and a line that only starts with the prefix is still a question.
    assert "/summary" in chat.handle("/help")[0]
    assert "in Turkije verbleef" in chat.handle("/ Waar verbleef een van de daders?")[0]
