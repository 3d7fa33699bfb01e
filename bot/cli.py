"""The ``bron`` command: ask, chat, ingest, feeds, eval, articles, remove, serve, doctor, matrix, db and migrate."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bot.config import Config, load_config
from bot.errors import BronError, ConfigError
from bot.logs import setup_logging

TERMINAL_LIMIT = 1_000_000


def default_data_dir() -> Path:
    """``$BRON_DATA_DIR``, else the user's data directory (e.g. ~/.local/share/bron)."""
    from platformdirs import user_data_dir

    return Path(os.environ.get("BRON_DATA_DIR") or user_data_dir("bron"))


def data_dir_of(args: argparse.Namespace, config: Config) -> Path:
    """--data-dir, then BRON_DATA_DIR / config data_dir, then the platform default."""
    if args.data_dir:
        return Path(args.data_dir).expanduser()
    if config.data_dir:
        return config.resolve(config.data_dir)
    return default_data_dir()


def open_bron(args: argparse.Namespace, config: Config):
    """The core on the configured data directory, built from the corpus on first use."""
    from bot.core import Bron

    return Bron.open(config, data_dir_of(args, config), progress=not args.quiet)


def _print(messages: list[str]) -> None:
    print("\n\n".join(messages))


def _error_text(err: BronError, lang: str) -> str:
    from bot.render import render_error

    return render_error(err.key, lang, "text", **err.params)


def _empty_index_text(bron, lang: str) -> str:
    """Why nothing can be answered yet, and the command that fixes it."""
    from bot.texts import t

    return t("empty_index", lang, data_dir=bron.library.data_dir)


def cmd_ask(args: argparse.Namespace, config: Config) -> int:
    from bot.render import render_answer, render_more
    from embeddings.language import detect_language

    question = " ".join(args.question)
    bron = open_bron(args, config)
    if bron.library.is_empty():
        print(_empty_index_text(bron, detect_language(question, config.answer.language_fallback)), file=sys.stderr)
        return 1
    try:
        answer = bron.answer(question, "cli", since=args.since, until=args.until, outlets=args.outlet or ())
    except BronError as err:
        print(_error_text(err, detect_language(question, config.answer.language_fallback)), file=sys.stderr)
        return 2
    if args.more:
        more = bron.more("cli")
        _print(render_more(more, more.language, "text", TERMINAL_LIMIT))
    else:
        hint = "bron ask --more …" if answer.more else ""
        _print(render_answer(answer, answer.language, "text", TERMINAL_LIMIT, more_hint=hint))
    return 0


