"""When and from whom a question wants its news: periods and outlets named in it, Dutch and English.

"wat gebeurde er gisteren in Gaza?", "latest on the cabinet crisis", "wat meldde de NOS vorige week
over de stikstofregels?" are read without a model, relative to a given day.

A time phrase can name when something was *reported* ("vandaag", "deze week") or when it
*happened* ("How many were killed on Monday?", asked about an article from 2017). So phrases come
in two strengths:

- news phrases (vandaag, gisteren, deze/vorige week, deze/vorige maand, the last N days, …) always
  limit the search to articles published then; when there are none, the reply says so;
- event-or-news phrases (a weekday, "sinds maandag", "in maart", "op 3 december") limit it only when
  the library holds dated articles of that period and one of them answers; otherwise they are read
  as part of the question (``bot.core``).

Dates with a year ("in 2023", "op 7 oktober 2023") are about events in news questions, so they never
limit the search. Outlets count only when the library holds articles of that outlet, so an ordinary
word ("volgens de jury") is never taken for one.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MONTHS = {
    "januari": 1, "january": 1, "februari": 2, "february": 2, "maart": 3, "march": 3, "april": 4, "mei": 5,
    "may": 5, "juni": 6, "june": 6, "juli": 7, "july": 7, "augustus": 8, "august": 8, "september": 9,
    "oktober": 10, "october": 10, "november": 11, "december": 12,
}
WEEKDAYS = {
    "maandag": 0, "monday": 0, "dinsdag": 1, "tuesday": 1, "woensdag": 2, "wednesday": 2, "donderdag": 3,
    "thursday": 3, "vrijdag": 4, "friday": 4, "zaterdag": 5, "saturday": 5, "zondag": 6, "sunday": 6,
}
_NUMBERS = {
    "twee": 2, "two": 2, "drie": 3, "three": 3, "vier": 4, "four": 4, "vijf": 5, "five": 5, "zes": 6, "six": 6,
    "zeven": 7, "seven": 7, "tien": 10, "ten": 10, "veertien": 14, "fourteen": 14, "dertig": 30, "thirty": 30,
}
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_WEEKDAY = "|".join(WEEKDAYS)
_COUNT = r"\d{1,3}|" + "|".join(_NUMBERS)
_YEAR_AFTER = r"(?!,?\s*\d{4})"  # "op 3 december 2023" names an event: no period
_CUE = re.compile(r"(volgens|in|according to)\s", re.I)
_REPORTED = re.compile(
    r"\b(meld\w*|schrijf\w*|schreef|schreven|zeg\w*|zei|zeiden|bericht\w*|publiceer\w*|report\w*|say\w*|said|writ\w*|wrote|publish\w*|cover\w*|nieuws|news)\b", re.I
)
_LATEST = re.compile(r"\b(laatste nieuws|laatste|nieuwste|recentste|meest recente|latest|newest|most recent)\b", re.I)
# The part of a "latest" phrase that only asks for recency ("het laatste nieuws over", "the latest on"):
# left out of the searched question, where "nieuws" and "latest" would be taken for what is asked.
_LATEST_FRAME = re.compile(
    r"\b(?:het |the )?(?:laatste|nieuwste|recentste|meest recente|latest|newest|most recent)"
    r"(?: (?:nieuws|news|berichten|reports))?(?: (?:over|about|on|van|from|omtrent))?(?=\s*[?:,.]|\s+(?:over|about|on)\b|$)"
    r"|\b(?:het |the )?(?:laatste|nieuwste|recentste|meest recente|latest|newest|most recent) (?:nieuws|news)(?: (?:over|about|on|van|from))?\b",
    re.I,
)

NEWS, SOFT = "news", "soft"
# Words that only frame a question's scope ("Nieuws van vorige week: …", "News from NOS: …").
_FRAME = frozenset("nieuws news van from uit of artikelen articles berichten reports het de the in over about".split())
Period = tuple[dt.date, dt.date]


@dataclass(frozen=True)
class Scope:
    """The days (inclusive) and outlets a question asks about; all empty when it names none."""

    since: dt.date | None = None
    until: dt.date | None = None
    strength: str = ""  # NEWS or SOFT for a period, see the module docstring
    outlets: tuple[str, ...] = ()
    latest: bool = False
    question: str = ""  # the question without the phrases that set the scope, for the search

    def admits(self, date: str | None, outlet: str | None) -> bool:
        """Whether an article of ``date`` (``YYYY-MM-DD…`` or None) and ``outlet`` is in scope.

        An article without a date is outside any period: Bron cannot tell when it appeared.
        """
        if self.outlets and normalise_outlet(outlet or "") not in {normalise_outlet(o) for o in self.outlets}:
            return False
        if self.since is not None and self.until is not None:
            day = parse_day(date)
            return day is not None and self.since <= day <= self.until
        return True

    def without_period(self) -> Scope:
        """The same scope with its period dropped (an event-or-news phrase read as an event)."""
        return Scope(None, None, "", self.outlets, self.latest, self.question)


def normalise_outlet(name: str) -> str:
    """Outlet names compared without case, extra spaces or a leading article ("de NOS")."""
    name = re.sub(r"\s+", " ", name.strip().lower())
    return re.sub(r"^(de|het|the)\s+", "", name)


def parse_day(text: str | None) -> dt.date | None:
    """The day of an ISO date or date-time (``2024-12-03``, ``2024-12-03T08:00:00Z``), else None."""
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text.strip()[:10])
    except ValueError:
        return None


def _month(year: int, month: int) -> Period:
    return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])


def _last(today: dt.date, weekday: int) -> dt.date:
    """The most recent ``weekday`` on or before today."""
    return today - dt.timedelta(days=(today.weekday() - weekday) % 7)


def _past_day(today: dt.date, month: int, day: int) -> dt.date | None:
    """``day month`` this year, or last year's when this year's is still to come."""
    for year in (today.year, today.year - 1):
        try:
            candidate = dt.date(year, month, day)
        except ValueError:
            return None
        if candidate <= today:
            return candidate
    return None


def _past_month(today: dt.date, month: int) -> Period:
    """A month named without a year: this year's, or last year's when it is still to come."""
    return _month(today.year if month <= today.month else today.year - 1, month)


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBERS[word.lower()]


def _rules(today: dt.date) -> list[tuple[re.Pattern[str], str, Callable[[re.Match[str]], Period | None]]]:
    """(pattern, strength, match -> period), tried in this order; the first that matches counts."""
    monday = today - dt.timedelta(days=today.weekday())
    first = today.replace(day=1)
    end_of_last_month = first - dt.timedelta(days=1)

    def back(days: int) -> Period:
        return today - dt.timedelta(days=days - 1), today

    def one(day: dt.date | None) -> Period | None:
        return (day, day) if day else None

    rules: list[tuple[str, str, Callable[[re.Match[str]], Period | None]]] = [
        (r"\b(eergisteren|the day before yesterday)\b", NEWS, lambda m: one(today - dt.timedelta(2))),
        (r"\b(vandaag|vanochtend|vanmorgen|vanmiddag|vanavond|today|this morning|this afternoon|tonight)\b", NEWS, lambda m: one(today)),
        (r"\b(gisteren|gisteravond|gistermiddag|gisterochtend|yesterday|last night)\b", NEWS, lambda m: one(today - dt.timedelta(1))),
        (rf"\b(?:de |in de |over de )?(?:afgelopen|laatste|voorbije) ({_COUNT}) dagen\b|\b(?:in |over |during )?the (?:past|last) ({_COUNT}) days\b", NEWS, lambda m: back(_count(m.group(1) or m.group(2)))),
        (rf"\b(?:de |in de |over de )?(?:afgelopen|laatste|voorbije) ({_COUNT}) weken\b|\b(?:in |over |during )?the (?:past|last) ({_COUNT}) weeks\b", NEWS, lambda m: back(7 * _count(m.group(1) or m.group(2)))),
        (r"\b(?:de |in de )?(?:afgelopen|voorbije) week\b|\b(?:in |over |during )?the (?:past|last) week\b", NEWS, lambda m: back(7)),
        (r"\b(?:deze week|this week)\b", NEWS, lambda m: (monday, today)),
        (r"\b(?:vorige week|last week)\b", NEWS, lambda m: (monday - dt.timedelta(7), monday - dt.timedelta(1))),
        (r"\b(?:deze maand|this month)\b", NEWS, lambda m: (first, today)),
        (r"\b(?:vorige maand|afgelopen maand|last month)\b", NEWS, lambda m: (end_of_last_month.replace(day=1), end_of_last_month)),
        (rf"\b(?:sinds|since|vanaf) ({_WEEKDAY})\b", SOFT, lambda m: (_last(today, WEEKDAYS[m.group(1).lower()]), today)),
        (rf"\b(?:sinds|since|vanaf) (\d{{1,2}}) ({_MONTH}){_YEAR_AFTER}\b", SOFT, lambda m: _since(today, _past_day(today, MONTHS[m.group(2).lower()], int(m.group(1))))),
        (rf"\b(?:sinds|since|vanaf) ({_MONTH}) (\d{{1,2}}){_YEAR_AFTER}\b", SOFT, lambda m: _since(today, _past_day(today, MONTHS[m.group(1).lower()], int(m.group(2))))),
        (rf"\b(?:sinds|since|vanaf) (?:begin )?({_MONTH}){_YEAR_AFTER}\b", SOFT, lambda m: (_past_month(today, MONTHS[m.group(1).lower()])[0], today)),
        (rf"\b(?:op |on )?(\d{{1,2}}) ({_MONTH}){_YEAR_AFTER}\b", SOFT, lambda m: one(_past_day(today, MONTHS[m.group(2).lower()], int(m.group(1))))),
        (rf"\b(?:op |on )?({_MONTH}) (\d{{1,2}}){_YEAR_AFTER}(?:st|nd|rd|th)?\b", SOFT, lambda m: one(_past_day(today, MONTHS[m.group(1).lower()], int(m.group(2))))),
        (rf"\b(?:in|during|begin|eind) ({_MONTH}){_YEAR_AFTER}\b", SOFT, lambda m: _past_month(today, MONTHS[m.group(1).lower()])),
        (rf"\b(?:op |on |afgelopen |vorige |last )?({_WEEKDAY})(?:avond|ochtend|middag|nacht| night| morning| evening)?\b", SOFT, lambda m: one(_last(today, WEEKDAYS[m.group(1).lower()]))),
    ]
    return [(re.compile(p, re.I), strength, f) for p, strength, f in rules]


def _since(today: dt.date, day: dt.date | None) -> Period | None:
    return (day, today) if day else None


def _outlet_pattern(outlets: Iterable[str]) -> re.Pattern[str] | None:
    names = sorted({o.strip() for o in outlets if o and o.strip()}, key=len, reverse=True)
    if not names:
        return None
    # Short names ("AD", "NOS") only in their own spelling: "ad" or "nos" in a sentence are words.
    alternatives = "|".join(re.escape(n) if len(n) > 3 else f"(?-i:{re.escape(n)})" for n in names)
    # "volgens de NOS", "in NRC", "bij de Volkskrant", "wat meldde RTL Nieuws", "according to the BBC"
    lead = r"(?:(?:volgens|in|van|according to|from)\s+)?(?:(?:de|het|the)\s+)?"
    return re.compile(rf"(?<!\w){lead}({alternatives})(?!\w)", re.I)


def read_scope(question: str, today: dt.date, outlets: Iterable[str] = ()) -> Scope:
    """The period, outlets and "latest" that ``question`` names, and the question without them."""
    outlets = [o for o in outlets if o]
    rest = question
    since = until = None
    strength = ""
    for pattern, kind, period in _rules(today):
        match = pattern.search(rest)
        if not match:
            continue
        found = period(match)
        if found is None:
            continue
        (since, until), strength = found, kind
        # An event-or-news phrase stays in the searched question: it may name when things happened.
        if kind == NEWS:
            rest = rest[: match.start()] + " " + rest[match.end() :]
        break
    named: list[str] = []
    pattern = _outlet_pattern(outlets)
    matches = list(pattern.finditer(rest)) if pattern is not None else []
    # An outlet limits the search only when the question asks what it reported ("volgens de NOS",
    # "in NRC", "what did Reuters say"); "the Red Bull team principal" is about the team.
    if matches and (_REPORTED.search(rest) or any(_CUE.match(m.group(0)) for m in matches)):
        known = {normalise_outlet(o): o for o in outlets}
        named = [known.get(normalise_outlet(m.group(1)), m.group(1)) for m in matches]
        rest = pattern.sub(" ", rest)
    latest = bool(_LATEST.search(rest))
    if latest:
        rest = _LATEST_FRAME.sub(" ", rest)
    # "Nieuws van vorige week: wie …?" leaves "Nieuws van : wie …?"; the frame is not part of what is asked.
    head, colon, tail = rest.partition(":")
    if colon and tail.strip() and all(w.lower() in _FRAME for w in re.findall(r"\w+", head)):
        rest = tail
    rest = re.sub(r"\(\s*\)", " ", rest)  # "… (gisteren)?" leaves "()"
    rest = re.sub(r"\s+([?.!,])", r"\1", " ".join(rest.split())).strip(" ,")
    return Scope(since, until, strength, tuple(dict.fromkeys(named)), latest, rest if len(rest) > 2 else question)
