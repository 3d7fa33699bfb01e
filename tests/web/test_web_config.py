"""The fetch and feeds settings: defaults, environment overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_config
from bot.errors import ConfigError
from embeddings.fetch import FetchSettings

CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def test_defaults_are_polite_and_overridable() -> None:
    settings = FetchSettings.from_config(load_config(CONFIG, environ={}).fetch)
    assert settings.user_agent.startswith("Bron/") and "(+http" in settings.user_agent
    assert settings.robots_agent == "Bron" and settings.respect_robots
    assert (settings.timeout, settings.max_bytes, settings.max_redirects, settings.concurrency) == (15, 5 * 1024 * 1024, 5, 4)
    config = load_config(CONFIG, environ={"BRON_FETCH_RESPECT_ROBOTS": "false", "BRON_FEEDS_URLS": "https://a.example/rss, https://b.example/atom"})
    assert config.fetch.respect_robots is False
    assert config.feeds.urls == ["https://a.example/rss", "https://b.example/atom"]


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"BRON_FETCH_TIMEOUT": "0"}, "fetch.timeout"),
        ({"BRON_FETCH_MAX_BYTES": "lots"}, "fetch.max_bytes"),
        ({"BRON_FETCH_MAX_REDIRECTS": "-1"}, "fetch.max_redirects"),
        ({"BRON_FEEDS_URLS": "nos.nl/rss"}, "feeds.urls"),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(CONFIG, environ=env)
