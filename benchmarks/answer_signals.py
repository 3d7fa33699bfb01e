"""Answerability experiments in seconds: ask every question once, cache every candidate sentence,
then cross-validate signal sets by article over several fold splits.

    python benchmarks/answer_signals.py collect ../shared/data/newsqa-dev signals.json.gz [--data-dir D]
    python benchmarks/answer_signals.py cv signals.json.gz [--seeds 1,2,3,4,5,13] [--false-abstain 0.035]
    python benchmarks/answer_signals.py ceiling signals.json.gz

``collect`` ingests the folder into ``D/calibrate-index`` (kept, so a second run only asks; ~2 min
the first time on a quiet 2-core machine) and stores, per question asked (present, removed,
unanswerable), each candidate sentence with its signals, its text, the sentence before it and the
answer label. ``cv`` rebuilds what ``bron calibrate`` fits from that file and prints the reader
figures of ``bron eval``, averaged over fold splits. ``ceiling`` fits the shipped signals on every
question and scores those same questions (no cross-validation: an upper bound of what any weighting
of these signals can reach), and prints how many removed and unanswerable questions the model
declines at several rates of false abstention, in sample and out of fold.

Why several splits: with 40 answering articles, one split of them into 5 folds moves each figure by
one to four questions (±.01–.04) against another; a signal that wins on the split `bron eval` uses
(seed 13) and loses on the next is noise. To try a signal, write it in :func:`extra_signals` (it
sees the question, the candidate's sentence, the sentence before it and the article) and compare
``cv`` with and without it (``--no-extra``; ``--extra-lead-only`` keeps it out of the answer
probability, as :data:`embeddings.answering.signals.LEAD_ONLY`).
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embeddings.answering import calibrate  # noqa: E402
from embeddings.answering.calibrate import DEPTH, FALSE_ABSTAIN, Asked, figures, fit, normalise  # noqa: E402
from embeddings.answering.signals import FEATURES, LEAD_ONLY  # noqa: E402

SHOWN = ("answered_hit@3", "answered_hit@3_en", "lead_sentence_hit", "lead_sentence_hit_en", "abstain_rate", "abstain_removed_rate", "false_abstain_rate")


def collect(folder: Path, out: Path, data_dir: Path) -> None:
    """Ask every question of ``folder`` (answerable ones again without their article) and write the candidates."""
    from bot.config import load_config
    from embeddings.answering.judge import ArticleWords, _sentence_or_none, candidate_signals
    from embeddings.language import detect_language
    from embeddings.library import Library
    from embeddings.retriever import retrieve

    library = Library.open(data_dir / "calibrate-index", load_config(None))
    library.ingest([folder / "articles.jsonl"])
    keys = {i: k.rsplit("#", 1)[-1] for i, k in library.keys().items()}
    ids_of = {v: k for k, v in keys.items()}
    questions = [json.loads(line) for line in (folder / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    view, main = library.view, library.sentence_encoder
    settings = library.settings()
    settings = type(settings)(**{**settings.__dict__, "top_k": DEPTH})
    words = ArticleWords(4096)
    articles: dict[int, dict] = {}
    records = []
    for q in questions:
        query = main.encode_query([q["question"]])[0]
        language = detect_language(q["question"], library.config.answer.language_fallback)
        gold = q.get("article_id")
        runs = [("present", frozenset())] + ([("removed", frozenset({ids_of[gold]}))] if gold else [])
        for kind, exclude in runs:
            hits = retrieve(view, q["question"], language, {main.name: query}, main.name, settings, exclude)
            answer = normalise(q["answer"]) if gold and kind == "present" else None
            candidates = []
            for h, sid, values in candidate_signals(view, q["question"], language, query, main.name, hits, words):
                s = view.sentence(sid)
                article = view.article(s.article_id)
                if s.article_id not in articles:
                    articles[s.article_id] = {"title": article.title, "text": article.text, "language": article.language}
                previous = _sentence_or_none(view, sid - 1)
                before = [previous.start, previous.end] if previous is not None and previous.article_id == s.article_id else None
                text = article.text[s.start : s.end]
                candidates.append({
                    "hit": h, "article": s.article_id, "span": [s.start, s.end], "before": before, "signals": values,
                    "answers": answer is not None and keys.get(s.article_id) == gold and answer in normalise(text),
                })
            quote_hits = []
            for hit in hits:
                article_id = view.chunk(hit.chunk_id).article_id
                quote = view.article(article_id).text[hit.start : hit.end]
                quote_hits.append(answer is not None and keys.get(article_id) == gold and answer in normalise(quote))
            records.append({
                "id": q["id"], "question": q["question"], "language": q["language"], "group": gold or q["id"],
                "kind": kind if gold else "unanswerable", "candidates": candidates, "quote_hits": quote_hits,
            })
    with gzip.open(out, "wt", encoding="utf-8") as f:
        json.dump({"articles": {str(k): v for k, v in articles.items()}, "records": records}, f)
    print(f"{len(records)} questions asked, {sum(len(r['candidates']) for r in records)} candidate sentences -> {out}")


def extra_signals(record: dict, candidate: dict, article: dict) -> list[float]:
    """Signals to try beside the shipped ones (none by default). ``article`` has title, text, language;
    ``candidate["span"]`` and ``candidate["before"]`` are offsets into its text."""
    return []


def asked_of(data: dict, extra: Callable[[dict, dict, dict], list[float]] | None) -> list[Asked]:
    """What ``bron calibrate`` fits, rebuilt from a ``collect`` file, with ``extra`` signals appended."""
    out = []
    for r in data["records"]:
        rows = [c["signals"] + (extra(r, c, data["articles"][str(c["article"])]) if extra else []) for c in r["candidates"]]
        width = len(rows[0]) if rows else 0
        out.append(Asked(
            r["id"], r["group"], r["kind"], r["language"], np.asarray(rows, dtype="float64").reshape(len(rows), width),
            np.asarray([1.0 if c["answers"] else 0.0 for c in r["candidates"]]),
            np.asarray([c["hit"] for c in r["candidates"]], dtype=int), r["quote_hits"],
        ))
    return out


def folds(asked: Sequence[Asked], k: int, seed: int) -> list[set[str]]:
    """``k`` sets of articles; seed 13 is the split of ``bron eval`` and ``bron calibrate``."""
    groups = sorted({a.group for a in asked})
    order = np.random.default_rng(seed).permutation(len(groups))
    return [{groups[i] for i in order[f::k]} for f in range(k)]


def cross_validated(asked: Sequence[Asked], seed: int, false_abstain: float) -> dict[str, float]:
    """Reader figures, each question judged by a model fitted without its fold of articles."""
    judged = []
    for test in folds(asked, 5, seed):
        model = fit([a for a in asked if a.group not in test], false_abstain)
        judged += [(a, model) for a in asked if a.group in test]
    return figures(judged)


def declined_at(best: Sequence[tuple[Asked, float]], false_abstain: float) -> tuple[float, float]:
    """(removed, unanswerable) declined when the threshold lets ``false_abstain`` of the present
    questions be declined; ``best`` pairs each question with its best sentence's probability."""
    present = sorted(p for a, p in best if a.kind == "present")
    threshold = present[int(np.floor(false_abstain * len(present)))] if present else 0.5
    removed = [p < threshold for a, p in best if a.kind == "removed"]
    unanswerable = [p < threshold for a, p in best if a.kind == "unanswerable"]
    return statistics.fmean(removed or [0]), statistics.fmean(unanswerable or [0])


