"""An in-memory, read-only view of one stored snapshot, with its search indexes built."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from embeddings.index import VectorIndex
from embeddings.lexical import LexicalIndex
from embeddings.store import ArticleRow, ChunkRow, SnapshotData


@dataclass
class Snapshot:
    """Articles, passages and sentences of one snapshot; never changed after it is built."""

    name: str
    data: SnapshotData
    articles: dict[int, ArticleRow] = field(init=False)
    dense: dict[str, VectorIndex] = field(init=False)
    lexical: LexicalIndex = field(init=False)
    chunk_counts: dict[int, int] = field(init=False)
    article_rows: dict[int, int] = field(init=False)

    def __post_init__(self) -> None:
        self.articles = {a.id: a for a in self.data.articles}
        self.article_rows = {a.id: row for row, a in enumerate(self.data.articles)}
        self.chunk_counts = {}
        for chunk in self.data.chunks:
            self.chunk_counts[chunk.article_id] = self.chunk_counts.get(chunk.article_id, 0) + 1
        self.dense = {enc: VectorIndex.build(v) for enc, v in self.data.chunk_vectors.items()}
        self.lexical = LexicalIndex([self.chunk_search_text(c) for c in self.data.chunks])

    @classmethod
    def empty(cls) -> Snapshot:
        """The snapshot of a data directory that has never been ingested into."""
        empty = np.zeros((0, 1), dtype="float32")
        return cls("", SnapshotData([], [], [], {}, empty, empty, {}))

    def chunk_text(self, chunk: ChunkRow) -> str:
        """The verbatim passage."""
        return self.articles[chunk.article_id].text[chunk.start : chunk.end]

    def chunk_search_text(self, chunk: ChunkRow) -> str:
        """What BM25 sees: the passage preceded by its article's title."""
        return f"{self.articles[chunk.article_id].title}. {self.chunk_text(chunk)}"

    def article_chunks(self, article_id: int) -> list[ChunkRow]:
        """The passages of one article, in order."""
        return [c for c in self.data.chunks if c.article_id == article_id]

    def article_sentence_ids(self, article_id: int) -> list[int]:
        """Ids of one article's sentences, in article order."""
        return [s.id for s in self.data.sentences if s.article_id == article_id]
