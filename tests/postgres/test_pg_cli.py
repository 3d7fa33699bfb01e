"""`bron db upgrade|status`, `bron migrate --from DATA_DIR --to postgres`, and the storage config keys."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from bot.cli import main
from embeddings.storage.postgres import SCHEMA_VERSION
from pg_testserver import pg_config
from support import REPO, SEED_QUESTION_NL


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text((REPO / "config.yaml").read_text(encoding="utf-8").replace("paths: [corpus]", f"paths: [{REPO / 'corpus'}]"))
    return path


def test_db_upgrade_then_status(pg_server, config_file, monkeypatch, capsys):
    dsn = pg_server.create_database("bron_cli")
    monkeypatch.setenv("BRON_STORAGE_DSN", dsn)
    assert main(["--config", str(config_file), "db", "status"]) == 1
    assert "no Bron schema" in capsys.readouterr().out
    assert main(["--config", str(config_file), "db", "upgrade"]) == 0
    assert f"-> {SCHEMA_VERSION}" in capsys.readouterr().out
    assert main(["--config", str(config_file), "db", "upgrade"]) == 0
    assert "already up to date" in capsys.readouterr().out
    assert main(["--config", str(config_file), "db", "status"]) == 0


def test_missing_dsn_exits_78_naming_the_key(config_file, monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("BRON_STORAGE_DSN", raising=False)
    monkeypatch.setenv("BRON_STORAGE_BACKEND", "postgres")
    assert main(["--config", str(config_file), "--data-dir", str(tmp_path / "d"), "articles"]) == 78
    assert "storage.dsn" in capsys.readouterr().err
    monkeypatch.setenv("BRON_STORAGE_DSN_FILE", str(tmp_path / "missing-secret"))
    assert main(["--config", str(config_file), "articles"]) == 78
    assert "storage.dsn_file" in capsys.readouterr().err


def test_unreachable_database_exits_78(config_file, monkeypatch, capsys, tmp_path):
    from pg_testserver import free_port

    monkeypatch.setenv("BRON_STORAGE_BACKEND", "postgres")
    monkeypatch.setenv("BRON_STORAGE_DSN", f"postgresql://bron:secret@127.0.0.1:{free_port()}/bron")
    assert main(["--config", str(config_file), "--data-dir", str(tmp_path / "d"), "-q", "articles"]) == 78
    err = capsys.readouterr().err
    assert "storage.dsn" in err and "secret" not in err


def test_migrate_copies_without_reembedding(pg_dsn, config, encoders, config_file, tmp_path, monkeypatch, capsys):
    from bot.core import Bron
    from embeddings.lexical import tokenize
    from embeddings.library import Library

    data = tmp_path / "embedded"
    embedded = Bron.open(config, data, encoders=encoders)
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "kaas.txt").write_text("Kaasmarkt in Alkmaar\n\nDe kaasmarkt in Alkmaar trok dit jaar veertigduizend bezoekers.\n")
    (extra / "brug.txt").write_text("Brug in Zwolle\n\nDe brug over de IJssel gaat in maart open.\n")
    embedded.library.ingest([extra])
    (extra / "brug.txt").write_text("Brug in Zwolle\n\nDe brug over de IJssel gaat pas in oktober open.\n")
    embedded.library.ingest([extra])  # an update: its old passages stay dead in the first segment
    gone = [a.id for a in embedded.library.articles() if a.title.startswith("Kaas")]
    embedded.library.remove(gone)
    ev = embedded.library.view
    embedded.library.store.db.close()

    monkeypatch.setenv("BRON_STORAGE_DSN", pg_dsn)
    import embeddings.ingest as ingesting

    def no_embedding(*args, **kwargs):
        raise AssertionError("migrate must not embed")

    monkeypatch.setattr(ingesting, "prepare", no_embedding)
    assert main(["--config", str(config_file), "-q", "migrate", "--from", str(data), "--to", "postgres"]) == 0
    assert "copied 2 articles" in capsys.readouterr().out
    pg = Library.open(tmp_path / "pgdata", pg_config(pg_dsn), encoders=encoders)
    pv = pg.view
    assert pg.keys() == embedded.library.keys()
    assert pv.chunk_count == ev.chunk_count and pv.article_count == ev.article_count
    for question in (SEED_QUESTION_NL, "Wanneer gaat de brug in Zwolle open?"):
        tokens = tokenize(question)
        assert list(pv.lexical_search(tokens, 10)) == list(ev.lexical_search(tokens, 10))
        q = pg.sentence_encoder.encode_query([question])[0]
        assert list(pv.dense_search(q, 5)) == list(ev.dense_search(q, 5))
    for aid in pv.article_ids():
        assert [c.id for c in pv.article_chunks(int(aid))] == [c.id for c in ev.article_chunks(int(aid))]
        assert np.allclose(pv.article_vector(int(aid)), ev.article_vector(int(aid)), atol=1e-3)
    bron = Bron(pg.config, pg)
    assert "in Turkije" in " ".join(p.text for p in bron.answer(SEED_QUESTION_NL).passages)
    # a new article gets a new id, never a removed one's
    monkeypatch.undo()
    monkeypatch.setenv("BRON_STORAGE_DSN", pg_dsn)
    report = pg.ingest([extra / "kaas.txt"])
    assert report.added_ids[0] > max(gone)
    # migrating again into a database that holds articles is refused
    assert main(["--config", str(config_file), "-q", "migrate", "--from", str(data), "--to", "postgres"]) == 1
    with psycopg.connect(pg_dsn) as con:
        assert con.execute("SELECT count(*) FROM articles").fetchone()[0] == 3


def test_eval_refuses_a_database_with_articles(make_pg_bron, pg_dsn, config_file, monkeypatch, capsys):
    from support import NEWSQA

    make_pg_bron()  # the seed corpus is in the database now
    monkeypatch.setenv("BRON_STORAGE_BACKEND", "postgres")
    monkeypatch.setenv("BRON_STORAGE_DSN", pg_dsn)
    assert main(["--config", str(config_file), "-q", "eval", str(NEWSQA)]) == 2
    assert "needs an empty one" in capsys.readouterr().err


def test_doctor_checks_the_database_not_the_data_dir(make_pg_bron, pg_dsn, pg_server, config_file, monkeypatch, capsys, tmp_path):
    from embeddings.storage.postgres import redact

    make_pg_bron()  # the corpus is in the database
    monkeypatch.setenv("BRON_STORAGE_BACKEND", "postgres")
    monkeypatch.setenv("BRON_STORAGE_DSN", pg_dsn)
    argv = ["--config", str(config_file), "--data-dir", str(tmp_path / "d"), "doctor"]
    main(argv)
    assert f"ok    index in {redact(pg_dsn)}: 1 articles" in capsys.readouterr().out
    bare = pg_server.create_database("bron_doctor_bare")
    monkeypatch.setenv("BRON_STORAGE_DSN", bare)
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert f"FAIL  index in {redact(bare)}: PostgreSQL database {redact(bare)} has no Bron schema yet" in out
    assert "fix: run `bron db upgrade`" in out
