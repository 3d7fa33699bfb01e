"""embeddings/index.py: ids, kinds, save/load, approximate search quality on clustered data."""

from __future__ import annotations

import numpy as np
import pytest

from embeddings import index as vindex
from embeddings.index import VectorIndex

DIM = 64


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype("float32")


def clustered(n: int, clusters: int = 40, spread: float = 0.35, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, DIM))
    return unit(centres[rng.integers(0, clusters, n)] + spread * rng.normal(size=(n, DIM)))


def test_empty_index_searches_to_nothing():
    for vectors in (np.zeros((0, DIM), dtype="float32"), np.zeros((0, 0), dtype="float32")):
        index = VectorIndex.build(vectors)
        assert len(index) == 0
        assert index.search(unit(np.ones(index.dim)), 5) == []
        assert index.vectors().shape == (0, index.dim)
    assert VectorIndex.build(np.zeros((0, DIM), dtype="float32"), approximate=True).search(unit(np.ones(DIM)), 3) == []


def test_exact_keeps_large_non_contiguous_ids_and_cosines():
    vectors = clustered(500)
    ids = np.random.default_rng(1).choice(np.int64(2) ** 62, size=500, replace=False).astype("int64")
    ids[0], ids[1], ids[2] = -5, np.iinfo("int64").max, -1  # -1 is also faiss's "no result"
    index = VectorIndex.build(vectors, ids)
    assert index.kind == "exact" and not index.approximate
    assert len(index) == 500 and index.dim == DIM
    for row in (0, 1, 2, 123, 499):
        (best, score), *_ = index.search(vectors[row], 3)
        assert best == ids[row]
        assert score == pytest.approx(1.0, abs=1e-5)
    hits = index.search(vectors[7], 500)
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True)
    assert sorted(i for i, _ in hits) == sorted(ids.tolist())
    assert np.allclose(index.vectors(), vectors)
    assert len(index.search(vectors[7], 10_000)) == 500


@pytest.mark.parametrize("approximate", [False, True])
@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_round_trip(tmp_path, approximate, mmap):
    vectors = clustered(3000)
    ids = np.arange(3000, dtype="int64") * 1_000_003 + 10**12
    index = VectorIndex.build(vectors, ids, approximate=approximate)
    path = tmp_path / "v.faiss"
    index.save(path)
    loaded = VectorIndex.load(path, mmap=mmap)
    assert (len(loaded), loaded.dim, loaded.kind) == (3000, DIM, index.kind)
    for row in (0, 1500, 2999):
        assert loaded.search(vectors[row], 10) == index.search(vectors[row], 10)
    if approximate:
        with pytest.raises(ValueError):
            loaded.vectors()
    else:
        assert np.allclose(loaded.vectors(), vectors)


def test_build_picks_kind_by_size(monkeypatch):
    vectors = clustered(2000)
    monkeypatch.setattr(vindex, "EXACT_MAX", 2001)
    assert VectorIndex.build(vectors).kind == "exact"
    monkeypatch.setattr(vindex, "EXACT_MAX", 2000)
    assert VectorIndex.build(vectors).kind == "ivf-sq8"
    assert VectorIndex.build(vectors, approximate=False).kind == "exact"
    # too few vectors to train the lists: exact whatever was asked
    assert VectorIndex.build(vectors[:100], approximate=True).kind == "exact"


def test_approximate_finds_the_exact_nearest_for_most_queries():
    vectors = clustered(20_000, clusters=200)
    rng = np.random.default_rng(7)
    ids = rng.choice(10**15, size=len(vectors), replace=False).astype("int64")
    exact = VectorIndex.build(vectors, ids, approximate=False)
    approx = VectorIndex.build(vectors, ids, approximate=True)
    assert approx.kind == "ivf-sq8" and len(approx) == len(vectors)
    queries = unit(vectors[rng.integers(0, len(vectors), 200)] + 0.1 * rng.normal(size=(200, DIM)))
    top1 = recall10 = 0.0
    for q in queries:
        want = exact.search(q, 10)
        got = approx.search(q, 10)
        top1 += got[0][0] == want[0][0]
        recall10 += len({i for i, _ in got} & {i for i, _ in want}) / 10
        assert got[0][1] == pytest.approx(want[0][1], abs=0.02)  # cosine, up to 8-bit rounding
    # asking for more than the scanned lists hold gives fewer results, never faiss's (-1, -inf) fillers
    everything = approx.search(queries[0], len(vectors))
    assert 0 < len(everything) <= len(vectors) and all(s > -2 for _, s in everything)
    assert top1 / len(queries) >= 0.9
    assert recall10 / len(queries) >= 0.9


def test_parameters_grow_with_size():
    assert vindex.lists_for(10_000) <= vindex.lists_for(1_000_000) <= vindex.lists_for(5_000_000)
    for n in (1_000, 460_000, 4_600_000):
        nlist = vindex.lists_for(n)
        assert vindex.MIN_LISTS <= nlist <= vindex.MAX_LISTS
        assert 1 <= vindex.probes_for(nlist) <= nlist


def test_mismatched_ids_are_refused():
    with pytest.raises(ValueError):
        VectorIndex.build(clustered(10), np.arange(9))


@pytest.mark.parametrize("approximate", [False, True])
def test_add_appends_to_either_kind(approximate):
    vectors = clustered(12_000)
    index = VectorIndex.build(vectors[:10_000], np.arange(10_000) + 7, approximate=approximate)
    index.add(vectors[10_000:], np.arange(10_000, 12_000) + 7)
    assert len(index) == 12_000
    assert index.search(vectors[11_111], 1)[0][0] == 11_111 + 7
    assert index.trained_lists == (vindex.lists_for(10_000) if approximate else 0)
