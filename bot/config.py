"""Configuration: ``config.yaml`` validated into typed objects, overridable from the environment.

Any key can be overridden by an environment variable named ``BRON_<SECTION>_<KEY>`` (for example
``BRON_RETRIEVAL_TOP_K=5`` or ``BRON_TELEGRAM_BASE_URL=...``); top-level keys by ``BRON_<KEY>``.
That is how secrets get in: they never need to be in a committed file.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from bot.errors import ConfigError

# The typed sections (what config.yaml holds) live at the bottom layer, so embeddings/ can type its
# ``config`` parameters without importing bot/; this module loads and validates them, and re-exports
# them, the same classes, for the rest of bot/ and the tests.
from embeddings.settings import (  # noqa: F401
    BUNDLED_CORPUS, AnswerConfig, ChunkingConfig, Config, CorpusConfig, EmbeddingsConfig, FeedsConfig, FetchConfig,
    FollowConfig, LoggingConfig, MatrixConfig, OpsConfig, RateLimitConfig, RetrievalConfig, StorageConfig,
    SummaryConfig, TelegramConfig, bundled_corpus,
)

__all__ = [
    "BUNDLED_CORPUS", "ENV_PREFIX", "AnswerConfig", "ChunkingConfig", "Config", "ConfigError", "CorpusConfig",
    "EmbeddingsConfig", "FeedsConfig", "FetchConfig", "FollowConfig", "LoggingConfig", "MatrixConfig", "OpsConfig",
    "RateLimitConfig", "RetrievalConfig", "StorageConfig", "SummaryConfig", "TelegramConfig", "bundled_corpus",
    "load_config",
]

ENV_PREFIX = "BRON_"

log = logging.getLogger(__name__)


MULTILINGUAL = ("e5", "use")
CHOICES: dict[str, tuple[str, ...]] = {
    "telegram.mode": ("polling", "webhook"),
    "matrix.trust": ("tofu", "allowlist"),
    "logging.level": ("DEBUG", "INFO", "WARNING", "ERROR"),
    "logging.format": ("text", "json"),
    "storage.backend": ("embedded", "postgres"),
    "embeddings.e5_precision": ("auto", "int8", "float32", "bfloat16"),
}
POSITIVE = {
    "retrieval.top_k", "retrieval.candidates", "chunking.max_chars", "summary.sentences",
    "answer.max_question_chars", "embeddings.batch_size", "telegram.rate_limit.messages",
    "telegram.articles_per_page", "matrix.articles_per_page",
    "telegram.concurrent_updates", "telegram.rate_limit.per_seconds",
    "fetch.timeout", "fetch.max_bytes", "fetch.concurrency",
    "ops.drain_seconds", "storage.retry_seconds", "follow.max_pushes_per_hour", "follow.briefing_items", "follow.check_seconds",
}
NON_NEGATIVE = {
    "retrieval.merge_chars", "retrieval.merge_depth", "fetch.max_redirects", "feeds.poll_minutes",
    "retrieval.weight_sentence", "retrieval.weight_article", "retrieval.weight_lexical", "retrieval.weight_dense",
    "chunking.overlap_sentences", "matrix.catch_up_minutes", "follow.sends_per_second",
}
# Inclusive ranges: diversity trades relevance for spread.
RANGES: dict[str, tuple[float, float]] = {
    "summary.diversity": (0.0, 1.0),
}


def _convert(value: Any, kind: Any, key: str) -> Any:
    """Coerce ``value`` (from YAML or an env string) to ``kind`` or raise a ConfigError."""
    origin = typing.get_origin(kind)
    env_hint = f"BRON_{key.upper().replace('.', '_')}"
    fix = f"Fix it in config.yaml or with the environment variable {env_hint}."
    if origin in (list,):
        (item,) = typing.get_args(kind)
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.split(",")) if v]
        if not isinstance(value, list):
            raise ConfigError(f"config key {key}: expected a list, got {value!r}. {fix}")
        return [_convert(v, item, key) for v in value]
    if origin in (typing.Union, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            number = float(value)
            if not math.isfinite(number):
                # NaN compares false with everything: it would pass every check below and skew scores.
                raise ConfigError(f"config key {key}: expected a finite number, got {value!r}. {fix}")
            return number
        if kind is str:
            if isinstance(value, (list, dict)):
                raise ValueError(value)
            return "" if value is None else str(value)
    except (TypeError, ValueError):
        name = getattr(kind, "__name__", str(kind))
        raise ConfigError(f"config key {key}: expected {name}, got {value!r}. {fix}") from None
    return value


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys by name."""
    if not isinstance(data, dict):
        raise ConfigError(f"config section {prefix.rstrip('.') or 'top level'}: expected a mapping.")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]}. Known keys here: {', '.join(sorted(names))}."
        )
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            kwargs[f.name] = _build(kind, data.get(f.name) or {}, key + ".")
        elif f.name in data:
            kwargs[f.name] = _convert(data[f.name], kind, key)
    return cls(**kwargs)


