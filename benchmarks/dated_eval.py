"""Questions limited to a period or an outlet, scored as a reader sees them (issue 13's dated set).

usage: python benchmarks/dated_eval.py INDEX_DIR WORK_DIR [--today 2026-12-03] [--folder NEWSQA_DIR]

INDEX_DIR is a data dir holding newsqa-dev's articles (e.g. the ``eval-index`` a `bron --data-dir D eval`
leaves behind); it is copied to WORK_DIR and every article is given a publication date in the five
weeks before ``--today`` (deterministic), metadata only, nothing is re-embedded. Outlets are the
articles' own ``source``. Each answerable question is then asked three ways, relative to ``--today``:

- ``outlet``: "Volgens NOS: <question>" / "According to NOS, <question>" (its article's outlet);
- ``period``: "Nieuws van vorige week: <question>" (the news phrase naming its article's date);
- ``wrong period``: the same with a period in which its article was not published.

It prints one JSON line: ``scoped_answered`` (the reply names the intended period/outlet, every quote
shown comes from it, and a shown quote holds the answer span), the share of replies whose quotes all
respect the scope, and for the wrong period how often the article was (wrongly) quoted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sqlite3
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NEWSQA = REPO.parent / "shared" / "data" / "newsqa-dev"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _phrase(day: dt.date, today: dt.date, language: str) -> tuple[str, dt.date, dt.date]:
    """A news phrase naming ``day`` relative to ``today``, with the period it means."""
    this_week = _week_start(today)
    if day >= this_week:
        return ("deze week" if language == "nl" else "this week"), this_week, today
    if day >= this_week - dt.timedelta(days=7):
        return ("vorige week" if language == "nl" else "last week"), this_week - dt.timedelta(days=7), this_week - dt.timedelta(days=1)
    first = today.replace(day=1)
    if day >= first:
        return ("deze maand" if language == "nl" else "this month"), first, today
    last_month_end = first - dt.timedelta(days=1)
    return ("vorige maand" if language == "nl" else "last month"), last_month_end.replace(day=1), last_month_end


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("index")
    parser.add_argument("work")
    parser.add_argument("--today", default="2026-12-03")
    parser.add_argument("--folder", default=str(NEWSQA))
    args = parser.parse_args(argv)
    from bot.config import load_config
    from bot.core import Bron
    from embeddings.answering.calibrate import normalise
    from embeddings.library import Library

    today = dt.date.fromisoformat(args.today)
    folder = Path(args.folder)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(args.index, work)
    con = sqlite3.connect(work / "library.sqlite")
    keys = {}
    with con:
        for n, (article_id, key) in enumerate(sorted(con.execute("SELECT id, key FROM articles"))):
            day = today - dt.timedelta(days=(n * 11) % 35)
            con.execute("UPDATE articles SET date = ? WHERE id = ?", (day.isoformat(), article_id))
            keys[key.rsplit("#", 1)[-1]] = (article_id, day)
    con.close()
    config = load_config(REPO / "config.yaml", environ={})
    config.corpus.paths = []
    library = Library.open(work, config)
    bron = Bron(config, library, today=lambda: today)
    outlets = {a.id: a.outlet for a in library.articles()}
    counts = {k: 0 for k in ("outlet", "period", "wrong period")}
    right = {k: 0 for k in counts}
    in_scope = {k: 0 for k in counts}
    quoted_wrongly = 0
    for q in _rows(folder / "questions.jsonl"):
        gold = q.get("article_id")
        if gold not in keys:
            continue
        article_id, day = keys[gold]
        nl = q["language"] == "nl"
        outlet = outlets.get(article_id)
        phrase, since, until = _phrase(day, today, q["language"])
        # A period that does not hold the article's day ("vorige maand" holds "vorige week").
        options = [_phrase(today - dt.timedelta(days=d), today, q["language"]) for d in (0, 7, 34)]
        wrong, wsince, wuntil = next(((w, a, b) for w, a, b in options if not a <= day <= b), (phrase, since, until))
        asks = []
        if outlet:
            asks.append(("outlet", f"Volgens {outlet}: {q['question']}" if nl else f"According to {outlet}, {q['question']}", None, None, outlet))
        asks.append(("period", f"Nieuws van {phrase}: {q['question']}" if nl else f"News from {phrase}: {q['question']}", since, until, None))
        if (wsince, wuntil) != (since, until):
            asks.append(("wrong period", f"Nieuws van {wrong}: {q['question']}" if nl else f"News from {wrong}: {q['question']}", wsince, wuntil, None))
        for kind, text, lo, hi, want_outlet in asks:
            counts[kind] += 1
            answer = bron.answer(text, f"dated-{q['id']}-{kind}")
            named = (
                (want_outlet is None or want_outlet in answer.outlets)
                and (lo is None or (answer.since == lo.isoformat() and answer.until == hi.isoformat()))
            )
            shown = answer.passages
            respects = all(
                (want_outlet is None or p.article.outlet == want_outlet)
                and (lo is None or lo.isoformat() <= (p.article.date or "") <= hi.isoformat())
                for p in shown
            )
            in_scope[kind] += int(named and respects)
            if kind == "wrong period":
                quoted_wrongly += int(any(p.article.id == article_id for p in shown))
                right[kind] += int(named and respects and not any(p.article.id == article_id for p in shown))
                continue
            hit = any(p.article.id == article_id and normalise(q["answer"]) in normalise(p.text) for p in shown)
            right[kind] += int(named and respects and hit)
    result = {
        "today": today.isoformat(),
        **{f"scoped_answered_{k.replace(' ', '_')}": round(right[k] / counts[k], 4) for k in ("outlet", "period") if counts[k]},
        **{f"quotes_in_scope_{k.replace(' ', '_')}": round(in_scope[k] / counts[k], 4) for k in counts if counts[k]},
        "wrong_period_quotes_the_article": round(quoted_wrongly / max(counts["wrong period"], 1), 4),
        "questions": counts,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
