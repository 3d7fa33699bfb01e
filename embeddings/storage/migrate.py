"""Convert a data directory of whole-index snapshots (CURRENT + gen-N/) into the segment layout.

Nothing is re-embedded: the newest snapshot that loads becomes the first segment, article ids kept.
The new database is renamed into place last, so a crash (kill -9) during migration leaves the old
snapshots untouched and the next start migrates again; only after that rename are they deleted.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path


from embeddings.documents import Document, text_fingerprint
from embeddings.lexical import tokenize
from embeddings.storage.legacy import GENERATION, SnapshotError, current_name, generations, read_snapshot
from embeddings.storage.store import Fresh, Store, StoreError, _segment_data, now_iso, segment_name
from embeddings.storage.database import Database
from embeddings.storage.segment import write_segment

log = logging.getLogger(__name__)


def legacy_layout(data_dir: Path) -> bool:
    """True when ``data_dir`` holds old snapshots and no library database yet."""
    return not Store.exists(data_dir) and ((data_dir / "CURRENT").exists() or bool(generations(data_dir)))


def migrate(data_dir: Path) -> int:
    """Migrate the old snapshots of ``data_dir``; returns the number of articles carried over.

    Raises :class:`StoreError` when old snapshots exist but none loads.
    """
    names = [n for n in [current_name(data_dir)] if n] + [g for g in generations(data_dir) if g != current_name(data_dir)]
    data, used, problems = None, None, []
    for name in names:
        try:
            data, used = read_snapshot(data_dir, name), name
            break
        except SnapshotError as err:
            problems.append(str(err))
    if data is None:
        if names:
            raise StoreError(f"data dir {data_dir}: no old snapshot loads ({'; '.join(problems)[:400]})")
        Store.create(data_dir)
        _remove_old(data_dir)
        return 0
    log.warning("data dir %s: converting snapshot %s (%d articles) to the segment layout; nothing is re-embedded",
                data_dir, used, len(data.articles))
    manifest = data.manifest
    main = str(manifest.get("sentence_encoder", ""))
    articles = {a.id: a for a in data.articles}
    article_rows = {a.id: i for i, a in enumerate(data.articles)}
    by_article: dict[int, list[int]] = {}
    for chunk in data.chunks:
        by_article.setdefault(chunk.article_id, []).append(chunk.id)
    sentences: dict[int, list[int]] = {}
    for s in data.sentences:
        sentences.setdefault(s.article_id, []).append(s.id)
    fresh: list[Fresh] = []
    for a in data.articles:
        sids = sentences.get(a.id, [])
        local = {sid: i for i, sid in enumerate(sids)}
        cids = by_article.get(a.id, [])
        rows = []
        for cid in cids:
            c = data.chunks[cid]
            first, last = local.get(c.first_sentence, 0), local.get(c.last_sentence, -1)
            rows.append((c.start, c.end, first, last))
        doc = Document(a.key, a.title, a.text, a.outlet, a.date, a.url, a.language, a.origin)
        fresh.append(Fresh(
            a.id, doc, [(data.sentences[i].start, data.sentences[i].end) for i in sids], rows,
            [tokenize(f"{a.title}. {a.text[c.start:c.end]}") for c in (data.chunks[i] for i in cids)],
            {enc: v[cids] for enc, v in data.chunk_vectors.items()},
            data.sentence_vectors[sids], data.article_vectors[article_rows[a.id]],
        ))

    def fill(db_path: Path, segments_dir: Path) -> None:
        shutil.rmtree(segments_dir / segment_name(1), ignore_errors=True)  # left by a crashed migration
        con = sqlite3.connect(db_path)
        try:
            seen = now_iso()
            con.executemany(
                "INSERT INTO articles (id, key, title, outlet, date, url, language, text, hash, origin, fingerprint, first_seen)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [(a.id, a.key, a.title, a.outlet, a.date, a.url, a.language, a.text, a.hash, a.origin, text_fingerprint(a.text), seen)
                 for a in articles.values()],
            )
            con.executemany(
                "INSERT INTO placement (article_id, segment, passages, version) VALUES (?, 1, ?, 1)",
                [(a.id, len(by_article.get(a.id, []))) for a in articles.values()],
            )
            last = max([int(manifest.get("last_article_id", 0))] + list(articles))
            # Ids of removed articles are never given out again (AUTOINCREMENT continues after ``last``).
            if not con.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'articles'", (last,)).rowcount:
                con.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('articles', ?)", (last,))
            if fresh:
                seg = _segment_data(fresh, {i: f.article_id for i, f in enumerate(fresh)}, 0, 0)
                write_segment(segments_dir / segment_name(1), seg, main)
                con.execute("INSERT INTO segments VALUES (1, ?, 0)", (len(seg.chunk_article),))
                counters = {"next_chunk": len(seg.chunk_article), "next_sentence": len(seg.sentence_article), "next_segment": 2}
            else:
                counters = {}
            settings = {
                "version": 1, "encoders": list(data.chunk_vectors), "sentence_encoder": main,
                "max_chars": manifest.get("max_chars"), "overlap": manifest.get("overlap"), **counters,
            }
            Database.set_meta(con, settings)
            con.commit()
        finally:
            con.close()

    Store.create(data_dir, fill)
    _remove_old(data_dir)
    return len(articles)


def finish(data_dir: Path) -> None:
    """Delete old snapshots a migration left behind (it was killed after its database went live)."""
    if Store.exists(data_dir) and ((data_dir / "CURRENT").exists() or generations(data_dir)):
        _remove_old(data_dir)


def _remove_old(data_dir: Path) -> None:
    for path in data_dir.iterdir():
        if GENERATION.fullmatch(path.name) or (path.name.startswith("tmp-") and path.is_dir()):
            shutil.rmtree(path, ignore_errors=True)
    for name in ("CURRENT", "CURRENT.tmp"):
        (data_dir / name).unlink(missing_ok=True)
