"""Articles and a controllable clock shared by the follow tests (topic alerts and briefings)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

STIKSTOF = """---
title: Duizenden boeren met trekkers naar Den Haag tegen stikstofplannen
outlet: NOS
date: 2024-12-03
url: https://nos.example/nieuws/boeren-stikstof
---
Duizenden boeren zijn dinsdag met hun trekkers naar Den Haag gereden om te protesteren tegen de stikstofplannen van het kabinet. Ze willen dat de regels voor de uitstoot van stikstof worden versoepeld.

Volgens de politie stonden er rond het middaguur meer dan tweeduizend trekkers op de snelwegen rond de stad. Op de A12 ontstond een file van twintig kilometer.

De boeren vrezen dat ze hun bedrijf moeten sluiten als het kabinet de veestapel inkrimpt. Minister Van der Wal zei in gesprek te willen blijven met de sector.

Landbouworganisatie LTO noemde de opkomst een duidelijk signaal aan de politiek.
"""

STIKSTOF_COPY = """---
title: Boerenprotest legt verkeer rond Den Haag plat
outlet: NU.nl
date: 2024-12-03
url: https://nu.example/binnenland/boerenprotest
---
Duizenden boeren zijn dinsdag met hun trekkers naar Den Haag gereden om te protesteren tegen de stikstofplannen van het kabinet. Ze willen dat de regels voor de uitstoot van stikstof worden versoepeld.

Volgens de politie stonden er rond het middaguur meer dan tweeduizend trekkers op de snelwegen rond de stad. Op de A12 ontstond een file van twintig kilometer.

De boeren vrezen dat ze hun bedrijf moeten sluiten als het kabinet de veestapel inkrimpt. Minister Van der Wal zei in gesprek te willen blijven met de sector.

Landbouworganisatie LTO noemde de opkomst een duidelijk signaal aan de politiek. (ANP)
"""

STORM = """---
title: Storm raast over Zeeland
outlet: Omroep Zeeland
date: 2024-12-03
url: https://zeeland.example/storm
---
Een zware storm raasde dinsdag over Zeeland. In Vlissingen werden windstoten van 130 kilometer per uur gemeten.

De brandweer rukte meer dan tweehonderd keer uit voor omgewaaide bomen en losgeslagen dakpannen. Er vielen geen gewonden.

Het KNMI had code oranje afgegeven voor de kustprovincies.
"""

WOLF = """---
title: Wolf bijt schapen dood op de Veluwe
outlet: Omroep Gelderland
date: 2024-12-03
url: https://gld.example/wolf
---
Op de Veluwe heeft een wolf vannacht zes schapen doodgebeten bij een boerderij in Ede. De eigenaar vond de dieren vanochtend in de wei.

De provincie onderzoekt of het om de wolf gaat die eerder dit jaar in het gebied werd gezien. Schapenhouders vragen om betere hekken.
"""


ARTICLES = {"stikstof": STIKSTOF, "stikstof_copy": STIKSTOF_COPY, "storm": STORM, "wolf": WOLF}


def write_articles(folder: Path, *names: str) -> Path:
    """The named articles as .md files in ``folder`` (created), for ``bron ingest``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.md").write_text(ARTICLES[name], encoding="utf-8")
    return folder


SITE_IDS = {"stikstof": "d901", "stikstof_copy": "d902", "storm": "d903", "wolf": "d904"}


def as_site_article(name: str) -> dict:
    """An article in the newsqa-dev shape the local news site serves (front matter read back), under
    its id in :data:`SITE_IDS`."""
    head, body = ARTICLES[name].split("---\n", 2)[1:]
    meta = dict(line.split(": ", 1) for line in head.strip().splitlines())
    return {"id": SITE_IDS[name], "title": meta["title"], "source": meta["outlet"], "date": meta["date"], "language": "nl",
            "url": None, "text": body.strip()}


class Clock:
    """Epoch seconds that only move when a test moves them."""

    def __init__(self, start: dt.datetime) -> None:
        self.t = start.timestamp()

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def set(self, moment: dt.datetime) -> None:
        self.t = moment.timestamp()
