"""What a question asks for, read from its words: the kind of answer and the words that must match.

Dutch and English, no model: the question word tells the kind of answer (a name, a date, a number,
a place), and the content words and names tell what a sentence must be about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from embeddings.lexical import STOPWORDS, word_stems

# The kind of answer, by the question's opening words. Order matters: "hoeveel" before "hoe".
_KINDS: list[tuple[str, re.Pattern[str]]] = [
    ("number", re.compile(r"\b(hoeveel|hoe ?veel|hoe (groot|hoog|oud|lang|zwaar|duur|ver)|welk (bedrag|percentage|aantal)|how (many|much|old|long|big|high|far)|what (percentage|number|amount|share))\b")),
    ("when", re.compile(r"\b(wanneer|sinds wanneer|in welk jaar|op welke (dag|datum)|welke (dag|datum|maand)|hoe laat|when|what (year|date|day|month|time)|which (year|date|day|month))\b")),
    ("where", re.compile(r"\b(waar|waarheen|waarvandaan|in welk(e)? (land|stad|plaats|provincie|gemeente|regio)|where|in which (country|city|town|region|province)|which (country|city|town|region))\b")),
    ("who", re.compile(r"\b(wie|wiens|door wie|met wie|welke (persoon|man|vrouw|minister|partij|organisatie|groep|club|ploeg|bedrijf|krant|persbureau)|who|whom|whose|which (person|man|woman|minister|party|organi[sz]ation|group|team|company|agency|newspaper))\b")),
]

# Words that ask, not words the answer must contain.
QUESTION_WORDS = frozenset(
    """wie wat waar waarom wanneer welke welk hoe hoeveel waardoor waarmee waarover waarvoor
    waarheen waarvandaan laat volgens zegt zei zeggen vertelde gebeurde gebeurt gaat ging
    who what where why when which how whom whose according say says said tell told happened
    happen does did do doing kind type""".split()
)

_NUMBER_WORDS = frozenset(
    """een twee drie vier vijf zes zeven acht negen tien elf twaalf twintig dertig veertig vijftig
    honderd honderden duizend duizenden miljoen miljoenen miljard procent tientallen dozijn
    one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty
    hundred hundreds thousand thousands million millions billion percent dozens dozen half""".split()
)
_TIME_WORDS = frozenset(
    """januari februari maart april mei juni juli augustus september oktober november december
    maandag dinsdag woensdag donderdag vrijdag zaterdag zondag gisteren vandaag morgen eergisteren
    vanochtend vanavond vannacht week maand jaar eeuw dag dagen weken maanden jaren sinds
    january february march may june july august october monday tuesday wednesday thursday
    friday saturday sunday yesterday today tomorrow tonight morning evening week month year
    century day days weeks months years since""".split()
)
# Words that name one day or month (a date), unlike "week" or "sinds" above.
_CALENDAR_WORDS = frozenset(
    """januari februari maart april mei juni juli augustus september oktober november december
    january february march may june july august october maandag dinsdag woensdag donderdag vrijdag
    zaterdag zondag monday tuesday wednesday thursday friday saturday sunday""".split()
)
_DIGIT = re.compile(r"\d")
_WORD = re.compile(r"\w+", re.UNICODE)
_HOW_MANY = re.compile(r"\b(hoeveel|how many|how much)\b")
# How many words after "hoeveel"/"how many" name what is counted ("asylum seekers", "Hezbollah-strijders").
COUNTED_WORDS = 2
# How far after a number the counted word may stand ("36 doden", "twee strijders van Hezbollah").
COUNTED_SPAN = 2


@dataclass(frozen=True)
class QuestionTerms:
    """The parts of a question a sentence is checked against."""

    kind: str  # number, when, where, who or other
    content: tuple[frozenset[str], ...]  # stems of each content word (Dutch and English)
    names: tuple[str, ...]  # capitalised words and numbers, lower-cased
    words: frozenset[str] = frozenset()  # every word of the question, lower-cased
    counted: tuple[str, ...] = ()  # what a how-many question counts ("doden" in "Hoeveel doden vielen er?")


@lru_cache(maxsize=4096)
def read_question(question: str) -> QuestionTerms:
    """Kind of answer, content-word stems and names of ``question``."""
    lowered = question.lower()
    kind = next((name for name, pattern in _KINDS if pattern.search(lowered)), "other")
    words = [w for w in _WORD.findall(question) if w.lower() not in STOPWORDS and w.lower() not in QUESTION_WORDS]
    content = tuple(frozenset(word_stems(w.lower())) for w in words)
    # A capitalised word after the first is a name; digits are numbers. Both must be in the source.
    first = _WORD.search(question)
    names = tuple(
        w.lower()
        for m in _WORD.finditer(question)
        for w in [m.group()]
        if (w[:1].isupper() and (first is None or m.start() != first.start())) or _DIGIT.search(w)
        if w.lower() not in QUESTION_WORDS and w.lower() not in STOPWORDS
    )
    return QuestionTerms(kind, content, names, frozenset(w.lower() for w in _WORD.findall(question)), counted_words(question))


def counted_words(question: str) -> tuple[str, ...]:
    """What a how-many/how-much question counts, lower-cased: the first content words after the question
    word, up to :data:`COUNTED_WORDS` and the next stopword ("How many asylum seekers stayed there?" ->
    asylum, seekers; "Hoeveel doden vielen er?" -> doden, vielen); () when it asks no count."""
    lowered = question.lower()
    m = _HOW_MANY.search(lowered)
    if m is None:
        return ()
    out: list[str] = []
    for w in _WORD.findall(lowered[m.end():]):
        if w in STOPWORDS or w in QUESTION_WORDS:
            if out:
                break
            continue
        if w in _NUMBER_WORDS:
            continue
        out.append(w)
        if len(out) >= COUNTED_WORDS:
            break
    return tuple(out)


def _same_word(word: str, asked: str) -> bool:
    """Whether a sentence word is the asked word: a shared Dutch or English stem, or one compound of the
    other (rechtbankvoorzitter/voorzitter, griepvaccins/vaccins)."""
    if word_stems(word) & word_stems(asked):
        return True
    return (len(asked) >= 5 and asked in word) or (len(word) >= 5 and asked.endswith(word))


def counts_asked(terms: QuestionTerms, sentence: str) -> bool:
    """Whether ``sentence`` puts a number the question does not say right before what a how-many
    question counts ("Hoeveel doden vielen er?" - "Volgens de jury zijn er 36 doden gevallen.")."""
    if not terms.counted:
        return False
    words = [w.lower() for w in _WORD.findall(sentence)]
    for i, w in enumerate(words):
        if w in terms.words or not (_DIGIT.search(w) or w in _NUMBER_WORDS):
            continue
        if any(_same_word(after, asked) for after in words[i + 1 : i + 1 + COUNTED_SPAN] for asked in terms.counted):
            return True
    return False


def has_kind(kind: str, sentence: str, question_names: tuple[str, ...]) -> bool:
    """Whether ``sentence`` contains something of the asked kind (a number, a time, a name)."""
    if kind == "other":
        return True
    words = _WORD.findall(sentence)
    lowered = [w.lower() for w in words]
    if kind == "number":
        return any(_DIGIT.search(w) for w in words) or any(w in _NUMBER_WORDS for w in lowered)
    if kind == "when":
        return any(re.fullmatch(r"(1[89]|20)\d\d", w) for w in words) or any(w in _TIME_WORDS for w in lowered) or any(_DIGIT.search(w) for w in words)
    # who / where: a capitalised word that is not the sentence's first and not already in the question.
    asked = set(question_names)
    return any(w[:1].isupper() and i > 0 and w.lower() not in asked for i, w in enumerate(words))


def has_new_of_kind(terms: QuestionTerms, sentence: str) -> bool:
    """Whether ``sentence`` holds something of the asked kind that the question does not already say.

    Stricter than :func:`has_kind`, to tell apart sentences of one article that are all about the
    question: a number not in the question, a year or a day/month name not in it, a capitalised word
    (not the sentence's first, not a day or month) that is none of the question's words.
    """
    kind, asked = terms.kind, terms.words
    words = _WORD.findall(sentence)
    new = [w for w in words if w.lower() not in asked]
    if kind == "number":
        return any(_DIGIT.search(w) or w.lower() in _NUMBER_WORDS for w in new)
    if kind == "when":
        return any(re.fullmatch(r"(1[89]|20)\d\d", w) or w.lower() in _CALENDAR_WORDS for w in new)
    if kind in ("who", "where"):
        return any(w[:1].isupper() and i > 0 and w.lower() not in asked and w.lower() not in _CALENDAR_WORDS for i, w in enumerate(words))
    return False
