"""The postgres backend on a real PostgreSQL with pgvector: ingest, answer, remove, update, two
processes' worth of libraries on one database, and a server restart under an open library."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from pg_testserver import pg_config
from support import NEWSQA, REPO, SEED_QUESTION_NL

SEED_ARTICLE = REPO / "corpus"


def _quotes(answer) -> str:
    return " ".join(p.text for p in answer.passages)


def _article(folder: Path, name: str, title: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"{title}\n\n{body}\n", encoding="utf-8")
    return path


def test_ingest_and_answer(make_pg_bron):
    bron = make_pg_bron()
    library = bron.library
    assert not library.embedded
    assert library.count() >= 1
    answer = bron.answer(SEED_QUESTION_NL)
    assert "in Turkije" in _quotes(answer)
    assert library.view.name.startswith("pg-v")


def test_remove(make_pg_bron, tmp_path):
    bron = make_pg_bron()
    library = bron.library
    extra = _article(tmp_path / "more", "kaas.txt", "Kaasmarkt in Alkmaar",
                     "De kaasmarkt in Alkmaar trok dit jaar veertigduizend bezoekers.\n\nDe dragers droegen de kazen op berries.")
    report = library.ingest([extra])
    assert len(report.added_ids) == 1
    article_id = report.added_ids[0]
    before = library.count()
    removed = bron.remove(str(article_id))
    assert removed.id == article_id
    assert library.count() == before - 1
    assert library.article(article_id) is None
    db = library.store.db
    assert db.query("SELECT count(*) FROM passages WHERE article_id = %s", (article_id,))[0][0] == 0
    # document frequencies stay those of the live passages
    assert db.query("SELECT COALESCE(sum(df), 0) FROM terms")[0][0] == db.query("SELECT count(*) FROM postings")[0][0]
    assert not library.view.lexical_search(["kaasmarkt"], 5)
    assert "in Turkije" in _quotes(bron.answer(SEED_QUESTION_NL))


def test_update(make_pg_bron, tmp_path):
    folder = tmp_path / "news"
    path = _article(folder, "brug.txt", "Nieuwe brug in Zwolle",
                    "De nieuwe brug over de IJssel in Zwolle gaat in maart open.\n\nDe bouw kostte twaalf miljoen euro.")
    bron = make_pg_bron(folder)
    library = bron.library
    (article_id,) = [a.id for a in library.articles()]
    old = {c.id for c in library.view.article_chunks(article_id)}
    path.write_text("Nieuwe brug in Zwolle\n\nDe nieuwe brug over de IJssel in Zwolle gaat pas in oktober open.\n\n"
                    "De bouw kostte achttien miljoen euro, meldt de gemeente.\n", encoding="utf-8")
    report = library.ingest([folder])
    assert report.updated_ids == [article_id]
    view = library.view
    new = {c.id for c in view.article_chunks(article_id)}
    assert new and not new & old
    assert "oktober" in library.article_text(article_id)
    answer = bron.answer("Hoeveel kostte de bouw van de brug in Zwolle?")
    assert "achttien miljoen" in _quotes(answer)
    assert "twaalf" not in _quotes(answer)
    db = library.store.db
    assert db.query("SELECT COALESCE(sum(df), 0) FROM terms")[0][0] == db.query("SELECT count(*) FROM postings")[0][0]
    meta = library.store.meta()
    assert meta["passages"] == db.query("SELECT count(*) FROM passages")[0][0]


def test_second_library_sees_an_ingest(make_pg_bron, tmp_path):
    first = make_pg_bron(name="one")
    second = make_pg_bron(name="two")  # the database already has the corpus: nothing is ingested twice
    assert second.library.count() == first.library.count()
    extra = _article(tmp_path / "more", "kaas.txt", "Kaasmarkt in Alkmaar",
                     "De kaasmarkt in Alkmaar trok dit jaar veertigduizend bezoekers.\n\nDe dragers droegen de kazen op berries.")
    first.library.ingest([extra])
    deadline = time.monotonic() + 10
    while second.library.count() != first.library.count() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert second.library.count() == first.library.count()
    answer = second.answer("Hoeveel bezoekers trok de kaasmarkt in Alkmaar?")
    assert "veertigduizend" in _quotes(answer)


def test_database_restart_while_open(make_pg_bron, pg_server):
    bron = make_pg_bron()
    assert "in Turkije" in _quotes(bron.answer(SEED_QUESTION_NL))
    pg_server.restart()
    bron.library.refresh(force=True)
    assert "in Turkije" in _quotes(bron.answer(SEED_QUESTION_NL))
    # and writes work again too
    pg_server.stop()
    pg_server.start()
    report = bron.library.remove([bron.library.articles()[0].id])
    assert report.removed_ids


def test_schema_is_checked_never_migrated(pg_server, encoders, tmp_path):
    from bot.errors import DataDirError
    from embeddings.library import Library

    dsn = pg_server.create_database("bron_no_schema")
    with pytest.raises(DataDirError, match="bron db upgrade"):
        Library.open(tmp_path / "d", pg_config(dsn), encoders=encoders)
    import psycopg

    with psycopg.connect(dsn) as con:
        assert con.execute("SELECT to_regclass('bron_meta')").fetchone()[0] is None


def test_same_rankings_as_embedded(pg_dsn, encoders, tmp_path, config):
    """BM25 and dense search give the embedded backend's passages and scores on the same articles."""
    from embeddings.lexical import tokenize
    from embeddings.library import Library

    lines = (NEWSQA / "articles.jsonl").read_text(encoding="utf-8").splitlines()[:12]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "articles.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    embedded = Library.open(tmp_path / "embedded", config, encoders=encoders)
    embedded.ingest([corpus])
    pg = Library.open(tmp_path / "pg", pg_config(pg_dsn), encoders=encoders)
    pg.ingest([corpus])
    assert embedded.keys() == pg.keys()
    ev, pv = embedded.view, pg.view
    assert ev.chunk_count == pv.chunk_count
    main = embedded.sentence_encoder
    for question in ("Waar werd de aanslag verijdeld?", "Hoeveel mensen zijn gearresteerd?", "Wie leidt de regering?"):
        tokens = tokenize(question)
        e, p = ev.lexical_search(tokens, 20), pv.lexical_search(tokens, 20)
        assert list(e)[:10] == list(p)[:10]
        for cid in e:
            assert p[cid] == pytest.approx(e[cid], rel=1e-4)
        q = main.encode_query([question])[0]
        e, p = ev.dense_search(q, 20), pv.dense_search(q, 20)
        assert set(list(e)[:10]) <= set(p)
        for cid in set(e) & set(p):
            assert p[cid] == pytest.approx(e[cid], abs=2e-3)
        a = ev.chunk(next(iter(e)))
        assert pv.chunk(a.id) == a
        assert np.allclose(pv.sentence_vectors([a.first_sentence]), ev.sentence_vectors([a.first_sentence]), atol=2e-3)
        assert np.allclose(pv.article_vector(a.article_id), ev.article_vector(a.article_id), atol=2e-3)
    exclude = {ev.chunk(next(iter(e))).article_id}
    assert not set(pv.dense_search(q, 20, exclude)) & set(pv.chunks_of(exclude))