def _env_overrides(cls: type, environ: dict[str, str], prefix: str = "") -> dict[str, Any]:
    """Collect ``BRON_SECTION_KEY`` variables into a nested mapping shaped like ``cls``."""
    out: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        name = f"{prefix}{f.name}".upper()
        if dataclasses.is_dataclass(kind):
            nested = _env_overrides(kind, environ, f"{prefix}{f.name}_")
            if nested:
                out[f.name] = nested
        elif ENV_PREFIX + name in environ:
            out[f.name] = environ[ENV_PREFIX + name]
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _validate(config: Config) -> None:
    for name in config.embeddings.multilingual:
        if name not in MULTILINGUAL:
            raise ConfigError(
                f"config key embeddings.multilingual: unknown encoder {name!r}; use a list of "
                f"{', '.join(MULTILINGUAL)} (or [] for none)."
            )
    if isinstance(config.logging.level, str):
        config.logging.level = config.logging.level.strip().upper()  # "info" is what people write
    for key, allowed in CHOICES.items():
        value = _lookup(config, key)
        if value not in allowed:
            raise ConfigError(
                f"config key {key}: {value!r} is not one of {', '.join(allowed)}. "
                f"Fix it in config.yaml or with BRON_{key.upper().replace('.', '_')}."
            )
    for key in POSITIVE:
        if _lookup(config, key) <= 0:
            raise ConfigError(f"config key {key}: must be greater than 0. Fix it in config.yaml.")
    for key in NON_NEGATIVE:
        if _lookup(config, key) < 0:
            raise ConfigError(f"config key {key}: must be 0 or more (0 turns it off). Fix it in config.yaml.")
    for key, (low, high) in RANGES.items():
        if not low <= _lookup(config, key) <= high:
            raise ConfigError(
                f"config key {key}: {_lookup(config, key)!r} is outside {low:g} to {high:g}. Fix it in config.yaml "
                f"or with BRON_{key.upper().replace('.', '_')}."
            )
    for url in config.feeds.urls:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"config key feeds.urls: {url!r} is not a web address; list feed URLs starting with http:// or https://."
            )
    if config.answer.model:
        from embeddings.answering.model import AnswerabilityModel

        try:
            AnswerabilityModel.load(config.resolve(config.answer.model))
        except ValueError as err:
            raise ConfigError(
                f"config key answer.model: {err}. Point it at a file written by `bron calibrate`, or leave it empty for the bundled model."
            ) from None
    _validate_ops(config)
    _validate_storage(config)
    _validate_timezone(config)
    if not config.embeddings.multilingual:
        raise ConfigError(
            "config key embeddings.multilingual: needs at least one multilingual encoder (e5 or use); "
            "it carries the passage, sentence and article vectors."
        )
    for path, resolved in zip(config.corpus.paths, config.corpus_paths()):
        if not resolved.exists():
            log.warning(
                "config key corpus.paths: %s does not exist%s, so it is not ingested. Fix the path in "
                "config.yaml (relative to the config file; %r is the sample article) or with BRON_CORPUS_PATHS.",
                path, "" if str(resolved) == path else f" (as {resolved})", BUNDLED_CORPUS,
            )


