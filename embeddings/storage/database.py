"""The library database: article metadata and texts, the segment registry, counters (SQLite, WAL).

Readers never block the writer nor each other (WAL); one connection per thread. Every change of
an ingest is one transaction, together with the registration of the segment holding its vectors,
so a crash leaves either all of it or none.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from embeddings.storage.rows import ArticleRow

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
# Where each article's passages live (segment, passage count, the version that last moved it) is kept
# apart from the wide article rows, which hold the full text: a merge moves every article of its
# segments, and rewriting 125k narrow rows takes a sixth of the time of rewriting 125k article rows,
# time during which ingests wait for the write lock. Every article has exactly one placement row.
SCHEMA = """
CREATE TABLE articles (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT UNIQUE NOT NULL, title TEXT NOT NULL, outlet TEXT,
    date TEXT, url TEXT, language TEXT NOT NULL, text TEXT NOT NULL, hash TEXT NOT NULL,
    origin TEXT NOT NULL, first_seen TEXT NOT NULL, fingerprint TEXT NOT NULL
);
CREATE INDEX articles_origin ON articles(origin);
CREATE INDEX articles_date ON articles(date);
CREATE INDEX articles_outlet ON articles(outlet);
CREATE INDEX articles_fingerprint ON articles(fingerprint);
CREATE TABLE placement (
    article_id INTEGER PRIMARY KEY, segment INTEGER NOT NULL, passages INTEGER NOT NULL, version INTEGER NOT NULL
);
CREATE INDEX placement_segment ON placement(segment);
CREATE INDEX placement_version ON placement(version);
CREATE TABLE removed (article_id INTEGER NOT NULL, version INTEGER NOT NULL);
CREATE INDEX removed_version ON removed(version);
CREATE TABLE segments (number INTEGER PRIMARY KEY, passages INTEGER NOT NULL, dead INTEGER NOT NULL DEFAULT 0);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Title words ("/summary stikstof") are found through a trigram full-text index (any substring of three
# characters or more, as instr() finds it, without reading every title). Triggers keep it in step with
# the articles table, so every writer (ingest, merge, migration, an older Bron) updates it. Optional:
# a Python whose SQLite lacks FTS5 or the trigram tokenizer falls back to scanning titles.
TITLES = (
    "CREATE VIRTUAL TABLE titles USING fts5(title, content='articles', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER titles_insert AFTER INSERT ON articles BEGIN "
    "INSERT INTO titles(rowid, title) VALUES (new.id, new.title); END",
    "CREATE TRIGGER titles_delete AFTER DELETE ON articles BEGIN "
    "INSERT INTO titles(titles, rowid, title) VALUES ('delete', old.id, old.title); END",
    "CREATE TRIGGER titles_update AFTER UPDATE OF title ON articles BEGIN "
    "INSERT INTO titles(titles, rowid, title) VALUES ('delete', old.id, old.title); "
    "INSERT INTO titles(rowid, title) VALUES (new.id, new.title); END",
)
# Indexes for the article list (added to older libraries on start, see Database.ensure_indexes):
# article rows hold their text, so paging by id or by date through the table reads every row before
# the page (24 ms for page 5,000 of 100k), through these small indexes 0.4 ms.
EXTRA_INDEXES = (
    "CREATE INDEX IF NOT EXISTS articles_id ON articles(id)",
    "CREATE INDEX IF NOT EXISTS articles_recency ON articles(COALESCE(date, first_seen), id)",
)
ARTICLE_COLUMNS = "id, key, title, outlet, date, url, language, text, hash, origin, first_seen"
COUNTERS = {"schema": SCHEMA_VERSION, "version": 0, "next_chunk": 0, "next_sentence": 0, "next_segment": 1}
# Schema 1 kept segment, passages and version in the articles rows. A read-only connection to such a
# library (it cannot be upgraded) reads them through this view of the same name as the new table.
LEGACY_PLACEMENT = "CREATE TEMP VIEW placement AS SELECT id AS article_id, segment, passages, version FROM articles"


class Database:
    """Connections to ``library.sqlite`` and the queries Bron needs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._poll: sqlite3.Connection | None = None
        self._titles: bool | None = None

    @staticmethod
    def create(path: Path) -> None:
        """Write an empty database at ``path`` (not in WAL mode yet: a fresh file is renamed into place)."""
        con = sqlite3.connect(path)
        try:
            con.executescript(SCHEMA)
            con.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in COUNTERS.items()])
            for statement in EXTRA_INDEXES:
                con.execute(statement)
            con.commit()
            _add_titles(con)
        finally:
            con.close()

    def ensure_indexes(self) -> bool:
        """Add the list and title indexes to a library made before them (filled from the stored rows);
        True when the library has the title index. Needs write access."""
        con = self.connection()
        for statement in EXTRA_INDEXES:
            con.execute(statement)
        if self.has_titles():
            return True
        if not _add_titles(con):
            return False
        self._titles = None
        return self.has_titles()

    def upgrade(self) -> bool:
        """Bring a schema-1 library to the current schema; True when it did. Needs write access; the
        caller holds the writers' lock.

        One transaction (DDL is transactional in SQLite): a crash or kill -9 leaves the old schema
        or the new one, never half of each. 30-40 s per million articles (dropping a column rewrites
        every article row), and free disk of about the database's size for the WAL.
        """
        con = self.connection()
        if int(str(self.meta(con).get("schema", SCHEMA_VERSION))) >= SCHEMA_VERSION:
            return False
        if sqlite3.sqlite_version_info < (3, 35, 0):
            raise sqlite3.NotSupportedError(
                f"the upgrade needs SQLite 3.35 or newer (ALTER TABLE DROP COLUMN); this Python has {sqlite3.sqlite_version}"
            )
        try:
            # The read-only stand-in would make the columns look in use (DROP COLUMN checks temp views too).
            con.execute("DROP VIEW IF EXISTS temp.placement")
            self._local.stand_in = False
            with self.transaction() as con:
                if int(str(self.meta(con)["schema"])) >= SCHEMA_VERSION:
                    return False  # upgraded by another process since the look above
                (count,) = con.execute("SELECT COUNT(*) FROM articles").fetchone()
                log.warning("%s: upgrading the library from schema 1 to %d (%d articles; about %d s)",
                            self.path, SCHEMA_VERSION, count, 5 + count * 40 // 1_000_000)
                _placement_apart(con)
                self.set_meta(con, {"schema": SCHEMA_VERSION})
        finally:
            # Connections are opened afresh: after the upgrade the stand-in view of other threads'
            # ones would shadow the new table; after a failure this one would lack it.
            self.close()
        return True

    def has_titles(self) -> bool:
        """Whether title words are looked up in the index (else every title is read)."""
        if self._titles is None:
            row = self.connection().execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'titles'").fetchone()
            self._titles = row is not None
        return bool(self._titles)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; reads see the latest committed state)."""
        con = getattr(self._local, "con", None)
        if con is not None and getattr(self._local, "stand_in", False) and not _old_placement(con):
            # Another process upgraded the library since this connection was opened: the view
            # would now hide the placement table (and name columns that are gone).
            con.execute("DROP VIEW IF EXISTS temp.placement")
            self._local.stand_in = False
        if con is None:
            con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
            con.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk when it returns; an acknowledged ingest survives a power cut.
            con.execute("PRAGMA synchronous=FULL")
            self._local.stand_in = _old_placement(con)
            if self._local.stand_in:
                con.execute(LEGACY_PLACEMENT)
            self._local.con = con
            with self._lock:
                self._all.append(con)
        return con

    def close(self) -> None:
        """Close every connection this object opened."""
        with self._lock:
            for con in self._all:
                try:
                    con.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
            self._poll = None
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        con = self.connection()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def data_version(self) -> int:
        """Changes whenever another connection commits (cheap; polled by readers).

        Read on one connection whatever the calling thread: each connection counts for itself, so
        values read on two threads' connections cannot be compared (a change could go unseen)."""
        with self._lock:
            if self._poll is None:
                self._poll = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
                self._all.append(self._poll)
            return int(self._poll.execute("PRAGMA data_version").fetchone()[0])

    # -- meta ------------------------------------------------------------------------------------

    def meta(self, con: sqlite3.Connection | None = None) -> dict[str, object]:
        """Every meta value, decoded."""
        con = con or self.connection()
        return {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}

    @staticmethod
    def set_meta(con: sqlite3.Connection, values: dict[str, object]) -> None:
        """Store meta values (inside the caller's transaction)."""
        con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()])

    # -- articles --------------------------------------------------------------------------------

    def article(self, article_id: int) -> ArticleRow | None:
        """One article, or None."""
        row = self.connection().execute(f"SELECT {ARTICLE_COLUMNS} FROM articles WHERE id = ?", (article_id,)).fetchone()
        return ArticleRow(*row) if row else None

    def passages(self, article_ids: Iterable[int]) -> dict[int, int]:
        """Passage counts of the given articles (those that exist)."""
        ids = list(article_ids)
        out: dict[int, int] = {}
        for part in _batches(ids):
            q = f"SELECT article_id, passages FROM placement WHERE article_id IN ({','.join('?' * len(part))})"
            out.update(self.connection().execute(q, part).fetchall())
        return out

    def by_keys(self, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
        """{key: (id, hash)} of the stored articles among ``keys``."""
        out: dict[str, tuple[int, str]] = {}
        for part in _batches(list(keys)):
            q = f"SELECT key, id, hash FROM articles WHERE key IN ({','.join('?' * len(part))})"
            out.update({k: (i, h) for k, i, h in self.connection().execute(q, part)})
        return out

    def by_fingerprints(self, fingerprints: Sequence[str]) -> dict[str, tuple[int, str, str | None, str]]:
        """{fingerprint: (id, key, url, title)} of stored articles with one of these text fingerprints."""
        out: dict[str, tuple[int, str, str | None, str]] = {}
        for part in _batches(list(fingerprints)):
            q = f"SELECT fingerprint, id, key, url, title FROM articles WHERE fingerprint IN ({','.join('?' * len(part))})"
            out.update({f: (i, k, u, t) for f, i, k, u, t in self.connection().execute(q, part)})
        return out

    def keys(self) -> dict[int, str]:
        """{id: key} of every article (a full scan: evaluation and tools only)."""
        return dict(self.connection().execute("SELECT id, key FROM articles"))

    def outlets(self) -> list[str]:
        """The distinct outlet names."""
        return [r[0] for r in self.connection().execute("SELECT DISTINCT outlet FROM articles WHERE outlet IS NOT NULL")]

    def dated(self) -> list[tuple[int, str | None, str | None]]:
        """(id, date, outlet) of every article (for questions limited to a period or outlet)."""
        return self.connection().execute("SELECT id, date, outlet FROM articles").fetchall()

    def in_scope(
        self, period: tuple[str | None, str | None] | None, outlets: Sequence[str] | None, limit: int | None = None,
    ) -> list[int]:
        """Ids of the articles published in ``period`` (inclusive ISO days, None for an open end; an
        article without a date is in no period) and from one of ``outlets`` (exact names), through the
        date and outlet indexes: a question about "vorige week" must not read every article."""
        where, args = [], []
        if period is not None:
            since, until = period
            where.append("date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'")
            if since:
                where.append("date >= ?")
                args.append(since)
            if until:
                where.append("date < ?")
                args.append(day_after(until))
        if outlets is not None:
            if not outlets:
                return []
            where.append(f"outlet IN ({','.join('?' * len(outlets))})")
            args += list(outlets)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        return [r[0] for r in self.connection().execute(f"SELECT id FROM articles {clause}{tail}", args)]

    def under(self, root: str) -> list[tuple[int, str, str]]:
        """(id, key, origin) of articles read from ``root`` or a file below it (an index range scan)."""
        con = self.connection()
        rows = con.execute("SELECT id, key, origin FROM articles WHERE origin = ?", (root,)).fetchall()
        prefix = root.rstrip("/") + "/"
        # "0" follows "/" in code-point order: the range holds exactly the paths starting with prefix.
        rows += con.execute(
            "SELECT id, key, origin FROM articles WHERE origin >= ? AND origin < ?", (prefix, prefix[:-1] + "0")
        ).fetchall()
        return rows

    def set_dates(self, dates: dict[int, str | None]) -> None:
        """Change articles' publication dates, metadata only (evaluation gives a copy realistic dates).

        The version counter moves on, so open readers see the change as they see an ingest.
        """
        with self.transaction() as con:
            con.executemany("UPDATE articles SET date = ? WHERE id = ?", [(d, i) for i, d in dates.items()])
            version = int(self.meta(con)["version"]) + 1
            con.executemany("UPDATE placement SET version = ? WHERE article_id = ?", [(version, i) for i in dates])
            self.set_meta(con, {"version": version})

    def count(self) -> int:
        """Number of articles."""
        return int(self.connection().execute("SELECT COUNT(*) FROM articles").fetchone()[0])

    def live(self, since: int | None) -> tuple[list[tuple[int, int]], list[int], int, list[tuple[int, int, int]]]:
        """((article id, segment) changed after version ``since`` (all if None), ids removed after it,
        version, and the registered segments as :meth:`segments` gives them), read at one moment: a
        merge committed between two separate reads would leave articles pointing at segments the
        registry no longer lists."""
        con = self.connection()
        con.execute("BEGIN")  # one consistent read of the tables
        try:
            version = int(json.loads(con.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0]))
            if since is None:
                changed = con.execute("SELECT article_id, segment FROM placement").fetchall()
                gone: list[int] = []
            else:
                changed = con.execute("SELECT article_id, segment FROM placement WHERE version > ?", (since,)).fetchall()
                gone = [r[0] for r in con.execute("SELECT article_id FROM removed WHERE version > ?", (since,))]
            registered = con.execute("SELECT number, passages, dead FROM segments ORDER BY number").fetchall()
        finally:
            con.execute("COMMIT")
        return changed, gone, version, registered

    def segments(self) -> list[tuple[int, int, int]]:
        """(number, passages, dead passages) of every registered segment."""
        return self.connection().execute("SELECT number, passages, dead FROM segments ORDER BY number").fetchall()

    def page(
        self, offset: int, limit: int, newest_first: bool = False, since: str | None = None, until: str | None = None,
        outlets: Sequence[str] = (), title_words: Sequence[str] = (),
    ) -> list[tuple[int, str, str | None, str | None, str | None, str, int, str]]:
        """(id, title, outlet, date, url, language, passages, first_seen) of matching articles, by id or newest first."""
        where, args = [], []
        if since:
            where.append("COALESCE(date, first_seen) >= ?")
            args.append(since)
        if until:
            where.append("substr(COALESCE(date, first_seen), 1, 10) <= ?")
            args.append(until)
        if outlets:
            where.append(f"lower(outlet) IN ({','.join('?' * len(outlets))})")
            args += [o.lower() for o in outlets]
        indexed = [w for w in title_words if len(w) >= 3] if self.has_titles() else []
        if indexed:
            where.append("id IN (SELECT rowid FROM titles WHERE titles MATCH ?)")
            args.append(" AND ".join('"' + w.replace('"', '""') + '"' for w in indexed))
        for word in title_words:
            if word not in indexed:
                where.append("instr(lower(title), ?) > 0")
                args.append(word.lower())
        order = "COALESCE(date, first_seen) DESC, id DESC" if newest_first else "id"
        # A subquery rather than a join: the article list's plans (id and recency indexes) stay as they were.
        columns = "id, title, outlet, date, url, language, (SELECT passages FROM placement WHERE placement.article_id = articles.id), first_seen"
        if not where and not newest_first:
            # The page's first id from the small id index, then the rows from there.
            q = f"SELECT {columns} FROM articles WHERE id >= (SELECT id FROM articles ORDER BY id LIMIT 1 OFFSET ?) ORDER BY id LIMIT ?"
            return self.connection().execute(q, [offset, limit]).fetchall()
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        q = f"SELECT {columns} FROM articles {clause} ORDER BY {order} LIMIT ? OFFSET ?"
        return self.connection().execute(q, [*args, limit, offset]).fetchall()


