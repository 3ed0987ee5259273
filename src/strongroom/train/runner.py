"""The job runner every trainer shares: ranks, a step-addressed sampler, the step loop, and
checkpoints that resume bit for bit.

Checkpoints are written with ``torch.distributed.checkpoint`` every ``checkpoint_every``
steps: model, optimizer, step and every RNG state (the sampler is a pure function of the
seed and the step, so the step is its position). Each rank writes ``done-RANK`` when its
part is on disk, and a checkpoint counts only when every rank's file is there (the
``WORLD`` file says how many), so a run killed mid-save is resumed from the checkpoint
before. Resuming restores all of it, so a run interrupted and resumed ends with weights
bitwise identical to an uninterrupted run with the same seed and world size. The last
``keep`` complete checkpoints are kept.

Under ``torchrun`` (``WORLD_SIZE`` > 1) each rank takes its share of every batch and the
gradients are averaged across ranks in one all-reduce per step (gloo on CPU, NCCL on GPU);
a model sharded with :func:`shard` (FSDP2) has FSDP average them instead, and its
checkpoints are sharded too. torchrun's in-place restarts (``--max-restarts``) resume from
the last complete checkpoint: each restart round joins the process group under a store
prefix of its own. Saves are asynchronous on a process group of their own (``async_save``):
the step waits only while the state is copied, and a save still running when the next one
is due is waited for first.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from strongroom.errors import ConfigError

__all__ = [
    "CheckpointSaver",
    "JobConfig",
    "Ranks",
    "batch_rows",
    "full_weights",
    "is_complete",
    "latest_checkpoint",
    "resume",
    "run_steps",
    "shard",
]

log = logging.getLogger(__name__)


class JobConfig(BaseModel):
    """What every training job's config holds: where it writes, its seed, length and checkpoints."""

    output_dir: Path
    seed: int = 0
    steps: int = Field(default=200, ge=1)
    checkpoint_every: int = Field(default=50, ge=1)
    keep: int = Field(default=2, ge=1, description="Complete checkpoints to keep.")
    async_save: bool = Field(default=True, description="Write checkpoints in the background (distributed runs).")


def is_complete(folder: Path) -> bool:
    """Every rank that wrote ``folder`` finished its part."""
    try:
        world = int((folder / "WORLD").read_text())
    except (OSError, ValueError):
        return False
    return all((folder / f"done-{rank}").is_file() for rank in range(world))


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint under ``folder`` (partial ones never count)."""
    done = [p for p in folder.glob("step-*") if is_complete(p)]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def _distributed() -> bool:
    import torch.distributed as dist

    return bool(dist.is_available() and dist.is_initialized())


class Ranks:
    """This process's place in the job: one process, or a rank of a torchrun group."""

    def __init__(self) -> None:
        import torch
        import torch.distributed as dist

        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        # one GPU per rank when there are GPUs (NCCL), else the CPU (gloo)
        self.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"
        if self.device != "cpu":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
            torch.cuda.set_device(self.device)
        self.save_group: Any = None
        self.sharded = False  # set by shard(): FSDP then reduces the gradients itself
        if self.world > 1 and not dist.is_initialized():
            backend = "gloo" if self.device == "cpu" else "nccl"
            restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
            if restart is None:
                dist.init_process_group(backend)
            else:
                # torchrun keeps one store across its in-place restarts (--max-restarts): keys
                # a dead round left (its ranks' addresses) must not be read by the next one
                from datetime import timedelta

                from torch.distributed.distributed_c10d import PrefixStore

                agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
                store = dist.TCPStore(  # type: ignore[attr-defined]
                    os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), self.world,
                    is_master=self.rank == 0 and not agent, timeout=timedelta(minutes=5),
                )  # fmt: skip
                prefixed = PrefixStore(f"strongroom/round-{restart}/", store)
                dist.init_process_group(backend, store=prefixed, rank=self.rank, world_size=self.world)
        if self.world > 1:
            # saves get a group of their own: a background save must not share collectives with training
            self.save_group = dist.new_group(backend="gloo")

    def average_gradients(self, model: Any) -> None:
        """Data parallelism: every rank's gradients replaced by their mean, in one all-reduce.

        Done by hand rather than with DDP: DDP's static-graph mode (needed here: the BERT
        pooler never gets a gradient) treats the first step after a restart differently,
        so a resumed run drifted from an uninterrupted one; this sum is the same every step.
        """
        if self.world == 1 or self.sharded:
            return
        import torch
        import torch.distributed as dist

        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


def shard(model: Any, ranks: Ranks) -> None:
    """Shard ``model`` over the ranks with FSDP2: each transformer block (the classes its
    Hugging Face model names in ``_no_split_modules``) is a unit of its own, the rest (the
    embeddings) is the root's. A block's full weights exist only while it computes."""
    if ranks.world == 1:
        return
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(ranks.device.split(":")[0], (ranks.world,))
    block_names: set[str] = set()
    for module in model.modules():
        block_names.update(getattr(module, "_no_split_modules", None) or ())
    for module in model.modules():
        if type(module).__name__ in block_names:
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    ranks.sharded = True


def full_weights(model: Any, ranks: Ranks) -> dict[str, Any] | None:
    """The whole state dict of a sharded model on rank 0 (None on the others); every rank
    must call it (it gathers the shards)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return state if ranks.rank == 0 else None


@contextmanager
def _single_process_ok() -> Iterator[None]:
    """DCP warns on every single-process save and load; one process is what we mean here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield


