"""The article library: the stored articles and their segments, the encoders, search and ingest.

Readers use the current view of the data directory; an ingest writes a new segment and commits it
in one transaction, so questions keep being answered while an ingest runs, in this process or
another (a change by another process is noticed within a couple of seconds).

At start-up an old data directory (whole-index snapshots) is converted without re-embedding, and a
damaged segment is repaired by re-embedding its articles from their stored texts.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from embeddings import ingest as ingesting
from embeddings.answering.judge import ArticleWords, judge
from embeddings.answering.model import AnswerabilityModel
from embeddings.documents import Document
from embeddings.e5 import NAMES as E5_NAMES
from embeddings.e5 import default_precision, precision_of
from embeddings.errors import DataDirError, IndexWriteFailed
from embeddings.models import ArticleInfo, IngestReport, Passage
from embeddings.retriever import keyword_candidates, retrieve, uses_keywords
from embeddings.settings import RetrievalConfig
from embeddings.storage.backend import StoreBackend, ViewBackend, open_store
from embeddings.storage.compact import BackgroundMerges, merge_segments
from embeddings.storage.migrate import finish, legacy_layout, migrate
from embeddings.storage.rows import ArticleRow
from embeddings.storage.store import DB_NAME, SEGMENTS, Store, StoreError, StoreWriteError

if TYPE_CHECKING:
    from embeddings.settings import Config

log = logging.getLogger(__name__)

ProgressArg = bool | Callable[[int, int], None]
ENCODER_NAMES = {"e5": "e5-small", "use": "use-m3"}
# How often a reader looks whether another process committed a change.
REFRESH_SECONDS = 2.0
# Articles re-embedded per transaction when the embedding settings change.
REEMBED_BATCH = 256
# A damaged segment with at most this many articles is re-embedded at start-up (about a second of
# CPU each); a larger one waits for `bron repair`, so a start never turns into hours of embedding.
AUTO_REPAIR_ARTICLES = 1000


def _load_encoder(name: str, config: Config):
    """Load one encoder by its name in the manifest ("st:<model>", "e5-small", "use-m3")."""
    if name.startswith("st:"):
        from embeddings.encoder import SentenceEncoder

        emb = config.embeddings
        return SentenceEncoder(name[3:], emb.device, emb.batch_size)
    if precision_of(name):
        from embeddings.e5 import E5Encoder

        return E5Encoder(precision_of(name))
    from embeddings.multilingual import UseEncoder

    return UseEncoder()


_KEYWORDS: ThreadPoolExecutor | None = None
_KEYWORDS_LOCK = threading.Lock()


def _keyword_pool() -> ThreadPoolExecutor:
    """The threads that run keyword searches while questions are encoded (made on first use)."""
    global _KEYWORDS
    with _KEYWORDS_LOCK:
        if _KEYWORDS is None:
            # Two: a bot answers a few questions at once.
            _KEYWORDS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bron-keywords")
        return _KEYWORDS


class Library:
    """Everything the core needs from the index, behind plain methods."""

    def __init__(self, data_dir: Path, config: Config, encoders: list | None = None) -> None:
        self.data_dir = data_dir
        self.config = config
        self._encoders = encoders
        self._encoder_lock = threading.Lock()
        # storage.backend: the data directory (embedded) or a shared PostgreSQL database.
        self.store: StoreBackend = open_store(config, data_dir)
        self.embedded = isinstance(self.store, Store)
        self._view: ViewBackend | None = None
        self._seen_version = -1
        self._checked = 0.0
        self._swap = threading.Lock()
        self._model: AnswerabilityModel | None = None
        self._words = ArticleWords()
        self._writer = threading.local()
        self._e5_name: str | None = None
        self._merges = BackgroundMerges(data_dir)

    @classmethod
    def open(cls, data_dir: Path, config: Config, progress: ProgressArg = False, encoders: list | None = None) -> Library:
        """Open (or create) the library in ``data_dir``.

        ``encoders`` lets several libraries in one process share loaded models. Raises
        :class:`DataDirError` when ``data_dir`` cannot be used or its database cannot be read.
        """
        _prepare(data_dir)
        library = cls(data_dir, config, encoders)
        if not library.embedded:
            return library._open_shared(progress)
        if not Store.exists(data_dir):
            with library._ingest_lock():
                library._create()
        library._check()
        if os.access(data_dir, os.W_OK):
            # Before the first read: a library of an older schema is upgraded (a read-only one is read as it is).
            with library._ingest_lock():
                library._upgrade()
        library.refresh(force=True)
        if os.access(data_dir, os.W_OK):
            with library._ingest_lock():
                finish(data_dir)
                library.store.clean()
                library.store.db.ensure_indexes()  # a library made before the list and title indexes gets them
                library.refresh(force=True)
                library.repair(progress, limit=AUTO_REPAIR_ARTICLES)
                library._follow_settings(progress)
        return library

    def _open_shared(self, progress: ProgressArg) -> Library:
        """Open a library in a shared database (postgres): never created nor migrated here, only by
        ``bron db upgrade``."""
        self._check()
        self.refresh(force=True)
        if not (self._needs_reembed() or self._needs_completion()):
            return self  # the usual start: no writers' lock, so a long ingest elsewhere does not hold it up
        with self._ingest_lock():
            self.refresh(force=True)
            self._follow_settings(progress)
        return self

    def _follow_settings(self, progress: ProgressArg) -> None:
        """Re-embed after a change of encoder or chunking; add vectors of a newly wanted encoder."""
        if self._needs_reembed():
            log.warning("embedding settings changed since the index was built: re-embedding all articles")
            self._reembed(self._view.article_ids().tolist(), progress)
        elif self._needs_completion():
            log.warning("retrieval.weight_dense > 0: embedding the stored passages with the missing encoders")
            self._complete(progress)

    def _create(self) -> None:
        """Create the library, converting an old snapshot data directory if there is one."""
        if Store.exists(self.data_dir):
            return  # another process created it while this one waited for the lock
        try:
            if legacy_layout(self.data_dir):
                migrate(self.data_dir)
            else:
                self._refuse_orphaned_segments()
                Store.create(self.data_dir)
        except StoreError as err:
            raise DataDirError(
                f"{err}. Restore the data dir from a backup, or move it aside and build a new index with `bron ingest PATH`."
            ) from None
        except OSError as exc:
            raise DataDirError(f"cannot write to data dir {self.data_dir} ({exc.strerror or exc}).") from None

    def _upgrade(self) -> None:
        """Upgrade the database of a library written by an older Bron (once, under the writers' lock)."""
        try:
            self.store.upgrade()
        except StoreWriteError as err:
            if err.reason == "no space left on the disk":
                todo = f"Free disk space (the upgrade needs about the size of {DB_NAME} again) and start again."
            else:
                todo = "Start again once that is fixed; the Bron that wrote it still opens it."
            raise DataDirError(
                f"data dir {self.data_dir}: the index was written by an older Bron and could not be upgraded ({err.reason}); "
                f"it is unchanged. {todo}"
            ) from None

    def _refuse_orphaned_segments(self) -> None:
        """Stop when segments exist without the database that lists them.

        Only a deleted or moved library.sqlite leaves them (a new library renames its database into
        place before any segment is written). Starting afresh would show an index with nothing in it
        (or only the bundled article) without a word, and the cleaning at start would then delete
        every segment as unregistered.
        """
        segments_dir = self.data_dir / SEGMENTS
        found = sorted(p.name for p in segments_dir.glob("seg-*")) if segments_dir.is_dir() else []
        if found:
            raise DataDirError(
                f"data dir {self.data_dir}: {DB_NAME} is missing, but {SEGMENTS}/ holds {len(found)} segment folder(s) "
                f"({', '.join(found[:3])}{', …' if len(found) > 3 else ''}) of an index whose database (the article texts "
                f"and the list of segments) was deleted or moved. Restore {DB_NAME} from a backup, or move the data dir "
                f"aside and build a new index with `bron ingest PATH`."
            )

    def _check(self) -> None:
        try:
            self.store.check()
        except StoreError as err:
            if not self.embedded:
                raise DataDirError(f"config key storage.dsn: {err}.") from None
            raise DataDirError(
                f"data dir {self.data_dir}: the index cannot be read ({err}). Restore the data dir from a backup, "
                f"or move it aside and build a new index with `bron ingest PATH`."
            ) from None

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
        return self._multilingual_name(emb.multilingual[0]) if emb.multilingual else f"st:{emb.model}"

    def _wanted_encoder_names(self) -> list[str]:
        emb = self.config.embeddings
        if not self.config.retrieval.weight_dense:
            return [self._main_encoder_name()]
        return [f"st:{emb.model}"] + [self._multilingual_name(n) for n in emb.multilingual]

    def _multilingual_name(self, key: str) -> str:
        """The index name of a multilingual encoder; for e5 it carries ``embeddings.e5_precision``."""
        if key != "e5":
            return ENCODER_NAMES[key]
        if self._e5_name is None:
            precision = self.config.embeddings.e5_precision
            if precision == "auto":
                # An index keeps the precision it was built with: "auto" never re-embeds one, and
                # its questions are encoded like its passages.
                # Asked before the library exists too (encoders loaded ahead of opening a data dir),
                # when there is nothing to keep: reading the absent database would create it empty.
                meta = self.store.meta() if not self.embedded or Store.exists(self.data_dir) else {}
                built = [str(meta.get("sentence_encoder", "")), *map(str, meta.get("encoders") or [])]
                precision = next((p for p in map(precision_of, built) if p), None) or default_precision()
            self._e5_name = E5_NAMES[precision]
        return self._e5_name

    def _settings_meta(self) -> dict[str, object]:
        return {
            "encoders": self._wanted_encoder_names(), "sentence_encoder": self._main_encoder_name(),
            "max_chars": self.config.chunking.max_chars, "overlap": self.config.chunking.overlap_sentences,
        }

    def _needs_reembed(self) -> bool:
        """Only a change of the main encoder or of the chunking re-embeds every article. Passage
        vectors of encoders no longer used are ignored; a newly wanted encoder is handled by
        :meth:`_needs_completion`."""
        if self._view is None or not self._view.article_count:
            return False
        meta = self.store.meta()
        return (
            meta.get("sentence_encoder") != self._main_encoder_name()
            or meta.get("max_chars") != self.config.chunking.max_chars
            or meta.get("overlap") != self.config.chunking.overlap_sentences
        )

    def _needs_completion(self) -> bool:
        """True when a wanted encoder has no passage vectors in some segment."""
        view = self._view
        return view is not None and bool(view.article_count) and not all(view.has_vectors(n) for n in self._wanted_encoder_names())

    # -- the current view -----------------------------------------------------------------------

    @property
    def view(self) -> ViewBackend:
        """The current view (renewed if this or another process committed a change)."""
        self.refresh()
        assert self._view is not None
        return self._view

    @property
    def snapshot(self) -> ViewBackend:
        """The current view under its former name (tools written for whole-index snapshots read
        ``.snapshot.name`` to tell states apart; a view's name changes with every commit)."""
        return self.view

    def refresh(self, force: bool = False) -> None:
        """Renew the view when the database changed; checked at most every couple of seconds."""
        now = time.monotonic()
        if not force and self._view is not None and now - self._checked < REFRESH_SECONDS:
            return
        self._checked = now
        version = self.store.db.data_version()
        if not force and version == self._seen_version:
            return
        with self._swap:
            self._seen_version = version
            self._view = self.store.view(self._view)

    def is_empty(self) -> bool:
        """True before anything was ingested."""
        return not self.view.article_count

    # -- reading --------------------------------------------------------------------------------

    @staticmethod
    def _info_of(a: ArticleRow, chunks: int) -> ArticleInfo:
        return ArticleInfo(a.id, a.title, a.outlet, a.date, a.url, a.language, chunks, a.first_seen[:10] or None)

    def article(self, article_id: int) -> ArticleInfo | None:
        """Citation data of one article, or None if it is not indexed."""
        view = self.view
        row = view.article(article_id)
        if row is None:
            return None
        return self._info_of(row, self.store.db.passages([article_id]).get(article_id, 0))

    def article_row(self, article_id: int) -> ArticleRow | None:
        """Everything stored about one article (key, hash, text, first seen), or None."""
        return self.view.article(article_id)

    def articles(self) -> list[ArticleInfo]:
        """All indexed articles, by id (a full scan: prefer :meth:`page`)."""
        return self.page(0, 1 << 62)

    def page(
        self, offset: int, limit: int, newest_first: bool = False, since: str | None = None, until: str | None = None,
        outlets: Collection[str] = (), title_words: Collection[str] = (),
    ) -> list[ArticleInfo]:
        """One page of articles, by id or newest first, optionally limited to a period, outlets or title words."""
        self.refresh()
        rows = self.store.db.page(offset, limit, newest_first, since, until, list(outlets), list(title_words))
        return [ArticleInfo(i, t, o, d, u, lang, n, (seen or "")[:10] or None) for i, t, o, d, u, lang, n, seen in rows]

    def count(self) -> int:
        """Number of indexed articles."""
        return self.view.article_count

    def keys(self) -> dict[int, str]:
        """{article id: key} of every article (evaluation tools)."""
        return self.store.db.keys()

    def outlets(self) -> list[str]:
        """Every outlet name of the indexed articles."""
        return self.store.db.outlets()

    def dated(self) -> list[tuple[int, str | None, str | None]]:
        """(id, date, outlet) of every article."""
        return self.store.db.dated()

    def set_dates(self, dates: dict[int, str | None]) -> None:
        """Change articles' publication dates, metadata only (``bron eval`` dates its throwaway index).

        Raises NotImplementedError on a backend without it (postgres).
        """
        setter = getattr(self.store.db, "set_dates", None)
        if setter is None:
            raise NotImplementedError("set_dates: embedded backend only")
        setter(dates)
        self.refresh(force=True)

    def in_scope(
        self, period: tuple[str | None, str | None] | None, outlets: Collection[str] | None, limit: int | None = None,
    ) -> set[int]:
        """Ids of the articles published in ``period`` (inclusive ISO days, None for an open end;
        undated articles are in no period) and from one of ``outlets`` (exact names; None: any)."""
        return set(self.store.db.in_scope(period, None if outlets is None else list(outlets), limit))

    def by_keys(self, keys: list[str]) -> dict[str, tuple[int, str]]:
        """{key: (id, content hash)} of the indexed articles among ``keys``."""
        return self.store.db.by_keys(keys)

    def by_fingerprints(self, fingerprints: list[str]) -> dict[str, tuple[int, str, str | None, str]]:
        """{text fingerprint: (id, key, url, title)} of indexed articles with those texts."""
        return self.store.db.by_fingerprints(fingerprints)

    def article_text(self, article_id: int) -> str:
        """The full text of one article."""
        row = self.view.article(article_id)
        if row is None:
            raise KeyError(article_id)
        return row.text

    def settings(self) -> RetrievalConfig:
        """Retrieval settings: ``retrieval`` of the config."""
        return self.config.retrieval

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

    def rank(
        self, question: str, language: str, top_k: int | None = None, exclude: Iterable[int] = (),
        within: Collection[int] | None = None,
    ) -> list[Passage]:
        """The ``top_k`` best quotes in retrieval order, each with its most answering sentence marked
        and the probability that this sentence answers the question (``Passage.confidence``).

        Articles in ``exclude`` are left out of the search; ``within`` limits it to those articles.
        """
        view = self.view
        if not view.chunk_count:
            return []
        main = self.sentence_encoder
        wanted = self.encoders if self.config.retrieval.weight_dense else [main]
        settings = self.settings()
        if top_k is not None:
            settings = dataclasses.replace(settings, top_k=top_k)
        exclude = frozenset(exclude)
        # The keyword search needs no vector: it runs on another thread while this one encodes the
        # question (both release the interpreter lock, the encoders in C or torch, BM25 in numpy),
        # so a Dutch question at a million articles waits for the longer of the two. Not the other
        # way round: torch encoding on a pool thread cost ~4 ms more per question.
        keywords = None
        if within is None and uses_keywords(settings, language):
            keywords = _keyword_pool().submit(keyword_candidates, view, question, settings, exclude)
        vectors = {enc.name: enc.encode_query([question])[0] for enc in wanted}
        lexical = keywords.result() if keywords is not None else None
        hits = retrieve(view, question, language, vectors, main.name, settings, exclude, within, lexical)
        judged = judge(view, question, language, vectors[main.name], main.name, hits, self.answerability, self._words)
        passages = []
        counts = self.store.db.passages({view.chunk(j.hit.chunk_id).article_id for j in judged})
        for j in judged:
            hit = j.hit
            article = view.article(view.chunk(hit.chunk_id).article_id)
            if article is None:
                continue
            hs, he = j.sentence
            passages.append(
                Passage(
                    article=self._info_of(article, counts.get(article.id, 0)),
                    text=article.text[hit.start : hit.end],
                    start=hit.start,
                    end=hit.end,
                    highlight=(hs - hit.start, he - hit.start),
                    score=hit.score,
                    confidence=j.probability,
                    lead_score=j.lead_score,
                )
            )
        return passages

    def sentence_vectors(self, article_id: int) -> tuple[list[str], np.ndarray]:
        """One article's sentences and their vectors, in article order."""
        view = self.view
        ids = view.article_sentence_ids(article_id)
        article = view.article(article_id)
        if article is None or not ids:
            return [], np.zeros((0, 1), dtype="float32")
        sents = [view.sentence(i) for i in ids]
        return [article.text[s.start : s.end] for s in sents], view.sentence_vectors(ids)

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
        if not self.embedded:  # a shared database: an advisory lock, across machines
            with self.store.writer_lock():
                self._writer.held = True
                try:
                    yield
                finally:
                    self._writer.held = False
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
            change = ingesting.plan(self.store.db, docs, scanned, skipped)
            return self._apply(change, progress)

    def ingest_documents(self, docs: list, progress: ProgressArg = False, skipped: list[tuple[str, str]] | None = None) -> IngestReport:
        """Add or update already-loaded documents (e.g. fetched web pages); removes nothing.

        ``skipped`` (where, why) are sources that produced no document; they are logged and reported.
        """
        with self._ingest_lock():
            self.refresh(force=True)
            change = ingesting.plan(self.store.db, docs, [], list(skipped or []))
            return self._apply(change, progress)

    def remove(self, article_ids: list[int]) -> IngestReport:
        """Remove articles by id."""
        with self._ingest_lock():
            self.refresh(force=True)
            view = self._view
            change = ingesting.Plan([], [], [i for i in article_ids if view is not None and view.is_live(i)], 0, [])
            return self._apply(change, False)

    def _apply(self, change: ingesting.Plan, progress: ProgressArg) -> IngestReport:
        view = self._view
        assert view is not None
        removed_titles = [row.title for row in (view.article(i) for i in change.remove) if row is not None]
        report = IngestReport(
            added=[d.title for d in change.add],
            updated=[d.title for _, d in change.update],
            removed=removed_titles,
            unchanged=change.unchanged,
            skipped=change.skipped,
        )
        for where, why in change.skipped:
            log.warning("skipped %s: %s", where, why)
        if not report.changed:
            return report
        items: list[tuple[int | None, Document]] = [*change.update, *((None, d) for d in change.add)]
        ids = self._commit(items, change.remove, progress)
        report.added_ids = [ids[i] for i in range(len(change.update), len(items))]
        report.updated_ids = [ids[i] for i in range(len(change.update))]
        report.removed_ids = list(change.remove)
        self._compact_later()
        return report

    def _commit(self, items: list[tuple[int | None, Document]], remove: list[int], progress: ProgressArg) -> dict[int, int]:
        """Embed ``items`` and store them with ``remove`` in one transaction; {position: article id}."""
        chunking = self.config.chunking
        fresh = ingesting.prepare(
            items, self.encoders, self.sentence_encoder, chunking.max_chars, chunking.overlap_sentences,
            progress_callback(progress),
        ) if items else []
        try:
            ids = self.store.commit(fresh, remove, self._settings_meta())
        except StoreWriteError as err:
            log.warning("ingest into %s failed: %s; the previous index is unchanged", self.data_dir, err.reason)
            raise IndexWriteFailed(data_dir=str(self.data_dir), reason=err.reason) from None
        self.refresh(force=True)
        return ids

    def _compact_later(self) -> None:
        """Start merging segments in the background when there are too many; never fatal.

        The ingest that called this has committed: its articles are answered from now on, whatever
        the merge does (it takes minutes at a million articles, and holds up no ingest or answer).
        """
        if not self.embedded:
            return
        try:
            # Segments with nothing live left go at once (one short transaction): after a re-embed
            # that is every old segment, which the search would otherwise still scan.
            self.store.drop_empty()
            if self.store.merge_candidates():
                self._merges.start()
        except (sqlite3.Error, OSError) as err:
            log.warning("cannot start merging segments in %s: %s", self.data_dir, err)
        self.refresh(force=True)

    def compact(self) -> None:
        """Merge segments now, in this process (after a merge running elsewhere, if any)."""
        if not self.embedded:
            return
        try:
            merge_segments(self.store)
        except (StoreWriteError, OSError, sqlite3.Error) as err:
            log.warning("merging segments in %s failed: %s; the index is unchanged", self.data_dir, getattr(err, "reason", err))
        self.refresh(force=True)

    def wait_for_merges(self, timeout: float | None = None) -> bool:
        """Wait for the background merge this process started, if any; True when it has ended."""
        done = self._merges.wait(timeout)
        self.refresh(force=True)
        return done

    def _reembed(self, article_ids: list[int], progress: ProgressArg) -> None:
        """Embed the given articles again from their stored texts (settings changed, or a segment is damaged)."""
        for i in range(0, len(article_ids), REEMBED_BATCH):
            items = []
            for article_id in article_ids[i : i + REEMBED_BATCH]:
                a = self.store.db.article(article_id)
                if a is not None:
                    items.append((a.id, Document(a.key, a.title, a.text, a.outlet, a.date, a.url, a.language, a.origin)))
            if items:
                self._commit(items, [], progress)
        self._compact_later()

    def _complete(self, progress: ProgressArg) -> None:
        """Add passage vectors of newly wanted encoders to every segment, embedding the live passages
        with those encoders only (nothing else is re-embedded)."""
        callback = progress_callback(progress)
        if not self.embedded:
            self._complete_shared(self.view, callback)
            return
        # The merge lock for the whole pass: a background merge must not fold a segment into another
        # while its new vectors are being computed (they would be dropped with it).
        with self.store.merge_lock():
            self.refresh(force=True)
            view = self.view
            for seg in list(view.segments):
                self._complete_segment(view, seg, callback)
            self.store.set_settings(self._settings_meta())
        self.refresh(force=True)

    def _complete_segment(self, view: ViewBackend, seg, callback) -> None:
        """Rewrite one segment with the missing encoders' vectors of its live passages."""
        missing = [e for e in self.encoders if e.name not in seg.chunk_vectors]
        if not missing:
            return
        rows: list[int] = []
        texts: list[str] = []
        for article_id in np.unique(np.asarray(seg.chunk_article)):
            article = view.article(int(article_id)) if int(view.live[article_id]) == seg.number else None
            if article is None:
                continue
            for r in seg.article_rows(int(article_id), "chunk"):
                start, end = seg.chunk_span[r]
                rows.append(r)
                texts.append(article.text[int(start) : int(end)])
        extra = {}
        for encoder in missing:
            full = np.zeros((seg.chunks, encoder.dim), dtype="float32")
            for i in range(0, len(texts), ingesting.BATCH):
                full[rows[i : i + ingesting.BATCH]] = encoder.encode(texts[i : i + ingesting.BATCH])
                if callback:
                    callback(min(i + ingesting.BATCH, len(texts)), len(texts))
            extra[encoder.name] = full
        self.store.merge([seg.number], extra={seg.number: extra})

    def _complete_shared(self, view: ViewBackend, callback) -> None:
        """Add the missing encoders' passage vectors in a shared database, article by article."""
        missing = [e for e in self.encoders if not view.has_vectors(e.name)]
        ids = view.article_ids().tolist()
        for n, article_id in enumerate(ids):
            article = view.article(article_id)
            chunks = view.article_chunks(article_id)
            if article is None or not chunks:
                continue
            texts = [article.text[c.start : c.end] for c in chunks]
            for encoder in missing:
                self.store.add_passage_vectors(encoder.name, [c.id for c in chunks], encoder.encode(texts))
            if callback:
                callback(n + 1, len(ids))
        self.store.set_settings(self._settings_meta())
        self.refresh(force=True)

    def repair(self, progress: ProgressArg = False, limit: int | None = None) -> int:
        """Re-embed the articles of segments that cannot be read, from their stored texts; returns
        how many. With ``limit``, more articles than that are left for an explicit `bron repair`."""
        with self._ingest_lock():
            self.refresh(force=True)
            if not self.store.broken:
                return 0
            broken = sorted(self.store.broken)
            ids = [
                int(r[0]) for r in self.store.db.connection().execute(
                    f"SELECT article_id FROM placement WHERE segment IN ({','.join('?' * len(broken))})", broken
                )
            ]
            where = ", ".join(str(b) for b in broken)
            if limit is not None and len(ids) > limit:
                log.warning(
                    "data dir %s: %d articles of damaged segment(s) %s cannot be found by questions; run "
                    "`bron repair` to re-embed them from their stored texts (about a CPU-second each)",
                    self.data_dir, len(ids), where,
                )
                return 0
            log.warning("data dir %s: re-embedding the %d articles of damaged segment(s) %s from their stored texts",
                        self.data_dir, len(ids), where)
            self._reembed(ids, progress)
            self.store.drop_empty()
            self.store.broken.clear()
            self.refresh(force=True)
            return len(ids)



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
