"""Domain adaptation of the retrieval model on the bank's own documents (issue 6).

:mod:`strongroom.train.pairs` makes (query, passage) training pairs from stored chunks, with
no labels and no hosted model; :mod:`strongroom.train.embedder` fine-tunes a
sentence-transformers model on them, deterministically, with checkpoints it can resume from;
:mod:`strongroom.train.reranker` trains a cross-encoder on the same pairs, the same way, to
reorder the top candidates of a search (issue 16; measured in ``benchmarks/reranker_bench.py``).
"""
