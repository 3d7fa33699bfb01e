"""kill -9 in the middle of ingesting URLs: the previous index keeps answering, a re-run completes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.core import Bron
from web.newsite import Site

REPO = Path(__file__).resolve().parents[2]
SEED_QUESTION = "Waar verbleef een van de daders?"
PAGES = [f"d{n:03d}" for n in range(40, 52)]


@pytest.mark.timeout(600)
def test_url_ingest_killed_midway_leaves_the_previous_index_answering(web_bron: Callable[..., Bron], site: Site, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    bron = web_bron(data_dir=data_dir)
    live = _version(data_dir)
    urls = [site.page_url(i) for i in PAGES]

    env = dict(os.environ, BRON_DATA_DIR=str(data_dir), BRON_CONFIG=str(REPO / "config.yaml"))
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "ingest", *urls], env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 240
    seen = ""
    while "Embedding" not in seen and time.monotonic() < deadline and proc.poll() is None:
        seen += proc.stderr.read(1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert "Embedding" in seen, f"the ingest started embedding before it was killed: {seen[-500:]}"
    assert {p for p in site.paths_requested() if p.startswith("/news/")} == {f"/news/{i}.html" for i in PAGES}, "all pages were fetched"

    assert _version(data_dir) == live, "the killed ingest committed nothing"
    reopened = web_bron(data_dir=data_dir)
    assert [a.title for a in reopened.library.articles()] == [a.title for a in bron.library.articles()], "no article lost"
    assert "in Turkije" in reopened.answer(SEED_QUESTION, "t").passages[0].text

    rerun = reopened.ingest_urls(urls)
    assert len(rerun.added) == len(PAGES) and not rerun.skipped
    assert len(reopened.library.articles()) == len(PAGES) + 1
    answer = reopened.answer("Welk Kamerlid diende de motie in die minister Wiersma tot een pas op de plaats dwong?", "t")
    assert "Pieter Grinwis" in answer.passages[0].text and answer.passages[0].article.url == site.page_url("d040")


def _version(data_dir: Path) -> int:
    """The library's change counter, read as another process would."""
    con = sqlite3.connect(f"file:{data_dir / 'library.sqlite'}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])
    finally:
        con.close()
