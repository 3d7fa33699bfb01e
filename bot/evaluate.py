"""``bron eval``: retrieval quality on a folder in the newsqa-dev format, with the bot's own engine.

Metrics follow ``shared/data/newsqa-dev/README.md``: a passage is an evidence hit when it comes from
the question's article and contains the answer span (whitespace and quote characters normalised).
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from pathlib import Path

from bot.config import Config
from bot.core import Bron
from bot.models import Passage
from embeddings.library import Library

_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "‚": "'", "«": '"', "»": '"'})


def normalise(text: str) -> str:
    """Whitespace collapsed and typographic quotes made plain, for span matching."""
    return re.sub(r"\s+", " ", text.translate(_QUOTES)).strip()


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


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


def _score(rows: list[dict], prefix: str = "", suffix: str = "") -> dict[str, float]:
    n = len(rows) or 1
    out = {}
    for k in (1, 3, 5):
        out[f"{prefix}evidence_hit@{k}{suffix}"] = sum(r["e"] is not None and r["e"] <= k for r in rows) / n
    out[f"{prefix}article_hit@3{suffix}"] = sum(r["a"] is not None and r["a"] <= 3 for r in rows) / n
    out[f"{prefix}mrr@10{suffix}"] = sum(1 / r["e"] for r in rows if r["e"] is not None and r["e"] <= 10) / n
    return out


def evaluate(folder: Path, config: Config, work_dir: Path | None = None) -> dict[str, float]:
    """Ingest ``folder/articles.jsonl`` into a fresh index, ask every question, return the metrics."""
    questions = _read_jsonl(folder / "questions.jsonl")
    with tempfile.TemporaryDirectory(prefix="bron-eval-") as tmp:
        data_dir = Path(work_dir or tmp) / "eval-index"
        library = Library.open(data_dir, config)
        library.encoders  # model loading is not ingest work
        start = time.perf_counter()
        library.ingest([folder / "articles.jsonl"])
        ingest_s = time.perf_counter() - start
        keys = {a.id: library.snapshot.articles[a.id].key.rsplit("#", 1)[-1] for a in library.articles()}
        result = score(library, config, questions, keys)
    result["ingest_s"] = round(ingest_s, 4)
    return result


def score(library: Library, config: Config, questions: list[dict], keys: dict[int, str]) -> dict[str, float]:
    """Ask every question of an ingested library; ``keys`` maps article ids to the set's article ids."""
    bron = Bron(config, library)
    for q in questions[:3]:  # warm-up: first calls pay one-off costs
        bron.answer(q["question"], "eval")
    answerable, unanswerable, latencies, quote_chars = [], [], [], []
    for q in questions:
        start = time.perf_counter()
        answer = bron.answer(q["question"], "eval")
        latencies.append((time.perf_counter() - start) * 1000)
        if q["article_id"] is None:
            unanswerable.append(answer.abstained)
            continue
        passages, _ = library.rank(q["question"], answer.language, 10)
        e, a = _first_hit(passages, keys, q)
        answerable.append({"e": e, "a": a, "lang": q["language"], "abstained": answer.abstained})
        quote_chars += [len(p.text) for p in passages[:3]]
    result = _score(answerable)
    for lang in ("nl", "en"):
        result.update({k: v for k, v in _score([r for r in answerable if r["lang"] == lang], suffix=f"_{lang}").items() if "@3" in k})
    result["abstain_rate"] = sum(unanswerable) / (len(unanswerable) or 1)
    result["false_abstain_rate"] = sum(r["abstained"] for r in answerable) / (len(answerable) or 1)
    result["quote_chars_mean"] = statistics.fmean(quote_chars) if quote_chars else 0.0
    result["query_ms_p50"] = _percentile(latencies, 0.5)
    result["query_ms_p95"] = _percentile(latencies, 0.95)
    result["questions"] = len(questions)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}
