"""Segments: immutable folders of vectors, passage and sentence spans, and keyword postings.

An ingest writes the articles it adds or changes as one new segment; segments are merged later.
A segment is written in a temporary folder, synced, and renamed; it counts only once the database
registers it (in the same transaction as its articles), so a crash leaves at most an unregistered
folder, which the next writer deletes.

Passage ids ``chunk_base .. chunk_base + chunks - 1`` and sentence ids likewise are the segment's
own: ids are never reused, and rows run in article-id order so one article's rows are contiguous.
Vectors are stored as float16 (cosines move by < 0.001) and memory-mapped: only the rows a
question touches are read. The passage search index (``chunks.faiss``: exact below 100k passages,
IVF with 8-bit codes above, see :mod:`embeddings.index`) is memory-mapped too.
"""

from __future__ import annotations

import json
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embeddings.index import VectorIndex
from embeddings.storage.bm25 import Postings

# Passage indexes above this many vectors are approximate (IVF, 8-bit codes; recall@100 ~0.97 on
# real e5 vectors, benchmarks/ann_recall.py): exact search costs ~0.1 ms per 1,000 vectors per
# question, so a library of eight 80k-passage segments spent 60 ms in it (benchmarks/scale.py).
EXACT_MAX = 20_000
ARRAYS = ("chunk_article", "chunk_span", "chunk_sentences", "sentence_article", "sentence_span", "article_ids")


class SegmentError(Exception):
    """A segment that cannot be read: a file missing, truncated or not fitting the others."""


@dataclass
class SegmentData:
    """Everything a segment holds, as a writer builds it."""

    chunk_base: int
    sentence_base: int
    chunk_article: np.ndarray  # int64, article of each passage row (non-decreasing)
    chunk_span: np.ndarray  # int32 (n, 2): start, end in the article text
    chunk_sentences: np.ndarray  # int64 (n, 2): first, last sentence id (last < first: none)
    sentence_article: np.ndarray  # int64
    sentence_span: np.ndarray  # int32 (m, 2)
    article_ids: np.ndarray  # int64, sorted: the articles whose vectors are here
    chunk_vectors: dict[str, np.ndarray]  # encoder name -> (n, d)
    sentence_vectors: np.ndarray  # (m, d)
    article_vectors: np.ndarray  # (k, d), one per article_ids entry
    postings: Postings
    info: dict[str, object] = field(default_factory=dict)


def write_segment(folder: Path, data: SegmentData, main: str) -> None:
    """Write ``data`` into the new folder ``folder`` and sync it; ``main`` names the encoder searched."""
    folder.mkdir(parents=True)
    for name in ARRAYS:
        np.save(folder / f"{name}.npy", np.ascontiguousarray(getattr(data, name)))
    encoders = list(data.chunk_vectors)
    for i, enc in enumerate(encoders):
        np.save(folder / f"chunks-{i}.npy", np.asarray(data.chunk_vectors[enc], dtype="float16"))
    np.save(folder / "sentences.npy", np.asarray(data.sentence_vectors, dtype="float16"))
    np.save(folder / "articles.npy", np.asarray(data.article_vectors, dtype="float16"))
    ids = data.chunk_base + np.arange(len(data.chunk_article), dtype="int64")
    vectors = np.asarray(data.chunk_vectors[main], dtype="float32")
    VectorIndex.build(vectors, ids, approximate=len(vectors) > EXACT_MAX).save(folder / "chunks.faiss")
    data.postings.save(folder)
    info = dict(
        data.info,
        chunk_base=int(data.chunk_base),
        chunks=int(len(data.chunk_article)),
        sentence_base=int(data.sentence_base),
        sentences=int(len(data.sentence_article)),
        articles=int(len(data.article_ids)),
        encoders=encoders,
        main=main,
        tokens=data.postings.tokens,
    )
    (folder / "segment.json").write_text(json.dumps(info, indent=1))
    for file in folder.iterdir():
        with open(file, "rb+") as fh:
            os.fsync(fh.fileno())
    fsync_dir(folder)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RowFile:
    """The rows of a 2-D ``.npy`` file, read on demand with ``pread`` (never memory-mapped).

    Vectors are read a few scattered rows per question. Through a memory map every row read keeps
    its 4 KB page in the process's resident memory, so a bot serving for days would end up holding
    every sentence vector (9 GB at a million articles); read this way they stay in the kernel's
    page cache, shared and reclaimable, and consecutive rows cost one system call.
    """

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            self._offset = fh.tell()
        if fortran or len(shape) != 2:
            raise ValueError(f"{path.name}: not a C-ordered 2-D array")
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self._row = self.shape[1] * self.dtype.itemsize
        if path.stat().st_size < self._offset + self.shape[0] * self._row:
            raise ValueError(f"{path.name}: cut short")
        self._fd = os.open(path, os.O_RDONLY)

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, start: int, stop: int) -> np.ndarray:
        data = os.pread(self._fd, (stop - start) * self._row, self._offset + start * self._row)
        return np.frombuffer(data, dtype=self.dtype).reshape(stop - start, self.shape[1])

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as stored (float16 stays float16, unlike indexing)."""
        if not 0 <= start <= stop <= self.shape[0]:
            raise IndexError(f"rows {start}:{stop} of {self.shape[0]}")
        return self._read(start, stop)

    def __getitem__(self, key) -> np.ndarray:
        """Rows by slice, int, or array of ints (float32 for float16 files)."""
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            rows = self._read(start, max(start, stop))[::step]
        elif isinstance(key, (int, np.integer)):
            i = int(key) + (self.shape[0] if key < 0 else 0)
            if not 0 <= i < self.shape[0]:
                raise IndexError(key)
            rows = self._read(i, i + 1)[0]
        else:
            rows = self.take(np.asarray(key, dtype="int64"))
        return rows.astype("float32") if rows.dtype == np.float16 else rows

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The given rows, in the order given; runs of consecutive rows are read at once."""
        if not len(rows):
            return np.zeros((0, self.shape[1]), dtype=self.dtype)
        if rows.min() < 0 or rows.max() >= self.shape[0]:
            raise IndexError("row out of range")
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        breaks = np.flatnonzero(np.diff(ordered) > 1) + 1
        for run in np.split(np.arange(len(ordered)), breaks):
            first, last = int(ordered[run[0]]), int(ordered[run[-1]])
            block = self._read(first, last + 1)
            out[order[run]] = block[ordered[run] - first]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[:]
        return whole.astype(dtype) if dtype is not None else whole


