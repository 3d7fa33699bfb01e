"""The data directory on a bad day: lost or garbled CURRENT, damaged snapshot files, a full disk,
unusable folders, and a fresh data dir outside the repository."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import bot.cli as cli
from bot.config import Config, load_config
from bot.core import Bron
from bot.errors import DataDirError, IndexWriteFailed
from embeddings import ingest as ingesting, store
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
def good(bron: Bron, config: Config, encoders: list, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with two snapshots: gen-000001 (the seed article) and gen-000002 (seed and train)."""
    data_dir = tmp_path_factory.mktemp("good") / "data"
    # The shared seed index saves embedding the seed article again.
    source = bron.library.data_dir
    shutil.copytree(source / (source / "CURRENT").read_text(), data_dir / "gen-000001")
    (data_dir / "CURRENT").write_text("gen-000001")
    train = tmp_path_factory.mktemp("train") / "trein.txt"
    train.write_text(TRAIN, encoding="utf-8")
    Library.open(data_dir, config, encoders=encoders).ingest([train])
    assert (data_dir / "CURRENT").read_text() == "gen-000002"
    return data_dir


@pytest.fixture
def data(good: Path, tmp_path: Path) -> Path:
    """A copy of ``good`` to damage."""
    copy = tmp_path / "data"
    shutil.copytree(good, copy)
    return copy


def _titles(library: Library) -> list[str]:
    return [a.title for a in library.articles()]


@pytest.mark.parametrize(
    ("how", "why"),
    [
        (lambda d: (d / "CURRENT").unlink(), "CURRENT was missing"),
        (lambda d: (d / "CURRENT").write_text("gen-9x"), "CURRENT was garbled"),
        (lambda d: (d / "CURRENT").write_bytes(b"\xff\xfe\x00gen"), "CURRENT was garbled"),
        (lambda d: (d / "CURRENT").write_text(""), "CURRENT was empty"),
        (lambda d: (d / "CURRENT").write_text("../../etc"), "CURRENT was garbled"),
        (lambda d: (d / "CURRENT").write_text("gen-000099"), "CURRENT named gen-000099, which is missing"),
    ],
)
def test_lost_or_garbled_current_is_repaired(data: Path, config: Config, encoders: list, caplog: pytest.LogCaptureFixture, how, why: str) -> None:
    how(data)
    with caplog.at_level(logging.WARNING):
        library = Library.open(data, config, encoders=encoders)
    assert len(library.articles()) == 2
    assert (data / "CURRENT").read_text() == "gen-000002"
    assert why in caplog.text and "using snapshot gen-000002 (2 articles)" in caplog.text


def test_ingest_after_a_lost_current_keeps_every_article_and_the_old_snapshot(data: Path, config: Config, encoders: list, tmp_path: Path) -> None:
    (data / "CURRENT").unlink()
    storm = tmp_path / "storm.txt"
    storm.write_text(STORM, encoding="utf-8")
    library = Library.open(data, config, encoders=encoders)
    library.ingest([storm])
    assert len(library.articles()) == 3
    assert sorted(p.name for p in data.glob("gen-*")) == ["gen-000002", "gen-000003"]


def test_prune_deletes_no_snapshot_while_current_is_broken(data: Path) -> None:
    (data / "tmp-leftover").mkdir()
    (data / "CURRENT").write_text("gen-9x")
    store.prune(data)
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == ["gen-000001", "gen-000002"]
    (data / "CURRENT").write_text("gen-000002")
    store.prune(data, keep=["gen-000001"])
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == ["gen-000001", "gen-000002"]
    store.prune(data)
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == ["gen-000002"]


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(size)


DAMAGE = {
    "truncated chunks faiss": lambda g: _truncate(g / "chunks-0.faiss", 100),
    "half a sentences faiss": lambda g: _truncate(g / "sentences.faiss", (g / "sentences.faiss").stat().st_size // 2),
    "empty articles faiss": lambda g: _truncate(g / "articles.faiss", 0),
    "faiss of another table": lambda g: shutil.copy(g / "articles.faiss", g / "chunks-0.faiss"),
    "meta.sqlite deleted": lambda g: (g / "meta.sqlite").unlink(),
    "meta.sqlite garbage": lambda g: (g / "meta.sqlite").write_bytes(b"\x13\x37" * 20000),
    "meta.sqlite truncated": lambda g: _truncate(g / "meta.sqlite", 8192),
    "manifest not json": lambda g: (g / "manifest.json").write_text("{not json"),
    "manifest without encoders": lambda g: (g / "manifest.json").write_text("{}"),
    "manifest not UTF-8": lambda g: (g / "manifest.json").write_bytes(b'{"encoders": ["\xe9"]}'),
    "manifest deleted": lambda g: (g / "manifest.json").unlink(),
    "snapshot deleted": lambda g: shutil.rmtree(g),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_live_snapshot_falls_back_to_the_previous_one(data: Path, config: Config, encoders: list, caplog: pytest.LogCaptureFixture, damage: str) -> None:
    DAMAGE[damage](data / "gen-000002")
    with caplog.at_level(logging.WARNING):
        library = Library.open(data, config, encoders=encoders)
    assert _titles(library) == ["Expert waarschuwt voor verwachte aanvallen van ISIS in Europese landen"]
    assert (data / "CURRENT").read_text() == "gen-000001"
    assert "using snapshot gen-000001 (1 articles)" in caplog.text
    assert "Traceback" not in caplog.text
    if damage == "manifest deleted":
        assert "snapshot gen-000002 is incomplete (no manifest.json)" in caplog.text


def test_cli_lists_the_fallback_snapshot(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    DAMAGE["truncated chunks faiss"](data / "gen-000002")
    assert cli.main(["--config", CONFIG, "-q", "--data-dir", str(data), "articles"]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and "Expert waarschuwt" in out
    assert "chunks-0.faiss" in err and "using snapshot gen-000001" in err


def test_no_snapshot_loads_stops_with_exit_78(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    DAMAGE["meta.sqlite garbage"](data / "gen-000002")
    DAMAGE["manifest not json"](data / "gen-000001")
    assert cli.main(["--config", CONFIG, "-q", "--data-dir", str(data), "articles"]) == 78
    err = capsys.readouterr().err
    assert f"data dir {data}: the index cannot be read" in err and "bron ingest PATH" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in data.glob("gen-*")) == ["gen-000001", "gen-000002"], "nothing is deleted"


def test_disk_full_keeps_the_previous_index_and_leaves_nothing_behind(
    data: Path, config: Config, encoders: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    storm = tmp_path / "storm.txt"
    storm.write_text(STORM, encoding="utf-8")
    bron = Bron(config, Library.open(data, config, encoders=encoders))

    def full(self, path: Path) -> None:
        path.write_bytes(b"\0" * 10)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.VectorIndex, "save", full)
    with pytest.raises(IndexWriteFailed) as failed:
        bron.ingest([storm])
    assert failed.value.params["reason"] == "no space left on the disk"
    assert sorted(p.name for p in data.iterdir()) == ["CURRENT", "gen-000001", "gen-000002", "ingest.lock"]
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
