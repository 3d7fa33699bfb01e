"""Chunking, embedding and indexing of articles."""
