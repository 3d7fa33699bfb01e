"""Errors a user can cause, each with a message key the front ends translate."""

from __future__ import annotations


class BronError(Exception):
    """Base class: ``key`` names a message in :mod:`bot.texts`, ``params`` fill it in."""

    key = "error"

    def __init__(self, **params: object) -> None:
        super().__init__(f"{self.key} {params}" if params else self.key)
        self.params = params


class EmptyQuestion(BronError):
    key = "empty_question"


class QuestionTooLong(BronError):
    key = "question_too_long"


class UnknownArticle(BronError):
    key = "unknown_article"


class NoPreviousAnswer(BronError):
    key = "no_previous_answer"


class EmptyCorpus(BronError):
    key = "empty_corpus"


class FetchFailed(BronError):
    """A web page that could not be added; ``reason`` says why (timeout, HTTP 404, robots.txt, ...)."""

    key = "fetch_failed"


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
