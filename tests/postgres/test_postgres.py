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
    assert db.query("SELECT COALESCE(sum(df), 0) FROM terms")[0][0] == db.query("SELECT COALESCE(sum(n), 0) FROM term_postings")[0][0]
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
    assert db.query("SELECT COALESCE(sum(df), 0) FROM terms")[0][0] == db.query("SELECT COALESCE(sum(n), 0) FROM term_postings")[0][0]
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


def test_keyword_search_stays_exact_through_commits_merges_and_removals(make_pg_bron, pg_server, tmp_path, monkeypatch):
    """BM25 on the postgres backend after articles come one commit at a time (their postings blocks
    merged along the way), two are removed and one rewritten, ranks and scores every passage as a
    database that got the final articles in one commit."""
    import json

    import embeddings.storage.postgres as pg
    from embeddings.lexical import tokenize
    from embeddings.storage.postgres import upgrade

    monkeypatch.setattr(pg, "MAX_BLOCKS", 2)  # merge after every other commit, small and whole merges both
    records = [json.loads(line) for line in (NEWSQA / "articles.jsonl").read_text(encoding="utf-8").splitlines()[:10]]
    folder = tmp_path / "news"
    paths = [_article(folder, f"a{i}.txt", r["title"], r["text"]) for i, r in enumerate(records)]
    stepwise = make_pg_bron(name="stepwise").library
    for path in paths:
        stepwise.ingest([path])
    titles = {a.title: a.id for a in stepwise.articles()}
    stepwise.remove([titles[records[3]["title"]], titles[records[7]["title"]]])
    paths[3].unlink()
    paths[7].unlink()
    paths[5].write_text(f"{records[5]['title']}\n\n{records[9]['text']}\n\nEen nieuwe alinea over de aanslag en de daders.\n",
                        encoding="utf-8")
    assert stepwise.ingest([paths[5]]).updated_ids
    assert stepwise.store.db.query("SELECT max(c) FROM (SELECT count(*) AS c FROM term_postings GROUP BY term) t")[0][0] <= 3

    dsn = pg_server.create_database("bron_test_at_once")
    upgrade(dsn)
    at_once = make_pg_bron(name="at-once", dsn=dsn).library
    at_once.ingest([folder])
    assert at_once.count() == stepwise.count() == 9  # with the bundled article

    def ranked(library, question, exclude=frozenset()):
        view = library.view
        out = []
        for cid, score in view.lexical_search(tokenize(question), 15, exclude).items():
            chunk = view.chunk(cid)
            out.append(((library.article_row(chunk.article_id).title, chunk.start, chunk.end), round(score, 6)))
        return out

    questions = [r["title"] for r in records] + ["Hoeveel doden vielen er bij de aanslag?", "Who leads the government?"]
    for question in questions:
        assert ranked(stepwise, question) == ranked(at_once, question), question
    first = titles[records[0]["title"]]
    at_once_first = {a.title: a.id for a in at_once.articles()}[records[0]["title"]]
    assert ranked(stepwise, records[0]["title"], {first}) == ranked(at_once, records[0]["title"], {at_once_first})
    assert not any(t == records[3]["title"] for (t, _, _), _ in ranked(stepwise, records[3]["title"]))


def test_a_schema_4_database_keeps_its_keyword_search_after_the_upgrade(make_pg_bron, pg_dsn, encoders, tmp_path):
    """Schema 4 kept one row per posting; `bron db upgrade` packs them into blocks: the same passages
    and scores come back, and removing an article afterwards keeps the frequencies exact."""
    import psycopg

    from bot.errors import DataDirError
    from embeddings.lexical import tokenize
    from embeddings.library import Library
    from embeddings.storage.postgres import POSTING, SCHEMA_VERSION, upgrade

    lines = (NEWSQA / "articles.jsonl").read_text(encoding="utf-8").splitlines()[:12]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "articles.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    library = make_pg_bron(SEED_ARTICLE, corpus).library
    questions = [tokenize(q) for q in (SEED_QUESTION_NL, "Hoeveel doden vielen er bij de aanslag?", "Who leads the government?")]
    before = [library.view.lexical_search(q, 10) for q in questions]
    with psycopg.connect(pg_dsn, autocommit=True) as con, con.transaction():
        # the database as schema 4 left it: one row per posting
        con.execute(
            'CREATE TABLE postings (term text COLLATE "C" NOT NULL, passage bigint NOT NULL REFERENCES passages(id) ON DELETE CASCADE,'
            " article_id bigint NOT NULL, tf integer NOT NULL, length integer NOT NULL, PRIMARY KEY (term, passage))"
        )
        rows = [(term, int(r["passage"]), int(r["article"]), int(r["tf"]), int(r["length"]))
                for term, data in con.execute("SELECT term, data FROM term_postings", binary=True).fetchall()
                for r in np.frombuffer(data, dtype=POSTING)]
        with con.cursor() as cur, cur.copy("COPY postings FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        con.execute("DROP TABLE passage_terms")
        con.execute("DROP TABLE term_postings")
        con.execute("UPDATE bron_meta SET value = '4' WHERE key = 'schema'")
    with pytest.raises(DataDirError, match=f"schema 4, this Bron needs {SCHEMA_VERSION}"):
        Library.open(tmp_path / "again", pg_config(pg_dsn), encoders=encoders)
    assert upgrade(pg_dsn) == (4, SCHEMA_VERSION)
    upgraded = Library.open(tmp_path / "again", pg_config(pg_dsn), encoders=encoders)
    after = [upgraded.view.lexical_search(q, 10) for q in questions]
    assert [list(a) for a in after] == [list(b) for b in before]
    for a, b in zip(after, before):
        assert list(a.values()) == pytest.approx(list(b.values()), rel=1e-9)
    victim = next(iter(after[0]))
    upgraded.remove([upgraded.view.chunk(victim).article_id])
    db = upgraded.store.db
    assert db.query("SELECT COALESCE(sum(df), 0) FROM terms")[0][0] == db.query("SELECT COALESCE(sum(n), 0) FROM term_postings")[0][0]
    assert victim not in upgraded.view.lexical_search(questions[0], 10)
    upgraded.store.db.close()
