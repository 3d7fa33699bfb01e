"""Vector index: the only module that imports faiss."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np


class VectorIndex:
    """Inner-product search over L2-normalised vectors (cosine similarity), keyed by int64 ids."""

    def __init__(self, index: faiss.Index) -> None:
        self._index = index

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray | None = None) -> VectorIndex:
        """Index ``vectors``; row i gets id ``ids[i]`` (default: i)."""
        dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 1
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if len(vectors):
            ids = np.arange(len(vectors), dtype="int64") if ids is None else np.ascontiguousarray(ids, dtype="int64")
            index.add_with_ids(np.ascontiguousarray(vectors, dtype="float32"), ids)
        return cls(index)

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        """Read an index written by :meth:`save`."""
        return cls(faiss.read_index(str(path)))

    def save(self, path: Path) -> None:
        """Write the index to ``path``."""
        faiss.write_index(self._index, str(path))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        """Vector size."""
        return int(self._index.d)

    def vectors(self) -> np.ndarray:
        """All stored vectors, in insertion order."""
        if not len(self):
            return np.zeros((0, self._index.d), dtype="float32")
        inner = faiss.downcast_index(self._index.index) if isinstance(self._index, faiss.IndexIDMap2) else self._index
        return inner.reconstruct_n(0, len(self))

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest ids to one query vector, with their cosine similarity, best first."""
        k = min(k, len(self))
        if k <= 0:
            return []
        scores, ids = self._index.search(np.ascontiguousarray(query.reshape(1, -1), dtype="float32"), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
