"""Ingest newsqa-dev through the web and check that extraction costs no answer quality.

The 80 newsqa-dev articles are served as full news pages (cookie banner, navigation, teasers for
other articles, footer, OpenGraph/JSON-LD) by the local test site on 127.0.0.1. They are ingested
by URL into a fresh data directory, timing fetching, extraction and embedding/indexing; then the
questions are scored as ``bron eval`` does, on the web-ingested index and on the .jsonl ingested
directly, and both metric lines are printed.

    python benchmarks/web_ingest.py [--concurrency N]

No network beyond 127.0.0.1; the models are the bundled ones.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "web")]

from bot.config import load_config  # noqa: E402
from bot.evaluate import _read_jsonl, score  # noqa: E402
from bot.logs import setup_logging  # noqa: E402
from embeddings.fetch import FetchSettings  # noqa: E402
from embeddings.library import Library  # noqa: E402
from embeddings.web import WebSources  # noqa: E402
from newsite import NEWSQA, NewsSite  # noqa: E402

METRICS = (
    "evidence_hit@1", "evidence_hit@3", "evidence_hit@3_nl", "evidence_hit@3_en", "article_hit@3", "mrr@10",
    "abstain_rate", "false_abstain_rate",
)


def _line(name: str, result: dict) -> str:
    return f"{name:<6} " + "  ".join(f"{k} {result[k]:.3f}" for k in METRICS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=None, help="fetches in flight (default: config.yaml)")
    args = parser.parse_args()
    setup_logging("ERROR")
    config = load_config(REPO / "config.yaml", environ={})
    if args.concurrency:
        config.fetch.concurrency = args.concurrency
    questions = _read_jsonl(NEWSQA / "questions.jsonl")

    with tempfile.TemporaryDirectory(prefix="bron-web-bench-") as tmp, NewsSite() as site:
        web_lib = Library.open(Path(tmp) / "web", config)
        encoders = web_lib.encoders  # model loading is not ingest work
        urls = [site.page_url(ident) for ident in site.articles]
        pages = WebSources(web_lib, FetchSettings.from_config(config.fetch))
        run = pages.ingest_urls(urls)
        pages.close()
        n = len(run.report.added)
        busy = run.fetch_s + run.extract_s + run.index_s
        print(f"web ingest: {n}/{len(urls)} articles in {run.wall_s:.1f} s = {n / run.wall_s:.2f} articles/s "
              f"(concurrency {config.fetch.concurrency}); skipped {len(run.report.skipped)}")
        print(f"time: fetch {run.fetch_s:.2f} s ({run.fetch_s / busy:.0%}), extraction {run.extract_s:.2f} s "
              f"({run.extract_s / busy:.0%}), embedding+indexing {run.index_s:.2f} s ({run.index_s / busy:.0%})"
              "  [fetch and extraction summed over worker threads]")
        for where, why in run.report.skipped:
            print(f"  skipped {where}: {why}")
        web_keys = {i: k.rsplit("/", 1)[-1].removesuffix(".html") for i, k in web_lib.keys().items()}
        web_result = score(web_lib, config, questions, web_keys)
        mismatched = _text_differences(web_lib, site)

        jsonl_lib = Library.open(Path(tmp) / "jsonl", config, encoders=encoders)
        start = time.perf_counter()
        jsonl_lib.ingest([NEWSQA / "articles.jsonl"])
        jsonl_s = time.perf_counter() - start
        jsonl_keys = {i: k.rsplit("#", 1)[-1] for i, k in jsonl_lib.keys().items()}
        jsonl_result = score(jsonl_lib, config, questions, jsonl_keys)

    print(f"jsonl ingest: {len(jsonl_keys)} articles in {jsonl_s:.1f} s = {len(jsonl_keys) / jsonl_s:.2f} articles/s")
    print(f"extracted texts differing from the .jsonl text: {len(mismatched)}" + (f" ({', '.join(mismatched)})" if mismatched else ""))
    print(_line("web", web_result))
    print(_line("jsonl", jsonl_result))
    print(json.dumps({"web": web_result, "jsonl": jsonl_result}))
    return 0


def _text_differences(library: Library, site) -> list[str]:
    """newsqa ids whose extracted text differs from the source text (whitespace ignored)."""
    out = []
    for a in (library.article_row(i) for i in library.keys()):
        ident = a.key.rsplit("/", 1)[-1].removesuffix(".html")
        if ident in site.articles and " ".join(a.text.split()) != " ".join(site.articles[ident]["text"].split()):
            out.append(ident)
    return sorted(out)


if __name__ == "__main__":
    sys.exit(main())
