"""Both backends satisfy the protocols of embeddings/storage/backend.py (what the library uses)."""

from __future__ import annotations

from embeddings.storage.backend import CatalogBackend, StoreBackend, ViewBackend, backend_name, open_store
from embeddings.storage.postgres import PgDatabase, PgStore, PgView
from embeddings.storage.store import Store
from embeddings.storage.view import View


def _missing(cls: type, protocol: type) -> list[str]:
    wanted = [n for n in dir(protocol) if not n.startswith("_")]
    annotated = list(getattr(protocol, "__annotations__", {}))
    return [n for n in wanted if not hasattr(cls, n)] + [n for n in annotated if n not in _instance_attrs(cls) and not hasattr(cls, n)]


def _instance_attrs(cls: type) -> set[str]:
    import inspect

    source = inspect.getsource(cls.__init__)
    return {line.split("self.", 1)[1].split("=")[0].split(":")[0].strip() for line in source.splitlines() if "self." in line and "=" in line}


def test_the_embedded_backend_satisfies_the_protocols():
    assert not _missing(Store, StoreBackend)
    assert not _missing(View, ViewBackend)
    from embeddings.storage.database import Database

    assert not _missing(Database, CatalogBackend)


def test_the_postgres_backend_satisfies_the_protocols():
    assert not _missing(PgStore, StoreBackend)
    assert not _missing(PgView, ViewBackend)
    assert not _missing(PgDatabase, CatalogBackend)
    assert hasattr(PgStore, "writer_lock")


def test_open_store_follows_the_config(config, tmp_path):
    assert backend_name(config) == "embedded"
    assert isinstance(open_store(config, tmp_path), Store)
    from pg_testserver import pg_config

    pg = pg_config("postgresql://bron@127.0.0.1:1/bron")
    assert backend_name(pg) == "postgres"
    store = open_store(pg, tmp_path)  # connects lazily
    assert isinstance(store, PgStore)
    assert isinstance(store, StoreBackend)


def test_periods_and_outlets_limit_the_search_on_postgres_as_embedded(make_pg_bron, make_bron, tmp_path):
    import datetime as dt

    folder = tmp_path / "news"
    folder.mkdir()
    for name, title, outlet, date, speed in (
        ("a.md", "Storm raast over Zeeland", "NOS", "2024-12-03T23:30:00+01:00", 130),
        ("b.md", "Storm in Zeeland voorbij", "NRC", "2024-11-20", 90),
        ("c.md", "Storm zonder datum", "AD", "", 70),
    ):
        head = f"---\ntitle: {title}\noutlet: {outlet}\n" + (f"date: {date}\n" if date else "") + "---\n\n"
        (folder / name).write_text(head + f"In Vlissingen werden windstoten van {speed} kilometer per uur gemeten.\n", encoding="utf-8")
    seen = []
    for bron in (make_pg_bron(folder), make_bron(folder, data_dir=tmp_path / "embedded")):
        bron.today = lambda: dt.date(2024, 12, 4)
        seen.append([
            sorted(p.article.outlet for p in bron.answer(question, "t").passages)
            for question in ("Hoe hard waaide het gisteren in Vlissingen?", "Hoe hard waaide het vorige maand in Vlissingen?",
                             "Hoe hard waaide het in Vlissingen volgens de NRC?", "Hoe hard waaide het vorige week in Vlissingen?")
        ])
    assert seen[0] == seen[1] == [["NOS"], ["NRC"], ["NRC"], []]
