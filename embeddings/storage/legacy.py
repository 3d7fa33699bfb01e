"""The data directory layout before segments (Bron < 0.x): read once, to migrate it.

On-disk snapshots of the index: SQLite metadata plus FAISS vectors, swapped in atomically.

Layout of the data directory::

    CURRENT           name of the live snapshot, replaced with os.replace (atomic)
    gen-000007/       meta.sqlite, chunks-<n>.faiss, sentences.faiss, articles.faiss, manifest.json
    tmp-*/            a snapshot being written; ignored and cleaned up if a crash left it

A snapshot is never modified once CURRENT names it, so a crash at any point of an ingest leaves
the previous snapshot answering. A write that fails (disk full) removes what it wrote.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings.index import VectorIndex
from embeddings.storage.rows import ArticleRow, ChunkRow, SentenceRow
from embeddings.storage.store import write_reason

CURRENT = "CURRENT"
GENERATION = re.compile(r"gen-(\d{6,})")
SCHEMA = """
CREATE TABLE articles (
    id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, title TEXT NOT NULL, outlet TEXT, date TEXT,
    url TEXT, language TEXT NOT NULL, text TEXT NOT NULL, hash TEXT NOT NULL, origin TEXT NOT NULL
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY, article_id INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
    first_sentence INTEGER NOT NULL, last_sentence INTEGER NOT NULL
);
CREATE TABLE sentences (
    id INTEGER PRIMARY KEY, article_id INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class SnapshotData:
    """Everything in one snapshot. Row ids are 0..n-1 and equal the vector ids."""

    articles: list[ArticleRow]
    chunks: list[ChunkRow]
    sentences: list[SentenceRow]
    # encoder name -> one vector per chunk; "sentences" key is taken by sentence vectors.
    chunk_vectors: dict[str, np.ndarray]
    sentence_vectors: np.ndarray
    # One vector per article (title and lead), same encoder as the sentences.
    article_vectors: np.ndarray
    manifest: dict[str, object]


class SnapshotError(Exception):
    """A snapshot that cannot be loaded: a file of it is missing, truncated or garbled."""


class SnapshotWriteError(Exception):
    """Writing a new snapshot failed (disk full, permissions); nothing of it was left behind."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def pointer(data_dir: Path) -> str | None:
    """What CURRENT says, printable and stripped ("" if empty or garbled), or None without a CURRENT file."""
    try:
        raw = (data_dir / CURRENT).read_bytes()[:200]
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    return raw.decode("ascii", errors="replace").strip()


def current_name(data_dir: Path) -> str | None:
    """The live snapshot's folder name, or None if CURRENT is missing, garbled or names no snapshot."""
    name = pointer(data_dir)
    if not name or not GENERATION.fullmatch(name):
        return None
    return name if (data_dir / name / "manifest.json").is_file() else None


def generations(data_dir: Path) -> list[str]:
    """The snapshot folders in ``data_dir``, newest first."""
    try:
        names = [p.name for p in data_dir.iterdir() if GENERATION.fullmatch(p.name) and p.is_dir()]
    except OSError:
        return []
    return sorted(names, key=generation_number, reverse=True)


def generation_number(name: str) -> int:
    """The N of ``gen-N`` (-1 for anything else)."""
    match = GENERATION.fullmatch(name)
    return int(match.group(1)) if match else -1


def read_snapshot(data_dir: Path, name: str) -> SnapshotData:
    """Load a whole snapshot into memory; :class:`SnapshotError` says what is wrong if it cannot."""
    folder = data_dir / name
    try:
        data = _read(folder)
    except SnapshotError as exc:
        raise SnapshotError(f"{folder}/{exc}") from exc
    except Exception as exc:  # damaged bytes fail in json, sqlite, faiss or numpy, each in its own way
        raise SnapshotError(f"{folder}: {_reason(exc)}") from exc
    problem = _inconsistency(data)
    if problem:
        raise SnapshotError(f"{folder}: {problem}")
    return data


def _read(folder: Path) -> SnapshotData:
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    if not isinstance(manifest, dict) or not isinstance(manifest.get("encoders"), list):
        raise ValueError("manifest.json has no list of encoders")
    if not (folder / "meta.sqlite").is_file():
        raise FileNotFoundError("meta.sqlite is missing")
    con = sqlite3.connect(f"file:{folder / 'meta.sqlite'}?mode=ro", uri=True)
    try:
        articles = [ArticleRow(*r) for r in con.execute("SELECT * FROM articles ORDER BY id")]
        chunks = [ChunkRow(*r) for r in con.execute("SELECT * FROM chunks ORDER BY id")]
        sentences = [SentenceRow(*r) for r in con.execute("SELECT * FROM sentences ORDER BY id")]
    finally:
        con.close()
    vectors = {enc: _vectors(folder / f"chunks-{i}.faiss") for i, enc in enumerate(manifest["encoders"])}
    return SnapshotData(
        articles, chunks, sentences, vectors, _vectors(folder / "sentences.faiss"), _vectors(folder / "articles.faiss"), manifest
    )


def _vectors(path: Path) -> np.ndarray:
    """The vectors of one .faiss file; faiss's own errors do not say which file."""
    try:
        return VectorIndex.load(path).vectors()
    except Exception as exc:
        raise SnapshotError(f"{path.name}: {_reason(exc)}") from exc


def _inconsistency(data: SnapshotData) -> str | None:
    """Why the parts of a snapshot do not fit together (a file swapped or cut short), or None."""
    for label, rows in (("chunks", data.chunks), ("sentences", data.sentences)):
        if any(row.id != i for i, row in enumerate(rows)):
            return f"meta.sqlite: {label} ids are not 0..{len(rows) - 1}"
    counts = [(f"chunks-{i}.faiss", len(v), len(data.chunks)) for i, v in enumerate(data.chunk_vectors.values())]
    counts += [("sentences.faiss", len(data.sentence_vectors), len(data.sentences))]
    counts += [("articles.faiss", len(data.article_vectors), len(data.articles))]
    for file, vectors, rows in counts:
        if vectors != rows:
            return f"{file} has {vectors} vectors for {rows} rows in meta.sqlite"
    if data.articles and data.sentence_vectors.shape[1] != data.article_vectors.shape[1]:
        return "sentences.faiss and articles.faiss have vectors of different sizes"
    articles = {a.id for a in data.articles}
    if any(row.article_id not in articles for row in (*data.chunks, *data.sentences)):
        return "meta.sqlite: a passage or sentence belongs to no article"
    return None


def _reason(exc: BaseException) -> str:
    """One short line for a log: faiss and sqlite messages run over several lines."""
    text = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_snapshot(data_dir: Path, data: SnapshotData) -> str:
    """Write ``data`` as a new snapshot and make it current; return its name.

    On failure (:class:`SnapshotWriteError`) the folder written so far is removed and CURRENT still
    names the previous snapshot.
    """
    name = ""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="tmp-", dir=data_dir))
    except OSError as exc:
        raise SnapshotWriteError(write_reason(exc, data_dir)) from exc
    try:
        _write_files(tmp, data)
        name = f"gen-{_next_generation(data_dir):06d}"
        os.rename(tmp, data_dir / name)
        set_current(data_dir, name)
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        # RuntimeError is how faiss reports a failed write.
        reason = write_reason(exc, data_dir)
        _discard(data_dir, tmp, name)
        raise SnapshotWriteError(reason) from exc
    except BaseException:
        _discard(data_dir, tmp, name)
        raise
    return name


