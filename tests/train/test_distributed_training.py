"""Two-process torchrun jobs on CPU (gloo): a killed worker, and a worker killed mid-save.

A killed worker is restarted two ways: by torchrun itself (``--max-restarts``, in place),
and by starting the job again, as a scheduler would after torchrun gives up. Either way
the job resumes from its last complete checkpoint and ends bitwise identical.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from strongroom.train.runner import is_complete, latest_checkpoint

JOB = Path(__file__).with_name("ddp_job.py")
ROOT = Path(__file__).resolve().parents[2]
STEPS, EVERY = 24, 4


def _config(tmp: Path, name: str, model: str, **extra: object) -> Path:
    config = {
        "base_model": model,
        "output_dir": str(tmp / name),
        "steps": STEPS,
        "batch_size": 4,
        "checkpoint_every": EVERY,
        "learning_rate": 1e-3,
        "keep": 2,
        "max_seq_length": 32,
        "seed": 7,
        **extra,
    }
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(config))
    return path


def _torchrun(config: Path, restarts: int = 0, launch: int = 0) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env["JOB_LAUNCH"] = str(launch)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["--max-restarts", str(restarts), "--monitor-interval", "0.5", str(JOB), str(config)]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(job: subprocess.Popen[str], timeout: float = 240) -> None:
    output, _ = job.communicate(timeout=timeout)
    assert job.returncode == 0, output[-4000:]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from sentence_transformers import SentenceTransformer

    return dict(SentenceTransformer(str(folder), device="cpu").state_dict())


def _workers(parent: int) -> list[int]:
    """The training processes under torchrun (its agent's children running the job)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        if str(JOB) in cmdline and ppid != os.getpid() and int(entry.name) != parent:
            found.append(int(entry.name))
    return found


def _steps(folder: Path, rank: int, attempt: int) -> list[int]:
    path = folder / f"steps-rank{rank}-attempt{attempt}.txt"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _retried(folder: Path) -> list[int]:
    """Rank 0's steps in the first later attempt that trained."""
    for attempt in range(1, 4):
        if steps := _steps(folder, 0, attempt):
            return steps
    return []


def _kill_a_worker_after_a_checkpoint(job: subprocess.Popen[str], out: Path, deadline: float) -> tuple[float, Path]:
    """Once a checkpoint is complete and training went on past it, SIGKILL one of the two
    workers; returns when it was killed and the checkpoint there was then."""
    checkpoints = out / "checkpoints"
    while latest_checkpoint(checkpoints) is None or len(_steps(out, 0, 0)) < EVERY + 2:
        assert job.poll() is None and time.monotonic() < deadline, "the job ended or stalled before a checkpoint"
        time.sleep(0.1)
    victims = _workers(job.pid)
    assert len(victims) == 2
    saved = latest_checkpoint(checkpoints)
    assert saved is not None
    killed_at = time.monotonic()
    os.kill(victims[-1], signal.SIGKILL)
    return killed_at, saved


def _assert_resumed_within_an_interval_to(reference: dict[str, torch.Tensor], out: Path) -> None:
    """The retry resumed from a checkpoint at most one interval back and ended with ``reference``'s weights."""
    before, after = _steps(out, 0, 0), _retried(out)
    assert (after[0] - 1) % EVERY == 0 and before[-1] - (after[0] - 1) <= EVERY
    resumed = _weights(out / "model")
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


@pytest.fixture(scope="module")
def straight(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """The uninterrupted 2-process run every fault test must match bit for bit."""
    tmp = tmp_path_factory.mktemp("ddp-straight")
    _finish(_torchrun(_config(tmp, "straight", tiny_model)))
    assert _steps(tmp / "straight", 0, 0) == list(range(1, STEPS + 1))
    assert json.loads((tmp / "straight" / "model" / "strongroom-training.json").read_text())["world_size"] == 2
    return _weights(tmp / "straight" / "model")


@pytest.mark.timeout(600)
def test_a_sigkilled_worker_is_restarted_and_the_job_ends_bitwise_identical(
    tiny_model: str, tmp_path: Path, straight: dict[str, torch.Tensor]
) -> None:
    out = tmp_path / "killed"
    config = _config(tmp_path, "killed", tiny_model, step_sleep_s=0.3)
    job = _torchrun(config)
    deadline = time.monotonic() + 180
    killed_at, saved = _kill_a_worker_after_a_checkpoint(job, out, deadline)
    job.communicate(timeout=120)
    assert job.returncode != 0  # torchrun reports the lost worker; the scheduler starts the job again
    job = _torchrun(config, launch=1)
    while not _retried(out):
        assert job.poll() is None and time.monotonic() < deadline, "the relaunched job did not train"
        time.sleep(0.1)
    resumed_in = time.monotonic() - killed_at
    _finish(job)
    before, after = _steps(out, 0, 0), _retried(out)
    resumed_from = after[0] - 1
    assert resumed_from % EVERY == 0 and resumed_from >= int(saved.name[5:])  # from a complete checkpoint
    assert before[-1] - resumed_from <= EVERY  # lost at most one checkpoint interval
    assert after[-1] == STEPS
    resumed = _weights(out / "model")
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    print(f"death to first resumed step: {resumed_in:.1f} s")


@pytest.mark.timeout(600)
def test_a_worker_killed_during_an_async_save_never_resumes_from_that_checkpoint(
    tiny_model: str, tmp_path: Path, straight: dict[str, torch.Tensor]
) -> None:
    out = tmp_path / "torn"
    config = _config(tmp_path, "torn", tiny_model, die_in_save=2 * EVERY)
    job = _torchrun(config)
    job.communicate(timeout=240)
    assert job.returncode != 0
    _finish(_torchrun(config, launch=1))
    first, second = _steps(out, 0, 0), _retried(out)
    assert first[-1] >= 2 * EVERY  # rank 1 died writing step 2*EVERY's checkpoint
    assert second[0] == EVERY + 1  # so the retry resumed from the checkpoint before it, not the torn one
    assert is_complete(out / "checkpoints" / f"step-{STEPS}")
    resumed = _weights(out / "model")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


@pytest.mark.timeout(600)
def test_torchrun_restarts_a_killed_worker_in_place_and_the_job_ends_bitwise_identical(
    tiny_model: str, tmp_path: Path, straight: dict[str, torch.Tensor]
) -> None:
    """``--max-restarts``: torchrun restarts both workers after a SIGKILL, without help.
    (Each round joins the process group under its own store prefix; without it the new
    round read the dead round's addresses from torchrun's store and gloo failed to connect.)"""
    out = tmp_path / "elastic"
    config = _config(tmp_path, "elastic", tiny_model, step_sleep_s=0.3)
    job = _torchrun(config, restarts=2)
    deadline = time.monotonic() + 180
    killed_at, _ = _kill_a_worker_after_a_checkpoint(job, out, deadline)
    while not _retried(out):
        assert job.poll() is None and time.monotonic() < deadline, "torchrun did not restart the workers"
        time.sleep(0.1)
    resumed_in = time.monotonic() - killed_at
    _finish(job)  # the same torchrun: it restarted the workers itself and ended well
    _assert_resumed_within_an_interval_to(straight, out)
    print(f"death to first step after torchrun's restart: {resumed_in:.1f} s")


@pytest.mark.timeout(600)
def test_fsdp_shards_the_job_learns_like_ddp_and_resumes_bitwise(
    tiny_model: str, tmp_path: Path, straight: dict[str, torch.Tensor]
) -> None:
    """``sharding: fsdp``: each rank holds and saves half of the state; the job learns what
    the DDP job learns (up to the order of float sums), and a killed worker is restarted in
    place and the job ends bitwise identical to an uninterrupted FSDP run."""
    _finish(_torchrun(_config(tmp_path, "fsdp", tiny_model, sharding="fsdp")))
    lineage = json.loads((tmp_path / "fsdp" / "model" / "strongroom-training.json").read_text())
    assert (lineage["world_size"], lineage["sharding"]) == (2, "fsdp")
    final = tmp_path / "fsdp" / "checkpoints" / f"step-{STEPS}"
    parts = {f.name: f.stat().st_size for f in final.glob("*.distcp")}
    assert len(parts) == 2 and min(parts.values()) > 0.3 * sum(parts.values()), parts  # each rank its shard
    fsdp = _weights(tmp_path / "fsdp" / "model")
    assert fsdp.keys() == straight.keys()
    assert all(torch.allclose(straight[k], fsdp[k], atol=1e-4) for k in straight)

    out = tmp_path / "fsdp-killed"
    config = _config(tmp_path, "fsdp-killed", tiny_model, sharding="fsdp", step_sleep_s=0.3)
    job = _torchrun(config, restarts=2)
    _kill_a_worker_after_a_checkpoint(job, out, time.monotonic() + 180)
    _finish(job)
    _assert_resumed_within_an_interval_to(fsdp, out)
