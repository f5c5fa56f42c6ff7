"""Store maintenance: sweep blobs no row references (left by a crash between blob and row)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from dangan.db.models import File, ScanFile, ScanOutput
from dangan.services.access import require
from dangan.services.context import Actor, Dangan


@dataclass
class SweepReport:
    scanned: int = 0
    unreferenced: list[str] = field(default_factory=list)
    deleted: int = 0
    kept_recent: int = 0
    temporary_removed: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__}


def sweep(app: Dangan, actor: Actor, *, dry_run: bool = False, grace_seconds: int | None = None) -> SweepReport:
    """Delete blobs that no file row references and that are older than the grace period.

    The grace period protects uploads in flight: their blob is written before their row is committed.
    """
    with app.uow(actor, "storage.sweep", "storage"):
        require(actor, "storage.manage")
    grace = app.settings.sweep_grace_seconds if grace_seconds is None else grace_seconds
    cutoff = time.time() - grace
    rep = SweepReport(dry_run=dry_run)
    chunk: list[Any] = []

    def flush() -> None:
        # which of these keys does some row reference? asked in batches so memory stays flat
        with app.read_sessions() as s:
            referenced = set(s.scalars(select(File.storage_key).where(File.storage_key.in_([o.key for o in chunk]))))
            referenced |= _scan_keys(s, [o.key for o in chunk])
        for obj in chunk:
            if obj.key in referenced:
                continue
            if obj.modified > cutoff:
                rep.kept_recent += 1
            else:
                rep.unreferenced.append(obj.key)
        chunk.clear()

    for obj in app.store.iter_objects():
        rep.scanned += 1
        chunk.append(obj)
        if len(chunk) >= 1000:
            flush()
    if chunk:
        flush()
    if not dry_run:
        with app.read_sessions() as s:
            # re-check right before deleting: a row may have been committed since the first read
            still = set(s.scalars(select(File.storage_key).where(File.storage_key.in_(rep.unreferenced)))) if rep.unreferenced else set()
            still |= _scan_keys(s, rep.unreferenced) if rep.unreferenced else set()
        for key in rep.unreferenced:
            if key not in still:
                app.store.delete_unreferenced(key)
                rep.deleted += 1
        rep.temporary_removed = app.store.sweep_temporary(cutoff)
    with app.uow(actor, "storage.sweep") as uow:
        # the store's description (a path or URL) can exceed object_id's 64 characters: it goes in the detail
        uow.audit("storage.sweep", "storage", "", store=app.store.describe(), scanned=rep.scanned,
                  unreferenced=len(rep.unreferenced), deleted=rep.deleted, dry_run=dry_run)
    return rep


def _scan_keys(s: Any, keys: list[str]) -> set[str]:
    """Scan masters and PDF/A access copies of a 数字化批次 are kept before (and after) they are 挂接 to records."""
    return (set(s.scalars(select(ScanFile.storage_key).where(ScanFile.storage_key.in_(keys))))
            | set(s.scalars(select(ScanOutput.storage_key).where(ScanOutput.storage_key.in_(keys)))))
