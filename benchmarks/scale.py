"""How the library scales: build synthetic libraries of N articles and measure what a bot feels.

usage:
    python benchmarks/scale.py build DIR --n 100000 [--articles ARTICLES.jsonl]
    python benchmarks/scale.py measure DIR [--questions QUESTIONS.jsonl] [--runs 3] [--nq 50]
    python benchmarks/scale.py all WORK --sizes 1000,10000,100000 [--runs 3]

``build`` writes a library through Bron's own store code: articles are real newsqa-dev sentences
shuffled into ~1,300-character texts, split and tokenised as an ingest does; vectors are real e5
sentence vectors of those sentences mixed with noise (so the vector search sees e5-like geometry),
committed in batches of 25,000 articles with the usual merge policy. ``measure`` runs in a fresh
process per figure and prints one JSON line per size: disk, open time (CPU and wall), RSS after
open, query p50/p95 (real e5 queries of newsqa-dev questions through Library.rank, encoding
included, CPU and wall; measured after as many other questions, whose own figures are ``first_*``),
the same questions while a background merge runs (``merging_*``, and the merge's own wall, CPU and
peak RSS; each such run adds one stand-in article to DIR), the cost of adding 1 and 100 real articles (wall, CPU beyond embedding,
bytes written, peak RSS) and an ``articles`` page. Figures are medians of ``--runs`` runs with their
range; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NEWSQA = REPO.parent / "shared" / "data" / "newsqa-dev"
BATCH = 25_000


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _real_sentences(articles: Path, cache: Path) -> tuple[list[str], np.ndarray]:
    """Every sentence of the real articles with its e5 vector (cached next to the libraries)."""
    from embeddings.documents import Document
    from embeddings.ingest import _split

    texts = []
    for a in _rows(articles):
        doc = Document(a["id"], a["title"], a["text"])
        spans, _ = _split(doc, 600, 0)
        texts += [doc.text[s:e] for s, e in spans]
    if cache.is_file():
        vectors = np.load(cache)
        if len(vectors) == len(texts):
            return texts, vectors
    from embeddings.e5 import E5Encoder

    vectors = E5Encoder().encode(texts)
    np.save(cache, vectors)
    return texts, vectors


def _noisy(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    v = base + rng.normal(0, 0.02, base.shape).astype("float32")
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype("float32")


def synthetic_article(i: int, sentences: list[str], vectors: np.ndarray, rng: np.random.Generator, pyrng: random.Random, encoder: str, chunking):
    """Synthetic article ``i`` as an ingest would store it (a ``Fresh``): 12 real sentences in five
    short paragraphs (~4.6 passages, like newsqa-dev), split and tokenised as an ingest does; each
    sentence vector a noisy copy of the real one, passages and the article averaging theirs."""
    from embeddings.documents import Document
    from embeddings.ingest import _split
    from embeddings.lexical import tokenize
    from embeddings.storage.store import Fresh

    picked = pyrng.sample(range(len(sentences)), 12)
    cuts = [0, 3, 6, 8, 10, 12]
    text = "\n\n".join(" ".join(sentences[j] for j in picked[a:b]) for a, b in zip(cuts, cuts[1:]))
    doc = Document(f"synthetic#{i}", f"Synthetisch artikel {i}", text, "Synthetisch", f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}", f"https://example.org/{i}", "nl", "synthetic")
    spans, rows = _split(doc, chunking.max_chars, chunking.overlap_sentences)
    index: dict[str, int] = {}
    for j in picked:
        index.setdefault(sentences[j], j)
    sentence_vecs = _noisy(np.stack([vectors[index.get(text[s:e], picked[0])] for s, e in spans]), rng)
    chunk_vecs = []
    for s, e, first, last in rows:
        v = sentence_vecs[first : last + 1].mean(axis=0) if last >= first else sentence_vecs[0]
        chunk_vecs.append(v / np.linalg.norm(v))
    art = sentence_vecs[:4].mean(axis=0)
    return Fresh(
        None, doc, spans, rows, [tokenize(f"{doc.title}. {doc.text[s:e]}") for s, e, _, _ in rows],
        {encoder: np.asarray(chunk_vecs, dtype="float32")}, sentence_vecs, art / np.linalg.norm(art),
    )


def build(directory: Path, n: int, articles: Path) -> None:
    """A library of ``n`` synthetic articles in ``directory``."""
    from bot.config import load_config
    from embeddings.library import Library

    directory.mkdir(parents=True, exist_ok=True)
    sentences, vectors = _real_sentences(articles, directory.parent / "e5-sentences.npy")
    config = load_config(REPO / "config.yaml", environ={})
    config.corpus.paths = []
    library = Library.open(directory, config)
    rng = np.random.default_rng(7)
    pyrng = random.Random(7)
    settings = library._settings_meta()
    cpu, wall = time.process_time(), time.perf_counter()
    done = library.count()
    while done < n:
        batch = [
            synthetic_article(i, sentences, vectors, rng, pyrng, settings["sentence_encoder"], config.chunking)
            for i in range(done, min(n, done + BATCH))
        ]
        library.store.commit(batch, [], settings)
        library.compact()  # in this process: the build measures nothing while it merges
        done += len(batch)
        print(f"built {done}/{n} articles: {time.perf_counter() - wall:.0f} s wall, {time.process_time() - cpu:.0f} s CPU", file=sys.stderr)


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _peak() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _written() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def _disk(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())


def measure_once(directory: Path, questions: Path, nq: int, what: str, articles: Path) -> dict:
    """One fresh-process measurement of ``what`` (open, query, add1, add100, page)."""
    from bot.config import load_config
    from bot.core import Bron
    from embeddings.documents import Document
    from embeddings.language import detect_language
    from embeddings.library import Library

    config = load_config(REPO / "config.yaml", environ={})
    config.corpus.paths = []
    cpu, wall = time.process_time(), time.perf_counter()
    library = Library.open(directory, config)
    library.count()
    out: dict = {"open_cpu_s": time.process_time() - cpu, "open_wall_s": time.perf_counter() - wall, "rss_after_open": _rss()}
    if what == "open":
        return out
    if what in ("query", "merging"):
        qs = _rows(questions)
        step = max(1, len(qs) // nq)
        picked = [q["question"] for q in qs[::step][:nq]]
        # A serving bot has answered other questions before: the first ones after a start pay for
        # paging in the search indexes. They are measured apart ("first"), on other questions than
        # the measured ones, so that no question is asked twice.
        warm = [q["question"] for q in qs[step // 2 :: step][:nq]] if step > 1 else []
        library.sentence_encoder.encode_query(["warm up"])

        def ask(questions: list[str]) -> tuple[list[float], list[float]]:
            cpus, walls = [], []
            for q in questions:
                language = detect_language(q, "nl")
                c, w = time.process_time(), time.perf_counter()
                library.rank(q, language, 5)
                cpus.append((time.process_time() - c) * 1000)
                walls.append((time.perf_counter() - w) * 1000)
            return cpus, walls

        merge = None
        if what == "merging":
            # One more article (stand-in vectors) leaves nine segments; its merge is started here,
            # as the ingest would start it, so that its own CPU time and memory can be read at exit.
            library._merges.start = lambda: False
            _stub_encoder(library)
            library.ingest_documents([Document(f"merge#{time.time_ns()}", "Merge", "Een zin om te beginnen. En nog een zin.", None, None, None, "", "bench")])
            merge = subprocess.Popen([sys.executable, "-m", "embeddings.storage.compact", str(directory)], cwd=REPO)
            started = time.perf_counter()
        first, _ = ask(warm)
        cpus, walls = ask(picked)
        if merge is not None:
            # Not poll(): it would reap the process, and its resource usage with it.
            out["merge_running_after_questions"] = os.waitid(os.P_PID, merge.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
            _, status, usage = os.wait4(merge.pid, 0)
            out.update(merge_wall_s=time.perf_counter() - started, merge_cpu_s=usage.ru_utime + usage.ru_stime,
                       merge_peak_rss=usage.ru_maxrss * 1024, merge_exit=status)
            merge.returncode = status  # reaped here, not by Popen
            out.update(merging_cpu_ms_p50=_pct(cpus, 50), merging_cpu_ms_p95=_pct(cpus, 95),
                       merging_wall_ms_p50=_pct(walls, 50), merging_wall_ms_p95=_pct(walls, 95))
            return out
        out.update(query_cpu_ms_p50=_pct(cpus, 50), query_cpu_ms_p95=_pct(cpus, 95), query_wall_ms_p50=_pct(walls, 50),
                   query_wall_ms_p95=_pct(walls, 95), first_cpu_ms_p50=_pct(first, 50), first_cpu_ms_p95=_pct(first, 95),
                   rss_after_queries=_rss())
        return out
    if what.startswith("add"):
        count = int(what[3:])
        rows = _rows(articles)
        stamp = time.time_ns()
        docs = [Document(f"real#{stamp}-{i}", a["title"], a["text"], a.get("source"), a.get("date"), None, "", "bench")
                for i, a in enumerate(rows[:count] if count <= len(rows) else (rows * (count // len(rows) + 1))[:count])]
        encoder = library.sentence_encoder
        encoder.encode(["warm up"])
        embed = [0.0, 0.0]
        original = encoder.encode

        def timed(texts: list[str]) -> np.ndarray:
            c, w = time.process_time(), time.perf_counter()
            result = original(texts)
            embed[0] += time.process_time() - c
            embed[1] += time.perf_counter() - w
            return result

        if count > 1:
            # 100 real articles take minutes of e5 on this machine; what is measured here is the
            # storage work, so their vectors are stand-ins (reported as embed_stubbed).
            original = _stub_vectors(encoder.dim)
            out["embed_stubbed"] = True
        encoder.encode = timed
        Path("/proc/self/clear_refs").write_text("5")
        written = _written()
        c, w = time.process_time(), time.perf_counter()
        library.ingest_documents(docs)
        cpu_s, wall_s = time.process_time() - c, time.perf_counter() - w
        out.update({
            f"add{count}_wall_s": wall_s, f"add{count}_cpu_s": cpu_s, f"add{count}_embed_cpu_s": embed[0],
            f"add{count}_beyond_embedding_wall_s": wall_s - embed[1], f"add{count}_bytes_written": _written() - written,
            f"add{count}_peak_rss": _peak(),
        })
        return out
    if what == "page":
        bron = Bron(config, library)
        c, w = time.process_time(), time.perf_counter()
        total = library.count()
        bron.articles(page=max(1, total // 20), per_page=10)
        out.update(page_wall_ms=(time.perf_counter() - w) * 1000, page_cpu_ms=(time.process_time() - c) * 1000)
        c, w = time.process_time(), time.perf_counter()
        bron.find_article(f"artikel {total // 2 + 1}")
        out.update(title_find_wall_ms=(time.perf_counter() - w) * 1000)
        return out
    raise SystemExit(f"unknown measurement {what}")


def _stub_vectors(dim: int):
    """Random unit vectors in place of an encoder's (the storage work is what is measured)."""
    def stub(texts: list[str]) -> np.ndarray:
        v = np.random.default_rng(len(texts)).normal(size=(len(texts), dim)).astype("float32")
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    return stub


