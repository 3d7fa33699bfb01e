"""The data directory: one SQLite database plus immutable vector segments.

Layout::

    library.sqlite      articles (metadata and text), the segment registry, counters (WAL)
    segments/seg-000007/  vectors, spans and keyword postings of the articles of one ingest (or merge)
    segments/tmp-*      a segment being written; deleted by the next writer if a crash left it
    ingest.lock         one writer at a time, across processes
    merge.lock          one merge at a time; held by a merge for its whole length
    merge-wait.lock     at most one merging process waits for merge.lock
    merge.log           what a background merge had to say (empty unless one failed)

An ingest writes only what changed: a new segment for its new and changed articles, and in one
transaction their rows, the segment's registration and the deletions. Segments are merged when
there are too many, or too much of one is dead, without re-embedding anything.

A merge does not hold the writers' lock: it reserves its segment number and id ranges in one short
transaction, builds and writes the merged segment while ingests and answers go on, and swaps it in
with a second short transaction. An article updated or removed meanwhile keeps its newer state (its
rows in the merged segment are counted dead), so a merge of a million passages (minutes) never holds
up adding one article.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import logging
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar
from pathlib import Path

import numpy as np

from embeddings.documents import Document, text_fingerprint
from embeddings.storage.bm25 import Postings
from embeddings.storage.database import SCHEMA_VERSION, Database
from embeddings.storage.segment import RowFile, Segment, SegmentData, SegmentError, fsync_dir, write_segment
from embeddings.storage.view import View

log = logging.getLogger(__name__)
T = TypeVar("T")

DB_NAME = "library.sqlite"
SEGMENTS = "segments"
MERGE_LOCK = "merge.lock"
# Merge when there are more segments than this: the smallest MERGE_WIDTH are merged into one, so
# sizes grow geometrically and an article is rewritten O(log n) times (README, "Storage").
MAX_SEGMENTS = 8
MERGE_WIDTH = 4
# A segment more than this share dead (removed or updated articles) is rewritten.
MAX_DEAD = 0.5
# Segments above this many passages (~200k articles) are not merged further: a merge holds its
# segments' vectors in memory, and a few segments of this size search as fast as one.
MAX_MERGED_PASSAGES = 1_000_000
# Vectors are copied into a merged segment this many rows at a time (25 MB of float16 at 384 dims).
READ_ROWS = 32768


class StoreError(Exception):
    """The database cannot be read or written (damaged, not a database, permissions)."""


class StoreWriteError(Exception):
    """A write failed (disk full, permissions); the library is as it was before."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Fresh:
    """A new or changed article, split and embedded, ready to be stored."""

    article_id: int | None  # None: a new article
    doc: Document
    sentences: list[tuple[int, int]]
    chunks: list[tuple[int, int, int, int]]  # start, end, first and last sentence (indexes into sentences)
    tokens: list[list[str]]  # keyword tokens of each chunk
    chunk_vectors: dict[str, np.ndarray]
    sentence_vectors: np.ndarray
    article_vector: np.ndarray


def segment_name(number: int) -> str:
    """Folder name of segment ``number``."""
    return f"seg-{number:06d}"


