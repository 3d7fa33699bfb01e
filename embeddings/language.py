"""Dutch-or-English language guess from function words: enough to pick reply language and stemmer."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-zà-ÿ']+")

_NL = frozenset(
    """de het een en van in is dat op te zijn met voor niet aan er om ook als bij maar uit door
    naar dan nog wat wie waar waarom hoe hoeveel wanneer welke welk werd wordt worden heeft hebben
    was waren deze dit die zij hij ze we wij ik jij je u hun haar kan kunnen zal zullen moet over
    tot sinds tegen na geen meer veel wel nu al zo toen hoeveel waardoor waarmee vond gaat komt""".split()
)
_EN = frozenset(
    """the a an and of in is that on to are with for not at it as by but from what who where why
    how many much when which was were has have had been this these those they he she we i you
    their his her can could will would should did does do about into than there after before
    over against since no more any also""".split()
)


def detect_language(text: str, fallback: str = "nl") -> str:
    """Return ``"nl"`` or ``"en"`` for ``text``; ``fallback`` when the words give no clue."""
    words = _WORD.findall(text.lower())
    nl = sum(w in _NL for w in words)
    en = sum(w in _EN for w in words)
    if nl == en:
        return fallback
    return "nl" if nl > en else "en"