def day_after(day: str) -> str:
    """The ISO day after ``day`` ("2024-12-31" -> "2025-01-01"); a string above every date for the last day."""
    try:
        return (dt.date.fromisoformat(day[:10]) + dt.timedelta(days=1)).isoformat()
    except (ValueError, OverflowError):
        return "\uffff"


def _old_placement(con: sqlite3.Connection) -> bool:
    """Whether this is a schema-1 library (placement columns still in the articles rows)."""
    return con.execute("SELECT 1 FROM pragma_table_info('articles') WHERE name = 'segment'").fetchone() is not None


def _placement_apart(con: sqlite3.Connection) -> None:
    """Schema 1 to 2, inside the caller's transaction: the placement table filled from the articles
    rows, then the columns dropped from them.

    ALTER TABLE ... DROP COLUMN (SQLite 3.35+) rather than building a new articles table: the title
    index, its triggers, the AUTOINCREMENT counter and the other indexes stay as they are, and the
    rows are rewritten in place rather than copied (a copy leaves the file twice its size).
    """
    con.execute(
        "CREATE TABLE placement (article_id INTEGER PRIMARY KEY, segment INTEGER NOT NULL, passages INTEGER NOT NULL,"
        " version INTEGER NOT NULL)"
    )
    con.execute("INSERT INTO placement SELECT id, segment, passages, version FROM articles")
    con.execute("CREATE INDEX placement_segment ON placement(segment)")
    con.execute("CREATE INDEX placement_version ON placement(version)")
    # A column cannot be dropped while an index uses it.
    con.execute("DROP INDEX IF EXISTS articles_segment")
    con.execute("DROP INDEX IF EXISTS articles_version")
    for column in ("segment", "passages", "version"):
        con.execute(f"ALTER TABLE articles DROP COLUMN {column}")


def _add_titles(con: sqlite3.Connection) -> bool:
    """Create and fill the title index in one transaction; False when this SQLite cannot."""
    try:
        con.execute("BEGIN IMMEDIATE")
        for statement in TITLES:
            con.execute(statement)
        con.execute("INSERT INTO titles(titles) VALUES ('rebuild')")
        con.execute("COMMIT")
        return True
    except sqlite3.OperationalError as exc:
        if con.in_transaction:
            con.execute("ROLLBACK")
        log.info("no title index (%s): title words are looked up by reading every title", exc)
        return False


def _batches(items: list, size: int = 500) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