def now_iso() -> str:
    """The current UTC time, to the second, ISO 8601."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


class Store:
    """Reads views of, and writes changes to, one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.segments_dir = data_dir / SEGMENTS
        self.db = Database(data_dir / DB_NAME)
        try:
            self._inode: int | None = os.stat(self.db.path).st_ino
        except OSError:
            self._inode = None
        self._loaded: dict[int, Segment] = {}
        self.broken: dict[int, str] = {}

    @staticmethod
    def exists(data_dir: Path) -> bool:
        """True when ``data_dir`` holds a library database."""
        return (data_dir / DB_NAME).is_file()

    @staticmethod
    def create(data_dir: Path, fill=None) -> None:
        """Make an empty library in ``data_dir`` (``fill(db_path, segments_dir)`` may add to it first).

        The database is built under a temporary name and renamed into place last, so a crash leaves
        no library (and the next start begins again), never half of one.
        """
        tmp = Path(tempfile.mkdtemp(prefix="tmp-create-", dir=data_dir))
        try:
            Database.create(tmp / DB_NAME)
            (data_dir / SEGMENTS).mkdir(exist_ok=True)
            if fill is not None:
                fill(tmp / DB_NAME, data_dir / SEGMENTS)
            with open(tmp / DB_NAME, "rb+") as fh:
                os.fsync(fh.fileno())
            os.rename(tmp / DB_NAME, data_dir / DB_NAME)
            fsync_dir(data_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def check(self) -> None:
        """Raise :class:`StoreError` when the database is not a readable library."""
        try:
            meta = self.db.meta()
        except (sqlite3.Error, ValueError) as exc:
            raise StoreError(f"{self.db.path}: {type(exc).__name__}: {str(exc)[:200]}") from exc
        if "schema" not in meta:
            raise StoreError(f"{self.db.path}: no schema version; not a Bron library")
        if int(meta["schema"]) > SCHEMA_VERSION:
            raise StoreError(f"{self.db.path}: written by a newer Bron (schema {meta['schema']}); upgrade Bron")

    def upgrade(self) -> bool:
        """Bring a library written by an older Bron to this one's schema; True when it did. The caller
        holds the writers' lock; raises :class:`StoreWriteError` when it cannot (the library is as it was)."""
        try:
            return self.db.upgrade()
        except (OSError, sqlite3.Error) as exc:
            raise StoreWriteError(write_reason(exc, self.data_dir)) from exc

    def meta(self) -> dict[str, object]:
        """The counters and embedding settings."""
        return self.db.meta()

    # -- reading ---------------------------------------------------------------------------------

    def view(self, previous: View | None = None) -> View:
        """The current state; ``previous`` lets unchanged parts be reused."""
        for _ in range(3):
            changed, gone, version, registered = self.db.live(previous.version if previous is not None else None)
            segments = [self._segment(number) for number, _, _ in registered]
            # A segment that vanished between that read and opening it was merged away meanwhile (a
            # damaged one is in ``broken``): read again, so its articles are not left out of this view.
            if all(seg is not None or number in self.broken for seg, (number, _, _) in zip(segments, registered)):
                break
        top = max([i for i, _ in changed] + [len(previous.live) - 1 if previous is not None else 0], default=0)
        live = np.zeros(top + 1, dtype="int64")
        if previous is not None:
            live[: len(previous.live)] = previous.live
        for article_id, number in changed:
            live[article_id] = number
        for article_id in gone:
            if article_id < len(live):
                live[article_id] = 0
        chunks = sum(passages - dead for (_, passages, dead), seg in zip(registered, segments) if seg is not None)
        numbers = {n for n, _, _ in registered}
        for number in list(self._loaded):
            if number not in numbers:
                del self._loaded[number]
        articles = int(np.count_nonzero(live))
        return View(self.db, [seg for seg in segments if seg is not None], live, version, articles, chunks)

    def _segment(self, number: int) -> Segment | None:
        if number in self._loaded:
            return self._loaded[number]
        folder = self.segments_dir / segment_name(number)
        try:
            seg = Segment(folder, number)
        except SegmentError as err:
            if number not in {n for n, _, _ in self.db.segments()}:
                return None  # merged away by another process since the registry was read: not damage
            if number not in self.broken:
                log.warning("cannot read segment %s; its articles cannot be found until it is repaired", err)
            self.broken[number] = str(err)
            return None
        self.broken.pop(number, None)
        self._loaded[number] = seg
        return seg

    # -- writing (the caller holds the writers' lock) --------------------------------------------

    @contextmanager
    def merge_lock(self, wait: bool = True) -> Iterator[bool]:
        """Hold the merge lock (across processes); yields False when ``wait`` is off and another
        merge holds it. Not re-entrant: flock locks of two opens of the file exclude each other
        even within one process."""
        with open(self.data_dir / MERGE_LOCK, "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def clean(self) -> None:
        """Delete segment folders no transaction registered (a crash left them, or a merge replaced them)."""
        if not self.segments_dir.is_dir():
            return
        try:
            with self.merge_lock(wait=False) as free:
                if free:
                    self._clean()
        except OSError:  # a read-only data dir: nothing to clean anyway
            return

    def _clean(self) -> None:
        # Under the merge lock: a merge in progress owns an unregistered folder until it commits.
        numbers = {n for n, _, _ in self.db.segments()}
        for folder in self.segments_dir.iterdir():
            registered = folder.name.startswith("seg-") and folder.name[4:].isdigit() and int(folder.name[4:]) in numbers
            if not registered:
                shutil.rmtree(folder, ignore_errors=True)

    def commit(self, fresh: Sequence[Fresh], remove: Sequence[int], settings: dict[str, object]) -> dict[int, int]:
        """Store new and changed articles and drop ``remove``, atomically; returns {position in fresh: article id}.

        ``settings`` (encoder names, chunking) are recorded in the database's meta.
        """
        written: Path | None = None
        try:
            with self.db.transaction() as con:
                meta = self.db.meta(con)
                version = int(meta["version"]) + 1
                dead: dict[int, int] = {}

                def kill(article_id: int) -> int | None:
                    """Count the article's passages dead in its segment; returns that segment (None: no such article)."""
                    row = con.execute("SELECT segment, passages FROM placement WHERE article_id = ?", (article_id,)).fetchone()
                    if row is None:
                        return None
                    dead[row[0]] = dead.get(row[0], 0) + row[1]
                    return int(row[0])

                for article_id in remove:
                    if kill(article_id) is not None:
                        con.execute("DELETE FROM articles WHERE id = ?", (article_id,))
                        con.execute("DELETE FROM placement WHERE article_id = ?", (article_id,))
                        con.execute("INSERT INTO removed VALUES (?, ?)", (article_id, version))
                ids: dict[int, int] = {}
                number = int(meta["next_segment"])
                seen = now_iso()
                for pos, item in enumerate(fresh):
                    d = item.doc
                    values = (d.key, d.title, d.outlet, d.date, d.url, d.language, d.text, d.content_hash, d.origin, text_fingerprint(d.text))
                    old = kill(item.article_id) if item.article_id is not None else None
                    if old is not None:
                        con.execute(
                            "UPDATE articles SET key=?, title=?, outlet=?, date=?, url=?, language=?, text=?, hash=?, origin=?, fingerprint=?"
                            " WHERE id=?",
                            (*values, item.article_id),
                        )
                        con.execute(
                            "UPDATE placement SET segment=?, passages=?, version=? WHERE article_id=?",
                            (number, len(item.chunks), version, item.article_id),
                        )
                        ids[pos] = int(item.article_id)
                    else:
                        cur = con.execute(
                            "INSERT INTO articles (key, title, outlet, date, url, language, text, hash, origin, fingerprint,"
                            " first_seen) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                            (*values, seen),
                        )
                        ids[pos] = int(cur.lastrowid)
                        con.execute("INSERT INTO placement VALUES (?, ?, ?, ?)", (ids[pos], number, len(item.chunks), version))
                counters = {"version": version}
                if fresh:
                    data = _segment_data(fresh, ids, int(meta["next_chunk"]), int(meta["next_sentence"]))
                    written = self._write(number, data, str(settings["sentence_encoder"]))
                    con.execute("INSERT INTO segments VALUES (?, ?, 0)", (number, len(data.chunk_article)))
                    counters.update(
                        next_segment=number + 1,
                        next_chunk=int(meta["next_chunk"]) + len(data.chunk_article),
                        next_sentence=int(meta["next_sentence"]) + len(data.sentence_article),
                    )
                for seg, n in dead.items():
                    con.execute("UPDATE segments SET dead = dead + ? WHERE number = ?", (n, seg))
                self.db.set_meta(con, {**counters, **settings})
        except (OSError, sqlite3.Error, RuntimeError) as exc:
            if written is not None:
                shutil.rmtree(written, ignore_errors=True)
            raise StoreWriteError(write_reason(exc, self.data_dir)) from exc
        except BaseException:
            if written is not None:
                shutil.rmtree(written, ignore_errors=True)
            raise
        return ids

    def _write(self, number: int, data: SegmentData, main: str) -> Path:
        """Write segment ``number`` (replacing an unregistered leftover of that name) and return its folder."""
        self.segments_dir.mkdir(exist_ok=True)
        final = self.segments_dir / segment_name(number)
        shutil.rmtree(final, ignore_errors=True)  # a crashed ingest's, never registered
        tmp = self.segments_dir / f"tmp-{number:06d}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            write_segment(tmp, data, main)
            os.rename(tmp, final)
            fsync_dir(self.segments_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    # -- merging ---------------------------------------------------------------------------------

    def merge_candidates(self) -> list[int]:
        """Segments to merge now (empty: nothing to do)."""
        segs = self.db.segments()
        live = [(p - d, n) for n, p, d in segs if p - d > 0]
        rotten = [n for n, p, d in segs if p and d / p > MAX_DEAD and p - d > 0]
        small = [(size, n) for size, n in live if size < MAX_MERGED_PASSAGES]
        if len(live) > MAX_SEGMENTS and len(small) >= 2:
            # The smallest, up to MERGE_WIDTH of them and two million passages together (a merge holds
            # its vectors in memory: ~2 GB of float16 per million passages with their sentences).
            smallest: list[int] = []
            total = 0
            for size, n in sorted(small):
                if len(smallest) == MERGE_WIDTH or (len(smallest) >= 2 and total + size > 2 * MAX_MERGED_PASSAGES):
                    break
                smallest.append(n)
                total += size
            return sorted(set(smallest) | set(rotten))
        return sorted(rotten)

    def drop_empty(self) -> None:
        """Unregister and delete segments none of whose passages is live."""
        with self.db.transaction() as con:
            empty = [n for n, p, d in self.db.segments() if p - d <= 0]
            for number in empty:
                con.execute("DELETE FROM segments WHERE number = ?", (number,))
        if self._same_database():
            for number in empty:
                shutil.rmtree(self.segments_dir / segment_name(number), ignore_errors=True)

    def merge(
        self, numbers: Sequence[int], extra: dict[int, dict[str, np.ndarray]] | None = None,
        run: Callable[[Callable[[], T]], T] | None = None,
    ) -> int | None:
        """Merge segments ``numbers`` into one new segment (live rows only); returns its number, or
        None when one of them is no longer registered (merged meanwhile).

        The caller holds :meth:`merge_lock`, not the writers' lock: ingests may commit meanwhile.
        ``extra`` adds passage vectors of other encoders: {segment: {encoder: one row per passage row}}.
        ``run(work)`` runs the long part (building and writing the segment; not the transactions) and
        returns its result: a background merge runs it on a thread of low priority, so that it never
        holds the database's write lock while starved of CPU.
        """
        segs = [self._segment(n) for n in numbers]
        if any(s is None for s in segs):
            raise StoreWriteError("a segment to merge cannot be read")
        marks = ",".join("?" * len(numbers))
        written: Path | None = None
        try:
            # Reserve the segment number and id ranges first (ids are never reused, so what the
            # merge leaves unused is only a gap), then read which articles live in the segments.
            with self.db.transaction() as con:
                registered = {n for (n,) in con.execute(f"SELECT number FROM segments WHERE number IN ({marks})", tuple(numbers))}
                if registered != set(numbers):
                    return None  # merged by someone else since the caller looked
                meta = self.db.meta(con)
                if any(str(meta["sentence_encoder"]) not in s.encoders for s in segs):
                    # Re-embedding after a change of encoder is under way: its new segments and the
                    # old ones do not go together.
                    raise StoreWriteError("the segments hold different encoders' vectors (re-embedding in progress)")
                number = int(meta["next_segment"])
                chunk_base, sentence_base = int(meta["next_chunk"]), int(meta["next_sentence"])
                self.db.set_meta(con, {
                    "next_segment": number + 1,
                    "next_chunk": chunk_base + sum(s.chunks for s in segs),
                    "next_sentence": sentence_base + sum(s.sentences for s in segs),
                })
                owned = [
                    (int(article_id), seg)
                    for seg in segs
                    for (article_id,) in con.execute("SELECT article_id FROM placement WHERE segment = ?", (seg.number,))
                ]
            owned.sort(key=lambda t: t[0])

            def build() -> tuple[SegmentData, Path]:
                data = _merged(owned, segs, chunk_base, sentence_base, extra or {})
                return data, self._write(number, data, str(meta["sentence_encoder"]))

            data, written = run(build) if run is not None else build()
            with self.db.transaction() as con:
                meta = self.db.meta(con)
                # Articles updated or removed since they were read are no longer in these segments:
                # their rows in the merged one are dead.
                (live,) = con.execute(f"SELECT COALESCE(SUM(passages), 0) FROM placement WHERE segment IN ({marks})", tuple(numbers)).fetchone()
                con.execute("INSERT INTO segments VALUES (?, ?, ?)", (number, len(data.chunk_article), len(data.chunk_article) - int(live)))
                version = int(meta["version"]) + 1
                # The narrow placement rows only: the article rows (with their texts) stay untouched.
                con.execute(f"UPDATE placement SET segment = ?, version = ? WHERE segment IN ({marks})", (number, version, *numbers))
                con.execute(f"DELETE FROM segments WHERE number IN ({marks})", tuple(numbers))
                self.db.set_meta(con, {"version": version})
        except (OSError, sqlite3.Error, RuntimeError) as exc:
            if written is not None:
                shutil.rmtree(written, ignore_errors=True)
            raise StoreWriteError(write_reason(exc, self.data_dir)) from exc
        except BaseException:
            if written is not None:
                shutil.rmtree(written, ignore_errors=True)
            raise
        if self._same_database():
            for n in numbers:
                shutil.rmtree(self.segments_dir / segment_name(n), ignore_errors=True)
        return number

    def _same_database(self) -> bool:
        """False when the data dir's database is no longer the file this store opened (the folder was
        moved aside and a new library made in its place): then its folders are not ours to delete."""
        try:
            inode = os.stat(self.db.path).st_ino
        except OSError:
            return False
        if self._inode is None:  # this store was opened before the library was created
            self._inode = inode
        return inode == self._inode

    def clean_merge_leftovers(self) -> None:
        """Delete what killed merges left: unregistered segment folders numbered below the next segment
        number (an ingest in progress writes that number itself). The caller holds the merge lock."""
        if not self.segments_dir.is_dir() or not self._same_database():
            return
        next_segment = int(self.db.meta()["next_segment"])
        registered = {n for n, _, _ in self.db.segments()}
        for folder in self.segments_dir.iterdir():
            kind, _, rest = folder.name.partition("-")
            digits = rest.split("-")[0]
            if kind in ("seg", "tmp") and digits.isdigit() and int(digits) < next_segment and int(digits) not in registered:
                shutil.rmtree(folder, ignore_errors=True)

    def set_settings(self, settings: dict[str, object]) -> None:
        """Record embedding settings in the database's meta."""
        with self.db.transaction() as con:
            self.db.set_meta(con, settings)

    def disk_bytes(self) -> int:
        """Bytes of the database and the registered segments."""
        total = sum(f.stat().st_size for f in self.data_dir.glob(f"{DB_NAME}*") if f.is_file())
        for number, _, _ in self.db.segments():
            folder = self.segments_dir / segment_name(number)
            if folder.is_dir():
                total += sum(f.stat().st_size for f in folder.iterdir())
        return total


def _segment_data(fresh: Sequence[Fresh], ids: dict[int, int], chunk_base: int, sentence_base: int) -> SegmentData:
    """One segment of ``fresh`` articles, rows in article-id order."""
    order = sorted(range(len(fresh)), key=lambda p: ids[p])
    chunk_article, chunk_span, chunk_sentences = [], [], []
    sentence_article, sentence_span, tokens = [], [], []
    vectors: dict[str, list[np.ndarray]] = {enc: [] for enc in fresh[0].chunk_vectors}
    sentence_vectors, article_vectors = [], []
    for p in order:
        item, article_id = fresh[p], ids[p]
        offset = sentence_base + len(sentence_article)
        for start, end in item.sentences:
            sentence_article.append(article_id)
            sentence_span.append((start, end))
        for start, end, first, last in item.chunks:
            chunk_article.append(article_id)
            chunk_span.append((start, end))
            chunk_sentences.append((offset + first, offset + last))
        tokens.extend(item.tokens)
        for enc in vectors:
            vectors[enc].append(item.chunk_vectors[enc])
        sentence_vectors.append(item.sentence_vectors)
        article_vectors.append(item.article_vector.reshape(1, -1))
    dim = fresh[0].article_vector.shape[-1]
    return SegmentData(
        chunk_base, sentence_base,
        np.asarray(chunk_article, dtype="int64"), np.asarray(chunk_span, dtype="int32").reshape(-1, 2),
        np.asarray(chunk_sentences, dtype="int64").reshape(-1, 2),
        np.asarray(sentence_article, dtype="int64"), np.asarray(sentence_span, dtype="int32").reshape(-1, 2),
        np.asarray(sorted(ids.values()), dtype="int64"),
        {enc: _stack(v, dim) for enc, v in vectors.items()}, _stack(sentence_vectors, dim), _stack(article_vectors, dim),
        Postings.build(tokens),
    )


def _stack(parts: list[np.ndarray], dim: int) -> np.ndarray:
    parts = [p for p in parts if len(p)]
    return np.concatenate(parts).astype("float32") if parts else np.zeros((0, dim), dtype="float32")


def _merged(
    owned: list[tuple[int, Segment]], segs: Sequence[Segment], chunk_base: int, sentence_base: int,
    extra: dict[int, dict[str, np.ndarray]],
) -> SegmentData:
    """The live rows of ``segs`` as one segment; ``owned`` lists (article id, its segment) by id."""
    chunk_src: list[tuple[Segment, range]] = []
    sentence_src: list[tuple[Segment, range]] = []
    chunk_maps = {s.number: np.full(s.chunks, -1, dtype="int64") for s in segs}
    sentence_maps = {s.number: np.full(s.sentences, -1, dtype="int64") for s in segs}
    n_chunks = n_sentences = 0
    for article_id, seg in owned:
        rows = seg.article_rows(article_id, "chunk")
        chunk_maps[seg.number][rows.start : rows.stop] = np.arange(n_chunks, n_chunks + len(rows))
        n_chunks += len(rows)
        chunk_src.append((seg, rows))
        srows = seg.article_rows(article_id, "sentence")
        sentence_maps[seg.number][srows.start : srows.stop] = np.arange(n_sentences, n_sentences + len(srows))
        n_sentences += len(srows)
        sentence_src.append((seg, srows))

    chunk_runs, sentence_runs = _runs(chunk_src), _runs(sentence_src)
    dim = segs[0].sentence_vectors.shape[1]

    def gather(runs: list[tuple[Segment, range]], get) -> np.ndarray:
        parts = [np.asarray(get(seg)[r.start : r.stop]) for seg, r in runs]
        return np.concatenate(parts) if parts else np.asarray(get(segs[0])[0:0])

    def gather_vectors(runs: list[tuple[Segment, range]], get) -> np.ndarray:
        # Filled in place as stored (float16): slices read as float32 and then concatenated held
        # the merge's vectors three times over (~10 GB for the sentences of 900k passages).
        out = np.empty((sum(len(r) for _, r in runs), dim), dtype="float16")
        at = 0
        for seg, r in runs:
            block = get(seg)
            for start in range(r.start, r.stop, READ_ROWS):  # bounded reads: a run can be a whole segment
                stop = min(start + READ_ROWS, r.stop)
                out[at : at + stop - start] = block.rows(start, stop) if isinstance(block, RowFile) else block[start:stop]
                at += stop - start
        return out

    def renumbered_sentences(seg: Segment, r: range) -> np.ndarray:
        """The (first, last) sentence ids of passage rows ``r`` in the merged numbering."""
        old = np.asarray(seg.chunk_sentences[r.start : r.stop], dtype="int64").reshape(-1, 2) - seg.sentence_base
        smap = sentence_maps[seg.number]
        none = old[:, 1] < old[:, 0]  # a passage without sentences keeps last < first
        mapped = smap[np.clip(old, 0, len(smap) - 1)] if len(smap) else np.zeros_like(old)
        return sentence_base + np.where(none[:, None], np.asarray([0, -1]), mapped)

    chunk_sentences = [renumbered_sentences(seg, r) for seg, r in chunk_runs]

    def vectors_of(seg: Segment, encoder: str) -> np.ndarray:
        return extra.get(seg.number, {}).get(encoder, seg.chunk_vectors.get(encoder))

    names = list(dict.fromkeys([*extra.get(segs[0].number, {}), *segs[0].encoders]))
    encoders = [e for e in names if all(vectors_of(s, e) is not None for s in segs)]
    article_ids = np.asarray([a for a, _ in owned], dtype="int64")
    article_vectors = [seg.article_vector(a) for a, seg in owned]
    postings = Postings.merge([(s.postings, chunk_maps[s.number]) for s in segs], n_chunks)
    return SegmentData(
        chunk_base, sentence_base,
        gather(chunk_runs, lambda s: s.chunk_article).astype("int64"),
        gather(chunk_runs, lambda s: s.chunk_span).astype("int32").reshape(-1, 2),
        np.concatenate(chunk_sentences).astype("int64") if chunk_sentences else np.zeros((0, 2), dtype="int64"),
        gather(sentence_runs, lambda s: s.sentence_article).astype("int64"),
        gather(sentence_runs, lambda s: s.sentence_span).astype("int32").reshape(-1, 2),
        article_ids,
        {e: gather_vectors(chunk_runs, lambda s, e=e: vectors_of(s, e)) for e in encoders},
        gather_vectors(sentence_runs, lambda s: s.sentence_vectors),
        np.asarray(article_vectors, dtype="float16").reshape(-1, dim),
        postings,
    )


def _runs(src: list[tuple[Segment, range]]) -> list[tuple[Segment, range]]:
    """``src`` with consecutive row ranges of one segment joined: one read per run, not per article."""
    runs: list[tuple[Segment, range]] = []
    for seg, r in src:
        if not len(r):
            continue
        if runs and runs[-1][0] is seg and runs[-1][1].stop == r.start:
            runs[-1] = (seg, range(runs[-1][1].start, r.stop))
        else:
            runs.append((seg, r))
    return runs


def write_reason(exc: BaseException, data_dir: Path) -> str:
    """Why a write failed, in words; faiss and sqlite do not always say that the disk is full, so look."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the disk"
    try:
        full = shutil.disk_usage(data_dir).free < 1024 * 1024
    except OSError:
        full = False
    if full or "full" in str(exc).lower():
        return "no space left on the disk"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
