"""``strongroom train embedder|generator CONFIG.json``: the jobs are in :mod:`strongroom.service.training`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from strongroom.cli.common import HomeOpt, JsonOpt, emit, err, exits_on_error, settings_for
from strongroom.service.training import EmbedderJob, fine_tune_embedder, fine_tune_generator, is_leader, load_job

__all__ = ["train_app"]

train_app = typer.Typer(help="Fine-tune models on the documents in the store.", no_args_is_help=True)


@contextmanager
def _training(steps: int) -> Iterator[Callable[[int, float], None]]:
    """A progress bar on stderr (the leader's only); a job that fails exits 1 with its message."""
    loss = TextColumn("loss {task.fields[loss]:.4f}")
    columns = (TextColumn("training"), BarColumn(), MofNCompleteColumn(), loss, TimeRemainingColumn())
    with exits_on_error(1), Progress(*columns, console=err, disable=not is_leader()) as bar:
        task = bar.add_task("train", total=steps, loss=float("nan"))
        yield lambda step, loss: bar.update(task, completed=step, loss=loss)


@train_app.command("embedder")
def train_embedder_cmd(
    config_file: Annotated[Path, typer.Argument(help="The job's JSON config (see EmbedderJob).")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune the retrieval model on the store's own documents; resumes from its last checkpoint.
    Prints the lineage it writes beside the model.

    Distributed: ``torchrun --nproc-per-node N -m strongroom.cli train embedder CONFIG.json``."""
    with exits_on_error(2):
        job = load_job(config_file, EmbedderJob)
    settings = settings_for(home)
    err.print("making training pairs (with BM25 hard negatives) ...")
    with _training(job.steps) as on_step:
        lineage = fine_tune_embedder(settings, job, on_step=on_step)
    if lineage is not None:
        emit({k: v for k, v in lineage.items() if k != "trained_on_versions"}, as_json, title="trained")


@train_app.command("generator")
def train_generator_cmd(
    config_file: Annotated[Path, typer.Argument(help="The job's JSON config (see GeneratorConfig).")],
    as_json: JsonOpt = False,
) -> None:
    """LoRA fine-tuning of a local causal LM on instruction/answer pairs (JSONL); resumes from
    its last checkpoint. Prints the adapter and its hash.
    Distributed: ``torchrun --nproc-per-node N -m strongroom.cli train generator CONFIG.json``."""
    from strongroom.train.generator import GeneratorConfig

    with exits_on_error(2):
        job = load_job(config_file, GeneratorConfig)
    with _training(job.steps) as on_step:
        adapter = fine_tune_generator(job, on_step=on_step)
    if adapter is not None:
        emit(adapter, as_json, title="trained")