def _validate_storage(config: Config) -> None:
    """storage.dsn: read from dsn_file when set, required and well-formed for the postgres backend."""
    storage = config.storage
    if storage.dsn_file:
        file = config.resolve(storage.dsn_file)
        try:
            storage.dsn = file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ConfigError(
                f"config key storage.dsn_file: cannot read {file} ({reason}). Make it readable for this user, "
                f"or set the connection string in BRON_STORAGE_DSN instead."
            ) from None
    if storage.backend != "postgres":
        return
    if not storage.dsn:
        raise ConfigError(
            "config key storage.dsn: empty, but storage.backend is postgres. Set BRON_STORAGE_DSN "
            "(e.g. postgresql://bron@db.example/bron) or storage.dsn_file (BRON_STORAGE_DSN_FILE) to a file holding it."
        )
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise ConfigError(
            "config key storage.backend: postgres needs psycopg; install it with pip install 'psycopg[binary]' pgvector."
        ) from None
    try:
        conninfo_to_dict(storage.dsn)
    except Exception as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160].replace(storage.dsn, "<dsn>")
        raise ConfigError(
            f"config key storage.dsn: not a PostgreSQL connection string ({text}). Use a URI like "
            f"postgresql://user@host:5432/dbname or key=value pairs (BRON_STORAGE_DSN)."
        ) from None


def _validate_timezone(config: Config) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(config.follow.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"config key follow.timezone: {config.follow.timezone!r} is not a time zone. Use an IANA name such as "
            "Europe/Amsterdam or UTC (BRON_FOLLOW_TIMEZONE)."
        ) from None


def _validate_ops(config: Config) -> None:
    from bot.ops import parse_listen

    try:
        parse_listen(config.ops.listen)
    except ValueError as err:
        raise ConfigError(
            f"config key ops.listen: {err}. Use host:port, e.g. 127.0.0.1:9464, or \"\" to turn the ops "
            "endpoints off (BRON_OPS_LISTEN)."
        ) from None


def _lookup(config: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def _read_file(file: Path) -> dict[str, Any]:
    """The config file's mapping, or a ConfigError naming the file and what to do."""
    try:
        text = file.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise ConfigError(f"config file {file} is a folder. Pass a YAML file with --config or BRON_CONFIG.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {file} is not UTF-8 text (byte {exc.object[exc.start]:#x} at offset {exc.start}). "
            f"Save it as UTF-8."
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {file} ({exc.strerror or exc}). Make it readable for this user, or pass "
            f"another file with --config or BRON_CONFIG."
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML ({exc}). Fix the syntax of the config file.") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {file}: the top level is a {type(data).__name__}, not a mapping of sections. Write it "
            f"as keys such as `retrieval:` and `corpus:` (see config.yaml in the Bron repository)."
        )
    return data


def load_config(path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None) -> Config:
    """Load and validate the configuration.

    ``path`` defaults to ``$BRON_CONFIG`` or ``./config.yaml``; a missing default file means the
    built-in defaults. Environment variables override file values; the Telegram token may also come
    from ``TELEGRAM_BOT_TOKEN`` and the Matrix secrets from ``MATRIX_PASSWORD`` / ``MATRIX_ACCESS_TOKEN``.
    """
    env = dict(os.environ if environ is None else environ)
    explicit = path is not None or "BRON_CONFIG" in env
    file = Path(path or env.get("BRON_CONFIG") or "config.yaml")
    data: dict[str, Any] = {}
    try:
        exists = file.exists()
    except OSError:  # a folder on the way that this user may not enter: reading says why
        exists = True
    if exists:
        data = _read_file(file)
    elif explicit:
        raise ConfigError(f"config file {file} not found. Pass an existing file with --config or BRON_CONFIG.")
    for alias, key in (
        ("TELEGRAM_BOT_TOKEN", "BRON_TELEGRAM_TOKEN"),
        ("MATRIX_PASSWORD", "BRON_MATRIX_PASSWORD"),
        ("MATRIX_ACCESS_TOKEN", "BRON_MATRIX_ACCESS_TOKEN"),
        ("MATRIX_RECOVERY_KEY", "BRON_MATRIX_RECOVERY_KEY"),
    ):
        if alias in env and key not in env:
            env[key] = env[alias]
    data = _merge(data, _env_overrides(Config, env))
    data.pop("base_dir", None)
    config = _build(Config, data, "")
    config.base_dir = str(file.resolve().parent) if exists else str(Path.cwd())
    _validate(config)
    return config
