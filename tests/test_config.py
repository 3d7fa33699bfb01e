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
        ("retrieval:\n  weight_sentence: .nan\n", {}, "retrieval.weight_sentence: expected a finite number"),
        ("retrieval:\n  merge_chars: .inf\n", {}, "retrieval.merge_chars: expected int"),
        ("", {"BRON_FETCH_TIMEOUT": "nan"}, "fetch.timeout: expected a finite number"),
        ("", {"BRON_TELEGRAM_RATE_LIMIT_PER_SECONDS": "-inf"}, "telegram.rate_limit.per_seconds: expected a finite number"),
        ("retrieval:\n  weight_lexical: -5\n", {}, "retrieval.weight_lexical: must be 0 or more"),
        ("retrieval:\n  min_similarity_en: 0.8\n", {}, "unknown config key retrieval.min_similarity_en"),
        ("summary:\n  diversity: 7\n", {}, "summary.diversity: 7.0 is outside 0 to 1"),
        ("chunking:\n  overlap_sentences: -3\n", {}, "chunking.overlap_sentences: must be 0 or more"),
        ("data_dir: [a, b]\n", {}, "data_dir: expected str, got ['a', 'b']"),
        ("- a\n- b\n", {}, "the top level is a list, not a mapping of sections"),
        ("hello\n", {}, "the top level is a str, not a mapping of sections"),
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


def test_config_file_not_utf8_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"retrieval:\n  top_k: 3 # caf\xe9\n")
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(byte 0xe9 at offset 27\)\. Save it as UTF-8"):
        load_config(path, environ={})


def test_config_that_is_a_folder_or_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="is a folder. Pass a YAML file with --config"):
        load_config(tmp_path, environ={})
    path = tmp_path / "config.yaml"
    path.write_text("retrieval:\n  top_k: 3\n")

    def denied(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)  # root reads a chmod 000 file anyway
    with pytest.raises(ConfigError, match="cannot read config file .* \\(Permission denied\\). Make it readable"):
        load_config(path, environ={})


def test_missing_corpus_path_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("corpus:\n  paths: [/nonexistent/corpus, bundled]\n")
    config = load_config(path, environ={})
    assert "config key corpus.paths: /nonexistent/corpus does not exist" in caplog.text
    assert "bundled" not in caplog.text.split("does not exist")[0]
    assert config.corpus_paths()[0] == Path("/nonexistent/corpus")


def test_cli_bad_config_file_exits_78_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("- a\n- b\n")
    result = subprocess.run([sys.executable, "-m", "bot.cli", "--config", str(path), "articles"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 78
    assert "the top level is a list" in result.stderr and "Traceback" not in result.stderr


def test_log_level_in_lower_case_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("logging:\n  level: info\n", encoding="utf-8")
    assert load_config(path, environ={}).logging.level == "INFO"
    assert load_config(path, environ={"BRON_LOGGING_LEVEL": "debug"}).logging.level == "DEBUG"
    with pytest.raises(ConfigError, match="logging.level"):
        load_config(path, environ={"BRON_LOGGING_LEVEL": "loud"})
