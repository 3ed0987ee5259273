"""Bulk ingestion on Ray: parse, chunk and embed in Ray Data workers, write from the driver.

The workers run the same :func:`~strongroom.ingest.pipeline.prepare_version` as the
single-process path, each with its own embedder (loaded once per worker), and hand back
whole versions; the driver writes each one atomically through the store. So the store's
content is the same as after ``strongroom ingest`` without Ray: the same version and chunk
ids, texts, spans and vectors, byte for byte. (For the vectors, each worker computes with as
many threads as the driver would: another thread count splits the matrix products
differently and changes the last bits.) One exception: a chunk text that two
documents share is embedded once per document (a worker cannot see what another worker
embedded), in different batches, and the store keeps the first vector written; such a
vector can then differ from the single-process one in the seventh decimal.

    report = ingest_with_ray([Path("filings/")], store, settings, options, address="local")
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from strongroom.config import Settings
from strongroom.embed import create_embedder
from strongroom.errors import ConfigError, IngestError, StrongroomError
from strongroom.ingest.pipeline import (
    STAGES,
    FileResult,
    IngestOptions,
    IngestReport,
    ProgressFn,
    discover,
    prepare_version,
    write_version,
)
from strongroom.store.base import NewVersion, Writable
from strongroom.types import sha256_hex

__all__ = ["ingest_with_ray"]


class _Prepare:
    """A Ray Data worker: one embedder for its lifetime, one version per row."""

    def __init__(self, settings: Settings, options: IngestOptions, roots: list[str], threads: int) -> None:
        import torch

        # Ray gives each worker one thread; the single-process path uses the machine's. Matrix
        # products split differently with another thread count, and the vectors would then
        # differ in the last bits, so a worker computes with the same count as the driver.
        torch.set_num_threads(threads)
        self.embedder = create_embedder(settings)
        self.options = options
        self.roots = [Path(r) for r in roots]

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        from ray import cloudpickle

        out: dict[str, list[Any]] = {"path": [], "payload": []}
        for path in batch["path"]:
            seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
            prepared = prepare_version(Path(path), None, self.embedder, self.options, self.roots, seconds)
            out["path"].append(path)
            # cloudpickle: versions hold read-only mappings (MappingProxyType), which pickle refuses
            out["payload"].append(cloudpickle.dumps((prepared, seconds)))  # type: ignore[no-untyped-call]
        return out


def ingest_with_ray(
    paths: Sequence[Path],
    store: Writable,
    settings: Settings,
    options: IngestOptions,
    *,
    address: str = "local",
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> IngestReport:
    """Ingest ``paths`` with Ray Data. ``address``: ``local`` starts Ray on this machine;
    anything else (``ray://head:10001``, ``auto``) joins a running cluster, whose workers
    must read the same paths and have strongroom installed."""
    try:
        import ray
        import ray.data
        import torch
        from ray import cloudpickle
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError("--ray needs Ray: pip install 'ray[data]'") from exc
    started = time.perf_counter()
    report = IngestReport(job_id=options.job_id or uuid.uuid4().hex)
    options = replace(options, job_id=report.job_id)  # the versions name the job that wrote them (lineage)
    files, missing = discover(paths)
    report.files.extend(missing)
    todo: list[str] = []
    for f in files:  # known bytes are skipped before any remote work, as in the single-process path
        try:
            version_id = sha256_hex(f.read_bytes())
        except OSError:
            todo.append(str(f))  # the worker reports the read error the same way
            continue
        try:
            known = store.has_version(version_id)
        except IngestError as exc:  # the target refuses these bytes (e.g. stored under another ACL)
            report.files.append(FileResult(str(f), "failed", version_id, error=str(exc)))
            continue
        if known:
            report.files.append(FileResult(str(f), "duplicate", version_id))
            if progress:
                progress(f.name, 0)
        else:
            todo.append(str(f))
    if todo:
        local = address == "local"
        ray.init(
            address=None if local else address,
            num_cpus=workers if local else None,
            include_dashboard=False,
            log_to_driver=False,
            ignore_reinit_error=True,
            logging_level=logging.WARNING,
        )
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the CLI draws its own
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        try:
            cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]  # untyped in Ray
            size = workers or max(1, int(cpus))
            ds = ray.data.from_items([{"path": p} for p in todo], override_num_blocks=len(todo))
            prepared = ds.map_batches(
                _Prepare,
                fn_constructor_kwargs={
                    "settings": settings,
                    "options": options,
                    "roots": [str(p) for p in paths],
                    "threads": torch.get_num_threads(),
                },
                batch_size=1,
                concurrency=min(size, len(todo)),
                num_cpus=1,
            )
            for row in prepared.iter_rows():
                path = Path(str(row["path"]))
                result, seconds = cloudpickle.loads(row["payload"])
                for stage, secs in seconds.items():
                    report.seconds[stage] += secs
                if isinstance(result, NewVersion):
                    report.embedded += len(result.chunks)  # workers have no cache: every chunk was embedded
                    result = write_version(store, path, result, report.seconds, originals=options.originals)
                report.files.append(result)
                if progress:
                    progress(path.name, result.pages)
        except StrongroomError:  # ours (a store that cannot write): already says what to do
            raise
        except Exception as exc:  # Ray's own failures: a worker that cannot start, a lost node
            raise IngestError(
                f"the Ray ingestion failed ({type(exc).__name__}: {exc}); the versions stored so far are kept, "
                "run the same command again to finish"
            ) from exc
        finally:
            if local:
                ray.shutdown()
    report.wall_seconds = time.perf_counter() - started
    return report
