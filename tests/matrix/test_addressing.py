"""Which group messages count as addressed to the bot, and start-up errors that name the key to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import MatrixConfig
from bot.matrix_messages import read_message
from bot.matrix_session import MatrixStartupError, check_config

BOT = "@bron:example.org"


def read(body: str, formatted: str | None = None, **content: object):
    if formatted is not None:
        content.update(format="org.matrix.custom.html", formatted_body=formatted)
    return read_message({"msgtype": "m.text", "body": body, **content}, BOT, "Bron")


def test_mentions_by_pill_name_prefix_user_id_and_intentional_mention() -> None:
    pill = read("Vraag aan Bron: waar verbleef hij?", f'Vraag aan <a href="https://matrix.to/#/{BOT}">Bron</a>: waar verbleef hij?')
    assert pill.mentioned and "Bron" not in pill.text
    assert read("Bron: waar verbleef hij?") == read("bron, waar verbleef hij?")
    assert read("Bron: waar verbleef hij?").text == "waar verbleef hij?"
    assert read(f"{BOT} waar verbleef hij?").text == "waar verbleef hij?"
    assert read("@bron waar verbleef hij?").mentioned
    assert read("waar verbleef hij?", **{"m.mentions": {"user_ids": [BOT]}}).mentioned


def test_the_word_bron_in_a_sentence_is_not_a_mention() -> None:
    assert not read("Wat is de bron van dit verhaal?").mentioned
    assert not read("Bronnen zeggen dat hij in Turkije verbleef").mentioned
    other = '<a href="https://matrix.to/#/@alice:example.org">Alice</a>: hoi'
    assert not read("Alice: hoi", other).mentioned


def test_reply_quote_is_not_part_of_the_question() -> None:
    body = f"> <{BOT}> Dit staat erover in de bronnen:\n> ...\n\nEn waar woonde hij?"
    quoted = read(body, f"<mx-reply><blockquote>{BOT}</blockquote></mx-reply>En waar woonde hij?")
    assert quoted.text == "En waar woonde hij?"


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"homeserver": ""}, "matrix.homeserver"),
        ({"homeserver": "matrix.example.org"}, "matrix.homeserver"),
        ({"allowed_users": ["alice"]}, "matrix.allowed_users"),
        ({"allowed_rooms": ["#room:example.org"]}, "matrix.allowed_rooms"),
        ({"password": ""}, "MATRIX_PASSWORD"),
    ],
)
def test_bad_settings_stop_start_up_naming_the_key(values: dict, key: str) -> None:
    config = MatrixConfig(homeserver="https://matrix.example.org", user_id=BOT, password="secret")
    for name, value in values.items():
        setattr(config, name, value)
    with pytest.raises(MatrixStartupError, match=key):
        check_config(config, None)


def test_serve_matrix_without_a_login_stops_before_loading_the_index(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if "MATRIX" not in k}
    env["BRON_MATRIX_HOMESERVER"] = "http://127.0.0.1:9"
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--data-dir", str(tmp_path), "serve", "matrix"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert result.returncode == 78
    assert "MATRIX_PASSWORD" in result.stderr
    assert not any(tmp_path.iterdir())
