"""The data directory on a bad day: damaged segments or database, leftovers of a crash, a full disk,
unusable folders, and a fresh data dir outside the repository."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import bot.cli as cli
from bot.config import Config, load_config
from bot.core import Bron
from bot.errors import DataDirError, IndexWriteFailed
from embeddings import ingest as ingesting
from embeddings.storage import segment
from embeddings.library import Library
from support import REPO

CONFIG = str(REPO / "config.yaml")
TRAIN = (
    "Treinstoring legt verkeer rond Utrecht plat\n\nDoor een defecte wissel bij Utrecht Centraal reden dinsdagochtend "
    "urenlang geen treinen richting Amersfoort. ProRail verwacht dat de storing rond het middaguur is verholpen.\n"
)
STORM = (
    "Stormschade in Zeeland\n\nDe storm richtte in Zeeland grote schade aan aan daken en bomen. De brandweer rukte "
    "honderd keer uit.\n"
)


@pytest.fixture(autouse=True)
def _restore_logging():
    """cli.main points the log at this test's captured stderr; later tests must not write to it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="module")
def good(config: Config, encoders: list, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with two segments: seg-000001 (the seed article) and seg-000002 (the train article)."""
    data_dir = tmp_path_factory.mktemp("good") / "data"
    library = Library.open(data_dir, config, encoders=encoders)
    library.ingest([REPO / "corpus"])
    train = tmp_path_factory.mktemp("train") / "trein.txt"
    train.write_text(TRAIN, encoding="utf-8")
    library.ingest([train])
    library.store.db.close()
    assert _segments(data_dir) == ["seg-000001", "seg-000002"]
    return data_dir


@pytest.fixture
def data(good: Path, tmp_path: Path) -> Path:
    """A copy of ``good`` to damage."""
    copy = tmp_path / "data"
    shutil.copytree(good, copy)
    return copy


def _titles(library: Library) -> list[str]:
    return [a.title for a in library.articles()]


def _segments(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "segments").iterdir())


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(size)


DAMAGE = {
    "truncated passage index": lambda g: _truncate(g / "chunks.faiss", 100),
    "half the sentence vectors": lambda g: _truncate(g / "sentences.npy", (g / "sentences.npy").stat().st_size // 2),
    "empty article vectors": lambda g: _truncate(g / "articles.npy", 0),
    "passage index of another segment": lambda g: shutil.copy(g.parent / "seg-000001" / "chunks.faiss", g / "chunks.faiss"),
    "postings garbage": lambda g: (g / "bm25-terms.npy").write_bytes(b"\x13\x37" * 2000),
    "segment.json not json": lambda g: (g / "segment.json").write_text("{not json"),
    "segment.json not UTF-8": lambda g: (g / "segment.json").write_bytes(b'{"encoders": ["\xe9"]}'),
    "segment.json deleted": lambda g: (g / "segment.json").unlink(),
    "segment deleted": lambda g: shutil.rmtree(g),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_segment_is_rebuilt_from_the_stored_texts(
    data: Path, config: Config, encoders: list, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    DAMAGE[damage](data / "segments" / "seg-000002")
    with caplog.at_level(logging.WARNING):
        library = Library.open(data, config, encoders=encoders)
    assert len(_titles(library)) == 2, "no article is lost"
    assert "cannot read segment" in caplog.text and "re-embedding the 1 articles of damaged segment(s) 2" in caplog.text
    assert "Traceback" not in caplog.text
    assert "seg-000002" not in _segments(data), "the damaged segment is gone"
    bron = Bron(config, library)
    assert "Amersfoort" in bron.answer("Welke treinen reden niet door de storing bij Utrecht?", "t").passages[0].text


def test_cli_lists_every_article_while_a_segment_is_damaged(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    DAMAGE["truncated passage index"](data / "segments" / "seg-000002")
    assert cli.main(["--config", CONFIG, "-q", "--data-dir", str(data), "articles"]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 2 and "Expert waarschuwt" in out and "Treinstoring" in out
    assert "chunks.faiss" in err and "re-embedding the 1 articles" in err


def test_a_large_damaged_segment_waits_for_bron_repair(
    data: Path, config: Config, encoders: list, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import embeddings.library as library_module

    monkeypatch.setattr(library_module, "AUTO_REPAIR_ARTICLES", 0)
    DAMAGE["truncated passage index"](data / "segments" / "seg-000002")
    with caplog.at_level(logging.WARNING):
        library = Library.open(data, config, encoders=encoders)
    assert "run `bron repair` to re-embed them" in caplog.text, "a start does not turn into hours of embedding"
    assert len(_titles(library)) == 2 and "seg-000002" in _segments(data)
    library.store.db.close()
    monkeypatch.setattr(cli, "open_bron", lambda args, config: Bron(config, Library.open(data, config, encoders=encoders)))
    assert cli.main(["--config", CONFIG, "-q", "--data-dir", str(data), "repair"]) == 0
    assert "re-embedded 1 article(s)" in capsys.readouterr().out
    assert "seg-000002" not in _segments(data)


DB_DAMAGE = {
    "garbage": lambda db: db.write_bytes(b"\x13\x37" * 20000),
    "truncated": lambda db: _truncate(db, 100),
    "another database": lambda db: (db.unlink(), sqlite3.connect(db).execute("CREATE TABLE x (y)").connection.commit()),
}


@pytest.mark.parametrize("damage", list(DB_DAMAGE))
def test_a_damaged_database_stops_with_exit_78_and_deletes_nothing(data: Path, capsys: pytest.CaptureFixture[str], damage: str) -> None:
    DB_DAMAGE[damage](data / "library.sqlite")
    assert cli.main(["--config", CONFIG, "-q", "--data-dir", str(data), "articles"]) == 78
    err = capsys.readouterr().err
    assert f"data dir {data}: the index cannot be read" in err and "bron ingest PATH" in err
    assert "Traceback" not in err
    assert _segments(data) == ["seg-000001", "seg-000002"], "nothing is deleted"


def test_a_deleted_database_stops_with_exit_78_instead_of_starting_empty(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: `bron articles` listed only the bundled article (a new index) and deleted both segments.
    (data / "library.sqlite").unlink()
    assert cli.main(["--config", CONFIG, "-q", "--data-dir", str(data), "articles"]) == 78
    err = capsys.readouterr().err
    assert "library.sqlite is missing" in err and "Restore library.sqlite from a backup" in err
    assert "Traceback" not in err
    assert _segments(data) == ["seg-000001", "seg-000002"], "nothing is deleted"
    assert not (data / "library.sqlite").exists(), "no new, empty index is made in its place"


def test_a_segment_no_transaction_registered_is_deleted_at_start(data: Path, config: Config, encoders: list) -> None:
    shutil.copytree(data / "segments" / "seg-000002", data / "segments" / "seg-000007")
    (data / "segments" / "tmp-000008-1").mkdir()
    library = Library.open(data, config, encoders=encoders)
    assert _segments(data) == ["seg-000001", "seg-000002"]
    assert len(_titles(library)) == 2


def test_disk_full_keeps_the_previous_index_and_leaves_nothing_behind(
    data: Path, config: Config, encoders: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    storm = tmp_path / "storm.txt"
    storm.write_text(STORM, encoding="utf-8")
    bron = Bron(config, Library.open(data, config, encoders=encoders))

    def full(self, path: Path) -> None:
        path.write_bytes(b"\0" * 10)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(segment.VectorIndex, "save", full)
    with pytest.raises(IndexWriteFailed) as failed:
        bron.ingest([storm])
    assert failed.value.params["reason"] == "no space left on the disk"
    assert _segments(data) == ["seg-000001", "seg-000002"]
    assert len(bron.library.articles()) == 2
    assert len(Library.open(data, config, encoders=encoders).articles()) == 2

    monkeypatch.setattr(cli, "open_bron", lambda args, config: bron)
    assert cli.main(["--config", CONFIG, "-q", "--data-dir", str(data), "ingest", str(storm)]) == 1
    err = capsys.readouterr().err
    assert f"Could not save the index in {data}: no space left on the disk. The previous index is unchanged" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("where", "needle"),
    [
        (lambda tmp: tmp / "a-file", "is a file, not a folder"),
        (lambda tmp: Path("/proc/bron-data"), "cannot create data dir /proc/bron-data"),
        (lambda tmp: tmp / "a-file" / "below", "cannot create data dir"),
    ],
)
def test_unusable_data_dir_stops_with_exit_78(tmp_path: Path, capsys: pytest.CaptureFixture[str], where, needle: str) -> None:
    (tmp_path / "a-file").write_text("x")
    assert cli.main(["--config", CONFIG, "-q", "--data-dir", str(where(tmp_path)), "articles"]) == 78
    err = capsys.readouterr().err
    assert needle in err and "--data-dir or BRON_DATA_DIR" in err


def test_data_dir_this_user_may_not_create_stops_with_exit_78(tmp_path: Path) -> None:
    target = tmp_path / "private" / "data"
    (tmp_path / "private").mkdir(mode=0o500)
    if os.geteuid() != 0:
        with pytest.raises(DataDirError, match="cannot create data dir .*Permission denied"):
            Library.open(target, load_config(CONFIG, environ={}))
        return
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv to run as another user")
    # As nobody: pytest's tmp folder is root's and private, so even looking at the path is refused.
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "bot.cli", "--config", CONFIG, "--data-dir", str(target), "articles"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert result.returncode == 78, result.stderr
    assert f"cannot create data dir {target} (Permission denied)" in result.stderr and "Traceback" not in result.stderr


def test_fresh_install_outside_the_repository_uses_the_bundled_article(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    [bundled] = config.corpus_paths()
    assert (bundled / "anha-expert-waarschuwt-isis-europa.txt").is_file()
    # Bron.open ingests these paths into an empty index; reading them is the part that can go wrong.
    docs, skipped, _ = ingesting.read_documents(config.corpus_paths())
    assert [d.title for d in docs] == ["Expert waarschuwt voor verwachte aanvallen van ISIS in Europese landen"]
    assert not skipped


def test_ask_on_an_empty_index_says_how_to_add_articles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("corpus:\n  paths: []\n")
    data = tmp_path / "data"
    assert cli.main(["--config", str(config), "-q", "--data-dir", str(data), "ask", "Where did one of the attackers stay?"]) == 1
    err = capsys.readouterr().err
    assert f"The index in {data} is empty" in err and "bron ingest PATH" in err
