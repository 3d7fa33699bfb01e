"""The article library: the live snapshot, the encoders, search and ingest.

Readers use whatever snapshot is live; an ingest builds the next one beside it and swaps it in, so
questions keep being answered from the previous index while an ingest runs, in this process or
another (the live snapshot name is re-read at most every couple of seconds).

At start-up a lost, garbled or dangling CURRENT, or a damaged live snapshot, is repaired: the newest
snapshot that loads is used, CURRENT is pointed at it, and a warning says so.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Collection
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from bot.errors import DataDirError, IndexWriteFailed
from bot.models import ArticleInfo, IngestReport, Passage
from embeddings import ingest as ingesting
from embeddings.answering.judge import ArticleWords, judge
from embeddings.answering.model import AnswerabilityModel
from embeddings.retriever import Settings, retrieve
from embeddings.snapshot import Snapshot
from embeddings.store import (
    GENERATION,
    SnapshotError,
    SnapshotWriteError,
    current_name,
    generation_number,
    generations,
    pointer,
    prune,
    read_snapshot,
    set_current,
    write_snapshot,
)

if TYPE_CHECKING:
    from bot.config import Config

log = logging.getLogger(__name__)

ProgressArg = bool | Callable[[int, int], None]
ENCODER_NAMES = {"e5": "e5-small", "use": "use-m3"}


def _load_encoder(name: str, config: Config):
    """Load one encoder by its name in the manifest ("st:<model>", "e5-small", "use-m3")."""
    if name.startswith("st:"):
        from embeddings.encoder import SentenceEncoder

        emb = config.embeddings
        return SentenceEncoder(name[3:], emb.device, emb.batch_size)
    if name == ENCODER_NAMES["e5"]:
        from embeddings.e5 import E5Encoder

        return E5Encoder()
    from embeddings.multilingual import UseEncoder

    return UseEncoder()


class Library:
    """Everything the core needs from the index, behind plain methods."""

    def __init__(self, data_dir: Path, config: Config, encoders: list | None = None) -> None:
        self.data_dir = data_dir
        self.config = config
        self._encoders = encoders
        self._encoder_lock = threading.Lock()
        self._snapshot = Snapshot.empty()
        self._checked = 0.0
        self._swap = threading.Lock()
        self._model: AnswerabilityModel | None = None
        self._words = ArticleWords()
        # Snapshots that failed to load, so a running reader warns about each only once.
        self._broken: set[str] = set()
        self._writer = threading.local()

    @classmethod
    def open(cls, data_dir: Path, config: Config, progress: ProgressArg = False, encoders: list | None = None) -> Library:
        """Open (or create) the library in ``data_dir`` and load its live snapshot.

        ``encoders`` lets several libraries in one process share loaded models. Raises
        :class:`DataDirError` when ``data_dir`` cannot be used or none of its snapshots loads.
        """
        _prepare(data_dir)
        library = cls(data_dir, config, encoders)
        library.refresh(force=True)
        if library._snapshot.name and library._needs_reembed():
            log.warning("embedding settings changed since the index was built: re-embedding all articles")
            with library._ingest_lock():
                library._apply(ingesting.reembed_all(library._snapshot), progress)
        elif library._snapshot.name and library._needs_completion():
            log.warning("retrieval.weight_dense > 0: embedding the stored passages with the missing encoders")
            with library._ingest_lock():
                library.refresh(force=True)
                library._complete(progress)
        return library

    # -- encoders -------------------------------------------------------------------------------

    @property
    def encoders(self) -> list:
        """The passage encoders whose vectors retrieval reads, loaded on first use (loading a model
        takes seconds): the main (first multilingual) encoder, plus the sentence-transformers model
        (``embeddings.model``) and the other multilingual ones only when ``retrieval.weight_dense`` > 0.
        With the default ``weight_dense: 0`` their passage vectors would never be read, so they are
        neither loaded nor computed (on newsqa-dev that was a fifth of the ingest time)."""
        with self._encoder_lock:
            wanted = self._wanted_encoder_names()
            if self._encoders is None or [e.name for e in self._encoders] != wanted:
                # Encoders handed in (shared between libraries) are reused by name.
                pool = {e.name: e for e in self._encoders or []}
                self._encoders = [pool[n] if n in pool else _load_encoder(n, self.config) for n in wanted]
            return self._encoders

    @property
    def sentence_encoder(self):
        """The main encoder: chunk, sentence and article vectors, answer highlighting, summaries."""
        main = self._main_encoder_name()
        return next(e for e in self.encoders if e.name == main)

    def _main_encoder_name(self) -> str:
        emb = self.config.embeddings
        return ENCODER_NAMES[emb.multilingual[0]] if emb.multilingual else f"st:{emb.model}"

    def _wanted_encoder_names(self) -> list[str]:
        emb = self.config.embeddings
        if not self.config.retrieval.weight_dense:
            return [self._main_encoder_name()]
        return [f"st:{emb.model}"] + [ENCODER_NAMES[n] for n in emb.multilingual]

    def _needs_reembed(self) -> bool:
        """Only a change of the main encoder or of the chunking re-embeds every article. Passage
        vectors of encoders no longer used are ignored (and dropped by the next ingest); those of a
        newly wanted encoder are computed for the stored passages alone (:meth:`_complete`)."""
        manifest = self._snapshot.data.manifest
        return (
            manifest.get("sentence_encoder") != self._main_encoder_name()
            or manifest.get("max_chars") != self.config.chunking.max_chars
            or manifest.get("overlap") != self.config.chunking.overlap_sentences
        )

    def _needs_completion(self) -> bool:
        """True when a wanted encoder has no passage vectors in the live snapshot."""
        stored = set(self._snapshot.data.chunk_vectors)
        return any(name not in stored for name in self._wanted_encoder_names())

    # -- snapshot -------------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        """The live snapshot (reloaded if another process swapped in a newer one)."""
        self.refresh()
        return self._snapshot

    def refresh(self, force: bool = False) -> None:
        """Load the live snapshot if it changed on disk.

        ``force`` (start-up and ingests) also repairs a broken CURRENT or live snapshot; a periodic
        check only warns and keeps answering from the snapshot it has.
        """
        now = time.monotonic()
        if not force and now - self._checked < 2.0:
            return
        self._checked = now
        name = current_name(self.data_dir)
        if name and name == self._snapshot.name:
            return
        with self._swap:
            name = current_name(self.data_dir)
            if name and name == self._snapshot.name:
                return
            loaded = self._load(name) if name and (force or name not in self._broken) else None
            if loaded is not None:
                self._snapshot = loaded
                return
        if force:
            # Outside _swap: recovery takes the writers' lock, which an ingest holds while it refreshes.
            recovered = self._recover(name)
            with self._swap:
                self._snapshot = recovered

    def _load(self, name: str) -> Snapshot | None:
        """The snapshot ``name``, or None (with a warning) when it cannot be read."""
        try:
            return Snapshot(name, read_snapshot(self.data_dir, name))
        except SnapshotError as err:
            problem = str(err)
        except Exception as err:  # rows that do not fit together fail while the search indexes are built
            problem = f"{self.data_dir / name}: {type(err).__name__}: {err}"
        if name not in self._broken:
            log.warning("cannot load snapshot %s", problem)
            self._broken.add(name)
        return None

    def _recover(self, broken: str | None) -> Snapshot:
        """The newest snapshot that loads, with CURRENT repaired to name it; empty for a new data dir."""
        said = pointer(self.data_dir)
        if said is None and not generations(self.data_dir):
            return Snapshot.empty()
        # CURRENT is rewritten under the writers' lock, so an ingest swapping in a newer snapshot is never undone.
        with self._ingest_lock(required=False):
            name = current_name(self.data_dir)
            if name and name != broken:
                found = self._snapshot if name == self._snapshot.name else self._load(name)
                if found is not None:
                    return found
            said = pointer(self.data_dir)
            # A damaged live snapshot falls back to an earlier one; with CURRENT lost, any will do.
            below = generation_number(said) if said and GENERATION.fullmatch(said) else None
            candidates = [g for g in generations(self.data_dir) if below is None or generation_number(g) < below]
            for candidate in candidates:
                found = self._snapshot if candidate == self._snapshot.name else self._load(candidate)
                if found is not None:
                    self._repair_current(said, found)
                    return found
        if said is not None and not said and not candidates:
            return Snapshot.empty()  # an empty CURRENT and no snapshot: a first ingest that never finished
        what = "no snapshot in it loads" if candidates else f"CURRENT names {said!r} but there is no such snapshot"
        raise DataDirError(
            f"data dir {self.data_dir}: the index cannot be read ({what}; the log says why). Restore the data dir "
            f"from a backup, or move it aside and build a new index with `bron ingest PATH`."
        )

    def _repair_current(self, said: str | None, found: Snapshot) -> None:
        """Point CURRENT at the snapshot found, and say what happened."""
        if said is None:
            why = "CURRENT was missing"
        elif not said:
            why = "CURRENT was empty or unreadable"
        elif not GENERATION.fullmatch(said):
            why = f"CURRENT was garbled ({said[:40]!r})"
        elif said in self._broken:
            why = f"snapshot {said} is damaged"
        elif (self.data_dir / said).is_dir():
            why = f"snapshot {said} is incomplete (no manifest.json)"
        else:
            why = f"CURRENT named {said}, which is missing"
        try:
            set_current(self.data_dir, found.name)
            done = "CURRENT now names it"
        except OSError as exc:
            done = f"CURRENT could not be repaired ({exc.strerror or exc})"
        log.warning(
            "data dir %s: %s; using snapshot %s (%d articles), the newest that loads; %s",
            self.data_dir, why, found.name, len(found.articles), done,
        )

    def is_empty(self) -> bool:
        """True before anything was ingested."""
        return not self.snapshot.articles

    # -- reading --------------------------------------------------------------------------------

    def _info(self, article_id: int, snapshot: Snapshot) -> ArticleInfo:
        a = snapshot.articles[article_id]
        return ArticleInfo(a.id, a.title, a.outlet, a.date, a.url, a.language, snapshot.chunk_counts.get(a.id, 0))

    def article(self, article_id: int) -> ArticleInfo | None:
        """Citation data of one article, or None if it is not indexed."""
        snap = self.snapshot
        return self._info(article_id, snap) if article_id in snap.articles else None

    def articles(self) -> list[ArticleInfo]:
        """All indexed articles, by id."""
        snap = self.snapshot
        return [self._info(article_id, snap) for article_id in sorted(snap.articles)]

    def article_text(self, article_id: int) -> str:
        """The full text of one article."""
        return self.snapshot.articles[article_id].text

    def settings(self) -> Settings:
        """Retrieval settings from the config."""
        r = self.config.retrieval
        return Settings(
            r.top_k, r.candidates, r.weight_sentence, r.weight_article, r.weight_lexical, r.weight_dense,
            tuple(r.lexical_languages), r.merge_chars, r.merge_depth,
        )

    @property
    def answerability(self) -> AnswerabilityModel:
        """The answerability model: ``answer.model`` from the config, else the one shipped with Bron."""
        if self._model is None:
            path = self.config.answer.model
            self._model = AnswerabilityModel.load(self.config.resolve(path) if path else None)
        return self._model

    @answerability.setter
    def answerability(self, model: AnswerabilityModel) -> None:
        self._model = model

    def rank(self, question: str, language: str, top_k: int | None = None, exclude: Iterable[int] = (),
             within: Collection[int] | None = None) -> list[Passage]:
        """The ``top_k`` best quotes in retrieval order, each with its most answering sentence marked
        and the probability that this sentence answers the question (``Passage.confidence``).

        Articles in ``exclude`` are left out of the search; with ``within``, only those articles'
        passages are scored.
        """
        snap = self.snapshot
        if not snap.data.chunks:
            return []
        main = self.sentence_encoder
        wanted = self.encoders if self.config.retrieval.weight_dense else [main]
        vectors = {enc.name: enc.encode_query([question])[0] for enc in wanted}
        settings = self.settings()
        if top_k is not None:
            settings = Settings(**{**settings.__dict__, "top_k": top_k})
        hits = retrieve(snap, question, language, vectors, main.name, settings, frozenset(exclude),
                        None if within is None else frozenset(within))
        judged = judge(snap, question, language, vectors[main.name], main.name, hits, self.answerability, self._words)
        passages = []
        for j in judged:
            hit = j.hit
            chunk = snap.data.chunks[hit.chunk_id]
            text = snap.articles[chunk.article_id].text
            hs, he = j.sentence
            passages.append(
                Passage(
                    article=self._info(chunk.article_id, snap),
                    text=text[hit.start : hit.end],
                    start=hit.start,
                    end=hit.end,
                    highlight=(hs - hit.start, he - hit.start),
                    score=hit.score,
                    confidence=j.probability,
                )
            )
        return passages

    def sentence_vectors(self, article_id: int) -> tuple[list[str], np.ndarray]:
        """One article's sentences and their vectors, in article order."""
        snap = self.snapshot
        ids = snap.article_sentence_ids(article_id)
        text = snap.articles[article_id].text
        sents = [text[snap.data.sentences[i].start : snap.data.sentences[i].end] for i in ids]
        return sents, snap.data.sentence_vectors[ids] if ids else np.zeros((0, 1), dtype="float32")

    # -- writing --------------------------------------------------------------------------------

    @contextmanager
    def _ingest_lock(self, required: bool = True) -> Iterator[None]:
        """One writer at a time per data directory, across processes.

        Without ``required`` a data dir that cannot be written is read without the lock. Re-entrant
        within a thread (flock would otherwise wait for this very process).
        """
        if getattr(self._writer, "held", False):
            yield
            return
        try:
            fh = open(self.data_dir / "ingest.lock", "w")
        except OSError as exc:
            if not required:
                yield
                return
            raise DataDirError(
                f"cannot write to data dir {self.data_dir} ({exc.strerror or exc}). Make it writable for this "
                f"user, or pass another folder with --data-dir or BRON_DATA_DIR."
            ) from None
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            self._writer.held = True
            try:
                yield
            finally:
                self._writer.held = False
                fcntl.flock(fh, fcntl.LOCK_UN)

    def ingest(self, paths: list[Path], progress: ProgressArg = False) -> IngestReport:
        """Add new, update changed and drop vanished articles under ``paths``."""
        docs, skipped, scanned = ingesting.read_documents(paths)
        with self._ingest_lock():
            self.refresh(force=True)
            change = ingesting.plan(self._snapshot, docs, scanned, skipped)
            return self._apply(change, progress)

    def ingest_documents(self, docs: list, progress: ProgressArg = False, skipped: list[tuple[str, str]] | None = None) -> IngestReport:
        """Add or update already-loaded documents (e.g. fetched web pages); removes nothing.

        ``skipped`` (where, why) are sources that produced no document; they are logged and reported.
        """
        with self._ingest_lock():
            self.refresh(force=True)
            change = ingesting.plan(self._snapshot, docs, [], list(skipped or []))
            return self._apply(change, progress)

    def remove(self, article_ids: list[int]) -> IngestReport:
        """Remove articles by id."""
        with self._ingest_lock():
            self.refresh(force=True)
            change = ingesting.Plan([], [], [i for i in article_ids if i in self._snapshot.articles], 0, [])
            return self._apply(change, False)

    def _apply(self, change: ingesting.Plan, progress: ProgressArg) -> IngestReport:
        old = self._snapshot
        report = IngestReport(
            added=[d.title for d in change.add],
            updated=[d.title for _, d in change.update],
            removed=[old.articles[i].title for i in change.remove],
            unchanged=change.unchanged,
            skipped=change.skipped,
        )
        for where, why in change.skipped:
            log.warning("skipped %s: %s", where, why)
        if not report.changed:
            return report
        self._write(self._build(old, change, progress))
        report.added_ids = sorted(set(self._snapshot.articles) - set(old.articles))
        report.updated_ids = [article_id for article_id, _ in change.update]
        return report

    def _complete(self, progress: ProgressArg) -> None:
        """Rewrite the live snapshot with passage vectors for every wanted encoder, embedding the
        stored passages only with the encoders that have none (nothing else is re-embedded)."""
        if not self._needs_completion():
            return
        self._write(self._build(self._snapshot, ingesting.Plan([], [], [], 0, []), progress))

    def _build(self, base: Snapshot, change: ingesting.Plan, progress: ProgressArg):
        """The next snapshot's data: ``base`` with ``change`` applied, embedded with the wanted encoders."""
        chunking = self.config.chunking
        return ingesting.build(
            base, change, self.encoders, self.sentence_encoder, chunking.max_chars, chunking.overlap_sentences,
            progress_callback(progress),
        )

    def _write(self, data) -> None:
        """Write ``data`` as the next snapshot and make it live; a failed write leaves the old one."""
        old = self._snapshot
        try:
            name = write_snapshot(self.data_dir, data)
        except SnapshotWriteError as err:
            log.warning("ingest into %s failed: %s; the previous index is unchanged", self.data_dir, err.reason)
            raise IndexWriteFailed(data_dir=str(self.data_dir), reason=err.reason) from None
        with self._swap:
            self._snapshot = Snapshot(name, data)
        # The snapshot this one was built from stays as the fall-back, whatever else lies around.
        prune(self.data_dir, keep=[old.name] if old.name else [])


def _prepare(data_dir: Path) -> None:
    """Create the data directory, or say which path is wrong and how to fix it."""
    fix = "Pass a folder this user can write to with --data-dir or BRON_DATA_DIR (or data_dir in config.yaml)."
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DataDirError(f"data dir {data_dir} is a file, not a folder. {fix}") from None
    except OSError as exc:  # also a folder on the way that this user may not enter
        raise DataDirError(f"cannot create data dir {data_dir} ({exc.strerror or exc}). {fix}") from None
    if not os.access(data_dir, os.R_OK | os.W_OK | os.X_OK):
        raise DataDirError(f"cannot use data dir {data_dir}: permission denied. {fix}")


def progress_callback(progress: ProgressArg, desc: str = "Embedding", unit: str = "text") -> Callable[[int, int], None] | None:
    """A tqdm bar on stderr for ``True``, the caller's callback, or nothing."""
    if callable(progress):
        return progress
    if not progress:
        return None
    from tqdm import tqdm

    bar: list = []

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(tqdm(total=total, desc=desc, unit=unit, leave=False))
        bar[0].update(done - bar[0].n)
        if done >= total:
            bar[0].close()

    return update
