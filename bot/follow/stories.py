"""Near-duplicate stories: the same (agency) copy carried by several outlets is one story.

Two articles are the same story when a large share of the shorter one's word 4-grams (shingles) also
occurs in the other (containment, robust to an added intro line, a cut paragraph or another title),
or when their lead sentences are the same after normalisation (same agency lede, different body).
Shingles are hashed with CRC-32 (deterministic across processes, unlike ``hash()``) and sampled
(hash mod 4 == 0) so the in-memory inverted index stays small; containment is estimated on the
sample, which is unbiased for it.

A story's id is the id of its first article. Everything here is pure and deterministic.
"""

from __future__ import annotations

import re
import zlib
from array import array
from collections import Counter
from dataclasses import dataclass

_WORD = re.compile(r"\w+", re.UNICODE)
# End of the first sentence: . ! ? followed by space and an upper-case letter or a quote, or a newline.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”’']?\s+(?=[\"“‘'A-ZÀ-Þ0-9])|\n")
SHINGLE = 4
SAMPLE = 4
# Share of the shorter article's sampled shingles found in the other: same story.
CONTAINMENT = 0.5
# Fewer shared sampled shingles than this is chance (short texts), whatever the share.
MIN_SHARED = 4
# Lead sentences shorter than this (in words) are too generic to identify a story.
MIN_LEAD_WORDS = 8


def words(text: str) -> list[str]:
    """Lower-cased words, punctuation and whitespace dropped."""
    return _WORD.findall(text.lower())


def shingles(text: str) -> array:
    """Sorted, unique, sampled CRC-32 hashes of the text's word 4-grams (all of them for short texts)."""
    ws = words(text)
    grams = {zlib.crc32(" ".join(ws[i : i + SHINGLE]).encode("utf-8")) for i in range(max(len(ws) - SHINGLE + 1, 1))} if ws else set()
    sampled = {h for h in grams if h % SAMPLE == 0}
    # A short text keeps every shingle, so it can still be compared.
    keep = sampled if len(sampled) >= 2 * MIN_SHARED else grams
    return array("I", sorted(keep))


def lead_fingerprint(text: str) -> str | None:
    """The normalised first sentence (its words joined), or None when it is too short to tell stories apart."""
    first = _SENTENCE_END.split(text.strip(), maxsplit=1)[0] if text.strip() else ""
    ws = words(first)
    return " ".join(ws) if len(ws) >= MIN_LEAD_WORDS else None


def first_sentence(text: str) -> str:
    """The article's first sentence, verbatim (the lead a briefing quotes)."""
    stripped = text.strip()
    return _SENTENCE_END.split(stripped, maxsplit=1)[0].strip() if stripped else ""


@dataclass
class Known:
    """One article as the story index knows it."""

    article_id: int
    story: int
    shingles: array
    lead: str | None


class StoryIndex:
    """Articles seen so far, by shingle and by lead, to give each new article its story."""

    def __init__(self) -> None:
        self._by_shingle: dict[int, list[int]] = {}
        self._by_lead: dict[str, int] = {}
        self._articles: dict[int, Known] = {}

    def __len__(self) -> int:
        return len(self._articles)

    def __contains__(self, article_id: int) -> bool:
        return article_id in self._articles

    def story_of(self, article_id: int) -> int | None:
        known = self._articles.get(article_id)
        return known.story if known else None

    def add(self, known: Known) -> None:
        """Remember an article whose story is decided."""
        self._articles[known.article_id] = known
        for h in known.shingles:
            self._by_shingle.setdefault(h, []).append(known.article_id)
        if known.lead is not None:
            self._by_lead.setdefault(known.lead, known.article_id)

    def find(self, article_id: int, text: str) -> Known:
        """The article with its story: that of the known article it duplicates most, else its own id."""
        sh = shingles(text)
        lead = lead_fingerprint(text)
        shared: Counter[int] = Counter()
        for h in sh:
            for other in self._by_shingle.get(h, ()):
                if other != article_id:
                    shared[other] += 1
        best: tuple[float, int] | None = None
        for other, count in shared.items():
            size = min(len(sh), len(self._articles[other].shingles)) or 1
            share = count / size
            if count >= min(MIN_SHARED, size) and share >= CONTAINMENT:
                # Highest share wins; among equals the earliest article, so the result is deterministic.
                key = (share, -other)
                if best is None or key > best:
                    best = key
        if best is not None:
            story = self._articles[-best[1]].story
        elif lead is not None and lead in self._by_lead and self._by_lead[lead] != article_id:
            story = self._articles[self._by_lead[lead]].story
        else:
            story = article_id
        return Known(article_id, story, sh, lead)
