"""What an ingest embeds: only vectors retrieval reads; old data dirs keep answering without re-embedding."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import embeddings.encoder
from bot.core import Bron
from embeddings.store import read_snapshot
from support import REPO, SEED_QUESTION_NL

SEED = REPO / "corpus" / "anha-expert-waarschuwt-isis-europa.txt"
MINILM = "st:bundled"
TRAIN = """Treinstoring legt verkeer rond Utrecht plat

Door een defecte wissel bij Utrecht Centraal reden dinsdagochtend urenlang geen treinen richting Amersfoort. ProRail verwacht dat de storing rond het middaguur is verholpen.

Reizigers werden geadviseerd om de bus te nemen. De NS zette extra bussen in tussen Utrecht en Amersfoort.
"""


class NoMiniLM:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the sentence-transformers model was loaded although weight_dense is 0")


def _corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "seed.txt").write_text(SEED.read_text(encoding="utf-8"), encoding="utf-8")
    return corpus


def _manifest(bron: Bron) -> dict:
    lib = bron.library
    return json.loads((lib.data_dir / (lib.data_dir / "CURRENT").read_text() / "manifest.json").read_text())


def _count_encodes(monkeypatch: pytest.MonkeyPatch, encoder: object) -> list[int]:
    """Texts passed to ``encoder.encode`` (passages, sentences), one entry per call."""
    calls: list[int] = []
    original = encoder.encode

    def spy(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return original(texts)

    monkeypatch.setattr(encoder, "encode", spy)
    return calls


def test_default_config_neither_loads_nor_embeds_with_minilm(make_bron: Callable[..., Bron], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings.encoder, "SentenceEncoder", NoMiniLM)
    bron = make_bron(_corpus(tmp_path))
    assert bron.config.retrieval.weight_dense == 0
    assert [e.name for e in bron.library.encoders] == ["e5-small"]
    assert list(bron.library.snapshot.data.chunk_vectors) == ["e5-small"]
    manifest = _manifest(bron)
    assert manifest["encoders"] == ["e5-small"]
    assert not bron.answer(SEED_QUESTION_NL, "t").abstained


def test_data_dir_with_minilm_vectors_keeps_answering_without_reembedding(
    make_bron: Callable[..., Bron], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = _corpus(tmp_path)
    data_dir = tmp_path / "data"
    old = make_bron(corpus, data_dir=data_dir, retrieval_weight_dense=0.1)
    assert _manifest(old)["encoders"] == [MINILM, "e5-small"]
    live = (data_dir / "CURRENT").read_text()
    snap = read_snapshot(data_dir, live.strip())

    monkeypatch.setattr(embeddings.encoder, "SentenceEncoder", NoMiniLM)
    e5 = old.library.sentence_encoder
    calls = _count_encodes(monkeypatch, e5)
    bron = make_bron(corpus, data_dir=data_dir)
    assert (data_dir / "CURRENT").read_text() == live, "opening rewrote the index"
    assert calls == [], "opening re-embedded passages"
    assert not bron.answer(SEED_QUESTION_NL, "t").abstained

    # The next ingest embeds only the new article and drops the unused MiniLM vectors.
    (corpus / "trein.txt").write_text(TRAIN, encoding="utf-8")
    report = bron.ingest([corpus])
    assert report.added == ["Treinstoring legt verkeer rond Utrecht plat"] and report.unchanged == 1
    data = bron.library.snapshot.data
    new_texts = sum(1 for c in data.chunks if c.article_id != data.articles[0].id) + sum(1 for s in data.sentences if s.article_id != data.articles[0].id)
    assert sum(calls) == new_texts + 1, "the new passages, sentences and lead"
    assert list(data.chunk_vectors) == ["e5-small"] and _manifest(bron)["encoders"] == ["e5-small"]
    assert np.array_equal(data.article_vectors[:1], snap.article_vectors)
    assert np.allclose(data.sentence_vectors[: len(snap.sentences)], snap.sentence_vectors)
    assert "Amersfoort" in bron.answer("Welke treinen reden niet door de storing bij Utrecht?", "t").passages[0].text


def test_switching_weight_dense_on_embeds_only_the_missing_passage_vectors(
    make_bron: Callable[..., Bron], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = _corpus(tmp_path)
    data_dir = tmp_path / "data"
    first = make_bron(corpus, data_dir=data_dir)
    before = first.library.snapshot.data
    calls = _count_encodes(monkeypatch, first.library.sentence_encoder)
    bron = make_bron(corpus, data_dir=data_dir, retrieval_weight_dense=0.1)
    assert calls == [], "the e5 vectors were recomputed"
    data = bron.library.snapshot.data
    assert list(data.chunk_vectors) == [MINILM, "e5-small"] and _manifest(bron)["encoders"] == [MINILM, "e5-small"]
    assert data.chunk_vectors[MINILM].shape == (len(data.chunks), 384)
    assert np.array_equal(data.chunk_vectors["e5-small"], before.chunk_vectors["e5-small"])
    assert np.array_equal(data.sentence_vectors, before.sentence_vectors)
    assert not bron.answer(SEED_QUESTION_NL, "t").abstained
