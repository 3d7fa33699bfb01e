"""How long a merge holds SQLite's write lock to swap in its segment, and how long the schema upgrade takes.

usage:
    python benchmarks/merge_transaction.py COPY_OF_LIBRARY.sqlite [--segments 50] [--segments 34,38,42,46,50,86]
        [--runs 3] [--upgrade]

Works on a *copy* of a library database (it writes to it). For each set of ``--segments`` it runs
the second transaction of ``Store.merge`` (live passage count, registration of the merged segment,
the moved articles' new segment and version, the old segments unregistered, the version counter)
as the library's schema has it: schema 1 rewrites the article rows, schema 2 the placement rows.
The figures are the medians over ``--runs`` of the wall and CPU time from BEGIN IMMEDIATE to the
end of COMMIT (synchronous=FULL as Bron runs it): the time ingests wait. Automatic checkpoints are
off while timing (a checkpoint runs after the lock is released); after each run the previous state
is written back and the WAL checkpointed, untimed. ``--upgrade`` then upgrades a schema-1 copy to
schema 2 as ``Library.open`` does, timed, and times the merge transaction again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sqlite3
import time
from pathlib import Path

from embeddings.storage.database import Database


def schema(con: sqlite3.Connection) -> int:
    """The library's schema version."""
    return int(json.loads(con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]))


def merge_once(con: sqlite3.Connection, numbers: list[int]) -> tuple[float, float, int]:
    """One merge's second transaction, committed and then undone; (wall s, CPU s, articles moved)."""
    marks = ",".join("?" * len(numbers))
    table, key = ("placement", "article_id") if schema(con) >= 2 else ("articles", "id")
    con.execute("DROP TABLE IF EXISTS temp.saved")
    con.execute(f"CREATE TEMP TABLE saved AS SELECT {key} AS id, segment, version FROM {table} WHERE segment IN ({marks})", numbers)
    con.execute("DROP TABLE IF EXISTS temp.saved_segments")
    con.execute("CREATE TEMP TABLE saved_segments AS SELECT * FROM segments")
    con.execute("DROP TABLE IF EXISTS temp.saved_meta")
    con.execute("CREATE TEMP TABLE saved_meta AS SELECT * FROM meta")
    number = int(json.loads(con.execute("SELECT value FROM meta WHERE key = 'next_segment'").fetchone()[0]))
    (total,) = con.execute(f"SELECT SUM(passages) FROM segments WHERE number IN ({marks})", numbers).fetchone()

    wall, cpu = time.perf_counter(), time.process_time()
    con.execute("BEGIN IMMEDIATE")
    version = int(json.loads(con.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])) + 1
    (live,) = con.execute(f"SELECT COALESCE(SUM(passages), 0) FROM {table} WHERE segment IN ({marks})", numbers).fetchone()
    con.execute("INSERT INTO segments VALUES (?, ?, ?)", (number, total, total - int(live)))
    moved = con.execute(f"UPDATE {table} SET segment = ?, version = ? WHERE segment IN ({marks})", (number, version, *numbers)).rowcount
    con.execute(f"DELETE FROM segments WHERE number IN ({marks})", numbers)
    con.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (json.dumps(version),))
    con.execute("COMMIT")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

    con.execute("BEGIN IMMEDIATE")
    con.execute(f"UPDATE {table} SET segment = s.segment, version = s.version FROM temp.saved s WHERE s.id = {table}.{key}")
    con.execute("DELETE FROM segments")
    con.execute("INSERT INTO segments SELECT * FROM temp.saved_segments")
    con.execute("DELETE FROM meta")
    con.execute("INSERT INTO meta SELECT * FROM temp.saved_meta")
    con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return wall, cpu, moved


def connect(path: Path) -> sqlite3.Connection:
    """A connection set up as Bron's, without automatic checkpoints."""
    con = sqlite3.connect(path, isolation_level=None, timeout=60)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    return con


def report(path: Path, sets: list[list[int]], runs: int) -> None:
    """Time the merge transaction for each set of segments."""
    con = connect(path)
    for numbers in sets:
        results = [merge_once(con, numbers) for _ in range(runs)]
        walls, cpus = [r[0] for r in results], [r[1] for r in results]
        print(f"schema {schema(con)} segments {numbers}: {results[0][2]} articles moved; "
              f"wall {statistics.median(walls):.2f} s (runs {', '.join(f'{w:.2f}' for w in walls)}), "
              f"cpu {statistics.median(cpus):.2f} s", flush=True)
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("database", type=Path)
    parser.add_argument("--segments", action="append", default=[], help="comma-separated segment numbers merged together")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--upgrade", action="store_true")
    args = parser.parse_args()
    sets = [[int(n) for n in s.split(",")] for s in args.segments]
    if not sets:
        con = connect(args.database)
        sets = [[max(con.execute("SELECT number, passages FROM segments"), key=lambda r: r[1])[0]]]
        con.close()
    report(args.database, sets, args.runs)
    if args.upgrade:
        db = Database(args.database)
        wall, cpu = time.perf_counter(), time.process_time()
        done = db.upgrade()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        db.close()
        print(f"upgrade to schema 2: {'done' if done else 'nothing to do'} in {wall:.1f} s wall, {cpu:.1f} s cpu; "
              f"database {os.path.getsize(args.database) / 2**30:.2f} GiB", flush=True)
        report(args.database, sets, args.runs)


if __name__ == "__main__":
    main()
