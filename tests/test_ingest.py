"""Ingesting article files: formats, incremental updates, bad files, and crash safety."""

from __future__ import annotations

import json
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
from support import REPO, SEED_QUESTION_NL

SEED = REPO / "corpus" / "anha-expert-waarschuwt-isis-europa.txt"

TRAIN = """Treinstoring legt verkeer rond Utrecht plat

Door een defecte wissel bij Utrecht Centraal reden dinsdagochtend urenlang geen treinen richting Amersfoort. ProRail verwacht dat de storing rond het middaguur is verholpen.

Reizigers werden geadviseerd om de bus te nemen. De NS zette extra bussen in tussen Utrecht en Amersfoort.

Bron: NOS
"""


def _write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_formats_txt_md_html_jsonl(make_bron: Callable[..., Bron], tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _write(corpus, "trein.txt", TRAIN)
    _write(corpus, "griep.md", "---\ntitle: Griepprik vanaf oktober\noutlet: RIVM\ndate: 2024-09-30\nurl: https://example.org/griep\n---\n\nOuderen krijgen vanaf half oktober een uitnodiging voor de griepprik. De prik wordt gegeven bij de huisarts.\n")
    _write(corpus, "f1.html", "<html lang='en'><head><title>Verstappen wins</title><meta property='og:site_name' content='GP Today'></head><body><nav>Home | News</nav><article><h1>Verstappen wins in Suzuka</h1><p>Max Verstappen won the Japanese Grand Prix from pole position on Sunday.</p><p>His teammate finished second.</p></article><footer>cookies</footer></body></html>")
    _write(corpus, "two.jsonl", json.dumps({"id": "x1", "url": "https://example.org/x1", "title": "Huizenprijzen stijgen", "source": "ANP", "date": "2024-05-01", "language": "nl", "text": "De huizenprijzen stegen in april met 8 procent ten opzichte van een jaar eerder, meldt het CBS."}) + "\n")
    bron = make_bron(corpus)
    titles = {a.title: a for a in bron.library.articles()}
    assert set(titles) == {"Treinstoring legt verkeer rond Utrecht plat", "Griepprik vanaf oktober", "Verstappen wins in Suzuka", "Huizenprijzen stijgen"}
    assert titles["Treinstoring legt verkeer rond Utrecht plat"].outlet == "NOS"
    assert titles["Griepprik vanaf oktober"].url == "https://example.org/griep"
    assert titles["Verstappen wins in Suzuka"].outlet == "GP Today" and titles["Verstappen wins in Suzuka"].language == "en"
    html_text = bron.library.article_text(titles["Verstappen wins in Suzuka"].id)
    assert "Home | News" not in html_text and "cookies" not in html_text
    assert "Bron: NOS" not in bron.library.article_text(titles["Treinstoring legt verkeer rond Utrecht plat"].id)
    answer = bron.answer("Hoeveel stegen de huizenprijzen in april?", "t")
    assert "8 procent" in answer.passages[0].text and answer.passages[0].article.url == "https://example.org/x1"


def test_incremental_ingest_change_delete_and_noop(make_bron: Callable[..., Bron], tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "seed.txt").write_text(SEED.read_text(encoding="utf-8"), encoding="utf-8")
    train = _write(corpus, "trein.txt", TRAIN)
    bron = make_bron(corpus)
    data_dir = bron.library.data_dir
    live = _version(data_dir), sorted((data_dir / "segments").iterdir())

    again = bron.ingest([corpus])
    assert not again.changed and again.unchanged == 2
    assert (_version(data_dir), sorted((data_dir / "segments").iterdir())) == live, "a no-op ingest writes nothing"

    train.write_text(TRAIN.replace("Amersfoort", "Zwolle"), encoding="utf-8")
    changed = bron.ingest([corpus])
    assert changed.updated == ["Treinstoring legt verkeer rond Utrecht plat"] and changed.unchanged == 1
    assert "Zwolle" in bron.answer("Welke treinen reden niet door de storing bij Utrecht?", "t").passages[0].text
    ids_before = {a.title: a.id for a in bron.library.articles()}

    train.unlink()
    removed = bron.ingest([corpus])
    assert removed.removed == ["Treinstoring legt verkeer rond Utrecht plat"]
    assert [a.title for a in bron.library.articles()] == ["Expert waarschuwt voor verwachte aanvallen van ISIS in Europese landen"]
    assert bron.library.articles()[0].id == ids_before[bron.library.articles()[0].title], "ids are stable"
    assert "in Turkije" in bron.answer(SEED_QUESTION_NL, "t").passages[0].text


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "the file is empty"),
        ("blob.txt", bytes(range(256)) * 4, "the file is binary, not text"),
        ("broken.html", b"<html><body><div><p>Onvolledige <b>tag", "too little text"),
        ("latin1.txt", "Caf\xe9 met een verhaal dat lang genoeg is om een artikel te zijn.".encode("latin-1"), "not UTF-8"),
        ("notes.pdf", b"%PDF-1.4", "not a readable PDF"),
        ("notes.docx", b"PK\x03\x04", "unsupported file type .docx"),
    ],
)
def test_bad_files_are_skipped_with_a_reason_and_lose_nothing(
    make_bron: Callable[..., Bron], tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    bron = make_bron()
    bad = _write(tmp_path, name, content)
    report = bron.ingest([bad])
    assert not report.changed
    assert len(report.skipped) == 1 and reason in report.skipped[0][1]
    assert "in Turkije" in bron.answer(SEED_QUESTION_NL, "t").passages[0].text


def test_two_jsonl_lines_with_one_id_are_reported_not_dropped_silently(make_bron: Callable[..., Bron], tmp_path: Path) -> None:
    bron = make_bron()
    rows = [
        {"id": "7", "title": "Brug dicht", "text": "De brug over de IJssel bij Zwolle is tot maandag dicht voor onderhoud aan het wegdek."},
        {"id": "7", "title": "Dijk hersteld", "text": "Het waterschap heeft de dijk bij Roermond binnen drie dagen hersteld, sneller dan verwacht."},
    ]
    report = bron.ingest([_write(tmp_path, "dubbel.jsonl", "".join(json.dumps(r) + "\n" for r in rows))])
    # Before: "added 1, skipped 0" and no word about 'Brug dicht'.
    assert report.added == ["Dijk hersteld"]
    assert len(report.skipped) == 1 and "Brug dicht" in report.skipped[0][1] and "same id '7'" in report.skipped[0][1]
    again = bron.ingest([tmp_path / "dubbel.jsonl"])
    assert again.unchanged == 1 and not again.changed, "the reported duplicate does not block later ingests"


def test_broken_html_with_text_is_still_read(make_bron: Callable[..., Bron], tmp_path: Path) -> None:
    bron = make_bron()
    page = _write(tmp_path, "broken.html", b"<html><head><title>Stormschade</title><body><p>De storm richtte in Zeeland grote schade aan aan daken en bomen.<p>Brandweer rukte <b>honderd keer uit")
    report = bron.ingest([page])
    assert report.added == ["Stormschade"]
    assert "honderd keer uit" in bron.answer("Hoe vaak rukte de brandweer uit na de storm?", "t").passages[0].text


def test_ingest_killed_midway_leaves_the_previous_index_answering(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = dict(os.environ, BRON_DATA_DIR=str(data_dir), BRON_CONFIG=str(REPO / "config.yaml"))
    cli = [sys.executable, "-m", "bot.cli"]
    first = subprocess.run([*cli, "ask", SEED_QUESTION_NL], env=env, capture_output=True, text=True, timeout=240)
    assert "in Turkije" in first.stdout, first.stderr
    live = _version(data_dir)

    big = REPO.parent / "shared" / "data" / "newsqa-dev" / "articles.jsonl"
    proc = subprocess.Popen([*cli, "ingest", str(big)], env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    seen = ""
    while "Embedding" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.read(1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert "Embedding" in seen, "the ingest started embedding before it was killed"

    assert _version(data_dir) == live, "the killed ingest committed nothing"
    after = subprocess.run([*cli, "ask", SEED_QUESTION_NL], env=env, capture_output=True, text=True, timeout=240)
    assert "in Turkije" in after.stdout, after.stderr


def _version(data_dir: Path) -> int:
    """The library's change counter, read as another process would."""
    con = sqlite3.connect(f"file:{data_dir / 'library.sqlite'}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])
    finally:
        con.close()
