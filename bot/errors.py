"""Errors a user can cause, each with a message key the front ends translate."""

from __future__ import annotations

# The errors that embeddings/ raises live there (the bottom layer); re-exported here, the same class
# objects, so `except DataDirError` in bot/ catches what embeddings/ raises.
from embeddings.errors import BronError, ConfigError, DataDirError, IndexWriteFailed, StorageUnavailable  # noqa: F401

__all__ = [
    "BronError", "ConfigError", "DataDirError", "EmptyCorpus", "EmptyQuestion", "FetchFailed", "IndexWriteFailed",
    "NoPreviousAnswer", "QuestionTooLong", "StorageUnavailable", "UnknownArticle",
]


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
