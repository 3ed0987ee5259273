"""Reads the web workspace needs that no other entry point had: which upload jobs a principal
may follow, and whether a cited page can be shown as an image.

The job log (:class:`~strongroom.store.base.JobLog`) finds a job by id only; the audit log
already names every upload's job (``documents.upload``, its target the job id, its principal
the uploader), so the recent ones are found there and read from the job log one by one.
Pure functions: the drivers (:class:`~strongroom.service.async_platform.AsyncPlatform`)
check the role, read the records and audit the read.

    ids = upload_job_ids(audit.read(after_seq, 5000), ana, limit=50)
    has_page_image(shown, originals_folder(settings.home))
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from strongroom.audit import AuditRecord
from strongroom.ingest.originals import has_original
from strongroom.ingest.parsers.pdf import MEDIA_TYPE as PDF
from strongroom.service.requests import PageView
from strongroom.types import Principal

__all__ = ["JOB_WINDOW", "UPLOAD_ACTION", "has_page_image", "upload_job_ids"]

UPLOAD_ACTION = "documents.upload"
#: how many of the newest audit records are searched for upload jobs
JOB_WINDOW = 20_000


def upload_job_ids(records: Iterable[AuditRecord], principal: Principal, limit: int) -> list[str]:
    """The job ids of the uploads in ``records`` that ``principal`` may follow (its own; an
    admin's: everyone's), newest first, at most ``limit``."""
    everyone = "admin" in principal.roles
    found: list[str] = []
    for record in records:
        try:
            fields = record.event()  # the target is in a format-3 record's erasable part
        except ValueError:
            continue
        if not isinstance(fields, dict) or fields.get("action") != UPLOAD_ACTION or fields.get("outcome") != "ok":
            continue
        if not everyone and fields.get("principal") != principal.name:
            continue
        target = str(fields.get("target") or "")
        if target and target not in found:
            found.append(target)
    return found[::-1][:limit]


def has_page_image(shown: PageView, originals: Path) -> bool:
    """Whether the page can be drawn: its version is a PDF whose original was kept."""
    return shown.version.media_type == PDF and has_original(originals, shown.version.id)
