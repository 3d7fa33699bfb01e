"""State the bot workers share through the postgres backend: each conversation's last answer, so
``/source``, ``/summary`` and ``/more`` sent to another worker refer to the same articles."""

from __future__ import annotations

import psycopg
import pytest

from bot.errors import NoPreviousAnswer
from bot.memory import LocalMemory, SharedMemory, answer_from_json, answer_to_json
from support import SEED_QUESTION_NL


def test_another_worker_gives_the_same_sources_summary_and_more(make_pg_bron):
    one = make_pg_bron(name="one")
    two = make_pg_bron(name="two")
    assert isinstance(one.memory, SharedMemory)
    answer = one.answer(SEED_QUESTION_NL, "chat-7")
    assert answer.passages
    sources = two.sources("chat-7")
    assert [a.id for a in sources.articles] == [a.id for a in answer.articles]
    assert two.summarize(conversation="chat-7").article.id == answer.articles[0].id
    more = two.more("chat-7")
    assert more.question == SEED_QUESTION_NL and more.quotes == answer.passages and more.others == answer.more
    with pytest.raises(NoPreviousAnswer):
        two.sources("chat-8")  # conversations stay apart


def test_an_abstention_keeps_the_previous_sources(make_pg_bron):
    one, two = make_pg_bron(name="one"), make_pg_bron(name="two")
    answer = one.answer(SEED_QUESTION_NL, "c")
    declined = two.answer("Wie won de Tour de France van 2023?", "c")
    assert declined.abstained
    assert [a.id for a in one.sources("c").articles] == [a.id for a in answer.articles]
    assert one.more("c").question == "Wie won de Tour de France van 2023?"


def test_an_answer_survives_the_round_trip_through_json(bron):
    answer = bron.answer(SEED_QUESTION_NL, "json")
    assert answer_from_json(answer_to_json(answer)) == answer


def test_the_embedded_backend_keeps_conversations_in_the_process(bron):
    assert isinstance(bron.memory, LocalMemory)
    memory = LocalMemory(limit=2)
    for n in range(3):
        memory.remember(f"c{n}", [n])
    assert memory.articles("c0") == [] and memory.articles("c2") == [2]


def test_a_schema_1_database_is_refused_until_upgraded(pg_server, encoders, tmp_path):
    """Bron does not start on the schema before shared conversations and feeds; `bron db upgrade` adds them."""
    from bot.errors import DataDirError
    from embeddings.library import Library
    from embeddings.storage.postgres import MIGRATIONS, SCHEMA_VERSION, upgrade
    from pg_testserver import pg_config

    dsn = pg_server.create_database("bron_schema_1")
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(MIGRATIONS[1])
        con.execute("INSERT INTO bron_meta VALUES ('schema', '1')")
    with pytest.raises(DataDirError, match=f"schema 1, this Bron needs {SCHEMA_VERSION}"):
        Library.open(tmp_path / "d", pg_config(dsn), encoders=encoders)
    assert upgrade(dsn) == (1, SCHEMA_VERSION)
    library = Library.open(tmp_path / "d", pg_config(dsn), encoders=encoders)
    assert library.store.db.query("SELECT (SELECT count(*) FROM conversations) + (SELECT count(*) FROM feeds)")[0][0] == 0
    library.store.db.close()


def test_a_quote_too_improbable_to_lead_is_stored_and_read_back(make_pg_bron):
    # Its lead score is -inf, which jsonb cannot hold: storing the conversation must not fail the answer.
    import dataclasses

    one, two = make_pg_bron(name="one"), make_pg_bron(name="two")
    answer = one.answer(SEED_QUESTION_NL, "inf")
    weak = dataclasses.replace(answer.passages[0], lead_score=float("-inf"))
    one.memory.remember("inf", [a.id for a in answer.articles], dataclasses.replace(answer, more=[weak]))
    assert two.more("inf").others[0].lead_score == float("-inf")
    assert answer_from_json(answer_to_json(dataclasses.replace(answer, more=[weak]))).more == [weak]
