"""The dated part of ``bron eval``: questions limited to a period or an outlet, and "latest" questions.

A folder in the newsqa-dev format has no publication history, so one is made: every article gets a
publication date in the five weeks before a fixed day (:data:`TODAY`; deterministic, metadata only,
nothing re-embedded) and keeps its own outlet. Each answerable question is then asked four ways,
relative to that day, and scored as a reader sees the reply:

- ``outlet``: "Volgens NOS: <question>" / "According to NOS, <question>" (its article's outlet);
- ``period``: "Nieuws van vorige week: <question>", "<question> (gisteren)", … (a news phrase whose
  period holds its article's date);
- ``wrong period``: the same with a period that does not hold its article's date;
- ``latest``: "Laatste nieuws: <question>" / "Latest news: <question>".

Figures (``dated_`` prefix in the eval's JSON line):

- ``scoped_answered_outlet`` / ``_period``: the reply names the intended outlet or period, every
  quote shown comes from it, and a shown quote from the question's article holds the answer span;
- ``quotes_in_scope_*``: replies whose quotes all respect the named period/outlet;
- ``wrong_period_quotes_the_article``: how often the article was quoted although its date is
  outside the period asked for (should be 0);
- ``latest_newest_lead``: the reply leads with a quote of the *newest* article that answers (holds
  the answer span and is among the passages retrieved for the question), and that quote holds the
  span; ``latest_newest_lead_multi``: the same over the questions two or more articles answer,
  where the order matters; ``latest_newest_article``: the leading quote is from that article,
  whether or not it is the quote that holds the answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from bot.config import Config
from bot.core import Bron
from bot.models import Answer
from embeddings.answering.calibrate import normalise
from embeddings.documents import Document
from embeddings.library import Library

TODAY = dt.date(2026, 12, 3)
# Articles are spread over this many days before TODAY (a stride coprime to it visits every day).
SPREAD_DAYS = 35
STRIDE = 11


def assign_dates(article_ids: list[int], today: dt.date = TODAY) -> dict[int, dt.date]:
    """A publication day for each article, spread evenly over the :data:`SPREAD_DAYS` before ``today``."""
    return {a: today - dt.timedelta(days=(n * STRIDE) % SPREAD_DAYS) for n, a in enumerate(sorted(article_ids))}


def _week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def periods(today: dt.date, language: str) -> list[tuple[str, dt.date, dt.date]]:
    """News phrases and the days they mean relative to ``today``, finest first (as ``bot.scope`` reads them)."""
    nl = language == "nl"
    monday = _week_start(today)
    first = today.replace(day=1)
    last_month_end = first - dt.timedelta(days=1)
    return [
        ("vandaag" if nl else "today", today, today),
        ("gisteren" if nl else "yesterday", today - dt.timedelta(1), today - dt.timedelta(1)),
        ("deze week" if nl else "this week", monday, today),
        ("vorige week" if nl else "last week", monday - dt.timedelta(7), monday - dt.timedelta(1)),
        ("deze maand" if nl else "this month", first, today),
        ("vorige maand" if nl else "last month", last_month_end.replace(day=1), last_month_end),
        ("de afgelopen 6 weken" if nl else "the past 6 weeks", today - dt.timedelta(41), today),
    ]


def phrase_for(day: dt.date, today: dt.date, language: str) -> tuple[str, dt.date, dt.date]:
    """The finest news phrase whose period holds ``day``."""
    return next(p for p in periods(today, language) if p[1] <= day <= p[2])


def wrong_phrase(day: dt.date, today: dt.date, language: str) -> tuple[str, dt.date, dt.date] | None:
    """A news phrase whose period does not hold ``day`` and is not empty (the closest one), or None."""
    options = [p for p in periods(today, language) if not p[1] <= day <= p[2]]
    return min(options, key=lambda p: abs((p[1] - day).days)) if options else None


def _ask(language: str, kind: str, phrase: str, question: str, variant: int) -> str:
    """The question framed the way a reader would put the scope, in two wordings each."""
    nl = language == "nl"
    if kind == "outlet":
        return [f"Volgens {phrase}: {question}", f"Wat meldde {phrase}? {question}"][variant] if nl else \
            [f"According to {phrase}, {question}", f"What did {phrase} report? {question}"][variant]
    if kind == "latest":
        return [f"Laatste nieuws: {question}", f"Wat is het laatste nieuws? {question}"][variant] if nl else \
            [f"Latest news: {question}", f"What is the latest? {question}"][variant]
    return [f"Nieuws van {phrase}: {question}", f"{question.rstrip('?')} ({phrase})?"][variant] if nl else \
        [f"News from {phrase}: {question}", f"{question.rstrip('?')} ({phrase})?"][variant]


def score_dated(
    library: Library, config: Config, questions: list[dict], keys: dict[int, str],
    models: dict[str, object] | None = None, today: dt.date = TODAY,
) -> dict[str, float | int]:
    """Give ``library`` (a throwaway evaluation index) dates, ask the dated questions, return the figures.

    ``models`` (question id -> answerability model) replaces the library's model per question, as in
    :func:`bot.evaluate.score`.
    """
    days = assign_dates(list(keys), today)
    own = {a: date for a, date, _ in library.dated() if a in keys}
    library.set_dates({a: d.isoformat() for a, d in days.items()})
    try:
        return _score(library, config, questions, keys, models, today, days)
    finally:
        # The index stays reusable (``bron --data-dir D eval``): a later ingest compares content hashes,
        # which hold the articles' own dates.
        library.set_dates(own)


def _score(
    library: Library, config: Config, questions: list[dict], keys: dict[int, str],
    models: dict[str, object] | None, today: dt.date, days: dict[int, dt.date],
) -> dict[str, float | int]:
    bron = Bron(config, library, today=lambda: today)
    ids_of = {v: k for k, v in keys.items()}
    outlets = {a.id: a.outlet for a in library.articles()}
    default_model = library.answerability
    kinds = ("outlet", "period", "wrong period", "latest")
    rows: list[dict] = []
    for n, q in enumerate(q for q in questions if q.get("article_id") in ids_of):
        library.answerability = models.get(q["id"], default_model) if models else default_model
        article_id = ids_of[q["article_id"]]
        day, lang, variant = days[article_id], q["language"], n % 2
        span = normalise(q["answer"])
        asks: list[tuple[str, str, tuple[dt.date, dt.date] | None, str | None]] = []
        if outlets.get(article_id):
            asks.append(("outlet", _ask(lang, "outlet", outlets[article_id], q["question"], variant), None, outlets[article_id]))
        phrase, since, until = phrase_for(day, today, lang)
        asks.append(("period", _ask(lang, "period", phrase, q["question"], variant), (since, until), None))
        wrong = wrong_phrase(day, today, lang)
        if wrong is not None:
            asks.append(("wrong period", _ask(lang, "period", wrong[0], q["question"], variant), (wrong[1], wrong[2]), None))
        for kind, text, period, outlet in asks:
            answer = bron.answer(text, "eval-dated")
            in_scope = _names(answer, period, outlet) and _respects(answer, period, outlet)
            quoted = any(p.article.id == article_id for p in answer.passages)
            hit = any(p.article.id == article_id and span in normalise(p.text) for p in answer.passages)
            right = in_scope and (not quoted if kind == "wrong period" else hit)
            rows.append({"kind": kind, "lang": lang, "right": right, "in_scope": in_scope, "quoted": quoted})
    rows += _latest(library, bron, questions, ids_of, models, default_model, days, today)
    library.answerability = default_model
    out: dict[str, float | int] = {"dated_today": today.isoformat()}  # type: ignore[dict-item]
    for suffix, lang in (("", None), ("_nl", "nl"), ("_en", "en")):
        for kind in ("outlet", "period"):
            sel = [r for r in rows if r["kind"] == kind and lang in (None, r["lang"])]
            out[f"dated_scoped_answered_{kind}{suffix}"] = _share(sel, "right")
        sel = [r for r in rows if r["kind"] == "latest" and lang in (None, r["lang"])]
        out[f"dated_latest_newest_lead{suffix}"] = _share(sel, "right")
    for kind in ("outlet", "period", "wrong period"):
        out[f"dated_quotes_in_scope_{kind.replace(' ', '_')}"] = _share([r for r in rows if r["kind"] == kind], "in_scope")
    out["dated_wrong_period_quotes_the_article"] = _share([r for r in rows if r["kind"] == "wrong period"], "quoted")
    multi = [r for r in rows if r["kind"] == "latest" and r["multi"]]
    out["dated_latest_newest_lead_multi"] = _share(multi, "right")
    out["dated_latest_newest_article"] = _share([r for r in rows if r["kind"] == "latest"], "article")
    out["dated_latest_multi_questions"] = len(multi)
    for kind in kinds:
        out[f"dated_questions_{kind.replace(' ', '_')}"] = sum(r["kind"] == kind for r in rows)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def follow_ups(library: Library, article_ids: list[int], days: dict[int, dt.date], today: dt.date) -> list[Document]:
    """A later report on each article's story: the same article with one paragraph left out, dated one
    to three days later (at most ``today``), under "Update: <title>".

    A "latest" question then has two reports on its story: when the answer is in both, the update must
    lead; when it was in the paragraph left out, the older article must, although the update is newer
    and on the same subject.
    """
    docs = []
    for article_id in sorted(article_ids):
        row = library.article_row(article_id)
        paragraphs = [p for p in (row.text.split("\n\n") if row else []) if p.strip()]
        if len(paragraphs) < 2:
            continue
        left_out = 1 + article_id % (len(paragraphs) - 1)
        day = min(today, days[article_id] + dt.timedelta(days=1 + article_id % 3))
        docs.append(Document(
            key=f"eval-update:{row.key}", title=f"Update: {row.title}", outlet=row.outlet, date=day.isoformat(),
            text="\n\n".join(p for i, p in enumerate(paragraphs) if i != left_out), language=row.language,
            origin="eval-update",
        ))
    return docs


def _latest(
    library: Library, bron: Bron, questions: list[dict], ids_of: dict[str, int], models: dict[str, object] | None,
    default_model: object, days: dict[int, dt.date], today: dt.date,
) -> list[dict]:
    """Ask every answerable question as a "latest" question, with a follow-up report of each article indexed."""
    report = library.ingest_documents(follow_ups(library, sorted(days), days, today))
    added = list(report.added_ids)
    dated = dict(days)
    dated.update({a.id: dt.date.fromisoformat(a.date[:10]) for a in (library.article(i) for i in added) if a and a.date})
    rows = []
    try:
        for n, q in enumerate(q for q in questions if q.get("article_id") in ids_of):
            library.answerability = models.get(q["id"], default_model) if models else default_model
            span = normalise(q["answer"])
            newest, answering = _newest_answering(library, q, ids_of[q["article_id"]], span, dated)
            answer = bron.answer(_ask(q["language"], "latest", "", q["question"], n % 2), "eval-dated")
            lead = answer.passages[0] if answer.passages else None
            article = lead is not None and lead.article.id in newest
            right = article and span in normalise(lead.text)
            rows.append({"kind": "latest", "lang": q["language"], "right": right, "article": article, "multi": answering > 1})
    finally:
        library.remove(added)
    return rows


def _share(rows: list[dict], key: str) -> float:
    return sum(bool(r[key]) for r in rows) / len(rows) if rows else 0.0


def _names(answer: Answer, period: tuple[dt.date, dt.date] | None, outlet: str | None) -> bool:
    """The reply says which outlet or period it was limited to."""
    if outlet is not None and outlet not in answer.outlets:
        return False
    return period is None or (answer.since == period[0].isoformat() and answer.until == period[1].isoformat())


def _respects(answer: Answer, period: tuple[dt.date, dt.date] | None, outlet: str | None) -> bool:
    """Every quote shown comes from the outlet and period asked for."""
    def inside(date: str | None) -> bool:
        return period is not None and period[0].isoformat() <= (date or "")[:10] <= period[1].isoformat()

    return all((outlet is None or p.article.outlet == outlet) and (period is None or inside(p.article.date)) for p in answer.passages)


def _newest_answering(
    library: Library, question: dict, article_id: int, span: str, days: dict[int, dt.date],
) -> tuple[set[int], int]:
    """The newest of the articles that answer ``question`` (ties: all of them), and how many answer.

    An article answers when one of the passages retrieved for the question comes from it and holds the
    answer span; the question's own article always does. Retrieval keeps a short span ("2", "maandag")
    found in an unrelated article from counting.
    """
    ranked = library.rank(question["question"], question["language"], 10)
    answering = {article_id} | {p.article.id for p in ranked if span in normalise(p.text)}
    top: Callable[[int], dt.date] = lambda a: days.get(a, dt.date.min)
    newest_day = max(top(a) for a in answering)
    return {a for a in answering if top(a) == newest_day}, len(answering)
