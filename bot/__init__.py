"""Bron: answers questions about news articles by quoting them, with their source."""

__version__ = "0.1.0"