def test_hnsw_search_finds_the_exact_neighbours(make_pg_bron, monkeypatch):
    """Above EXACT_BELOW passages the HNSW index answers; on a small library it finds the exact top 10."""
    import embeddings.storage.postgres as pg

    bron = make_pg_bron()
    view = bron.library.view
    query = bron.library.sentence_encoder.encode_query([SEED_QUESTION_NL])[0]
    exact = view.dense_search(query, 10)
    monkeypatch.setattr(pg, "EXACT_BELOW", 0)
    approximate = view.dense_search(query, 10)
    assert list(approximate) == list(exact)
    first = view.chunk(next(iter(exact))).article_id
    assert not set(view.dense_search(query, 10, {first})) & set(view.chunks_of([first]))


def test_two_writers_at_once_are_serialised(make_pg_bron, tmp_path):
    """Two libraries ingesting at the same time (as two processes would): the advisory lock lets one
    commit at a time, both ingests land, and the counters match the rows."""
    import threading

    first = make_pg_bron(name="one")
    second = make_pg_bron(name="two")
    a = _article(tmp_path / "a", "kaas.txt", "Kaasmarkt in Alkmaar", "De kaasmarkt in Alkmaar trok veertigduizend bezoekers.")
    b = _article(tmp_path / "b", "brug.txt", "Brug in Zwolle", "De brug over de IJssel in Zwolle gaat in maart open.")
    reports, errors = [], []

    def ingest(bron, path):
        try:
            reports.append(bron.library.ingest([path]))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ingest, args=(first, a)), threading.Thread(target=ingest, args=(second, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    added = sorted(i for r in reports for i in r.added_ids)
    assert len(added) == 2 and added[0] != added[1]
    db = first.library.store.db
    meta = first.library.store.meta()
    assert meta["articles"] == db.count() == len(first.library.articles())
    assert meta["passages"] == db.query("SELECT count(*) FROM passages")[0][0]
    ids = [r[0] for r in db.query("SELECT id FROM passages ORDER BY id")]
    assert len(ids) == len(set(ids))
