"""Fine-tuning jobs as the operator runs them (``strongroom train ...``): the embedder learns
from the store's own documents and leaves a lineage record beside the model (what it was
trained on, what was held out, the store's content digest, the weights' hash); the
generator's LoRA adapter is reported with its hash. Under torchrun every rank trains and
rank 0 (:func:`is_leader`) reports.

    job = load_job(Path("job.json"), EmbedderJob)
    lineage = fine_tune_embedder(Settings(), job)   # None on the other ranks
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, Field

from strongroom.config import DEFAULT_ACL, Settings
from strongroom.embed import bundled_model_path
from strongroom.errors import ConfigError
from strongroom.service.transfer import content_digest
from strongroom.store.base import Catalog
from strongroom.store.sqlite import SqliteStore
from strongroom.train.embedder import TrainConfig, train_embedder
from strongroom.train.pairs import make_pairs, split_of
from strongroom.train.reranker import LINEAGE_FILE, TRAINING_FILE
from strongroom.types import Scope

if TYPE_CHECKING:
    from strongroom.train.generator import GeneratorConfig

__all__ = [
    "EmbedderJob",
    "fine_tune_embedder",
    "fine_tune_generator",
    "is_leader",
    "load_job",
    "write_reranker_lineage",
]

OnStep = Callable[[int, float], None]
Job = TypeVar("Job", bound=BaseModel)


class EmbedderJob(TrainConfig):
    """A training job's config file: the trainer's settings and how pairs are made."""

    base_model: str = Field(default="bundled", description="A sentence-transformers folder, or 'bundled' (MiniLM).")
    eval_share: float = Field(default=0.2, gt=0, lt=1, description="Share of documents held out for evaluation.")
    pairs_per_chunk: int = Field(default=2, ge=1)
    hard_negatives: int = Field(default=1, ge=0)
    groups: list[str] = Field(default_factory=lambda: [DEFAULT_ACL], description="Whose documents to train on.")


def load_job(path: Path, kind: type[Job]) -> Job:
    """The job ``path`` describes (JSON: an :class:`EmbedderJob`, or a generator's config); one
    that cannot be read or is not valid is a :class:`ConfigError` saying why."""
    try:
        return kind.model_validate_json(path.read_text())
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not JSON, or not a valid job
        raise ConfigError(f"cannot use {path}: {exc}") from exc


def is_leader() -> bool:
    """Whether this process reports and writes the lineage: rank 0 under torchrun, or the only one."""
    return os.environ.get("RANK", "0") == "0"


def _weights_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*.safetensors")) or sorted(folder.rglob("*.bin")):
        h.update(f.read_bytes())
    return h.hexdigest()


def fine_tune_embedder(
    settings: Settings, job: EmbedderJob, *, on_step: OnStep | None = None
) -> dict[str, object] | None:
    """Fine-tune the retrieval model on pairs (with BM25 hard negatives) from the documents of
    the store at ``settings.home`` that ``job.groups`` may read, holding out a share of the
    documents; resumes from the job's last checkpoint. The leader writes
    ``MODEL/strongroom-lineage.json`` and returns the lineage; other ranks return None."""
    store = SqliteStore.open_existing(settings.home)
    try:
        pairs = list(
            make_pairs(
                store.iter_versions(), store, Scope(frozenset(job.groups)), split="train", eval_share=job.eval_share,
                seed=job.seed, per_chunk=job.pairs_per_chunk, hard_negatives=job.hard_negatives,
            )
        )  # fmt: skip
        versions = store.versions()
        digest = content_digest(store.iter_versions()).sha256
    finally:
        store.close()
    held = [v for v in versions if split_of(v.document_id, job.eval_share, job.seed) == "eval"]
    held_ids = {v.id for v in held}
    base = bundled_model_path() if job.base_model == "bundled" else job.base_model
    config = TrainConfig(**{**job.model_dump(), "base_model": base})
    model = train_embedder(config, pairs, on_step=on_step)
    if not is_leader():
        return None
    lineage: dict[str, object] = {
        "model": str(model),
        "base_model": job.base_model,
        "base_model_path": config.base_model,
        "training_pairs": len(pairs),
        "trained_on_versions": sorted(v.id for v in versions if v.id not in held_ids),
        "held_out_documents": sorted(v.name for v in held),
        "held_out_versions": sorted(held_ids),
        "store_digest": digest,
        "config": job.model_dump(mode="json"),
        "strongroom_version": package_version("strongroom"),
        "weights_sha256": _weights_hash(model),
    }
    (model / "strongroom-lineage.json").write_text(json.dumps(lineage, indent=1))
    return lineage


def fine_tune_generator(job: GeneratorConfig, *, on_step: OnStep | None = None) -> dict[str, object] | None:
    """Train (or resume) the job's LoRA adapter; the leader returns where it is and its hash."""
    from strongroom.train.generator import train_generator

    adapter = train_generator(job, on_step=on_step)
    if not is_leader():
        return None
    weights = sorted(adapter.glob("*.safetensors"))
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in weights)).hexdigest() if weights else None
    return {
        "adapter": str(adapter),
        "base_model": job.base_model,
        "adapter_sha256": digest,
        "strongroom_version": package_version("strongroom"),
    }


def write_reranker_lineage(
    model: Path, store: Catalog, *, training_pairs: int, eval_share: float, seed: int
) -> dict[str, object]:
    """Write ``model/strongroom-lineage.json`` (the keys ``strongroom train embedder`` writes
    for its model) and return it: the store's versions trained on and held out by
    :func:`~strongroom.train.pairs.split_of` with ``eval_share`` and ``seed``, the store's
    content digest, the training config and the weights' hash."""
    try:
        training = json.loads((model / TRAINING_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{model} holds no readable {TRAINING_FILE}: {exc}; is it a finished reranker?") from exc
    versions = store.versions()
    held = [v for v in versions if split_of(v.document_id, eval_share, seed) == "eval"]
    held_ids = {v.id for v in held}
    lineage: dict[str, object] = {
        "model": str(model),
        "kind": "cross-encoder reranker",
        "base_model_path": training["base_model"],
        "training_pairs": training_pairs,
        "steps": training["steps"],
        "trained_on_versions": sorted(v.id for v in versions if v.id not in held_ids),
        "held_out_documents": sorted(v.name for v in held),
        "held_out_versions": sorted(held_ids),
        "eval_share": eval_share,
        "store_digest": content_digest(store.iter_versions()).sha256,
        "config": training["config"],
        "strongroom_version": package_version("strongroom"),
        "weights_sha256": _weights_hash(model),
    }
    (model / LINEAGE_FILE).write_text(json.dumps(lineage, indent=1))
    return lineage
