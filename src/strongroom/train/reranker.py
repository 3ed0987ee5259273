"""A cross-encoder reranker trained on the store's own chunks, and the reranker that uses it.

A cross-encoder reads the query and a passage together (``[CLS] query [SEP] passage``) and
scores how well the passage answers the query, so it sees the interplay of their words that
two separate bi-encoder vectors cannot; it is far too slow to read every chunk, so it only
reorders the few candidates :func:`strongroom.retrieve.search` found.

Training starts from a BERT folder (the bundled MiniLM: its encoder, a fresh one-output
head) and runs on :mod:`strongroom.train.runner` as the embedder does: a seeded,
step-addressed sampler, checkpoints every ``checkpoint_every`` steps, resuming bit for bit.
Each step takes ``batch_size`` pairs of :mod:`strongroom.train.pairs`; each query is scored
against ``group`` passages (its positive; the hard negatives it carries, to which
:func:`mine_negatives` adds retrieval's own near misses; then other queries' positives from
the batch) and the loss is the cross-entropy of the positive within its group. Passages are
what the embedder reads for a chunk (:func:`strongroom.text.dense_text`), in training and
in :class:`Reranker` alike.

    model = train_reranker(RerankerConfig(base_model=bundled_model_path(), output_dir=out), pairs)
    write_reranker_lineage(model, store, training_pairs=len(pairs), eval_share=0.2, seed=0)  # service.training
    top5 = Reranker(model).rerank(query, search(store, embedder, query, scope, k=20), top=5)
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from strongroom.errors import ConfigError
from strongroom.store.base import Index
from strongroom.text import dense_text
from strongroom.train.pairs import Pair
from strongroom.train.runner import CheckpointSaver, JobConfig, Ranks, batch_rows, resume, run_steps
from strongroom.types import Hit

__all__ = ["LINEAGE_FILE", "TRAINING_FILE", "Reranker", "RerankerConfig", "mine_negatives", "train_reranker"]

#: what the trainer writes beside the model: its config and how far it ran
TRAINING_FILE = "strongroom-training.json"
#: what :func:`strongroom.service.training.write_reranker_lineage` writes beside the model:
#: what it learnt from and what was held out
LINEAGE_FILE = "strongroom-lineage.json"


class RerankerConfig(JobConfig):
    """A reranker training job, as its JSON config file holds it."""

    base_model: str = Field(description="A BERT-style transformers folder (a sentence-transformers one will do).")
    batch_size: int = Field(default=8, ge=1, description="Queries per step.")
    group: int = Field(default=4, ge=2, description="Passages scored per query: its positive and group - 1 negatives.")
    learning_rate: float = Field(default=3e-5, gt=0)
    max_seq_length: int = Field(default=256, ge=8, description="Tokens of query and passage together.")


def _load(path: str) -> tuple[Any, Any]:
    """Tokenizer and one-output sequence classifier at ``path``; a folder without that head
    (a sentence-transformers encoder) gets a fresh one from the current torch seed."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load a cross-encoder from {path}: {exc}; point at a local BERT folder") from exc
    return tokenizer, model


def mine_negatives(
    pairs: Sequence[Pair], index: Index, search: Callable[[str], list[Hit]], count: int = 1
) -> list[Pair]:
    """``pairs`` with up to ``count`` of retrieval's near misses put first among their negatives:
    the best hits of ``search(query)`` that are not on the positive's page. These are what the
    reranker must tell apart at query time (the same filing, a neighbouring page)."""
    page_of = {chunk.id: (chunk.version_id, chunk.page) for chunk, _ in index.fetch([p.chunk_id for p in pairs])}
    mined = []
    for pair in pairs:
        hits = search(pair.query)
        near = [dense_text(h.chunk) for h in hits if (h.chunk.version_id, h.chunk.page) != page_of.get(pair.chunk_id)]
        mined.append(replace(pair, negatives=(*near[:count], *pair.negatives)))
    return mined


