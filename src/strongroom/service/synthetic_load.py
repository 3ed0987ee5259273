"""Loading a generated evaluation set (:mod:`strongroom.data.synthetic`) through the
application layer, as an operator would: each file of its manifest by
:meth:`~strongroom.service.Platform.load_dataset` with the file's ACL, valid-time and key
columns, mode and **``loaded_at``** (the history the questions' ``known_at`` times sit in),
then its documents (the research note) by :meth:`~strongroom.service.Platform.ingest` with
their ACL and publication time.

Every load is an audited ``datasets.load`` of ``principal``, who needs the ``ingester`` and
``admin`` roles (a load dated in the past is an admin's back-fill). Loading a set again is
harmless: a file whose version (same bytes, same ``loaded_at``) is already there is skipped,
and an ingested document is a duplicate. The sec10q filings the document questions read are
not part of the set: ingest them with ``strongroom ingest ../shared/corpus/sec10q/docs``
(ACL ``public``, their publication dates from the PDFs).

    report = load_synthetic_set(platform, admin, Path("/tmp/agent-eval"))
    [(f.dataset, f.version, f.status) for f in report.files]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from strongroom.data.synthetic import Load, read_synthetic_set
from strongroom.service.datasets import DatasetLoad, DatasetView
from strongroom.service.platform import Platform
from strongroom.service.requests import IngestRequest
from strongroom.types import Principal

__all__ = ["LoadedFile", "SyntheticLoad", "load_synthetic_set"]


@dataclass(frozen=True)
class LoadedFile:
    """One file of the set: its dataset (or ``document``), path in the set, when it counts as
    loaded, and what happened: ``loaded`` (``version`` of the dataset), ``present`` (that
    version was already there) or, for a document, ``ingested`` / ``duplicate``."""

    order: int
    dataset: str
    path: str
    loaded_at: datetime
    status: str
    version: int = 0
    rows: int = 0


@dataclass(frozen=True)
class SyntheticLoad:
    """What :func:`load_synthetic_set` did: the set's folder and seed, and each file."""

    root: Path
    seed: int
    files: tuple[LoadedFile, ...]

    def record(self) -> dict[str, object]:
        """As JSON (what ``strongroom data load-synthetic --json`` prints)."""
        return {
            "set": str(self.root),
            "seed": self.seed,
            "files": [
                {
                    "order": f.order,
                    "dataset": f.dataset,
                    "path": f.path,
                    "loaded_at": f.loaded_at.isoformat(),
                    "status": f.status,
                    "version": f.version,
                    "rows": f.rows,
                }
                for f in self.files
            ],
        }


def _present(load: Load, seen: dict[str, DatasetView]) -> int:
    """The version of ``load``'s dataset that already is this load (same bytes, same instant), or 0."""
    view = seen.get(load.dataset)
    for v in view.versions if view else ():
        if v.sha256 == load.sha256 and v.loaded_at == load.loaded_at:
            return v.version
    return 0


def load_synthetic_set(
    platform: Platform,
    principal: Principal,
    set_dir: Path,
    *,
    documents: bool = True,
    on_file: Callable[[LoadedFile], None] | None = None,
) -> SyntheticLoad:
    """Load the set in ``set_dir`` (written by ``python -m strongroom.data.synthetic``) as
    ``principal`` (``ingester`` and ``admin``), in the manifest's order, each file at its
    ``loaded_at``; then ingest its documents (``documents=False``: datasets only).
    ``on_file`` sees each file as it is done. A refusal or a bad file raises the platform's
    error (what was loaded before it stays: run it again to go on)."""
    data = read_synthetic_set(set_dir)
    seen = {v.name: v for v in platform.datasets(principal)}
    done: list[LoadedFile] = []

    def note(item: LoadedFile) -> None:
        done.append(item)
        if on_file is not None:
            on_file(item)

    for load in data.loads:
        version = _present(load, seen)
        if version:
            note(LoadedFile(load.order, load.dataset, load.path, load.loaded_at, "present", version, load.rows))
            continue
        request = DatasetLoad(
            path=data.path(load.path),
            dataset=load.dataset,
            acl=frozenset(load.acl),
            valid_time_column=load.valid_time_column,
            key_columns=load.key_columns,
            mode=load.mode,
            loaded_at=load.loaded_at,
        )
        loaded = platform.load_dataset(principal, request)
        note(LoadedFile(load.order, load.dataset, load.path, loaded.loaded_at, "loaded", loaded.version, loaded.rows))
    if documents:
        for order, doc in enumerate(data.documents, start=len(data.loads) + 1):
            request_doc = IngestRequest(
                paths=(data.path(doc.path),), acl=frozenset(doc.acl), published=doc.published_at
            )
            report = platform.ingest(principal, request_doc)
            status = report.files[0].status if report.files else "skipped"
            note(LoadedFile(order, "document", doc.path, doc.published_at, status))
    return SyntheticLoad(data.root, data.seed, tuple(done))
