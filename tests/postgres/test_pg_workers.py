"""Stateless bot workers: two ``bron serve telegram`` webhook processes on one PostgreSQL database,
behind a round-robin proxy (as nginx's upstream does it), serving one stand-in Telegram.

A question answered by one worker and ``/source`` or ``/summary`` handled by the other refer to the
same articles; an article ingested by ``bron ingest`` is answered by both within seconds; a database
restart is survived, and while the database is down the user is told so instead of left waiting.
Topics followed through either worker are alerted once when ``bron ingest`` brings a match, though
both workers send alerts."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.render import render_sources, render_summary
from bot.texts import t
from follow_support import write_articles
from service import free_port, readiness_seen, service_env, start_service, wait_exit
from standin import ANNA, BOB, BotApiStandIn
from support import REPO, SEED_QUESTION_NL

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

SECRET = "s3cret"
KAAS = ("Kaasmarkt in Alkmaar\n\nDe kaasmarkt in Alkmaar trok dit jaar veertigduizend bezoekers.\n\n"
        "De dragers droegen de kazen op berries over het Waagplein.\n")
KAAS_QUESTION = "Hoeveel bezoekers trok de kaasmarkt in Alkmaar?"


class RoundRobin:
    """A reverse proxy on 127.0.0.1 that hands each request to the next worker in turn; ``served``
    lists, per request, the index of the worker that got it."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.served: list[int] = []
        self._turn = itertools.cycle(range(len(ports)))
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        worker = next(self._turn)
        self.served.append(worker)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "x-telegram-bot-api-secret-token")}
        async with aiohttp.ClientSession() as session:
            async with session.request(request.method, f"http://127.0.0.1:{self.ports[worker]}{request.path_qs}",
                                       data=await request.read(), headers=headers) as answer:
                return web.Response(status=answer.status, body=await answer.read())


class Telegram:
    """Telegram's side of a webhook: each user message is POSTed to the proxy, as Telegram would."""

    def __init__(self, api: BotApiStandIn, proxy: RoundRobin) -> None:
        self.api, self.proxy = api, proxy
        self._ids = itertools.count(1)

    async def send(self, user: dict, text: str) -> int:
        """Deliver ``text`` from ``user``; the index of the worker the proxy gave it to."""
        message = self.api.send_text(user, text)
        self.api.updates.clear()  # made by the stand-in for long polling: unused by webhook workers
        update = {"update_id": next(self._ids), "message": message}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{self.proxy.port}/telegram", json=update,
                                    headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
                assert response.status == 200, await response.text()
        return self.proxy.served[-1]

    async def ask(self, user: dict, text: str, timeout: float = 60) -> tuple[int, str]:
        """Deliver ``text``; the worker that got it and the markup of the (first) reply."""
        before = len(self.api.sent_to(user["id"]))
        worker = await self.send(user, text)
        return worker, (await self.api.wait_sent(user["id"], after=before, timeout=timeout))[0].html


def worker_envs(api: BotApiStandIn, pg_dsn: str, tmp_path: Path, ports: list[int], ops_ports: list[int], **extra: str) -> list[dict]:
    """The environment of each webhook worker on the database (the Telegram stand-in as its Bot API)."""
    return [
        service_env(
            tmp_path / f"worker{i}", ops_ports[i], BRON_TELEGRAM_TOKEN=api.token, BRON_TELEGRAM_BASE_URL=api.base_url,
            BRON_TELEGRAM_MODE="webhook", BRON_TELEGRAM_WEBHOOK_URL="https://bron.example.org/telegram",
            BRON_TELEGRAM_WEBHOOK_PORT=str(ports[i]), BRON_TELEGRAM_WEBHOOK_SECRET=SECRET,
            BRON_STORAGE_BACKEND="postgres", BRON_STORAGE_DSN=pg_dsn, BRON_STORAGE_RETRY_SECONDS="5", **extra,
        )
        for i in range(len(ports))
    ]


@contextlib.asynccontextmanager
async def webhook_workers(pg_dsn: str, tmp_path: Path, **extra: str) -> AsyncIterator[tuple[BotApiStandIn, Telegram, list, list[dict]]]:
    """Two ready `bron serve telegram` webhook workers on the database behind a round-robin proxy, with the
    Bot API stand-in: (api, telegram, worker processes, their environments); all stopped afterwards."""
    api = BotApiStandIn()
    await api.start()
    workers, ports, ops_ports = [], [free_port(), free_port()], [free_port(), free_port()]
    proxy = RoundRobin(ports)
    envs = worker_envs(api, pg_dsn, tmp_path, ports, ops_ports, **extra)
    try:
        for env in envs:
            workers.append(await start_service("serve", "telegram", env=env))
        await asyncio.gather(*(readiness_seen(port, process) for port, process in zip(ops_ports, workers)))
        await proxy.start()
        yield api, Telegram(api, proxy), workers, envs
    finally:
        await proxy.stop()
        await stop_workers(workers)
        await api.stop()


async def stop_workers(workers: list) -> None:
    for process in workers:
        if process.returncode is None:
            process.terminate()
    for process in workers:
        try:
            await wait_exit(process, 60)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


