"""`strongroom train embedder CONFIG.json`: pairs from the store, fine-tuning, lineage."""

from __future__ import annotations

import hashlib
import json
import os
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated

import typer
from pydantic import Field, ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from strongroom.cli.common import err, fail, out, settings_for
from strongroom.config import DEFAULT_ACL
from strongroom.embed import bundled_model_path
from strongroom.errors import StrongroomError
from strongroom.service.transfer import content_digest
from strongroom.store.sqlite import SqliteStore
from strongroom.train.embedder import TrainConfig, train_embedder
from strongroom.train.pairs import make_pairs, split_of
from strongroom.types import Scope

__all__ = ["train_app"]

train_app = typer.Typer(help="Fine-tune models on the documents in the store.", no_args_is_help=True)


class EmbedderJob(TrainConfig):
    """A training job's config file: the trainer's settings and how pairs are made."""

    base_model: str = Field(default="bundled", description="A sentence-transformers folder, or 'bundled' (MiniLM).")
    eval_share: float = Field(default=0.2, gt=0, lt=1, description="Share of documents held out for evaluation.")
    pairs_per_chunk: int = Field(default=2, ge=1)
    hard_negatives: int = Field(default=1, ge=0)
    groups: list[str] = Field(default_factory=lambda: [DEFAULT_ACL], description="Whose documents to train on.")


def _base_path(name: str) -> str:
    return bundled_model_path() if name == "bundled" else name


def _weights_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*.safetensors")) or sorted(folder.rglob("*.bin")):
        h.update(f.read_bytes())
    return h.hexdigest()


@train_app.command("embedder")
def train_embedder_cmd(
    config_file: Annotated[Path, typer.Argument(help="The job's JSON config (see EmbedderJob).")],
    home: Annotated[Path | None, typer.Option("--home", help="The store to learn from.")] = None,
) -> None:
    """Fine-tune the retrieval model on the store's own documents; resumes from its last checkpoint.

    Distributed: ``torchrun --nproc-per-node N -m strongroom.cli train embedder CONFIG.json``."""
    try:
        job = EmbedderJob.model_validate_json(config_file.read_text())
    except (OSError, ValidationError) as exc:
        raise fail(f"cannot use {config_file}: {exc}") from exc
    settings = settings_for(home)
    leader = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 reports and writes the lineage
    try:
        store = SqliteStore.open_existing(settings.home)
        try:
            err.print("making training pairs (with BM25 hard negatives) ...")
            pairs = list(
                make_pairs(
                    store.iter_versions(), store, Scope(frozenset(job.groups)), split="train",
                    eval_share=job.eval_share, seed=job.seed, per_chunk=job.pairs_per_chunk,
                    hard_negatives=job.hard_negatives,
                )
            )  # fmt: skip
            versions = store.versions()
            digest = content_digest(store.iter_versions()).sha256
        finally:
            store.close()
        held = [v for v in versions if split_of(v.document_id, job.eval_share, job.seed) == "eval"]
        held_ids = {v.id for v in held}
        trained_on = sorted(v.id for v in versions if v.id not in held_ids)
        config = TrainConfig(**{**job.model_dump(), "base_model": _base_path(job.base_model)})
        loss = TextColumn("loss {task.fields[loss]:.4f}")
        columns = (TextColumn("training"), BarColumn(), MofNCompleteColumn(), loss, TimeRemainingColumn())
        with Progress(*columns, console=err, disable=not leader) as bar:
            task = bar.add_task("train", total=config.steps, loss=float("nan"))
            model = train_embedder(config, pairs, on_step=lambda s, loss: bar.update(task, completed=s, loss=loss))
    except StrongroomError as exc:
        raise fail(str(exc), code=1) from exc
    if not leader:
        return
    lineage = {
        "model": str(model),
        "base_model": job.base_model,
        "base_model_path": config.base_model,
        "training_pairs": len(pairs),
        "trained_on_versions": trained_on,
        "held_out_documents": sorted(v.name for v in held),
        "held_out_versions": sorted(held_ids),
        "store_digest": digest,
        "config": job.model_dump(mode="json"),
        "strongroom_version": package_version("strongroom"),
        "weights_sha256": _weights_hash(model),
    }
    (model / "strongroom-lineage.json").write_text(json.dumps(lineage, indent=1))
    out.print_json(json.dumps({k: v for k, v in lineage.items() if k != "trained_on_versions"}))


@train_app.command("generator")
def train_generator_cmd(
    config_file: Annotated[Path, typer.Argument(help="The job's JSON config (see GeneratorConfig).")],
) -> None:
    """LoRA fine-tuning of a local causal LM on instruction/answer pairs (JSONL); resumes from
    its last checkpoint. Distributed: ``torchrun --nproc-per-node N -m strongroom.cli train generator CONFIG.json``."""
    from strongroom.train.generator import GeneratorConfig, train_generator

    try:
        job = GeneratorConfig.model_validate_json(config_file.read_text())
    except (OSError, ValidationError) as exc:
        raise fail(f"cannot use {config_file}: {exc}") from exc
    leader = os.environ.get("RANK", "0") == "0"
    loss = TextColumn("loss {task.fields[loss]:.4f}")
    columns = (TextColumn("training"), BarColumn(), MofNCompleteColumn(), loss, TimeRemainingColumn())
    try:
        with Progress(*columns, console=err, disable=not leader) as bar:
            task = bar.add_task("train", total=job.steps, loss=float("nan"))
            adapter = train_generator(job, on_step=lambda s, loss: bar.update(task, completed=s, loss=loss))
    except StrongroomError as exc:
        raise fail(str(exc), code=1) from exc
    if leader:
        weights = sorted(adapter.glob("*.safetensors"))
        digest = hashlib.sha256(b"".join(f.read_bytes() for f in weights)).hexdigest() if weights else None
        out.print_json(json.dumps({"adapter": str(adapter), "base_model": job.base_model, "adapter_sha256": digest,
                                   "strongroom_version": package_version("strongroom")}))  # fmt: skip