class Segment:
    """A segment opened for reading: arrays and vectors memory-mapped, the passage index loaded."""

    def __init__(self, folder: Path, number: int) -> None:
        self.folder = folder
        self.name = folder.name
        self.number = number
        self._reading = "segment.json"
        try:
            self._open(folder)
        except SegmentError:
            raise
        except Exception as exc:  # numpy, json and faiss each fail in their own way on damaged bytes
            text = (str(exc).strip().splitlines() or [""])[0]
            if "faiss" in text:  # faiss messages start with the C++ function; the reason is at the end
                text = text.rsplit("failed:", 1)[-1].strip()
            raise SegmentError(f"{folder}/{self._reading}: {type(exc).__name__}: {text[:160]}") from exc

    def _open(self, folder: Path) -> None:
        info = json.loads((folder / "segment.json").read_text(encoding="utf-8"))
        self.info = info
        self.encoders: list[str] = list(info["encoders"])
        self.chunk_base = int(info["chunk_base"])
        self.sentence_base = int(info["sentence_base"])
        self.chunks = int(info["chunks"])
        self.sentences = int(info["sentences"])

        def load(name: str) -> np.ndarray:
            self._reading = name
            array = np.load(folder / name, mmap_mode="r", allow_pickle=False)
            raw = getattr(array, "_mmap", None)
            if raw is not None and hasattr(mmap, "MADV_RANDOM"):
                # A question reads a few scattered rows: the kernel's read-ahead would pull in ~128 KB
                # around each.
                raw.madvise(mmap.MADV_RANDOM)
            # A plain ndarray over the same map: numpy.memmap's indexing costs ~5 µs a call.
            return array.view(np.ndarray)

        def rows(name: str) -> RowFile:
            self._reading = name
            return RowFile(folder / name)

        self.chunk_article = load("chunk_article.npy")
        self.chunk_span = load("chunk_span.npy")
        self.chunk_sentences = load("chunk_sentences.npy")
        self.sentence_article = load("sentence_article.npy")
        self.sentence_span = load("sentence_span.npy")
        self.article_ids = load("article_ids.npy")
        self.chunk_vectors = {enc: rows(f"chunks-{i}.npy") for i, enc in enumerate(self.encoders)}
        self.sentence_vectors = rows("sentences.npy")
        self.article_vectors = rows("articles.npy")
        self._reading = "bm25-*.npy"
        self.postings = Postings.load(folder)
        self._reading = "chunks.faiss"
        # Memory-mapped: opening costs no read of the vectors, and the page cache is shared
        # between processes serving the same data dir. Segment files never change once written.
        self.index = VectorIndex.load(folder / "chunks.faiss", mmap=True)
        self._check()

    def _check(self) -> None:
        """Every file must fit the counts of segment.json (a swapped or cut-short file does not)."""
        n, m, k = self.chunks, self.sentences, len(self.article_ids)
        sizes = {
            "chunk_article.npy": (len(self.chunk_article), n),
            "chunk_span.npy": (len(self.chunk_span), n),
            "chunk_sentences.npy": (len(self.chunk_sentences), n),
            "sentence_article.npy": (len(self.sentence_article), m),
            "sentence_span.npy": (len(self.sentence_span), m),
            "sentences.npy": (len(self.sentence_vectors), m),
            "articles.npy": (len(self.article_vectors), k),
            "bm25-lengths.npy": (len(self.postings.lengths), n),
            "chunks.faiss": (len(self.index), n),
        }
        sizes.update({f"chunks-{i}.npy": (len(v), n) for i, v in enumerate(self.chunk_vectors.values())})
        for file, (have, want) in sizes.items():
            if have != want:
                raise SegmentError(f"{self.folder}/{file}: {have} rows where segment.json says {want}")

    # -- lookups by id ---------------------------------------------------------------------------

    def holds_chunk(self, chunk_id: int) -> bool:
        """True when passage ``chunk_id`` is stored here."""
        return self.chunk_base <= chunk_id < self.chunk_base + self.chunks

    def article_rows(self, article_id: int, kind: str) -> range:
        """Rows of one article's passages (``kind="chunk"``) or sentences (``"sentence"``)."""
        column = self.chunk_article if kind == "chunk" else self.sentence_article
        lo = int(np.searchsorted(column, article_id, side="left"))
        hi = int(np.searchsorted(column, article_id, side="right"))
        return range(lo, hi)

    def article_vector(self, article_id: int) -> np.ndarray | None:
        """The article's title-and-lead vector, or None when it is not stored here."""
        i = int(np.searchsorted(self.article_ids, article_id))
        if i < len(self.article_ids) and int(self.article_ids[i]) == article_id:
            return self.article_vectors[i]
        return None

    def disk_bytes(self) -> int:
        """Bytes of the segment's files."""
        return sum(f.stat().st_size for f in self.folder.iterdir())