def _write_files(folder: Path, data: SnapshotData) -> None:
    con = sqlite3.connect(folder / "meta.sqlite")
    try:
        con.executescript(SCHEMA)
        con.executemany("INSERT INTO articles VALUES (?,?,?,?,?,?,?,?,?,?)", [tuple(a.__dict__.values())[:10] for a in data.articles])
        con.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?)", [tuple(c.__dict__.values()) for c in data.chunks])
        con.executemany("INSERT INTO sentences VALUES (?,?,?,?)", [tuple(s.__dict__.values()) for s in data.sentences])
        con.commit()
    finally:
        con.close()
    encoders = list(data.chunk_vectors)
    for i, enc in enumerate(encoders):
        VectorIndex.build(data.chunk_vectors[enc]).save(folder / f"chunks-{i}.faiss")
    VectorIndex.build(data.sentence_vectors).save(folder / "sentences.faiss")
    VectorIndex.build(data.article_vectors).save(folder / "articles.faiss")
    manifest = dict(data.manifest, encoders=encoders)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for file in folder.iterdir():
        with open(file, "rb+") as fh:
            os.fsync(fh.fileno())


def set_current(data_dir: Path, name: str) -> None:
    """Make ``name`` the live snapshot: CURRENT is replaced atomically and synced."""
    pointer_tmp = data_dir / f"{CURRENT}.tmp"
    try:
        pointer_tmp.write_text(name)
        with open(pointer_tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(pointer_tmp, data_dir / CURRENT)
    finally:
        pointer_tmp.unlink(missing_ok=True)
    _fsync_dir(data_dir)


def _discard(data_dir: Path, tmp: Path, name: str) -> None:
    """Remove a snapshot whose write failed, unless CURRENT already names it."""
    shutil.rmtree(tmp, ignore_errors=True)
    if name and current_name(data_dir) != name:
        shutil.rmtree(data_dir / name, ignore_errors=True)



def _next_generation(data_dir: Path) -> int:
    return max((generation_number(n) for n in generations(data_dir)), default=0) + 1


def prune(data_dir: Path, keep: Iterable[str] = ()) -> None:
    """Delete leftover temporary folders and every snapshot except the live one and ``keep``.

    Snapshots are only deleted while CURRENT names a complete one: otherwise which one is good is
    not known, and an older one may be all that is left of the index.
    """
    for tmp in data_dir.glob("tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    live = current_name(data_dir)
    if live is None:
        return
    for name in generations(data_dir):
        if name != live and name not in keep:
            shutil.rmtree(data_dir / name, ignore_errors=True)


def disk_size(data_dir: Path) -> int:
    """Bytes used by the live snapshot."""
    name = current_name(data_dir)
    return sum(f.stat().st_size for f in (data_dir / name).iterdir()) if name else 0
