"""Contrastive fine-tuning of a sentence-transformers embedder, resumable bit for bit.

Each step takes the next ``batch_size`` pairs of a seeded permutation (a fresh one per
epoch), embeds queries, positives and hard negatives, and minimises the cross-entropy of
each query against every passage of the batch (in-batch negatives plus the mined ones),
with cosine similarities scaled by ``scale``.

Checkpoints are written with ``torch.distributed.checkpoint`` every ``checkpoint_every``
steps: model, optimizer, step, the sampler's position and every RNG state. A checkpoint
counts only once its ``COMPLETE`` marker exists, and the marker is written after the save
returns, so a run killed mid-save is resumed from the checkpoint before. Resuming restores
all of it, so a run interrupted and resumed ends with weights bitwise identical to an
uninterrupted run with the same seed. The last ``keep`` complete checkpoints are kept.

Single process for now; distributed (torchrun, DDP) training is to come (issue 6).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from strongroom.errors import ConfigError
from strongroom.train.pairs import Pair

__all__ = ["TrainConfig", "latest_checkpoint", "train_embedder"]

log = logging.getLogger(__name__)
MARKER = "COMPLETE"


class TrainConfig(BaseModel):
    """A training job, as its JSON config file holds it."""

    base_model: str = Field(description="A sentence-transformers model folder.")
    output_dir: Path
    seed: int = 0
    batch_size: int = Field(default=16, ge=2)
    steps: int = Field(default=200, ge=1)
    learning_rate: float = Field(default=2e-5, gt=0)
    scale: float = Field(default=20.0, gt=0, description="Similarity scale (inverse temperature).")
    max_seq_length: int = Field(default=256, ge=8)
    checkpoint_every: int = Field(default=50, ge=1)
    keep: int = Field(default=2, ge=1, description="Complete checkpoints to keep.")


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint under ``folder`` (partial ones never count)."""
    done = [p for p in folder.glob("step-*") if (p / MARKER).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def _distributed() -> bool:
    import torch.distributed as dist

    return bool(dist.is_available() and dist.is_initialized())


@contextmanager
def _single_process_ok() -> Iterator[None]:
    """DCP warns on every single-process save and load; one process is what we mean here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield


def _rng_state() -> dict[str, Any]:
    import torch

    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def train_embedder(
    config: TrainConfig,
    pairs: Sequence[Pair],
    *,
    stop_after: int | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> Path:
    """Train (or resume) and save the model under ``output_dir/model``; returns that folder.

    ``stop_after``: stop once this many steps are done in total (to test resuming)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    from torch.distributed.checkpoint.state_dict_loader import load as dcp_load

    if len(pairs) < config.batch_size:
        raise ConfigError(f"{len(pairs)} training pairs is fewer than one batch of {config.batch_size}")
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)
    torch.use_deterministic_algorithms(True)
    model = SentenceTransformer(config.base_model, device="cpu")
    model.max_seq_length = config.max_seq_length
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    # Give every parameter its optimizer state now (a zero-learning-rate step): parameters
    # that never get a gradient (a BERT pooler under mean pooling) would otherwise be absent
    # from the checkpoints and missing when one is loaded. Every run does it, resumed or not.
    get_state_dict(model, optimizer)
    checkpoints = config.output_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    step = 0
    latest = latest_checkpoint(checkpoints)
    if latest is not None:
        model_state, optim_state = get_state_dict(model, optimizer)
        state: dict[str, Any] = {"model": model_state, "optimizer": optim_state}
        with _single_process_ok():
            dcp_load(state, checkpoint_id=str(latest), no_dist=not _distributed())
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
        extra = torch.load(latest / "trainer.pt", weights_only=False)
        step = int(extra["step"])
        _set_rng_state(extra["rng"])
        log.info("resumed from %s (step %d)", latest, step)
    per_epoch = len(pairs) // config.batch_size
    end = min(config.steps, stop_after) if stop_after is not None else config.steps
    while step < end:
        epoch, position = divmod(step, per_epoch)
        # the sampler is a pure function of (seed, epoch): the step alone says where it is
        order = np.random.default_rng([config.seed, epoch]).permutation(len(pairs))
        batch = [pairs[i] for i in order[position * config.batch_size : (position + 1) * config.batch_size]]
        loss = _loss(model, batch, config.scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if on_step:
            on_step(step, float(loss.item()))
        if step % config.checkpoint_every == 0 or step == config.steps:
            _save(checkpoints / f"step-{step}", model, optimizer, step, config.keep)
    out = config.output_dir / "model"
    if step >= config.steps:
        model.eval()
        model.save(str(out))
        (out / "strongroom-training.json").write_text(
            json.dumps({"base_model": config.base_model, "steps": step, "config": config.model_dump(mode="json")})
        )
    return out


def _loss(model: Any, batch: list[Pair], scale: float) -> Any:
    import torch
    import torch.nn.functional as F

    def embed(texts: list[str]) -> torch.Tensor:
        features = model.preprocess(texts)
        return F.normalize(model(features)["sentence_embedding"], dim=-1)

    queries = embed([p.query for p in batch])
    passages = [p.positive for p in batch] + [n for p in batch for n in p.negatives]
    scores = queries @ embed(passages).T * scale
    return F.cross_entropy(scores, torch.arange(len(batch)))


def _save(folder: Path, model: Any, optimizer: Any, step: int, keep: int) -> None:
    import torch
    from torch.distributed.checkpoint.state_dict import get_state_dict
    from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

    if folder.exists():  # a partial save of an earlier, killed run
        shutil.rmtree(folder)
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optim_state}
    with _single_process_ok():
        dcp_save(state, checkpoint_id=str(folder), no_dist=not _distributed())
    torch.save({"step": step, "rng": _rng_state()}, folder / "trainer.pt")
    (folder / MARKER).write_text(str(step))  # only now does the checkpoint count
    complete = sorted(
        (p for p in folder.parent.glob("step-*") if (p / MARKER).is_file()), key=lambda p: int(p.name[5:])
    )
    for old in complete[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
