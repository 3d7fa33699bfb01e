"""A read view of the library: the registered segments plus which articles are live in which.

A view never changes; the library swaps in a new one after an ingest (of this process or another).
Segments are shared between views, so a new view costs the new segments only. A passage counts
only while its article's live segment is the segment that holds it: an updated article's old
passages and a removed article's passages drop out without touching the files.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence

import numpy as np

from embeddings.storage import bm25
from embeddings.storage.database import Database
from embeddings.storage.rows import ArticleRow, ChunkRow, SentenceRow
from embeddings.storage.segment import Segment

ARTICLE_CACHE = 2048


class View:
    """What one state of the library holds, with lookups by id and the two searches."""

    def __init__(self, db: Database, segments: Sequence[Segment], live: np.ndarray, version: int, articles: int, chunks: int) -> None:
        self.db = db
        self.segments = sorted(segments, key=lambda s: s.chunk_base)
        self.live = live  # article id -> number of the segment holding its passages (0: none)
        self.version = version
        self.article_count = articles
        self.name = f"v{version}"
        self._chunk_bases = [s.chunk_base for s in self.segments]
        self._sentence_by_base = sorted(self.segments, key=lambda s: s.sentence_base)
        self._sentence_bases = [s.sentence_base for s in self._sentence_by_base]
        self._by_number = {s.number: s for s in self.segments}
        self._articles: OrderedDict[int, ArticleRow | None] = OrderedDict()
        self._lock = threading.Lock()
        self.chunk_count = chunks

    def _owner(self, article_ids: np.ndarray) -> np.ndarray:
        """The live segment number of each article id (0 for removed or unknown)."""
        ids = np.asarray(article_ids, dtype="int64")
        out = np.zeros(len(ids), dtype="int64")
        inside = ids < len(self.live)
        out[inside] = self.live[ids[inside]]
        return out

    # -- articles --------------------------------------------------------------------------------

    def article(self, article_id: int) -> ArticleRow | None:
        """One live article (cached), or None."""
        if not self.is_live(article_id):
            return None
        with self._lock:
            if article_id in self._articles:
                self._articles.move_to_end(article_id)
                return self._articles[article_id]
        row = self.db.article(article_id)
        with self._lock:
            self._articles[article_id] = row
            while len(self._articles) > ARTICLE_CACHE:
                self._articles.popitem(last=False)
        return row

    def is_live(self, article_id: int) -> bool:
        """True when the article is in this view."""
        return 0 <= article_id < len(self.live) and int(self.live[article_id]) > 0

    def article_ids(self) -> np.ndarray:
        """Ids of every live article, ascending."""
        return np.flatnonzero(self.live > 0)

    def article_vector(self, article_id: int) -> np.ndarray | None:
        """The title-and-lead vector of a live article."""
        seg = self._by_number.get(int(self.live[article_id])) if self.is_live(article_id) else None
        return seg.article_vector(article_id) if seg else None

    # -- passages and sentences ------------------------------------------------------------------

    def _chunk_segment(self, chunk_id: int) -> Segment:
        i = bisect.bisect_right(self._chunk_bases, chunk_id) - 1
        if i < 0 or not self.segments[i].holds_chunk(chunk_id):
            raise KeyError(chunk_id)
        return self.segments[i]

    def _sentence_segment(self, sentence_id: int) -> Segment:
        i = bisect.bisect_right(self._sentence_bases, sentence_id) - 1
        seg = self._sentence_by_base[i] if i >= 0 else None
        if seg is None or not seg.sentence_base <= sentence_id < seg.sentence_base + seg.sentences:
            raise KeyError(sentence_id)
        return seg

    def chunk(self, chunk_id: int) -> ChunkRow:
        """One passage by id."""
        seg = self._chunk_segment(chunk_id)
        row = chunk_id - seg.chunk_base
        start, end = seg.chunk_span[row]
        first, last = seg.chunk_sentences[row]
        return ChunkRow(chunk_id, int(seg.chunk_article[row]), int(start), int(end), int(first), int(last))

    def sentence(self, sentence_id: int) -> SentenceRow:
        """One sentence by id."""
        seg = self._sentence_segment(sentence_id)
        row = sentence_id - seg.sentence_base
        start, end = seg.sentence_span[row]
        return SentenceRow(sentence_id, int(seg.sentence_article[row]), int(start), int(end))

    def chunk_vectors(self, chunk_ids: Sequence[int], encoder: str) -> np.ndarray:
        """float32 vectors of passages, in the order given."""
        return self._gather(chunk_ids, lambda s: s.chunk_vectors[encoder], self.segments, "chunk_base", "chunks")

    def sentence_vectors(self, sentence_ids: Sequence[int]) -> np.ndarray:
        """float32 vectors of sentences, in the order given."""
        return self._gather(sentence_ids, lambda s: s.sentence_vectors, self._sentence_by_base, "sentence_base", "sentences")

    def _gather(self, ids: Sequence[int], array, by_base: Sequence[Segment], base: str, count: str) -> np.ndarray:
        if not len(ids):
            dim = self.segments[0].sentence_vectors.shape[1] if self.segments else 1
            return np.zeros((0, dim), dtype="float32")
        # Located with numpy, not id by id: a question reads ~1,200 vectors (~3 ms in Python).
        wanted = np.asarray(ids, dtype="int64")
        bases = np.asarray([getattr(s, base) for s in by_base], dtype="int64")
        where = np.searchsorted(bases, wanted, side="right") - 1
        out: np.ndarray | None = None
        for i in np.unique(where).tolist():
            positions = np.flatnonzero(where == i)
            seg = by_base[i] if i >= 0 else None
            rows = wanted[positions] - (getattr(seg, base) if seg is not None else 0)
            if seg is None or rows.max() >= getattr(seg, count):
                raise KeyError(int(wanted[positions[0]]))
            block = array(seg).take(rows)
            if out is None:
                out = np.empty((len(wanted), block.shape[1]), dtype="float32")
            out[positions] = block
        assert out is not None
        return out

    def has_vectors(self, encoder: str) -> bool:
        """True when every segment holds passage vectors of ``encoder``."""
        return all(encoder in s.chunk_vectors for s in self.segments)

    def article_chunks(self, article_id: int) -> list[ChunkRow]:
        """One live article's passages, in order."""
        seg = self._by_number.get(int(self.live[article_id])) if self.is_live(article_id) else None
        if seg is None:
            return []
        return [self.chunk(seg.chunk_base + r) for r in seg.article_rows(article_id, "chunk")]

    def article_sentence_ids(self, article_id: int) -> list[int]:
        """Ids of one live article's sentences, in order."""
        seg = self._by_number.get(int(self.live[article_id])) if self.is_live(article_id) else None
        if seg is None:
            return []
        return [seg.sentence_base + r for r in seg.article_rows(article_id, "sentence")]

    def chunk_text(self, chunk: ChunkRow) -> str:
        """The verbatim passage."""
        article = self.article(chunk.article_id)
        return article.text[chunk.start : chunk.end] if article else ""

    # -- search ----------------------------------------------------------------------------------

    def _live_mask(self, seg: Segment, rows: np.ndarray, exclude: Collection[int]) -> np.ndarray:
        articles = np.asarray(seg.chunk_article)[rows]
        ok = self._owner(articles) == seg.number
        if exclude:
            ok &= ~np.isin(articles, np.fromiter(exclude, dtype="int64", count=len(exclude)))
        return ok

    def dense_search(self, query: np.ndarray, n: int, exclude: Collection[int] = frozenset()) -> dict[int, float]:
        """The ``n`` passages closest to ``query`` (cosine), skipping dead passages and ``exclude``."""
        found: list[tuple[int, float]] = []
        for seg in self.segments:
            want = n
            while True:
                hits = seg.index.search(query, want)
                if not hits:
                    break
                ids = np.asarray([h[0] for h in hits], dtype="int64")
                ok = self._live_mask(seg, ids - seg.chunk_base, exclude)
                if ok.sum() >= n or len(hits) < want or want >= seg.chunks:
                    found.extend(h for h, keep in zip(hits, ok) if keep)
                    break
                want = min(want * 4, seg.chunks)
        found.sort(key=lambda h: -h[1])
        return dict(found[:n])

    def lexical_search(
        self, tokens: Sequence[str], n: int, exclude: Collection[int] = frozenset(), within: Collection[int] | None = None
    ) -> dict[int, float]:
        """The ``n`` best BM25 passages for the query ``tokens``, skipping dead passages and ``exclude``
        (and, given ``within``, passages of other articles)."""
        postings = [s.postings for s in self.segments]
        want = n
        while True:
            hits = bm25.search(postings, tokens, want)
            out: dict[int, float] = {}
            for s, row, score in hits:
                seg = self.segments[s]
                if within is not None and int(seg.chunk_article[row]) not in within:
                    continue
                if self._live_mask(seg, np.asarray([row]), exclude)[0]:
                    out[seg.chunk_base + row] = score
            if len(out) >= n or len(hits) < want or want >= 1 << 20:
                return dict(list(out.items())[:n])
            want *= 4

    def chunks_of(self, article_ids: Iterable[int]) -> list[int]:
        """Ids of every live passage of the given articles."""
        out: list[int] = []
        for aid in article_ids:
            seg = self._by_number.get(int(self.live[aid])) if self.is_live(aid) else None
            if seg is not None:
                out.extend(seg.chunk_base + r for r in seg.article_rows(aid, "chunk"))
        return out
