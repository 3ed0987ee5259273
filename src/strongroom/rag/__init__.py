"""Answers from retrieved chunks: the Generator protocol in :mod:`.base`, the extractive
answerer (no model, the embedded default) in :mod:`.extractive`, and answers written by a
model behind the gateway in :mod:`.llm`."""

from strongroom.rag.base import NOT_FOUND, Generator, cite
from strongroom.rag.extractive import EXTRACTIVE_VERSION, ExtractiveGenerator, answer

__all__ = ["EXTRACTIVE_VERSION", "NOT_FOUND", "ExtractiveGenerator", "Generator", "answer", "cite"]
