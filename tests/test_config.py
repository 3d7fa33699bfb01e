"""Configuration: validated at start-up, with messages that name the key and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import load_config
from bot.errors import ConfigError
from support import REPO


def test_defaults_load_and_env_overrides_win() -> None:
    config = load_config(REPO / "config.yaml", environ={"BRON_RETRIEVAL_TOP_K": "5", "TELEGRAM_BOT_TOKEN": "123:abc", "BRON_TELEGRAM_BASE_URL": "http://127.0.0.1:9/bot"})
    assert config.retrieval.top_k == 5
    assert config.telegram.token == "123:abc"
    assert config.telegram.base_url == "http://127.0.0.1:9/bot"
    assert config.resolve("corpus") == REPO / "corpus"


@pytest.mark.parametrize(
    ("yaml_text", "env", "needle"),
    [
        ("retrieval:\n  top_k: lots\n", {}, "retrieval.top_k: expected int"),
        ("retrieval:\n  top_k: 0\n", {}, "retrieval.top_k: must be greater than 0"),
        ("retrieval:\n  topk: 3\n", {}, "unknown config key retrieval.topk"),
        ("", {"BRON_TELEGRAM_MODE": "carrier-pigeon"}, "telegram.mode: 'carrier-pigeon' is not one of polling, webhook"),
        ("embeddings:\n  multilingual: [klingon]\n", {}, "embeddings.multilingual: unknown encoder 'klingon'"),
        ("retrieval: [\n", {}, "not valid YAML"),
        ("retrieval:\n  merge_chars: -1\n", {}, "retrieval.merge_chars: must be 0 or more"),
        ("", {"BRON_RETRIEVAL_MERGE_DEPTH": "-2"}, "retrieval.merge_depth: must be 0 or more"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, yaml_text: str, env: dict[str, str], needle: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        load_config(path, environ=env)


def test_cli_stops_with_the_message(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("chunking:\n  max_chars: -1\n")
    result = subprocess.run([sys.executable, "-m", "bot.cli", "--config", str(path), "articles"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 78
    assert "chunking.max_chars: must be greater than 0" in result.stderr
