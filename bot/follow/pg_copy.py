"""``bron migrate --from DATA_DIR --to postgres``, the follow part: ``<data dir>/follow.sqlite``
copied into the ``follow_*`` tables, so chats keep their topics, briefings and waiting alerts.

The index copy keeps every article id, so the articles the follower has seen (and their stories)
stay valid as they are. One transaction, into follow tables that must be empty.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bot.follow.store import FILE

# (table in follow.sqlite, table in postgres, columns): the same columns on both sides.
TABLES = (
    ("meta", "follow_meta", ("key", "value")),
    ("subscriptions", "follow_subscriptions", ("id", "chat", "topic", "language", "ui", "created")),
    ("briefings", "follow_briefings", ("chat", "at", "tz", "ui", "created", "last")),
    ("articles", "follow_articles", ("id", "story", "seen", "baseline", "shingles", "lead")),
    ("outbox", "follow_outbox", ("id", "chat", "kind", "story", "due", "subscription", "ui", "data", "created", "state",
                                 "attempts", "next_try", "sent", "ref", "error")),
)


def copy_follow(data_dir: Path, dsn: str) -> dict[str, int] | None:
    """Copy the data directory's follow.sqlite into the database ``dsn`` (upgraded, no follow state
    yet); rows copied per postgres table, or None when the data directory has no follow.sqlite.
    Raises :class:`~embeddings.storage.store.StoreError` when the database has follow state already."""
    import psycopg

    from embeddings.storage.postgres import redact
    from embeddings.storage.store import StoreError

    path = Path(data_dir) / FILE
    if not path.exists():
        return None
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    copied: dict[str, int] = {}
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as con, con.transaction():
            busy = con.execute("SELECT EXISTS (SELECT 1 FROM follow_meta) OR EXISTS (SELECT 1 FROM follow_subscriptions)"
                               " OR EXISTS (SELECT 1 FROM follow_briefings)").fetchone()[0]
            if busy:
                raise StoreError(f"PostgreSQL database {redact(dsn)} has topic alerts already; follow.sqlite was not copied")
            for table, target, columns in TABLES:
                rows = source.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY 1").fetchall()
                if target == "follow_articles":
                    rows = [(*r[:3], bool(r[3]), *r[4:]) for r in rows]  # SQLite's 0/1 as a boolean
                with con.cursor() as cur:
                    cur.executemany(
                        f"INSERT INTO {target} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})", rows
                    )
                copied[target] = len(rows)
            for target in ("follow_subscriptions", "follow_outbox"):
                # Ids given explicitly: the identity continues after the highest one.
                con.execute(
                    f"SELECT setval(pg_get_serial_sequence('{target}', 'id'), COALESCE((SELECT max(id) FROM {target}), 0) + 1, false)"
                )
    finally:
        source.close()
    return copied
