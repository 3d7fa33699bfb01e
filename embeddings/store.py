"""On-disk snapshots of the index: SQLite metadata plus FAISS vectors, swapped in atomically.

Layout of the data directory::

    CURRENT           name of the live snapshot, replaced with os.replace (atomic)
    gen-000007/       meta.sqlite, chunks-<n>.faiss, sentences.faiss, articles.faiss, manifest.json
    tmp-*/            a snapshot being written; ignored and cleaned up if a crash left it

A snapshot is never modified once CURRENT names it, so a crash at any point of an ingest leaves
the previous snapshot answering.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings.index import VectorIndex

CURRENT = "CURRENT"
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


@dataclass(frozen=True)
class ArticleRow:
    id: int
    key: str
    title: str
    outlet: str | None
    date: str | None
    url: str | None
    language: str
    text: str
    hash: str
    origin: str


@dataclass(frozen=True)
class ChunkRow:
    """A passage; its sentences are the sentence rows first_sentence..last_sentence."""

    id: int
    article_id: int
    start: int
    end: int
    first_sentence: int
    last_sentence: int


@dataclass(frozen=True)
class SentenceRow:
    id: int
    article_id: int
    start: int
    end: int


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


def current_name(data_dir: Path) -> str | None:
    """The live snapshot's folder name, or None before the first ingest."""
    try:
        name = (data_dir / CURRENT).read_text().strip()
    except FileNotFoundError:
        return None
    return name if name and (data_dir / name / "manifest.json").exists() else None


def read_snapshot(data_dir: Path, name: str) -> SnapshotData:
    """Load a whole snapshot into memory."""
    folder = data_dir / name
    manifest = json.loads((folder / "manifest.json").read_text())
    con = sqlite3.connect(f"file:{folder / 'meta.sqlite'}?mode=ro", uri=True)
    try:
        articles = [ArticleRow(*r) for r in con.execute("SELECT * FROM articles ORDER BY id")]
        chunks = [ChunkRow(*r) for r in con.execute("SELECT * FROM chunks ORDER BY id")]
        sentences = [SentenceRow(*r) for r in con.execute("SELECT * FROM sentences ORDER BY id")]
    finally:
        con.close()
    vectors = {enc: VectorIndex.load(folder / f"chunks-{i}.faiss").vectors() for i, enc in enumerate(manifest["encoders"])}
    sentence_vectors = VectorIndex.load(folder / "sentences.faiss").vectors()
    article_vectors = VectorIndex.load(folder / "articles.faiss").vectors()
    return SnapshotData(articles, chunks, sentences, vectors, sentence_vectors, article_vectors, manifest)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_snapshot(data_dir: Path, data: SnapshotData) -> str:
    """Write ``data`` as a new snapshot and make it current; return its name."""
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="tmp-", dir=data_dir))
    con = sqlite3.connect(tmp / "meta.sqlite")
    try:
        con.executescript(SCHEMA)
        con.executemany("INSERT INTO articles VALUES (?,?,?,?,?,?,?,?,?,?)", [tuple(a.__dict__.values()) for a in data.articles])
        con.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?)", [tuple(c.__dict__.values()) for c in data.chunks])
        con.executemany("INSERT INTO sentences VALUES (?,?,?,?)", [tuple(s.__dict__.values()) for s in data.sentences])
        con.commit()
    finally:
        con.close()
    encoders = list(data.chunk_vectors)
    for i, enc in enumerate(encoders):
        VectorIndex.build(data.chunk_vectors[enc]).save(tmp / f"chunks-{i}.faiss")
    VectorIndex.build(data.sentence_vectors).save(tmp / "sentences.faiss")
    VectorIndex.build(data.article_vectors).save(tmp / "articles.faiss")
    manifest = dict(data.manifest, encoders=encoders)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for file in tmp.iterdir():
        with open(file, "rb+") as fh:
            os.fsync(fh.fileno())
    name = f"gen-{_next_generation(data_dir):06d}"
    os.rename(tmp, data_dir / name)
    pointer = data_dir / f"{CURRENT}.tmp"
    pointer.write_text(name)
    with open(pointer, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(pointer, data_dir / CURRENT)
    _fsync_dir(data_dir)
    return name


def _next_generation(data_dir: Path) -> int:
    numbers = [int(p.name[4:]) for p in data_dir.glob("gen-*") if p.name[4:].isdigit()]
    return max(numbers, default=0) + 1


def prune(data_dir: Path, keep: int = 2) -> None:
    """Delete leftover temporary folders and all but the newest ``keep`` snapshots (never CURRENT)."""
    live = current_name(data_dir)
    for tmp in data_dir.glob("tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    gens = sorted(p for p in data_dir.glob("gen-*") if p.name != live)
    for old in gens[: max(len(gens) - (keep - 1), 0)]:
        shutil.rmtree(old, ignore_errors=True)


def disk_size(data_dir: Path) -> int:
    """Bytes used by the live snapshot."""
    name = current_name(data_dir)
    return sum(f.stat().st_size for f in (data_dir / name).iterdir()) if name else 0
