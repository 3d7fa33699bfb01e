"""What an ingest embeds: only vectors retrieval reads; old data dirs keep answering without re-embedding."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import embeddings.encoder
from bot.core import Bron
from embeddings.e5 import NAMES, default_precision
from support import REPO, SEED_QUESTION_NL

SEED = REPO / "corpus" / "anha-expert-waarschuwt-isis-europa.txt"
MINILM = "st:bundled"
# The e5 vectors of a new index under the default `e5_precision: auto` (bfloat16 or float32 by CPU).
E5 = NAMES[default_precision()]
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
    return bron.library.store.meta()


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
    assert [e.name for e in bron.library.encoders] == [E5]
    assert [list(s.chunk_vectors) for s in bron.library.view.segments] == [[E5]]
    manifest = _manifest(bron)
    assert manifest["encoders"] == [E5]
    assert not bron.answer(SEED_QUESTION_NL, "t").abstained


def test_data_dir_with_minilm_vectors_keeps_answering_without_reembedding(
    make_bron: Callable[..., Bron], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = _corpus(tmp_path)
    data_dir = tmp_path / "data"
    old = make_bron(corpus, data_dir=data_dir, retrieval_weight_dense=0.1)
    assert _manifest(old)["encoders"] == [MINILM, E5]
    version = _manifest(old)["version"]
    [seed_segment] = old.library.view.segments
    seed_sentences = np.asarray(seed_segment.sentence_vectors).copy()

    monkeypatch.setattr(embeddings.encoder, "SentenceEncoder", NoMiniLM)
    e5 = old.library.sentence_encoder
    calls = _count_encodes(monkeypatch, e5)
    bron = make_bron(corpus, data_dir=data_dir)
    assert _manifest(bron)["version"] == version, "opening rewrote the index"
    assert calls == [], "opening re-embedded passages"
    assert not bron.answer(SEED_QUESTION_NL, "t").abstained

    # The next ingest embeds only the new article, and only with e5.
    (corpus / "trein.txt").write_text(TRAIN, encoding="utf-8")
    report = bron.ingest([corpus])
    assert report.added == ["Treinstoring legt verkeer rond Utrecht plat"] and report.unchanged == 1
    view = bron.library.view
    [train_id] = report.added_ids
    new_texts = len(view.article_chunks(train_id)) + len(view.article_sentence_ids(train_id))
    assert sum(calls) == new_texts + 1, "the new passages, sentences and lead"
    assert list(view.segments[-1].chunk_vectors) == [E5] and _manifest(bron)["encoders"] == [E5]
    assert np.array_equal(np.asarray(view.segments[0].sentence_vectors), seed_sentences), "the seed article was not re-embedded"
    assert "Amersfoort" in bron.answer("Welke treinen reden niet door de storing bij Utrecht?", "t").passages[0].text


def test_switching_weight_dense_on_embeds_only_the_missing_passage_vectors(
    make_bron: Callable[..., Bron], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = _corpus(tmp_path)
    data_dir = tmp_path / "data"
    first = make_bron(corpus, data_dir=data_dir)
    [before] = first.library.view.segments
    e5_before = np.asarray(before.chunk_vectors[E5]).copy()
    sentences_before = np.asarray(before.sentence_vectors).copy()
    calls = _count_encodes(monkeypatch, first.library.sentence_encoder)
    bron = make_bron(corpus, data_dir=data_dir, retrieval_weight_dense=0.1)
    assert calls == [], "the e5 vectors were recomputed"
    [after] = bron.library.view.segments
    assert list(after.chunk_vectors) == [MINILM, E5] and _manifest(bron)["encoders"] == [MINILM, E5]
    assert after.chunk_vectors[MINILM].shape == (after.chunks, 384)
    assert np.array_equal(np.asarray(after.chunk_vectors[E5]), e5_before)
    assert np.array_equal(np.asarray(after.sentence_vectors), sentences_before)
    assert not bron.answer(SEED_QUESTION_NL, "t").abstained
