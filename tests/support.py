"""Constants the tests share. Test modules import them from here: every conftest.py is a module
named ``conftest``, so importing from one would pick whichever conftest pytest loaded last."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
NEWSQA = SHARED / "data" / "newsqa-dev"
SEED_QUESTION_NL = "Waar verbleef een van de daders?"
SEED_QUESTION_EN = "Where did one of the attackers stay?"