def ceiling(asked: Sequence[Asked], false_abstain: float, seed: int = 13) -> None:
    """Print the in-sample figures and the decline rates at several false-abstention rates."""
    model = fit(asked, false_abstain)
    inside = figures([(a, model) for a in asked])
    print("in sample (fitted and scored on the same questions):")
    for key in SHOWN:
        print(f"  {key:24s} {inside[key]:.3f}")
    outside: list[tuple[Asked, float]] = []
    for test in folds(asked, 5, seed):
        m = fit([a for a in asked if a.group not in test], false_abstain)
        outside += [(a, calibrate.best_probability(m, a)) for a in asked if a.group in test]
    in_sample = [(a, calibrate.best_probability(model, a)) for a in asked]
    print("declined (removed / unanswerable) when a share of the answerable questions is declined too:")
    for rate in (0.035, 0.10, 0.20, 0.30):
        r_in, u_in = declined_at(in_sample, rate)
        r_out, u_out = declined_at(outside, rate)
        print(f"  false abstention {rate:.3f}: in sample {r_in:.3f} / {u_in:.3f}, out of fold {r_out:.3f} / {u_out:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("collect")
    p.add_argument("folder", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--data-dir", type=Path)
    p = sub.add_parser("cv")
    p.add_argument("cache", type=Path)
    p.add_argument("--seeds", default="1,2,3,4,5,13")
    p.add_argument("--false-abstain", type=float, default=FALSE_ABSTAIN)
    p.add_argument("--no-extra", action="store_true", help="the shipped signals only")
    p.add_argument("--extra-lead-only", action="store_true", help="the extra signals weigh in the lead score only")
    p = sub.add_parser("ceiling")
    p.add_argument("cache", type=Path)
    p.add_argument("--false-abstain", type=float, default=FALSE_ABSTAIN)
    args = parser.parse_args(argv)
    if args.command == "collect":
        if args.data_dir:
            collect(args.folder, args.out, args.data_dir)
        else:
            with tempfile.TemporaryDirectory(prefix="bron-signals-") as tmp:
                collect(args.folder, args.out, Path(tmp))
        return 0
    with gzip.open(args.cache, "rt", encoding="utf-8") as f:
        data = json.load(f)
    if args.command == "ceiling":
        ceiling(asked_of(data, None), args.false_abstain)
        return 0
    asked = asked_of(data, None if args.no_extra else extra_signals)
    shipped = len(FEATURES)
    width = next((a.x.shape[1] for a in asked if len(a.x)), shipped)
    if width < shipped:
        print(f"{args.cache} holds {width} signals, this Bron computes {shipped}: collect it again", file=sys.stderr)
        return 2
    # Extra signals get names, so the fit gives them weights (in the probability too, unless
    # --extra-lead-only); without this they would not match the shipped model's width.
    calibrate.FEATURES = FEATURES + tuple(f"extra{i}" for i in range(width - shipped))
    calibrate.LEAD_ONLY = LEAD_ONLY | (set(calibrate.FEATURES[shipped:]) if args.extra_lead_only else set())
    runs = [cross_validated(asked, int(s), args.false_abstain) for s in args.seeds.split(",")]
    for key in SHOWN:
        values = [r[key] for r in runs]
        print(f"{key:24s} {statistics.fmean(values):.3f}  (splits: {' '.join(f'{v:.3f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
