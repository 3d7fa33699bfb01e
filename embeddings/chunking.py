"""Sentence-aware chunking that keeps character offsets into the article text.

Every span is a ``(start, end)`` pair such that ``text[start:end]`` is the quoted string, so a quote
can always be checked against the article it claims to come from.

A sentence is at most MAX_SENTENCE_CHARS long (text without sentence ends is cut at whitespace, or
mid-word if there is none), so a passage is at most ``max(max_chars, MAX_SENTENCE_CHARS)`` long.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Span = tuple[int, int]

# Well above any real sentence (the longest in newsqa-dev is 296 characters), well below what
# makes one embedding slow: a 5 MB line without a full stop was once one "sentence".
MAX_SENTENCE_CHARS = 1000

# Abbreviations after which a full stop does not end a sentence (Dutch and English news).
ABBREVIATIONS = {
    "o.a", "bijv", "bv", "dhr", "mevr", "mr", "mrs", "ms", "dr", "drs", "ir", "ing", "prof", "ca",
    "nr", "st", "jl", "vs", "etc", "jr", "sr", "gen", "lt", "col", "sgt", "capt", "gov", "sen",
    "rep", "inc", "ltd", "co", "corp", "e.g", "i.e", "no", "mt", "ft", "aug", "sept", "okt", "oct",
    "jan", "feb", "mrt", "apr", "jun", "jul", "nov", "dec", "blz", "p", "pag", "art", "min", "max",
    "d.w.z", "m.b.t", "t.a.v", "i.v.m", "z.g", "zgn", "evt", "incl", "excl", "resp", "tel",
}
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s+[\"'“‘«(\[]*[A-ZÀ-ÖØ-Þ0-9])")
_PARAGRAPH = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Chunk:
    """A passage: its span in the article and the spans of its sentences."""

    start: int
    end: int
    sentences: tuple[Span, ...]


def _strip_span(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def paragraphs(text: str) -> list[Span]:
    """Spans of the paragraphs (blank-line separated), whitespace trimmed."""
    spans: list[Span] = []
    pos = 0
    for match in _PARAGRAPH.finditer(text):
        span = _strip_span(text, pos, match.start())
        if span:
            spans.append(span)
        pos = match.end()
    span = _strip_span(text, pos, len(text))
    if span:
        spans.append(span)
    return spans


def _ends_abbreviation(text: str, dot: int) -> bool:
    """Whether the full stop at ``dot`` belongs to an abbreviation or an initial."""
    if text[dot] != ".":
        return False
    word_start = dot
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:dot].lstrip("(\"'“‘").lower()
    return word in ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def sentences(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Sentence spans of ``text[start:end]``; single newlines inside a paragraph also split."""
    end = len(text) if end is None else end
    spans: list[Span] = []
    pos = start
    segment = text[start:end]
    for match in _BOUNDARY.finditer(segment):
        if _ends_abbreviation(text, start + match.start()):
            continue
        span = _strip_span(text, pos, start + match.end())
        if span:
            spans.append(span)
        pos = start + match.end()
    span = _strip_span(text, pos, end)
    if span:
        spans.append(span)
    return [part for s in spans for piece in _split_lines(text, s) for part in _cap(text, piece)]


def _cap(text: str, span: Span, limit: int = MAX_SENTENCE_CHARS) -> list[Span]:
    """``span`` cut into pieces of at most ``limit`` characters, at the last whitespace before the
    limit when there is one in its second half, else at the limit itself."""
    start, end = span
    if end - start <= limit:
        return [span]
    pieces: list[Span] = []
    while end - start > limit:
        cut = start + limit
        for i in range(cut, start + limit // 2, -1):
            if text[i].isspace():
                cut = i
                break
        piece = _strip_span(text, start, cut)
        if piece:
            pieces.append(piece)
        start = cut
        while start < end and text[start].isspace():
            start += 1
    piece = _strip_span(text, start, end)
    if piece:
        pieces.append(piece)
    return pieces


def _split_lines(text: str, span: Span) -> list[Span]:
    out: list[Span] = []
    pos = span[0]
    for match in re.finditer(r"\n", text[span[0] : span[1]]):
        piece = _strip_span(text, pos, span[0] + match.start())
        if piece:
            out.append(piece)
        pos = span[0] + match.end()
    piece = _strip_span(text, pos, span[1])
    if piece:
        out.append(piece)
    return out


def is_heading(text: str, span: Span) -> bool:
    """A very short paragraph, or a short one without closing punctuation, reads as a heading
    (or a fragment) that belongs with the paragraph after it."""
    para = text[span[0] : span[1]]
    if len(para) < 80:
        return True
    return len(para) < 120 and "\n" not in para and not para.rstrip("\"'”’").endswith((".", "!", "?", ":", "…"))


def _groups(text: str) -> list[list[Span]]:
    """Sentences grouped by paragraph, with each heading joined to the paragraph after it."""
    groups: list[list[Span]] = []
    pending: list[Span] = []
    for para in paragraphs(text):
        if is_heading(text, para):
            pending.append(para)
            continue
        groups.append(pending + sentences(text, *para))
        pending = []
    if pending:
        groups.append(pending)
    return groups


def _windows(group: list[Span], max_chars: int, overlap: int) -> list[list[Span]]:
    """Greedy windows of consecutive sentences, each at most ``max_chars`` unless one sentence is longer."""
    windows: list[list[Span]] = []
    i = 0
    while i < len(group):
        j = i + 1
        while j < len(group) and group[j][1] - group[i][0] <= max_chars:
            j += 1
        windows.append(group[i:j])
        if j >= len(group):
            break
        i = max(j - overlap, i + 1)
    return windows


def chunk_text(text: str, max_chars: int = 500, overlap_sentences: int = 1) -> list[Chunk]:
    """Split an article into passages of whole sentences, each within one paragraph group."""
    chunks: list[Chunk] = []
    for group in _groups(text):
        for window in _windows(group, max_chars, overlap_sentences):
            chunks.append(Chunk(window[0][0], window[-1][1], tuple(window)))
    return chunks
