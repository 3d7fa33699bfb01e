"""``bron eval``: what a reader sees on a folder in the newsqa-dev format, with the bot's own engine.

Metrics follow ``shared/data/newsqa-dev/README.md``: a passage is an evidence hit when it comes from
the question's article and contains the answer span (whitespace and quote characters normalised).
Besides the retrieval ranking (evidence_hit@k, mrr@10), it scores the replies as sent:

- ``answered_hit@3``: the reply answers and one of its quotes holds the answer span;
- ``lead_sentence_hit``: the reply answers and its leading (marked) sentence holds the answer span;
- ``abstain_rate``: unanswerable questions declined; ``abstain_removed_rate``: answerable questions
  declined when their own article is left out of the search; ``false_abstain_rate``: answerable
  questions declined with their article present;
- ``reply_chars_p50``/``p90``: quoted characters a Telegram reader sees without expanding anything.

When the answerability model was fitted on this very folder (the bundled model and newsqa-dev),
every question is answered by a model refitted without its article's fold, so the figures are
cross-validated by article.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path

from bot.config import Config
from bot.core import Bron
from bot.evaluate_dated import score_dated
from bot.models import Answer, Passage
from bot.render import visible_chars
from embeddings.answering.calibrate import FALSE_ABSTAIN, collect, fit, folds_of, normalise
from embeddings.library import Library

FOLDS = 5


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def questions_fingerprint(folder: Path) -> str:
    """Identifies a question set, so a model can tell whether it was fitted on it."""
    return hashlib.sha256((folder / "questions.jsonl").read_bytes()).hexdigest()[:16]


def _first_hit(passages: list[Passage], keys: dict[int, str], question: dict) -> tuple[int | None, int | None]:
    """1-based rank of the first evidence hit and of the first passage from the gold article."""
    answer = normalise(question["answer"])
    evidence_rank = article_rank = None
    for rank, p in enumerate(passages, start=1):
        if keys.get(p.article.id) != question["article_id"]:
            continue
        article_rank = article_rank or rank
        if evidence_rank is None and answer in normalise(p.text):
            evidence_rank = rank
    return evidence_rank, article_rank


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


def _score(rows: list[dict], suffix: str = "") -> dict[str, float]:
    n = len(rows) or 1
    out = {}
    for k in (1, 3, 5):
        out[f"evidence_hit@{k}{suffix}"] = sum(r["e"] is not None and r["e"] <= k for r in rows) / n
    out[f"article_hit@3{suffix}"] = sum(r["a"] is not None and r["a"] <= 3 for r in rows) / n
    out[f"mrr@10{suffix}"] = sum(1 / r["e"] for r in rows if r["e"] is not None and r["e"] <= 10) / n
    return out


def _reader(answer: Answer, keys: dict[int, str], question: dict) -> tuple[bool, bool]:
    """(a shown quote holds the answer, the leading sentence holds it) for an answered question."""
    if answer.abstained:
        return False, False
    span = normalise(question["answer"])
    gold = [p for p in answer.passages if keys.get(p.article.id) == question["article_id"]]
    shown = any(span in normalise(p.text) for p in gold)
    lead = answer.passages[0]
    hs, he = lead.highlight
    leading = keys.get(lead.article.id) == question["article_id"] and span in normalise(lead.text[hs:he])
    return shown, leading


def evaluate(
    folder: Path, config: Config, work_dir: Path | None = None, cross_validate: bool | None = None, dated: bool = True,
) -> dict[str, float]:
    """Ingest ``folder/articles.jsonl`` into a fresh index, ask every question, return the metrics.

    ``cross_validate`` None: only when the configured answerability model was fitted on ``folder``.
    ``dated``: also score questions limited to a period or outlet and "latest" questions
    (:mod:`bot.evaluate_dated`; embedded backend only).
    """
    questions = _read_jsonl(folder / "questions.jsonl")
    with tempfile.TemporaryDirectory(prefix="bron-eval-") as tmp:
        data_dir = Path(work_dir or tmp) / "eval-index"
        library = Library.open(data_dir, config)
        library.encoders  # model loading is not ingest work
        start = time.perf_counter()
        library.ingest([folder / "articles.jsonl"])
        ingest_s = time.perf_counter() - start
        keys = {i: k.rsplit("#", 1)[-1] for i, k in library.keys().items()}
        if cross_validate is None:
            cross_validate = library.answerability.info.get("questions") == questions_fingerprint(folder)
        models = _fold_models(library, questions, keys) if cross_validate else None
        result = score(library, config, questions, keys, models)
        if dated and library.embedded:
            # Last: it gives the throwaway index publication dates (metadata only).
            result.update(score_dated(library, config, questions, keys, models))
    result["ingest_s"] = round(ingest_s, 4)
    result["cross_validated"] = bool(cross_validate)
    return result


def _fold_models(library: Library, questions: list[dict], keys: dict[int, str]) -> dict[str, object]:
    """For each question id, a model fitted without the fold of its article, with the false-abstention
    target the configured model was fitted for."""
    asked = collect(library, questions, keys)
    target = float(library.answerability.info.get("false_abstain_target", FALSE_ABSTAIN))
    by_question: dict[str, object] = {}
    for test_groups in folds_of(asked, FOLDS):
        model = fit([a for a in asked if a.group not in test_groups], target)
        for a in asked:
            if a.group in test_groups:
                by_question[a.qid] = model
    return by_question


def score(library: Library, config: Config, questions: list[dict], keys: dict[int, str], models: dict[str, object] | None = None) -> dict[str, float]:
    """Ask every question of an ingested library; ``keys`` maps article ids to the set's article ids.

    ``models`` (question id -> answerability model) replaces the library's model per question.
    """
    bron = Bron(config, library)
    ids_of = {v: k for k, v in keys.items()}
    default_model = library.answerability
    for q in questions[:3]:  # warm-up: first calls pay one-off costs
        bron.answer(q["question"], "eval")
    answerable, unanswerable, latencies, quote_chars, reply_chars = [], [], [], [], []
    for q in questions:
        library.answerability = models.get(q["id"], default_model) if models else default_model
        start = time.perf_counter()
        answer = bron.answer(q["question"], "eval")
        latencies.append((time.perf_counter() - start) * 1000)
        if q["article_id"] is None:
            unanswerable.append({"lang": q["language"], "abstained": answer.abstained})
            continue
        removed = bron.answer(q["question"], "eval", exclude=[ids_of[q["article_id"]]])
        passages = library.rank(q["question"], answer.language, 10)
        e, a = _first_hit(passages, keys, q)
        shown, leading = _reader(answer, keys, q)
        answerable.append({
            "e": e, "a": a, "lang": q["language"], "abstained": answer.abstained,
            "removed_abstained": removed.abstained, "shown": shown, "leading": leading,
        })
        quote_chars += [len(p.text) for p in passages[:3]]
        if not answer.abstained:
            reply_chars.append(visible_chars(answer))
    library.answerability = default_model
    result = _score(answerable)
    for lang in ("nl", "en"):
        result.update({k: v for k, v in _score([r for r in answerable if r["lang"] == lang], suffix=f"_{lang}").items() if "@3" in k})
    for suffix, lang in (("", None), ("_nl", "nl"), ("_en", "en")):
        rows = [r for r in answerable if lang is None or r["lang"] == lang]
        unans = [r for r in unanswerable if lang is None or r["lang"] == lang]
        n = len(rows) or 1
        result[f"answered_hit@3{suffix}"] = sum(r["shown"] for r in rows) / n
        result[f"lead_sentence_hit{suffix}"] = sum(r["leading"] for r in rows) / n
        result[f"abstain_rate{suffix}"] = sum(r["abstained"] for r in unans) / (len(unans) or 1)
        result[f"abstain_removed_rate{suffix}"] = sum(r["removed_abstained"] for r in rows) / n
        result[f"false_abstain_rate{suffix}"] = sum(r["abstained"] for r in rows) / n
    result["reply_chars_p50"] = _percentile(reply_chars, 0.5)
    result["reply_chars_p90"] = _percentile(reply_chars, 0.9)
    result["quote_chars_mean"] = statistics.fmean(quote_chars) if quote_chars else 0.0
    result["query_ms_p50"] = _percentile(latencies, 0.5)
    result["query_ms_p95"] = _percentile(latencies, 0.95)
    result["questions"] = len(questions)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}
