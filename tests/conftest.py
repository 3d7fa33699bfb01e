"""Shared fixtures: the real model, real FAISS, the bundled corpus; no network beyond loopback."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bot.config import Config, load_config  # noqa: E402
from bot.core import Bron  # noqa: E402
from bot.logs import setup_logging  # noqa: E402

from support import REPO  # noqa: E402

setup_logging("WARNING")


@pytest.fixture(autouse=True)
def fresh_logging() -> None:
    """Each test logs to its own stderr: a handler left by an earlier test's `bron` command would
    write to a stream pytest has closed and print "--- Logging error ---" into this test's output."""
    setup_logging("WARNING")


@pytest.fixture(scope="session")
def config() -> Config:
    """The repository's config.yaml, as the bot loads it."""
    return load_config(REPO / "config.yaml", environ={})


@pytest.fixture(scope="session")
def encoders(config: Config, tmp_path_factory: pytest.TempPathFactory) -> list:
    """The real encoders, loaded once per test session."""
    from embeddings.library import Library

    return Library(tmp_path_factory.mktemp("enc"), config).encoders


@pytest.fixture(scope="session")
def bron(config: Config, encoders: list, tmp_path_factory: pytest.TempPathFactory) -> Bron:
    """A Bron on the bundled corpus (the seed article), shared by tests that only read."""
    return Bron.open(config, tmp_path_factory.mktemp("data"), encoders=encoders)


@pytest.fixture
def make_bron(config: Config, encoders: list, tmp_path: Path) -> Callable[..., Bron]:
    """A fresh Bron on its own data directory; ``corpus`` paths replace the bundled corpus."""

    def make(*corpus: Path, data_dir: Path | None = None, **overrides: object) -> Bron:
        cfg = load_config(REPO / "config.yaml", environ={f"BRON_{k.upper()}": str(v) for k, v in overrides.items()})
        cfg.corpus.paths = [str(p) for p in corpus] if corpus else cfg.corpus.paths
        return Bron.open(cfg, data_dir or tmp_path / "data", encoders=encoders)

    return make