def cmd_chat(args: argparse.Namespace, config: Config) -> int:
    from bot.chat import ChatSession

    bron = open_bron(args, config)
    session = ChatSession(bron, conversation="cli", prefix="/")
    if hasattr(sys.stdin, "reconfigure"):
        sys.stdin.reconfigure(errors="replace")  # a stray non-UTF-8 byte is a typo, not the end of the session
    print(session.welcome())
    if bron.library.is_empty():
        print(_empty_index_text(bron, session.language))
    while True:
        try:
            line = input("> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if line.strip() in ("/quit", "/exit"):
            return 0
        reply = session.handle(line)
        if reply:
            _print(reply)


def _print_report(report) -> None:
    print(
        f"added {len(report.added)}, updated {len(report.updated)}, removed {len(report.removed)}, "
        f"unchanged {report.unchanged}, skipped {len(report.skipped)}"
    )
    for where, why in report.skipped:
        print(f"  skipped {where}: {why}")


def cmd_ingest(args: argparse.Namespace, config: Config) -> int:
    from bot.models import IngestReport
    from embeddings.web import is_web_address

    bron = open_bron(args, config)
    urls = [p for p in args.paths if is_web_address(p)]
    paths = [Path(p) for p in args.paths if not is_web_address(p)]
    report = bron.ingest(paths, progress=not args.quiet) if paths else IngestReport()
    if urls:
        report = report.merged(bron.ingest_urls(urls, progress=not args.quiet))
    _print_report(report)
    return 1 if report.skipped and not report.changed and not report.unchanged else 0


def cmd_feeds(args: argparse.Namespace, config: Config) -> int:
    from bot.errors import FetchFailed
    from embeddings.feeds import FeedError

    bron = open_bron(args, config)
    try:
        if args.action == "add":
            info = bron.add_feed(args.url)
            print(f"added feed {info.url}" + (f" ({info.title})" if info.title else ""))
        elif args.action == "remove":
            if not bron.remove_feed(args.url):
                print(f"bron: {args.url} is not in the feed list", file=sys.stderr)
                return 1
            print(f"removed feed {args.url} (its articles stay; `bron remove` drops an article)")
        elif args.action == "list":
            for f in bron.feeds():
                where = "config" if f.from_config else "added"
                status = f"error: {f.last_error}" if f.last_error else f"last poll {f.last_poll or 'never'}"
                print(f"{f.url}\t{f.title or '-'}\t{where}\t{f.items_seen} articles\t{status}")
        elif args.every:
            return _poll_every(bron, args.every)
        else:
            poll = bron.poll_feeds(progress=not args.quiet)
            print(f"polled {len(poll.feeds)} feeds: {poll.fetched} new or changed items, {poll.seen_before} seen before")
            _print_report(poll.report)
    except FetchFailed as err:
        print(f"bron: {err.params['url']}: {err.params['reason']}", file=sys.stderr)
        return 1
    except FeedError as err:
        print(f"bron: {err}", file=sys.stderr)
        return 1
    return 0


def _poll_every(bron, minutes: float) -> int:
    """`bron feeds poll --every MINUTES`: a feed poller service, until SIGTERM or SIGINT. With the
    postgres backend any number may run: the one holding the poller's lock polls, another takes over
    when it dies."""
    import asyncio
    import signal

    from bot.core import CoreFeeds
    from embeddings.feeds import poll_every

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await poll_every(CoreFeeds(bron), minutes, stop)  # type: ignore[arg-type]

    asyncio.run(run())
    return 0


def cmd_articles(args: argparse.Namespace, config: Config) -> int:
    import datetime as dt

    from bot.scope import NEWS, Scope

    bron = open_bron(args, config)
    articles = bron.library.articles()
    if args.since or args.until or args.outlet:
        scope = Scope(args.since or dt.date.min, args.until or dt.date.max, NEWS, tuple(args.outlet or ()))
        articles = [a for a in articles if scope.admits(a.date, a.outlet)]
    if args.sort == "date":
        articles.sort(key=lambda a: a.date or "", reverse=True)
    elif args.sort == "outlet":
        articles.sort(key=lambda a: ((a.outlet or "").lower(), a.id))
    for a in articles:
        print(f"{a.id}\t{a.title}\t{a.outlet or '-'}\t{a.date or '-'}\t{a.chunks} chunks")
    return 0


def cmd_repair(args: argparse.Namespace, config: Config) -> int:
    bron = open_bron(args, config)
    done = bron.library.repair(progress=not args.quiet)
    print(f"re-embedded {done} article(s)" if done else "no damaged segment")
    return 0


def cmd_compact(args: argparse.Namespace, config: Config) -> int:
    bron = open_bron(args, config)
    before = len(bron.library.view.segments)
    bron.library.compact()
    print(f"segments: {before} -> {len(bron.library.view.segments)}")
    return 0


def cmd_remove(args: argparse.Namespace, config: Config) -> int:
    bron = open_bron(args, config)
    try:
        article = bron.remove(args.ref)
    except BronError as err:
        print(_error_text(err, "en"), file=sys.stderr)
        return 2
    print(f"removed [{article.id}] {article.title}")
    return 0


def cmd_eval(args: argparse.Namespace, config: Config) -> int:
    from bot.evaluate import evaluate

    if config.storage.backend == "postgres":
        # The eval ingests its articles into the library: never into a shared database that holds others.
        from embeddings.storage.postgres import PgStore, redact

        store = PgStore(config.storage.dsn)
        try:
            store.check()
            held = store.db.count()
        except Exception as exc:  # StoreError or a driver error: say which key to fix
            raise ConfigError(f"config key storage.dsn: {exc}") from None
        finally:
            store.db.close()
        if held:
            print(f"bron: the database {redact(config.storage.dsn)} already holds {held} articles; `bron eval` with the "
                  f"postgres backend needs an empty one (createdb, then `bron db upgrade`)", file=sys.stderr)
            return 2
    result = evaluate(Path(args.dir), config, work_dir=Path(args.data_dir) if args.data_dir else None, cross_validate=args.cv, dated=args.dated)
    print(json.dumps(result))
    return 0


def cmd_calibrate(args: argparse.Namespace, config: Config) -> int:
    from bot.calibration import calibrate

    out = Path(args.out)
    if not 0 < args.false_abstain < 1:
        print("bron: --false-abstain must be between 0 and 1, e.g. 0.035", file=sys.stderr)
        return 2
    figures = calibrate(Path(args.dir), config, out, work_dir=Path(args.data_dir) if args.data_dir else None, progress=not args.quiet, false_abstain=args.false_abstain)
    print(json.dumps(figures))
    print(f"wrote {out}; use it with `answer: {{model: {out.resolve()}}}` in config.yaml (or BRON_ANSWER_MODEL)", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    import signal

    from bot.ops import Ops, start_server, warm_up

    if args.platform == "telegram":
        from bot.telegram_bot import check_config, run
    else:
        from bot.matrix_bot import check_config, run
    data_dir = data_dir_of(args, config)
    check_config(config, data_dir)
    ops = Ops(drain_seconds=config.ops.drain_seconds)
    try:
        server = start_server(config.ops.listen, ops)
    except OSError as err:
        raise ConfigError(
            f"config key ops.listen: cannot listen on {config.ops.listen} ({err.strerror or err}). Pick a free "
            'port, or set it to "" to turn the ops endpoints off (BRON_OPS_LISTEN).'
        ) from None
    # A stop while the models load ends the process at once and cleanly; once the bot runs, its
    # event loop takes SIGTERM over and lets answers in flight finish.
    signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        ops.readiness.waiting("loading the models and the index")
        bron = open_bron(args, config)
        warm_up(bron)
        ops.metrics.watch_index(lambda: bron.library.view, bron.library.data_dir)
        run(config, bron, data_dir, ops)
    finally:
        if server:
            server.stop()
    return 0


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_doctor(args: argparse.Namespace, config: Config) -> int:
    from bot.doctor import diagnose, platforms_of, report

    print(f"bron {_version()}, config {config.base_dir}")
    return report(diagnose(config, data_dir_of(args, config), platforms_of(config, args.platform)))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bron")
    except PackageNotFoundError:  # run from a checkout without pip install
        from bot import __version__

        return __version__


def cmd_matrix(args: argparse.Namespace, config: Config) -> int:
    from bot.matrix_status import recovery_key_text, status_text

    data_dir = data_dir_of(args, config)
    print(status_text(data_dir) if args.action == "status" else recovery_key_text(data_dir))
    return 0


def _postgres_dsn(config: Config) -> str:
    """storage.dsn, or a ConfigError naming the key when it is not set."""
    if not config.storage.dsn:
        raise ConfigError(
            "config key storage.dsn: not set; `bron db` and `bron migrate` need the PostgreSQL database. Set "
            "BRON_STORAGE_DSN (e.g. postgresql://bron@db.example/bron) or storage.dsn_file."
        )
    return config.storage.dsn


def cmd_db(args: argparse.Namespace, config: Config) -> int:
    from embeddings.storage.postgres import SCHEMA_VERSION, PgStoreError, redact, schema_version, upgrade

    import psycopg

    dsn = _postgres_dsn(config)
    try:
        if args.action == "status":
            with psycopg.connect(dsn, connect_timeout=10) as con:
                have = schema_version(con)
            state = "no Bron schema" if have is None else f"schema {have}"
            todo = "up to date" if have == SCHEMA_VERSION else "run `bron db upgrade`"
            print(f"{redact(dsn)}: {state}; this Bron needs schema {SCHEMA_VERSION}: {todo}")
            return 0 if have == SCHEMA_VERSION else 1
        before, after = upgrade(dsn)
    except PgStoreError as err:
        print(f"bron: {err}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(f"config key storage.dsn: cannot use the database {redact(dsn)} ({text}).") from None
    if before == after:
        print(f"{redact(dsn)}: schema {after}, already up to date")
    else:
        print(f"{redact(dsn)}: schema {'(none)' if before is None else before} -> {after}")
    return 0


def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    from embeddings.library import progress_callback
    from embeddings.storage.postgres import copy_from_embedded, redact
    from embeddings.storage.store import StoreError

    import psycopg

    dsn = _postgres_dsn(config)
    source = Path(args.source).expanduser()
    try:
        totals = copy_from_embedded(source, dsn, progress_callback(not args.quiet, "Copying", "article"))
    except StoreError as err:
        print(f"bron: {err}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        print(f"bron: copying into {redact(dsn)} failed, nothing was changed ({text})", file=sys.stderr)
        return 1
    print(f"copied {totals['articles']} articles, {totals['passages']} passages, {totals['sentences']} sentences "
          f"from {source} into {redact(dsn)} (nothing re-embedded). Set storage.backend: postgres to use it.")
    from bot.follow.pg_copy import copy_follow

    try:
        follow = copy_follow(source, dsn)
    except (StoreError, psycopg.Error) as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        print(f"bron: the index was copied, the topic alerts (follow.sqlite) were not: {text}", file=sys.stderr)
        return 1
    if follow is not None:
        print(f"copied {follow['follow_subscriptions']} followed topics, {follow['follow_briefings']} briefings and "
              f"{follow['follow_outbox']} outbox messages from {source / 'follow.sqlite'}")
    return 0


def _day(text: str):
    """A YYYY-MM-DD argument as a date; argparse shows the message when it is not one."""
    import datetime as dt

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day like 2024-12-03") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-command per job."""
    parser = argparse.ArgumentParser(prog="bron", description="Answers questions about news articles by quoting them.")
    parser.add_argument("--config", help="config file (default: $BRON_CONFIG or ./config.yaml)")
    parser.add_argument("--data-dir", help="where the index lives (default: $BRON_DATA_DIR or the user data dir)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("--version", action="version", version=f"bron {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ask", help="answer one question")
    p.add_argument("question", nargs="+")
    p.add_argument("--more", action="store_true", help="show the full quotes and the other passages that came close")
    p.add_argument("--since", type=_day, help="only articles published on or after this day (YYYY-MM-DD)")
    p.add_argument("--until", type=_day, help="only articles published on or before this day (YYYY-MM-DD)")
    p.add_argument("--outlet", action="append", help="only articles of this outlet (repeat for several)")
    p.set_defaults(func=cmd_ask)
    sub.add_parser("chat", help="interactive session with the chat commands").set_defaults(func=cmd_chat)
    p = sub.add_parser("ingest", help="add or update article files (.txt .md .html .jsonl .pdf), folders or web pages (URLs)")
    p.add_argument("paths", nargs="+", metavar="PATH_OR_URL")
    p.set_defaults(func=cmd_ingest)
    p = sub.add_parser("feeds", help="RSS/Atom feeds: add, list, remove, poll")
    feeds = p.add_subparsers(dest="action", required=True)
    for action, text in (("add", "check and add a feed"), ("remove", "stop polling a feed")):
        q = feeds.add_parser(action, help=text)
        q.add_argument("url")
    feeds.add_parser("list", help="list the feeds and their status")
    q = feeds.add_parser("poll", help="fetch the feeds and ingest their new and changed articles")
    q.add_argument("--every", type=float, metavar="MINUTES",
                   help="keep polling every MINUTES until stopped (postgres: only one such process polls at a time)")
    p.set_defaults(func=cmd_feeds)
    p = sub.add_parser("articles", help="list indexed articles")
    p.add_argument("--since", type=_day, help="published on or after this day (YYYY-MM-DD)")
    p.add_argument("--until", type=_day, help="published on or before this day (YYYY-MM-DD)")
    p.add_argument("--outlet", action="append", help="of this outlet (repeat for several)")
    p.add_argument("--sort", choices=["id", "date", "outlet"], default="id", help="order: by number (default), newest first, or by outlet")
    p.set_defaults(func=cmd_articles)
    p = sub.add_parser("remove", help="remove an article by number or title words")
    p.add_argument("ref")
    p.set_defaults(func=cmd_remove)
    p = sub.add_parser("repair", help="re-embed the articles of damaged index segments from their stored texts")
    p.set_defaults(func=cmd_repair)
    p = sub.add_parser("compact", help="merge the index's segments now")
    p.set_defaults(func=cmd_compact)
    p = sub.add_parser("eval", help="score answers and retrieval on a folder in the newsqa-dev format")
    p.add_argument("dir")
    cv = p.add_mutually_exclusive_group()
    cv.add_argument("--cv", dest="cv", action="store_true", default=None, help="refit the answerability model per fold of articles (default: when it was fitted on DIR)")
    cv.add_argument("--no-cv", dest="cv", action="store_false", help="use the configured answerability model as it is")
    p.add_argument("--no-dated", dest="dated", action="store_false", help="skip the questions limited to a period or outlet and the 'latest' questions")
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("calibrate", help="fit the answerability model on a folder in the newsqa-dev format")
    p.add_argument("dir")
    p.add_argument("--out", default="answerability.json", help="where to write the model (default: ./answerability.json)")
    p.add_argument("--false-abstain", type=float, default=0.035, help="share of answerable questions that may be declined (default 0.035)")
    p.set_defaults(func=cmd_calibrate)
    p = sub.add_parser("serve", help="run a chat bot")
    p.add_argument("platform", choices=["telegram", "matrix"])
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("doctor", help="check config, data dir, models, index and the chat platform; say how to fix")
    p.add_argument("platform", nargs="?", choices=["telegram", "matrix"], help="default: every configured one")
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("db", help="the PostgreSQL backend's schema: status, upgrade (storage.dsn)")
    p.add_argument("action", choices=["status", "upgrade"])
    p.set_defaults(func=cmd_db)
    p = sub.add_parser("migrate", help="copy an embedded index into the PostgreSQL database without re-embedding")
    p.add_argument("--from", dest="source", required=True, metavar="DATA_DIR", help="the embedded data dir to copy")
    p.add_argument("--to", dest="target", required=True, choices=["postgres"], help="the database of storage.dsn")
    p.set_defaults(func=cmd_migrate)
    p = sub.add_parser("matrix", help="the Matrix bot's device, cross-signing, backup and rooms; its recovery key")
    p.add_argument("action", choices=["status", "recovery-key"])
    p.set_defaults(func=cmd_matrix)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bron`` command."""
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(f"bron: {err}", file=sys.stderr)
        return 78
    level = ("DEBUG" if args.verbose > 1 else "INFO") if args.verbose else config.logging.level
    setup_logging(level, config.logging.format)
    try:
        return args.func(args, config)
    except ConfigError as err:
        print(f"bron: {err}", file=sys.stderr)
        return 78
    except BronError as err:
        # e.g. an ingest that could not be saved: the message says what still works and what to do.
        print(f"bron: {_error_text(err, 'en')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
