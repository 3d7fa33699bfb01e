"""Vector index: the only module that imports faiss.

Two kinds, chosen by size in :meth:`VectorIndex.build` (figures: benchmarks/ann_recall.py):

- ``exact``: ``IndexIDMap2(IndexFlatIP)``, float32, 1536 B + 16 B per 384-d vector. Exact, and
  ``vectors()`` gives the stored vectors back.
- ``ivf-sq8``: ``IndexIVFScalarQuantizer`` (inverted file, 8-bit per dimension, inner product),
  392 B per 384-d vector (384 B codes + 8 B id) plus the centroids (nlist x 1536 B), so 4.6 M e5
  vectors take ~1.8 GB. Approximate: it scans the ``nprobe`` lists nearest to the query, and the
  8-bit codes round each dimension; ``vectors()`` raises for it (keep the float vectors elsewhere if
  they are needed again, e.g. to rebuild).

Building the approximate kind trains k-means on a sample and then assigns every vector to a list;
it is a pure function of its input (no shared state), and faiss releases the GIL while it trains
and adds, so a caller can build a new index in a background thread or process and swap it in.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import faiss
import numpy as np

# Below this many vectors build() makes the exact kind, from it on the approximate one. Measured
# with benchmarks/ann_recall.py (16 k real e5 passage vectors of newsqa-dev, topped up with
# synthetic mixtures of them; 231 real e5 question vectors, k=100; 1 faiss thread; a 2-core box at
# load 5-9): exact search costs ~0.1 ms CPU per 1 k vectors per query (p50 1.5 ms at 16 k, 9.7 ms at
# 100 k, 69 ms at 1 M; wall 3-5x that under load), so past ~100 k it no longer fits the 30 ms left
# for search in a 60 ms budget once several indexes are searched; IVF-SQ8 at 100 k costs 2.3 ms
# CPU at recall@100 0.977 and builds in 6 s of CPU.
EXACT_MAX = 100_000

# Inverted lists: about 4*sqrt(N) lists, rounded to a power of two; k-means on TRAIN_PER_LIST
# sampled vectors per list (faiss warns below 39) with TRAIN_ITERATIONS iterations.
MIN_LISTS = 256
MAX_LISTS = 16_384
TRAIN_PER_LIST = 40
TRAIN_ITERATIONS = 10
# Lists scanned per query: nlist * PROBE_FRACTION, at least MIN_PROBE. recall@100 against exact
# search (real vectors, 16 k, nlist 512): 1/32 of the lists 0.928, 1/8 0.968, 1/4 0.987, all 0.994
# (the 8-bit codes' ceiling); 100 k (real + synthetic, nlist 1024): 1/32 0.900, 1/8 0.977, 1/4 0.988.
# 460 k (nlist 2048): 1/32 0.884, 1/8 0.979 at p50/p95 5.0/6.0 ms CPU; 1 M (nlist 4096): 1/32 0.901,
# 1/8 0.968 at 9.4/11.3 ms CPU, 1/4 0.982 at 19/22 ms. Synthetic mixtures are harder than real text
# (no topical clusters), so these are lower bounds. 1/8 keeps recall@100 >= 0.95 at every size
# measured; at 4.6 M (nlist 8192, ~560 vectors a list) it scans ~575 k codes, ~45 ms CPU by the
# same rate (not measured).
PROBE_FRACTION = 1 / 8
MIN_PROBE = 32
# ... and at most MAX_PROBE: a library of a million articles is six segments of ~860 k passages
# (nlist 4096), and 1/8 of each (512 lists, ~107 k codes) cost 50 ms CPU per question together.
# 256 lists halve that; measured on that library (/work/scale, synthetic mixtures of real e5
# vectors, 60 real questions, the six segments' results merged as View.dense_search does) recall
# against exact search is @10 0.970 -> 0.957 and @100 0.975 -> 0.956 (README, "Storage and scale").
MAX_PROBE = 256

# faiss threads. One query runs on one thread in both kinds (faiss parallelises over queries), and
# on a shared 2-core box a second OpenMP thread only spin-waits: exact search of 16 k real vectors
# took p50 1.5 ms CPU / 7 ms wall with 1 thread and 24 ms CPU / 72 ms wall with 2; IVF-SQ8 the
# same with 1 or 2. Training and adding are single-threaded too, which suits a background rebuild.
# BRON_FAISS_THREADS overrides it.
FAISS_THREADS = 1

EXACT = "exact"
IVF_SQ8 = "ivf-sq8"

faiss.omp_set_num_threads(int(os.environ.get("BRON_FAISS_THREADS", FAISS_THREADS)))


def lists_for(n: int) -> int:
    """Number of inverted lists for ``n`` vectors."""
    target = 4 * math.sqrt(max(n, 1))
    return int(min(MAX_LISTS, max(MIN_LISTS, 2 ** round(math.log2(target)))))


def probes_for(nlist: int) -> int:
    """Lists scanned per query for an index with ``nlist`` lists."""
    return int(min(nlist, max(MIN_PROBE, min(MAX_PROBE, round(nlist * PROBE_FRACTION)))))


class VectorIndex:
    """Inner-product search over L2-normalised vectors (cosine similarity), keyed by int64 ids."""

    def __init__(self, index: faiss.Index) -> None:
        self._index = index
        ivf = self._ivf()
        if ivf is not None:
            ivf.nprobe = probes_for(ivf.nlist)

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        ids: np.ndarray | None = None,
        approximate: bool | None = None,
        seed: int = 1234,
    ) -> VectorIndex:
        """Index ``vectors``; row i gets id ``ids[i]`` (default: i).

        ``approximate``: None picks by size (exact below EXACT_MAX vectors), True/False forces the kind
        (the approximate kind needs at least MIN_LISTS vectors to train on, else it is exact anyway).
        """
        dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 1
        n = len(vectors)
        ids = np.arange(n, dtype="int64") if ids is None else np.ascontiguousarray(ids, dtype="int64")
        if len(ids) != n:
            raise ValueError(f"{n} vectors but {len(ids)} ids")
        if approximate is None:
            approximate = n >= EXACT_MAX
        if approximate and n >= MIN_LISTS:
            return cls(_build_ivf(vectors, ids, seed))
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if n:
            index.add_with_ids(np.ascontiguousarray(vectors, dtype="float32"), ids)
        return cls(index)

    @classmethod
    def load(cls, path: Path, mmap: bool = False) -> VectorIndex:
        """Read an index written by :meth:`save`.

        ``mmap``: map the file instead of reading it (faiss IO_FLAG_MMAP_IFC, zero-copy for the flat
        codes of both kinds; IO_FLAG_MMAP would be the on-disk lists, IVF only, and cannot be combined
        with it): opens in milliseconds whatever the size and pages vectors in on use, as page cache
        that the kernel may drop again. The file must stay in place while the index is used
        (replacing it by rename is fine; writing into it is not). Read-only: do not add to it.
        """
        if not mmap:
            return cls(faiss.read_index(str(path)))
        return cls(faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY))

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Append vectors with their ids, in place (not to an index opened with ``mmap=True``).

        For the approximate kind this reuses the trained lists (about nlist x dim multiply-adds per
        vector, ~0.1 ms at 1 M), so new articles need no rebuild; rebuild in the background once the
        index has grown well past the size it was trained at (lists_for(len) > nlist)."""
        ids = np.ascontiguousarray(ids, dtype="int64")
        if len(ids) != len(vectors):
            raise ValueError(f"{len(vectors)} vectors but {len(ids)} ids")
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype="float32"), ids)

    @property
    def trained_lists(self) -> int:
        """nlist of the approximate kind (0 for exact): compare with lists_for(len(index))."""
        ivf = self._ivf()
        return 0 if ivf is None else int(ivf.nlist)

    def save(self, path: Path) -> None:
        """Write the index to ``path``."""
        faiss.write_index(self._index, str(path))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        """Vector size."""
        return int(self._index.d)

    @property
    def kind(self) -> str:
        """``exact`` or ``ivf-sq8``."""
        return EXACT if self._ivf() is None else IVF_SQ8

    @property
    def approximate(self) -> bool:
        """True for the approximate kind."""
        return self._ivf() is not None

    def vectors(self) -> np.ndarray:
        """All stored vectors, in insertion order (exact kind only).

        Raises ValueError for the approximate kind: it keeps 8-bit codes, not the vectors.
        """
        if self.approximate:
            raise ValueError("an approximate (ivf-sq8) index does not keep the vectors")
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
        # faiss marks a missing result (fewer than k found, e.g. in the scanned lists) as id -1 with
        # the lowest float as score; an id of -1 (or any negative id) that was found is kept.
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1 or s > -1e30]

    def _ivf(self) -> faiss.IndexIVF | None:
        index = faiss.try_extract_index_ivf(self._index)
        return index if index is not None else None


def _build_ivf(vectors: np.ndarray, ids: np.ndarray, seed: int) -> faiss.Index:
    n, dim = vectors.shape
    nlist = lists_for(n)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = TRAIN_ITERATIONS
    index.cp.seed = seed
    index.cp.max_points_per_centroid = TRAIN_PER_LIST
    sample = min(n, TRAIN_PER_LIST * nlist)
    rows = np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False)) if sample < n else slice(None)
    index.train(np.ascontiguousarray(vectors[rows], dtype="float32"))
    step = 262_144  # add in slices so a float64/non-contiguous input is never copied whole
    for start in range(0, n, step):
        index.add_with_ids(
            np.ascontiguousarray(vectors[start : start + step], dtype="float32"), ids[start : start + step]
        )
    index.nprobe = probes_for(nlist)
    return index