def _rng_state() -> dict[str, Any]:
    import torch

    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def resume(checkpoints: Path, model: Any, optimizer: Any, ranks: Ranks, options: Any = None) -> int:
    """Load the newest complete checkpoint under ``checkpoints`` into ``model`` and
    ``optimizer`` (and this rank's RNG states); returns its step, or 0 when there is none.
    ``options``: torch's StateDictOptions the checkpoints were saved with."""
    import torch
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    from torch.distributed.checkpoint.state_dict_loader import load as dcp_load

    latest = latest_checkpoint(checkpoints)
    if latest is None:
        return 0
    written_by = int((latest / "WORLD").read_text())
    if written_by != ranks.world:
        raise ConfigError(f"{latest} was written by {written_by} ranks; resume it with {written_by}")
    model_state, optim_state = get_state_dict(model, optimizer, options=options)
    state: dict[str, Any] = {"model": model_state, "optimizer": optim_state}
    with _single_process_ok():
        dcp_load(state, checkpoint_id=str(latest), no_dist=not _distributed())
    result = set_state_dict(
        model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"], options=options
    )
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    if missing := [k for k in getattr(result, "missing_keys", ()) if k in trainable]:
        raise ConfigError(f"{latest} lacks trained weights ({', '.join(missing[:3])}); it is not this job's checkpoint")
    extra = torch.load(latest / f"trainer-{ranks.rank}.pt", weights_only=False)
    _set_rng_state(extra["rng"])
    log.info("resumed from %s (step %d)", latest, int(extra["step"]))
    return int(extra["step"])


def batch_rows(seed: int, step: int, n: int, batch_size: int) -> npt.NDArray[np.int64]:
    """The example rows of ``step``: a seeded permutation per epoch, so the sampler is a pure
    function of (seed, epoch) and the step alone says where it is (no sampler state to save)."""
    epoch, position = divmod(step, n // batch_size)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return order[position * batch_size : (position + 1) * batch_size]


def run_steps(
    model: Any,
    optimizer: Any,
    ranks: Ranks,
    saver: CheckpointSaver,
    loss_at: Callable[[int], Any],
    *,
    step: int,
    end: int,
    steps: int,
    every: int,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[int, float]:
    """The job runner's loop, shared by every trainer: from ``step`` to ``end``, this rank's
    loss, one gradient all-reduce, an optimizer step, and a checkpoint every ``every`` steps
    and at ``steps``. Returns the step reached and the seconds spent in steps."""
    step_s = 0.0
    while step < end:
        started = time.perf_counter()
        loss = loss_at(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        ranks.average_gradients(model)
        optimizer.step()
        step += 1
        if on_step:
            on_step(step, float(loss.item()))
        if step % every == 0 or step == steps:
            saver.save(saver.folder / f"step-{step}", model, optimizer, step)
        step_s += time.perf_counter() - started
    saver.wait()
    return step, step_s


class CheckpointSaver:
    """Writes checkpoints (in the background when asked) and prunes old complete ones."""

    def __init__(self, folder: Path, ranks: Ranks, keep: int, background: bool, options: Any = None) -> None:
        self.folder = folder
        self.ranks = ranks
        self.keep = keep
        self.background = background
        self.options = options  # torch's StateDictOptions, e.g. to leave frozen weights out
        self.pending: Any = None
        self.blocking_s = 0.0

    def save(self, target: Path, model: Any, optimizer: Any, step: int) -> None:
        import torch
        from torch.distributed.checkpoint.state_dict import get_state_dict
        from torch.distributed.checkpoint.state_dict_saver import async_save as dcp_async_save
        from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

        started = time.perf_counter()
        self.wait()  # one save at a time: the previous one must be on disk before the next starts
        if self.ranks.rank == 0:
            if target.exists():  # a partial save of an earlier, killed run
                shutil.rmtree(target)
            target.mkdir(parents=True)
            (target / "WORLD").write_text(str(self.ranks.world))
        self.ranks.barrier()
        torch.save({"step": step, "rng": _rng_state()}, target / f"trainer-{self.ranks.rank}.pt")
        model_state, optim_state = get_state_dict(model, optimizer, options=self.options)
        state = {"model": model_state, "optimizer": optim_state}
        done = target / f"done-{self.ranks.rank}"
        if self.background:
            future = dcp_async_save(state, checkpoint_id=str(target), process_group=self.ranks.save_group)
            if not isinstance(future, Future):
                raise ConfigError(f"torch's async_save returned {type(future).__name__}, not a future")
            future.add_done_callback(lambda f: f.exception() is None and done.write_text(str(step)))
            self.pending = future
        else:
            with _single_process_ok():
                dcp_save(state, checkpoint_id=str(target), no_dist=not _distributed())
            done.write_text(str(step))  # only now does this rank's part count
        self.blocking_s += time.perf_counter() - started
        self._prune()

    def wait(self) -> None:
        if self.pending is not None:
            future, self.pending = self.pending, None
            future.result()
            self._prune()

    def _prune(self) -> None:
        if self.ranks.rank != 0:
            return
        complete = sorted((p for p in self.folder.glob("step-*") if is_complete(p)), key=lambda p: int(p.name[5:]))
        for old in complete[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
