"""Contrastive fine-tuning of a sentence-transformers embedder, resumable bit for bit.

Each step takes the next ``batch_size`` pairs of a seeded permutation (a fresh one per
epoch), embeds queries, positives and hard negatives, and minimises the cross-entropy of
each query against every passage of the batch (in-batch negatives plus the mined ones),
with cosine similarities scaled by ``scale``. The job runs on :mod:`strongroom.train.runner`
(checkpoints, resuming, torchrun); with ``sharding="fsdp"`` the model is sharded over the
ranks (FSDP2: each holds a share of the weights, gradients and optimizer state), and the
final model is gathered whole before it is saved.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from strongroom.errors import ConfigError
from strongroom.train.pairs import Pair
from strongroom.train.runner import (
    CheckpointSaver,
    JobConfig,
    Ranks,
    batch_rows,
    full_weights,
    resume,
    run_steps,
    shard,
)

__all__ = ["TrainConfig", "train_embedder"]


class TrainConfig(JobConfig):
    """A training job, as its JSON config file holds it."""

    base_model: str = Field(description="A sentence-transformers model folder.")
    batch_size: int = Field(default=16, ge=2)
    learning_rate: float = Field(default=2e-5, gt=0)
    scale: float = Field(default=20.0, gt=0, description="Similarity scale (inverse temperature).")
    max_seq_length: int = Field(default=256, ge=8)
    sharding: Literal["ddp", "fsdp"] = Field(
        default="ddp",
        description="How ranks share the model: 'ddp' keeps a whole copy on each rank and averages "
        "gradients; 'fsdp' shards weights, gradients and optimizer state over the ranks (FSDP2), "
        "for models that do not fit one device.",
    )


def train_embedder(
    config: TrainConfig,
    pairs: Sequence[Pair],
    *,
    stop_after: int | None = None,
    on_step: Callable[[int, float], None] | None = None,
    stats: dict[str, float] | None = None,
) -> Path:
    """Train (or resume) and save the model under ``output_dir/model``; returns that folder.

    ``stop_after``: stop once this many steps are done in total (to test resuming).
    ``stats``: filled with ``steps``, ``step_s`` (time in steps) and ``save_blocking_s``
    (time the steps waited for checkpoints)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from torch.distributed.checkpoint.state_dict import get_state_dict

    if len(pairs) < config.batch_size:
        raise ConfigError(f"{len(pairs)} training pairs is fewer than one batch of {config.batch_size}")
    ranks = Ranks()
    if config.batch_size % ranks.world:
        raise ConfigError(f"batch_size {config.batch_size} does not split over {ranks.world} ranks; make it a multiple")
    torch.manual_seed(config.seed + ranks.rank)
    np.random.seed(config.seed + ranks.rank)
    random.seed(config.seed + ranks.rank)
    torch.use_deterministic_algorithms(True)
    model = SentenceTransformer(config.base_model, device=ranks.device)
    model.max_seq_length = config.max_seq_length
    model.train()
    if config.sharding == "fsdp":
        shard(model, ranks)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    # Give every parameter its optimizer state now (a zero-learning-rate step): parameters
    # that never get a gradient (a BERT pooler under mean pooling) would otherwise be absent
    # from the checkpoints and missing when one is loaded. Every run does it, resumed or not.
    get_state_dict(model, optimizer)
    checkpoints = config.output_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    step = resume(checkpoints, model, optimizer, ranks)
    end = min(config.steps, stop_after) if stop_after is not None else config.steps
    saver = CheckpointSaver(checkpoints, ranks, config.keep, config.async_save and ranks.world > 1)

    def loss_at(step: int) -> Any:
        rows = batch_rows(config.seed, step, len(pairs), config.batch_size)
        return _loss(model, [pairs[i] for i in rows[ranks.rank :: ranks.world]], config.scale)

    try:
        step, step_s = run_steps(
            model, optimizer, ranks, saver, loss_at, step=step, end=end, steps=config.steps,
            every=config.checkpoint_every, on_step=on_step,
        )  # fmt: skip
        out = config.output_dir / "model"
        if step >= config.steps and ranks.sharded:
            weights = full_weights(model, ranks)  # every rank takes part in the gather
            if weights is not None:
                model = SentenceTransformer(config.base_model, device="cpu")  # unsharded, to save
                model.max_seq_length = config.max_seq_length
                model.load_state_dict(weights)
        if step >= config.steps and ranks.rank == 0:
            model.eval()
            model.save(str(out))
            (out / "strongroom-training.json").write_text(
                json.dumps(
                    {
                        "base_model": config.base_model,
                        "steps": step,
                        "world_size": ranks.world,
                        "sharding": config.sharding if ranks.world > 1 else "none",
                        "config": config.model_dump(mode="json"),
                    }
                )
            )
        ranks.barrier()
    finally:
        ranks.close()
    if stats is not None:
        stats.update(steps=float(step), step_s=step_s, save_blocking_s=saver.blocking_s)
    return out


def _loss(model: Any, batch: list[Pair], scale: float) -> Any:
    import torch
    import torch.nn.functional as F

    # one forward pass for queries and passages (one padding, one graph)
    passages = [p.positive for p in batch] + [n for p in batch for n in p.negatives]
    features = model.preprocess([p.query for p in batch] + passages)
    device = next(model.parameters()).device
    features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
    vectors = F.normalize(model(features)["sentence_embedding"], dim=-1)
    queries, passage_vectors = vectors[: len(batch)], vectors[len(batch) :]
    scores = queries @ passage_vectors.T * scale
    return F.cross_entropy(scores, torch.arange(len(batch), device=scores.device))