def _stub_encoder(library) -> None:
    library.sentence_encoder.encode = _stub_vectors(library.sentence_encoder.dim)


def _pct(xs: list[float], q: int) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else 0.0


def measure(directory: Path, questions: Path, runs: int, nq: int, articles: Path) -> dict:
    """Each figure in fresh processes, ``runs`` times; medians with their range."""
    result: dict = {"articles": None, "disk_bytes": _disk(directory)}
    samples: dict[str, list[float]] = {}
    for what in ("open", "query", "merging", "page", "add1", "add100"):
        for _ in range(runs if what not in ("add100", "merging") else 1):
            proc = subprocess.run(
                [sys.executable, __file__, "_one", str(directory), what, "--questions", str(questions), "--nq", str(nq), "--articles", str(articles)],
                capture_output=True, text=True, cwd=REPO, env=dict(os.environ, HF_HUB_OFFLINE="1"),
            )
            if proc.returncode:
                raise SystemExit(proc.stderr[-2000:])
            for key, value in json.loads(proc.stdout.strip().splitlines()[-1]).items():
                if what != "open" and key in ("open_cpu_s", "open_wall_s", "rss_after_open"):
                    continue
                samples.setdefault(key, []).append(value)
    for key, values in samples.items():
        result[key] = {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}
    from embeddings.storage.store import Store

    store = Store(directory)
    result["articles"] = store.db.count()
    result["segments"] = len(store.db.segments())
    result["load_avg"] = os.getloadavg()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["build", "measure", "all", "_one"])
    parser.add_argument("path")
    parser.add_argument("what", nargs="?")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--nq", type=int, default=50)
    parser.add_argument("--articles", default=str(NEWSQA / "articles.jsonl"))
    parser.add_argument("--questions", default=str(NEWSQA / "questions.jsonl"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = Path(args.path)
    if args.command == "build":
        build(path, args.n, Path(args.articles))
    elif args.command == "_one":
        print(json.dumps(measure_once(path, Path(args.questions), args.nq, args.what, Path(args.articles))))
    elif args.command == "measure":
        print(json.dumps(measure(path, Path(args.questions), args.runs, args.nq, Path(args.articles))))
    else:
        for n in [int(s) for s in args.sizes.split(",")]:
            target = path / f"lib-{n}"
            build(target, n, Path(args.articles))
            print(json.dumps({"n": n, **measure(target, Path(args.questions), args.runs, args.nq, Path(args.articles))}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
