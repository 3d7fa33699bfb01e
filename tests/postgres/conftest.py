"""A real PostgreSQL server with pgvector for the postgres backend's tests (see pg_testserver.py)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.core import Bron
from pg_testserver import PgServer, pg_config, start_server

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One server for the session; skipped (with the reason) only where none can be installed, never in CI."""
    try:
        server = start_server()
    except RuntimeError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL with pgvector is not available: {err}")
    yield server
    server.cleanup()


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> str:
    """A new, empty database with the Bron schema applied."""
    from embeddings.storage.postgres import upgrade

    dsn = pg_server.create_database(f"bron_test_{next(_numbers)}")
    upgrade(dsn)
    return dsn


@pytest.fixture
def make_pg_bron(pg_dsn: str, encoders: list, tmp_path: Path) -> Callable[..., Bron]:
    """A Bron on the test database (each with its own data dir for the non-index state)."""
    made = []

    def make(*corpus: Path, name: str = "data", dsn: str | None = None) -> Bron:
        cfg = pg_config(dsn or pg_dsn)
        cfg.corpus.paths = [str(p) for p in corpus] if corpus else cfg.corpus.paths
        bron = Bron.open(cfg, tmp_path / name, encoders=encoders)
        made.append(bron)
        return bron

    yield make
    for bron in made:
        bron.library.store.db.close()
