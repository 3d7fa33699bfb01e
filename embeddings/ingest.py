"""What an ingest changes: which documents are new, changed or gone, and their split and vectors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings.chunking import chunk_text, paragraphs, sentences as sentence_spans
from embeddings.documents import Document
from embeddings.loaders import LoadError, display_path, find_files, load_file
from embeddings.lexical import tokenize
from embeddings.storage.store import Fresh

Progress = Callable[[int, int], None]
ARTICLE_LEAD_CHARS = 1000
# Texts per encoder call (the progress bar moves per call).
BATCH = 64


class Encoder:  # pragma: no cover - protocol for type hints only
    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class Plan:
    """What an ingest will change."""

    add: list[Document]
    update: list[tuple[int, Document]]
    remove: list[int]
    unchanged: int
    skipped: list[tuple[str, str]]


def read_documents(paths: Sequence[Path]) -> tuple[list[Document], list[tuple[str, str]], list[Path]]:
    """Load every article under ``paths``: (documents, skipped (where, why), folders/files scanned)."""
    docs: list[Document] = []
    skipped: list[tuple[str, str]] = []
    roots = [Path(p).expanduser().resolve() for p in paths]
    for root in roots:
        if not root.exists():
            skipped.append((display_path(root), "no such file or folder"))
            continue
        for file in find_files(root, unreadable=skipped):
            for item in load_file(file):
                if isinstance(item, LoadError):
                    skipped.append((display_path(file), str(item)))
                else:
                    docs.append(item)
    return docs, skipped, roots


def _under(origin: str, root: Path) -> bool:
    origin_path = Path(origin)
    return origin_path == root or root in origin_path.parents


def plan(library_db, docs: list[Document], scanned: list[Path], skipped: list[tuple[str, str]]) -> Plan:
    """Compare documents with the stored articles: new keys are added, changed hashes updated, and
    articles whose file vanished from a scanned folder (or a file named that no longer exists) removed.

    ``library_db`` is the library's :class:`~embeddings.storage.database.Database`; only the
    documents' keys and the scanned folders are looked up, never the whole library.
    """
    seen: dict[str, Document] = {}
    replaced: list[tuple[str, str]] = []
    for doc in docs:
        earlier = seen.get(doc.key)
        # Two different articles under one key (a JSONL file reusing an id) cannot both be kept; the
        # left-out one is reported, or it would vanish without a word. The same file given twice
        # yields identical copies: nothing to say.
        if earlier is not None and earlier.content_hash != doc.content_hash:
            ident = doc.extra.get("id") or doc.key
            replaced.append(
                (doc.origin or doc.key, f"{earlier.title!r} and {doc.title!r} have the same id {ident!r}; only the later one was kept (give each article its own id)")
            )
        seen[doc.key] = doc  # a later copy of the same key wins
    stored = library_db.by_keys(list(seen))
    add = [d for k, d in seen.items() if k not in stored]
    update = [(stored[k][0], d) for k, d in seen.items() if k in stored and stored[k][1] != d.content_hash]
    unchanged = sum(1 for k, d in seen.items() if k in stored and stored[k][1] == d.content_hash)
    # Only unreadable sources count as failed (their articles stay); a replaced duplicate was read.
    failed = {where for where, _ in skipped if Path(where).exists()}
    skipped = [*skipped, *replaced]
    remove: dict[int, None] = {}
    for root in scanned:
        for article_id, key, origin in library_db.under(str(root)):
            # An unreadable file keeps its last good version.
            if key not in seen and origin not in failed and _under(origin, root):
                remove[article_id] = None
    return Plan(add, update, list(remove), unchanged, skipped)


def _split(doc: Document, max_chars: int, overlap: int) -> tuple[list[tuple[int, int]], list[tuple[int, int, int, int]]]:
    """Sentence spans and chunk rows (start, end, first sentence, last sentence) of one article."""
    sents = [s for para in paragraphs(doc.text) for s in sentence_spans(doc.text, *para)]
    index = {span: i for i, span in enumerate(sents)}
    chunks = []
    for chunk in chunk_text(doc.text, max_chars, overlap):
        ids = [index[s] for s in chunk.sentences if s in index]
        first, last = (min(ids), max(ids)) if ids else (0, -1)
        chunks.append((chunk.start, chunk.end, first, last))
    return sents, chunks


def prepare(
    items: Sequence[tuple[int | None, Document]],
    encoders: Sequence[Encoder],
    sentence_encoder: Encoder,
    max_chars: int,
    overlap: int,
    progress: Progress | None = None,
) -> list[Fresh]:
    """Split and embed new (id None) and changed articles: passage vectors for every encoder,
    sentence and title-and-lead vectors for the main one, keyword tokens for BM25."""
    split = [(_split(doc, max_chars, overlap), doc) for _, doc in items]
    chunk_texts = [doc.text[s:e] for (_, rows), doc in split for s, e, _, _ in rows]
    sentence_texts = [doc.text[s:e] for (spans, _), doc in split for s, e in spans]
    # Article vectors stay the embedded title and lead: cheaper stand-ins built from the passage
    # vectors (their mean, or title plus lead passages weighted by length) cost up to 0.005 of
    # evidence hit@1/@5 and ~0.02 of answered_hit@3 on newsqa-dev (README, "Models").
    article_texts = [f"{doc.title}. {doc.text[:ARTICLE_LEAD_CHARS]}" for _, doc in items]
    total = len(chunk_texts) * len(encoders) + len(sentence_texts) + len(article_texts)
    done = 0

    def embed(encoder: Encoder, texts: list[str]) -> np.ndarray:
        nonlocal done
        parts = []
        for i in range(0, len(texts), BATCH):
            parts.append(encoder.encode(texts[i : i + BATCH]))
            done += len(texts[i : i + BATCH])
            if progress:
                progress(done, total)
        return np.concatenate(parts).astype("float32") if parts else np.zeros((0, encoder.dim), dtype="float32")

    # The title is not embedded with the passage: on newsqa-dev it cost 4-6 points of hit@3.
    chunk_vectors = {e.name: embed(e, chunk_texts) for e in encoders}
    sentence_vectors = embed(sentence_encoder, sentence_texts)
    article_vectors = embed(sentence_encoder, article_texts)
    out: list[Fresh] = []
    c = s = 0
    for i, ((spans, rows), doc) in enumerate(split):
        out.append(
            Fresh(
                items[i][0], doc, spans, rows,
                # What BM25 sees: the passage preceded by its article's title.
                [tokenize(f"{doc.title}. {doc.text[a:b]}") for a, b, _, _ in rows],
                {name: v[c : c + len(rows)] for name, v in chunk_vectors.items()},
                sentence_vectors[s : s + len(spans)], article_vectors[i],
            )
        )
        c += len(rows)
        s += len(spans)
    return out
