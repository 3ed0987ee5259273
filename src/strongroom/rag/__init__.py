"""Answers from retrieved chunks: the extractive answerer (no model, the embedded default)
in :mod:`.extractive`, and answers written by a model behind the gateway in :mod:`.llm`."""

from strongroom.rag.extractive import EXTRACTIVE_VERSION, NOT_FOUND, ExtractiveGenerator, Generator, answer, cite

__all__ = ["EXTRACTIVE_VERSION", "NOT_FOUND", "ExtractiveGenerator", "Generator", "answer", "cite"]
