"""The postgres backend on a real PostgreSQL with pgvector: ingest, answer, remove, update, two
processes' worth of libraries on one database, and a server restart under an open library."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import pg_config
from support import REPO, SEED_QUESTION_NL

SEED_ARTICLE = REPO / "corpus"


def _quotes(answer) -> str:
    return " ".join(p.text for p in answer.passages)


def _article(folder: Path, name: str, title: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"{title}\n\n{body}\n", encoding="utf-8")
    return path


def test_ingest_and_answer(make_pg_bron):
    bron = make_pg_bron()
    library = bron.library
    assert not library.embedded
    assert library.count() >= 1
    answer = bron.answer(SEED_QUESTION_NL)
    assert "in Turkije" in _quotes(answer)
    assert library.view.name.startswith("pg-v")
