"""The content profile of a file under check: read once per run, shared by every item that needs content.

One streamed pass computes SHA-256 and SM3 (the fixity items); identification and validation then work on a
local path (the blob itself on a local store, otherwise the copy spooled during that same pass); the virus
scan streams the same path to ClamAV. Profiles of a run are computed in a small thread pool: hashlib and the
format libraries release the GIL for the heavy parts, so two cores give close to two streams.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from dangan.checks.model import FileUnderCheck
from dangan.errors import DanganError
from dangan.formats.results import Identification, Validation
from dangan.storage.hashing import CHUNK, DualDigest


@dataclass
class FileProfile:
    present: bool
    size: int | None = None
    sha256: str | None = None
    sm3: str | None = None
    read_error: str | None = None
    identification: Identification | None = None
    validation: Validation | None = None
    virus: Any = None  # clamav.ScanResult | None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def identify_path(path: str, name: str, head: bytes) -> Identification:
    from dangan.formats.identify import identify_file

    return identify_file(path, name)


def validate_path(path: str, ident: Identification, name: str) -> Validation:
    from dangan.formats.validate import validate

    return validate(path, ident, name=name)


class Profiler:
    """Computes and caches the profiles of one run."""

    def __init__(self, *, deep: bool = True, scanner: Any = None, workers: int | None = None,
                 tmp_dir: str | None = None) -> None:
        self.deep = deep              # identification + validation (not only digests)
        self.scanner = scanner        # ClamAV client or None
        self.workers = max(1, workers or min(4, os.cpu_count() or 1))
        self.tmp_dir = tmp_dir
        self._cache: dict[int, Future[FileProfile]] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.bytes_read = 0
        self.done = 0

    def __enter__(self) -> Profiler:
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="check-profile")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def prefetch(self, files: Iterable[FileUnderCheck]) -> None:
        # largest first (the longest jobs start first), so that a big scan queued late does not keep one
        # worker busy while the others have finished; equal sizes keep their order
        for f in sorted(files, key=_size_hint, reverse=True):
            self._future(f)

    def _future(self, f: FileUnderCheck) -> Future[FileProfile]:
        with self._lock:
            fut = self._cache.get(id(f))
            if fut is None:
                if self._pool is None:
                    fut = Future()
                    fut.set_result(self.compute(f))
                else:
                    fut = self._pool.submit(self.compute, f)
                self._cache[id(f)] = fut
            return fut

    def __call__(self, f: FileUnderCheck) -> FileProfile:
        return self._future(f).result()

    def compute(self, f: FileUnderCheck) -> FileProfile:
        t0 = time.perf_counter()
        prof = self._compute(f)
        prof.seconds = time.perf_counter() - t0
        with self._lock:
            self.bytes_read += prof.size or 0
            self.done += 1
        return prof

    def _compute(self, f: FileUnderCheck) -> FileProfile:
        if f.opener is None and not f.local_path:
            return FileProfile(present=False)
        d = DualDigest()
        spool_path: str | None = None
        path = f.local_path if f.local_path and os.path.isfile(f.local_path) else None
        try:
            if path:
                with open(path, "rb") as fh:
                    _pump(fh, d, None)
            else:
                assert f.opener is not None
                spool = None
                if self.deep or self.scanner is not None:
                    fd, spool_path = tempfile.mkstemp(prefix="check-", dir=self.tmp_dir)
                    spool = os.fdopen(fd, "wb")
                try:
                    with f.opener() as fh:
                        _pump(fh, d, spool)
                finally:
                    if spool:
                        spool.close()
                path = spool_path
        except FileNotFoundError:
            _unlink(spool_path)
            return FileProfile(present=False)
        except DanganError as e:
            _unlink(spool_path)
            if e.code == "BLOB_MISSING":
                return FileProfile(present=False)
            return FileProfile(present=True, size=d.size, read_error=e.message[:200])
        except Exception as e:  # unreadable: a finding, not a crash
            _unlink(spool_path)
            return FileProfile(present=True, size=d.size, read_error=f"{type(e).__name__}: {str(e)[:200]}")
        prof = FileProfile(present=True, size=d.size, sha256=d.sha256, sm3=d.sm3)
        try:
            if self.deep and path:
                prof.identification = identify_path(path, f.name, d.head)
                prof.validation = validate_path(path, prof.identification, f.name)
            if self.scanner is not None and path:
                with open(path, "rb") as fh:
                    prof.virus = self.scanner.scan(fh)
        finally:
            _unlink(spool_path)
        return prof


def _size_hint(f: FileUnderCheck) -> int:
    if f.size is not None:
        return f.size
    if f.local_path:
        with contextlib.suppress(OSError):
            return os.path.getsize(f.local_path)
    return 0


def _pump(src: Any, d: DualDigest, spool: Any) -> None:
    while True:
        b = src.read(CHUNK)
        if not b:
            return
        d.update(b)
        if spool is not None:
            spool.write(b)


def _unlink(path: str | None) -> None:
    if path:
        with contextlib.suppress(OSError):
            os.unlink(path)
