"""Errors raised by the storage and retrieval layer and caught by the front ends.

They live here, at the bottom, because ``embeddings/`` raises them and must not import ``bot/``
(layers point one way). :mod:`bot.errors` re-exports every one of them, so ``except DataDirError``
in ``bot/`` catches the very class raised here: there is one class object, reachable by two names.
"""

from __future__ import annotations

__all__ = ["BronError", "ConfigError", "DataDirError", "IndexWriteFailed", "StorageUnavailable"]


class BronError(Exception):
    """Base class: ``key`` names a message in :mod:`bot.texts`, ``params`` fill it in."""

    key = "error"

    def __init__(self, **params: object) -> None:
        super().__init__(f"{self.key} {params}" if params else self.key)
        self.params = params


class IndexWriteFailed(BronError):
    """An ingest could not save the new index (disk full, permissions); the previous one still answers."""

    key = "index_write_failed"


class StorageUnavailable(BronError):
    """The shared database (postgres backend) stayed unreachable for ``storage.retry_seconds``."""

    key = "storage_unavailable"


class ConfigError(Exception):
    """A bad configuration value; the message names the key and the fix."""


class DataDirError(ConfigError):
    """A data directory that cannot be used, or whose index cannot be read; the message names it and the fix."""