def train_reranker(
    config: RerankerConfig,
    pairs: Sequence[Pair],
    *,
    stop_after: int | None = None,
    on_step: Callable[[int, float], None] | None = None,
    stats: dict[str, float] | None = None,
) -> Path:
    """Train (or resume) and save the cross-encoder under ``output_dir/model``; returns that folder.

    ``stop_after``: stop once this many steps are done in total (to test resuming).
    ``stats``: filled with ``steps`` and ``step_s`` (time in steps)."""
    import torch
    from torch.distributed.checkpoint.state_dict import get_state_dict

    if len(pairs) < config.batch_size:
        raise ConfigError(f"{len(pairs)} training pairs is fewer than one batch of {config.batch_size}")
    ranks = Ranks()
    if config.batch_size % ranks.world:
        raise ConfigError(f"batch_size {config.batch_size} does not split over {ranks.world} ranks; make it a multiple")
    torch.manual_seed(config.seed)  # the head's initial weights: the same on every rank
    tokenizer, model = _load(config.base_model)
    torch.manual_seed(config.seed + ranks.rank)  # dropout: each rank its own
    np.random.seed(config.seed + ranks.rank)
    random.seed(config.seed + ranks.rank)
    torch.use_deterministic_algorithms(True)
    model.to(ranks.device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    get_state_dict(model, optimizer)  # every parameter gets its optimizer state now (see embedder.py)
    checkpoints = config.output_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    step = resume(checkpoints, model, optimizer, ranks)
    end = min(config.steps, stop_after) if stop_after is not None else config.steps
    saver = CheckpointSaver(checkpoints, ranks, config.keep, config.async_save and ranks.world > 1)
    out = config.output_dir / "model"

    def loss_at(step: int) -> Any:
        rows = batch_rows(config.seed, step, len(pairs), config.batch_size)
        batch = [pairs[i] for i in rows[ranks.rank :: ranks.world]]
        return _loss(model, tokenizer, batch, config.group, config.max_seq_length)

    try:
        step, step_s = run_steps(
            model, optimizer, ranks, saver, loss_at, step=step, end=end, steps=config.steps,
            every=config.checkpoint_every, on_step=on_step,
        )  # fmt: skip
        if step >= config.steps and ranks.rank == 0:
            model.eval()
            model.save_pretrained(str(out))
            tokenizer.save_pretrained(str(out))
            training = {"base_model": config.base_model, "steps": step, "world_size": ranks.world,
                        "pairs": len(pairs), "config": config.model_dump(mode="json")}  # fmt: skip
            (out / TRAINING_FILE).write_text(json.dumps(training, indent=1))
        ranks.barrier()
    finally:
        ranks.close()
    if stats is not None:
        stats.update(steps=float(step), step_s=step_s)
    return out


def _groups(batch: Sequence[Pair], size: int) -> list[list[str]]:
    """Each query's passages, positive first: its own negatives, then the positives of the
    queries after it in the batch (never one of its own chunk), up to ``size``."""
    groups = []
    for i, pair in enumerate(batch):
        texts = [pair.positive, *pair.negatives][:size]
        others = [batch[(i + j) % len(batch)] for j in range(1, len(batch))]
        texts += [o.positive for o in others if o.chunk_id != pair.chunk_id][: size - len(texts)]
        groups.append(texts)
    return groups


def _loss(model: Any, tokenizer: Any, batch: Sequence[Pair], group: int, max_length: int) -> Any:
    import torch
    import torch.nn.functional as F
    from torch.nn.utils.rnn import pad_sequence

    groups = _groups(batch, group)
    queries = [pair.query for pair, texts in zip(batch, groups, strict=True) for _ in texts]
    features = tokenizer(queries, [t for texts in groups for t in texts], truncation=True,
                         max_length=max_length, padding=True, return_tensors="pt")  # fmt: skip
    device = next(model.parameters()).device
    scores = model(**features.to(device)).logits.view(-1)
    # a group short of passages (a tiny batch) is padded with scores no softmax can pick
    rows = pad_sequence(list(torch.split(scores, [len(t) for t in groups])), batch_first=True, padding_value=-1e4)
    return F.cross_entropy(rows, torch.zeros(len(groups), dtype=torch.long, device=device))


class Reranker:
    """Reorders retrieval's candidates by a trained cross-encoder's score, all in one batch.

        reranker = Reranker("/models/reranker/model")
        hits = reranker.rerank(query, search(store, embedder, query, scope, k=20), top=5)

    A folder without a trained head (the bundled MiniLM itself) is refused, since its scores
    would be noise; ``fresh_head=True`` takes one anyway (to measure what training bought).
    """

    def __init__(
        self, path: str | Path, *, max_length: int = 256, device: str = "cpu", fresh_head: bool = False
    ) -> None:
        self.tokenizer, self._model = _load(str(path))
        # the architectures the folder's config.json names: a trained head was saved as one
        architectures = getattr(self._model.config, "architectures", None) or []
        if not fresh_head and not any(str(a).endswith("ForSequenceClassification") for a in architectures):
            raise ConfigError(f"{path} holds no trained reranker head; train one with train_reranker")
        self.path = Path(path)
        self.max_length = max_length
        self.device = device
        self._model.to(device)
        self._model.eval()

    def scores(self, query: str, passages: Sequence[str]) -> list[float]:
        """How well each passage answers ``query`` (higher is better; the scale is the model's)."""
        import torch

        if not passages:
            return []
        features = self.tokenizer([query] * len(passages), list(passages), truncation=True,
                                  max_length=self.max_length, padding=True, return_tensors="pt")  # fmt: skip
        with torch.inference_mode():
            logits = self._model(**features.to(self.device)).logits
        return [float(s) for s in logits.view(-1).tolist()]

    def rerank(self, query: str, hits: Sequence[Hit], top: int) -> list[Hit]:
        """The ``top`` best of ``hits`` by the cross-encoder, each with its score as ``score``;
        ties keep retrieval's order."""
        scores = self.scores(query, [dense_text(h.chunk) for h in hits])
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
        return [replace(hits[i], score=scores[i]) for i in order[:top]]
