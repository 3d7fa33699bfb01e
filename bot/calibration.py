"""``bron calibrate``: fit the answerability model on your own questions and report how it does."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

from bot.config import Config
from bot.evaluate import questions_fingerprint
from embeddings.answering.calibrate import FALSE_ABSTAIN, collect, cross_validate, fit
from embeddings.library import Library, progress_callback


def calibrate(folder: Path, config: Config, out: Path, work_dir: Path | None = None, progress: bool = False, false_abstain: float = FALSE_ABSTAIN) -> dict:
    """Fit on ``folder`` (newsqa-dev format), write the model to ``out``, return the cross-validated figures.

    ``false_abstain`` is the share of answerable questions the model may decline: lower answers more
    often, higher declines more of the questions the articles do not answer.
    """
    questions = [json.loads(line) for line in (folder / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    with tempfile.TemporaryDirectory(prefix="bron-calibrate-") as tmp:
        library = Library.open(Path(work_dir or tmp) / "calibrate-index", config, progress=progress)
        library.ingest([folder / "articles.jsonl"], progress=progress)
        keys = {i: k.rsplit("#", 1)[-1] for i, k in library.keys().items()}
        asked = collect(library, questions, keys, progress_callback(progress, "Asking", "question"))
    figures, _ = cross_validate(asked, false_abstain=false_abstain)
    info = {
        "fitted_on": folder.name,
        "questions": questions_fingerprint(folder),
        "answerable": sum(1 for q in questions if q.get("article_id")),
        "unanswerable": sum(1 for q in questions if not q.get("article_id")),
        "false_abstain_target": false_abstain,
        "cross_validated": figures,
        "date": dt.date.today().isoformat(),
    }
    fit(asked, false_abstain, info=info).save(out)
    return figures