async def test_two_webhook_workers_share_one_database(make_pg_bron, pg_dsn, pg_server, tmp_path: Path) -> None:
    bron = make_pg_bron()  # the corpus is in the database before the workers start
    async with webhook_workers(pg_dsn, tmp_path) as (api, telegram, workers, envs):
        # A question to worker 0, /source and /summary to worker 1: the same articles.
        worker, reply = await telegram.ask(ANNA, SEED_QUESTION_NL)
        assert worker == 0 and "in Turkije verbleef" in reply
        expected = bron.answer(SEED_QUESTION_NL, "expected")
        worker, sources = await telegram.ask(ANNA, "/source")
        assert worker == 1
        assert sources == render_sources(bron.sources("expected"), "nl", "html")[0]
        await telegram.send(BOB, "/source")  # worker 0: Bob asked nothing yet
        assert (await api.wait_sent(BOB["id"]))[0].text == t("no_previous_answer", "en")
        worker, summary = await telegram.ask(ANNA, "/summary")
        assert worker == 1
        assert summary == render_summary(bron.summarize(conversation="expected"), "nl", "html")[0]
        assert bron.summarize(conversation="expected").article.id == expected.articles[0].id

        # An article ingested by the CLI is answered by both workers within seconds.
        (tmp_path / "new").mkdir()
        (tmp_path / "new" / "kaas.txt").write_text(KAAS, encoding="utf-8")
        cli = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot.cli", "-q", "ingest", str(tmp_path / "new"),
                                                   env=envs[0] | {"BRON_DATA_DIR": str(tmp_path / "cli")}, cwd=REPO)
        assert await wait_exit(cli, 240) == 0
        ingested = time.monotonic()
        answered = []
        for user in (ANNA, BOB):
            worker, reply = await telegram.ask(user, KAAS_QUESTION, timeout=20)
            assert "veertigduizend" in reply
            answered.append(worker)
        assert sorted(answered) == [0, 1]
        assert time.monotonic() - ingested < 20

        # The database restarts under the workers: they reconnect and answer.
        pg_server.restart()
        for user in (ANNA, BOB):
            _, reply = await telegram.ask(user, SEED_QUESTION_NL)
            assert "in Turkije verbleef" in reply
        # Down for longer than storage.retry_seconds: the user is told, and the workers keep running.
        pg_server.stop()
        try:
            _, reply = await telegram.ask(ANNA, SEED_QUESTION_NL, timeout=30)
            assert reply == t("storage_unavailable", "nl")
        finally:
            pg_server.start()
        assert all(process.returncode is None for process in workers)
        for user in (ANNA, BOB):
            _, reply = await telegram.ask(user, KAAS_QUESTION)
            assert "veertigduizend" in reply
        worker, sources = await telegram.ask(BOB, "/source")  # the conversations outlived the restart
        assert "Kaasmarkt in Alkmaar" in sources


def alerts(api: BotApiStandIn, user: dict) -> list:
    """The topic alerts the user got (in Dutch)."""
    return [s for s in api.sent_to(user["id"]) if s.text.startswith("Nieuw over")]


async def test_a_topic_followed_through_either_worker_is_alerted_once(make_pg_bron, pg_dsn, tmp_path: Path) -> None:
    make_pg_bron()  # the corpus is in the database before the workers start
    # Both workers look for alerts to send every second.
    async with webhook_workers(pg_dsn, tmp_path, BRON_FOLLOW_CHECK_SECONDS="1") as (api, telegram, workers, envs):
        async def command(text: str) -> tuple[int, str]:
            before = len(api.sent_to(ANNA["id"]))
            worker = await telegram.send(ANNA, text)
            return worker, (await api.wait_sent(ANNA["id"], after=before))[0].text

        assert await command("/follow wolf") == (0, t("follow_added", "nl", topic="wolf"))
        worker, reply = await command("/follow storm Zeeland")
        assert worker == 1 and reply.startswith("Je volgt nu: storm Zeeland")
        worker, reply = await command("/following")
        assert worker == 0 and "1. wolf" in reply and "2. storm Zeeland" in reply
        worker, reply = await command("/unfollow 2")
        assert worker == 1 and reply == t("follow_removed", "nl", topic="storm Zeeland")

        # `bron ingest` on a third machine (its own data dir) brings a match for each topic.
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "-q", "ingest", str(write_articles(tmp_path / "new", "wolf", "storm")),
            env=envs[0] | {"BRON_DATA_DIR": str(tmp_path / "cli")}, cwd=REPO)
        assert await wait_exit(cli, 240) == 0
        await api.wait_until(ANNA["id"], lambda sent: len(alerts(api, ANNA)) >= 1, timeout=30)
        await asyncio.sleep(4)  # several rounds of both workers: nothing more comes
        assert [a.text.splitlines()[0] for a in alerts(api, ANNA)] == [t("push_header", "nl", topic="wolf")]
        assert "Wolf bijt schapen dood op de Veluwe" in alerts(api, ANNA)[0].text
