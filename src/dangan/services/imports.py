"""批量导入: an Excel 归档文件目录 plus a folder (or ZIP) of files, linked to rows by file name or 档号 (挂接).

- A dry run checks every row exactly as the import would (schema, rights, 密级, files present and unambiguous)
  and writes a report: the catalogue's columns and values with a 校验结果 column, in Chinese. Nothing is stored.
- A real import stores the records through `ingest.ingest_batch` (blobs first, then rows, one transaction
  per batch). Every row carries a sender_ref derived from the catalogue's content and the row number, so
  running the same import again after a crash resumes it: rows already stored are skipped, never doubled.
- Rows are read one batch at a time (memory stays flat); the folder is indexed once.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from dangan.capture.workbook import Catalogue, CatalogueRow, open_catalogue, write_report
from dangan.capture.zipsafe import SafeZip
from dangan.errors import FieldProblem, ValidationFailed
from dangan.services import ingest
from dangan.services.access import require
from dangan.services.categories import get_category
from dangan.services.context import Actor, Dangan
from dangan.services.files import NewFile
from dangan.services.fonds import get_fonds
from dangan.services.records import RecordInput

MAX_EXTRA_LISTED = 200


# ---------------------------------------------------------------- where the files are


class FileSource:
    """Files handed in with a catalogue, found by the name a clerk typed or by 档号."""

    def find(self, name: str) -> list[str]:
        return []

    def by_stem(self, stem: str) -> list[str]:
        return []

    def open(self, key: str) -> BinaryIO:
        raise ValidationFailed(f"找不到文件“{key}”", code="FILE_MISSING")

    def size(self, key: str) -> int | None:
        return None

    def names(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def _stem(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


class _LazyFile:
    """Opens the file on first read and closes it at the end: a 100,000-row import never holds 100,000 handles."""

    def __init__(self, opener: Callable[[], BinaryIO]) -> None:
        self._opener = opener
        self._f: BinaryIO | None = None

    def read(self, n: int = -1) -> bytes:
        if self._f is None:
            self._f = self._opener()
        data = self._f.read(n)
        if not data or n < 0:
            self.close()
        return data

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class DirSource(FileSource):
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise ValidationFailed(f"文件夹“{root}”不存在", code="FOLDER_NOT_FOUND")
        self.root = root.resolve()
        self._paths: dict[str, str] = {}
        self._by_base: dict[str, list[str]] = {}
        self._by_stem: dict[str, list[str]] = {}
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames.sort()
            for fn in sorted(filenames):
                full = Path(dirpath) / fn
                if full.is_symlink() or not full.is_file():
                    continue  # a link could point anywhere: never followed
                rel = _nfc(full.relative_to(self.root).as_posix())
                self._paths[rel] = str(full)
                base = rel.rsplit("/", 1)[-1]
                self._by_base.setdefault(base, []).append(rel)
                self._by_stem.setdefault(_stem(rel), []).append(rel)
                parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
                if parent:  # a folder named by 档号 holds that record's files
                    self._by_stem.setdefault(parent.rsplit("/", 1)[-1], []).append(rel)

    def find(self, name: str) -> list[str]:
        q = _nfc(name.strip().replace("\\", "/")).strip("/")
        if not q or ".." in q.split("/"):
            return []
        if q in self._paths:
            return [q]
        base = q.rsplit("/", 1)[-1]
        return [p for p in self._by_base.get(base, []) if p == q or p.endswith("/" + q)]

    def by_stem(self, stem: str) -> list[str]:
        return list(dict.fromkeys(self._by_stem.get(_nfc(stem.strip()), [])))

    def open(self, key: str) -> BinaryIO:
        path = self._paths[key]
        return _LazyFile(lambda: open(path, "rb"))  # type: ignore[return-value]  # noqa: SIM115

    def size(self, key: str) -> int | None:
        return os.path.getsize(self._paths[key])

    def names(self) -> list[str]:
        return list(self._paths)


class ZipSource(FileSource):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip = SafeZip(path)
        self._by_stem: dict[str, list[str]] = {}
        self._entries = {e.name: e for e in self.zip.files()}
        for e in self._entries.values():
            self._by_stem.setdefault(_stem(e.name), []).append(e.name)
            if "/" in e.name:
                self._by_stem.setdefault(e.name.rsplit("/", 1)[0].rsplit("/", 1)[-1], []).append(e.name)

    def find(self, name: str) -> list[str]:
        return [e.name for e in self.zip.find(name)]

    def by_stem(self, stem: str) -> list[str]:
        return list(dict.fromkeys(self._by_stem.get(_nfc(stem.strip()), [])))

    def open(self, key: str) -> BinaryIO:
        entry = self._entries[key]
        return _LazyFile(lambda: self.zip.open(entry))  # type: ignore[return-value]

    def size(self, key: str) -> int | None:
        return self._entries[key].size

    def names(self) -> list[str]:
        return list(self._entries)

    def close(self) -> None:
        self.zip.close()


def open_source(path: Path | None) -> FileSource:
    if path is None:
        return FileSource()
    if path.is_dir():
        return DirSource(path)
    if not path.exists():
        raise ValidationFailed(f"文件夹或压缩包“{path}”不存在", code="FOLDER_NOT_FOUND")
    return ZipSource(path)


# ---------------------------------------------------------------- the import


@dataclass
class ImportSpec:
    fonds: str
    category: str
    catalogue: Path
    files: Path | None = None  # a folder or a ZIP; None: a catalogue without electronic files
    department: str | None = None  # used for rows without a 机构 column
    level: str = "item"
    state: str = "pre_filing"
    parent_id: int | None = None

    def as_params(self) -> dict[str, Any]:
        return {"fonds": self.fonds, "category": self.category, "catalogue": str(self.catalogue),
                "files": str(self.files) if self.files else None, "department": self.department,
                "level": self.level, "state": self.state, "parent_id": self.parent_id}

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> ImportSpec:
        return cls(fonds=p["fonds"], category=p["category"], catalogue=Path(p["catalogue"]),
                   files=Path(p["files"]) if p.get("files") else None, department=p.get("department"),
                   level=p.get("level", "item"), state=p.get("state", "pre_filing"), parent_id=p.get("parent_id"))


@dataclass
class ImportResult:
    dry_run: bool
    rows: int = 0
    passed: int = 0  # dry run: rows that would be stored
    created: int = 0
    existing: int = 0  # already stored by an earlier (interrupted) run of the same import
    failed: int = 0
    files: int = 0
    bytes: int = 0
    unlinked_files: int = 0  # files in the folder that no row refers to
    unlinked_examples: list[str] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    report: str | None = None
    top_problems: list[tuple[str, int]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)  # the first 100: row number and messages
    sender_ref_prefix: str = ""  # every row's sender_ref starts with it: `dangan check --batch JOB` finds the batch

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _digest(path: Path, spec: ImportSpec) -> str:
    h = hashlib.sha256(f"{spec.fonds}|{spec.category}|{spec.level}\n".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:24]


ROLES_AFTER_MAIN = "attachment"


def _link(row: CatalogueRow, source: FileSource, used: set[str]) -> tuple[list[str], list[str]]:
    """The files of a row (keys in the source) and the problems of linking them."""
    problems: list[str] = []
    keys: list[str] = []
    if row.files:
        for name in row.files:
            found = source.find(name)
            if not found:
                problems.append(f"文件“{name}”不在所附文件夹（压缩包）中，请核对文件名或补充文件")
            elif len(found) > 1:
                problems.append(f"文件名“{name}”对应多个文件（{'、'.join(found[:3])}），请在目录中写出带文件夹的相对路径")
            else:
                keys.append(found[0])
    else:
        code = row.values.get("archival_code")
        if code:
            keys = source.by_stem(str(code))
    for k in keys:
        used.add(k)
    return list(dict.fromkeys(keys)), problems


def _fields(app: Dangan, spec: ImportSpec) -> list[dict[str, Any]]:
    with app.read_sessions() as s:
        cat = get_category(s, get_fonds(s, spec.fonds).id, spec.category)
        if spec.level not in cat.schemas:
            raise ValidationFailed(f"门类 {cat.code} 没有层级“{spec.level}”", code="BAD_LEVEL")
        return list(cat.schemas[spec.level]["fields"])


def run_import(app: Dangan, actor: Actor, spec: ImportSpec, *, dry_run: bool = False, report: Path | None = None,
               progress: Callable[[dict[str, Any]], None] | None = None, batch_size: int = ingest.DEFAULT_BATCH
               ) -> ImportResult:
    """Import (or, with dry_run, only check) a catalogue and its files; see the module docstring."""
    require(actor, "record.import")
    require(actor, "record.create")
    fields = _fields(app, spec)
    digest = _digest(spec.catalogue, spec)
    result = ImportResult(dry_run=dry_run, sender_ref_prefix=f"import:{digest}:")
    source = open_source(spec.files)
    try:
        with open_catalogue(spec.catalogue, fields) as cat:
            result.unknown_columns = [label for _, label in cat.unknown_columns]
            result.missing_columns = [label for _, label in cat.missing_fields]
            total = _estimate_rows(cat)
            outcome: dict[int, list[str]] = {}  # row number -> problems (only rows that failed)
            created_codes: dict[int, str] = {}
            used: set[str] = set()
            pending_rows: list[int] = []  # row number of each item handed to ingest, by item index
            # the report is written in the same pass: rows wait here until their outcome is known
            feed = _ReportFeed(cat.header, report, spec.catalogue.name) if report is not None else None
            waiting: deque[CatalogueRow] = deque()
            known_upto = [0]  # rows up to this row number have their outcome

            def flush(upto: int) -> None:
                while waiting and waiting[0].row_number <= upto:
                    r = waiting.popleft()
                    assert feed is not None
                    feed.put(r, outcome.get(r.row_number, []))

            def items() -> Iterator[tuple[RecordInput, list[NewFile]]]:
                for row in cat.rows():
                    result.rows += 1
                    if feed is not None:
                        waiting.append(row)
                    keys, link_problems = _link(row, source, used)
                    problems = [_fp_text(p) for p in row.problems] + link_problems
                    if problems:
                        outcome[row.row_number] = problems
                        continue
                    values = {k: v for k, v in row.values.items() if not k.startswith("_")
                              and k not in ("archival_code", "department")}
                    dept = row.values.get("department") or spec.department
                    inp = RecordInput(spec.fonds, spec.category, values, level=spec.level, department=dept,
                                      parent_id=spec.parent_id, state=spec.state,
                                      sender_ref=f"import:{digest}:{row.row_number}")
                    files = [NewFile(k.rsplit("/", 1)[-1], source.open(k), role="main" if i == 0 else ROLES_AFTER_MAIN,
                                     expected_size=source.size(k)) for i, k in enumerate(keys)]
                    pending_rows.append(row.row_number)
                    yield inp, files

            def on_item(res: ingest.ItemResult) -> None:
                rn = pending_rows[res.index]
                known_upto[0] = rn
                if res.failure is not None:
                    outcome[rn] = [_fp_text(p) for p in res.failure.problems] or [res.failure.message]
                elif res.archival_code:
                    created_codes[rn] = res.archival_code

            def on_batch(rep: ingest.IngestReport) -> None:
                if feed is not None:
                    flush(known_upto[0])
                if progress:
                    # rows whose outcome is known: every row up to the last reported item (rows refused before
                    # ingest are known at once; rows read ahead for the next batch are not counted yet)
                    early = sum(1 for rn in outcome if rn <= known_upto[0]) - rep.failed
                    done = rep.processed + early
                    progress({"total": max(total, done), "processed": done, "created": rep.created,
                              "existing": rep.existing, "failed": rep.failed + early})

            try:
                if dry_run:
                    rep = ingest.validate_only(app, actor, items(), batch_size=batch_size, on_item=on_item,
                                               progress=on_batch)
                else:
                    rep = ingest.ingest_batch(app, actor, items(), batch_size=batch_size, on_item=on_item,
                                              progress=on_batch)
                if feed is not None:
                    flush(10**12)
            finally:
                summary = feed.close() if feed is not None else None
            result.failed = len(outcome)
            result.created, result.existing = (0, 0) if dry_run else (rep.created, rep.existing)
            result.passed = result.rows - result.failed
            result.files, result.bytes = rep.files, rep.bytes
            extra = [n for n in source.names() if n not in used]
            result.unlinked_files = len(extra)
            result.unlinked_examples = extra[:MAX_EXTRA_LISTED]
            result.failures = [{"row": rn, "problems": ps} for rn, ps in sorted(outcome.items())[:100]]
            if summary is not None:
                result.report = str(report)
                result.top_problems = list(summary.top_problems)
            if progress:
                progress({"total": result.rows, "processed": result.rows, "created": result.created,
                          "existing": result.existing, "failed": result.failed})
    finally:
        source.close()
    return result


class _ReportFeed:
    """Writes the report in a thread as rows arrive (openpyxl's write-only workbook pulls from a generator)."""

    def __init__(self, columns: Any, path: Path | None, source_name: str) -> None:
        self._q: queue.Queue[tuple[CatalogueRow, list[str]] | None] = queue.Queue(maxsize=4 * ingest.DEFAULT_BATCH)
        self._summary: Any = None
        self._error: BaseException | None = None
        self._closed = False
        self._t = threading.Thread(target=self._run, args=(columns, path, source_name), daemon=True,
                                   name="dangan-import-report")
        self._t.start()

    def _rows(self) -> Iterator[tuple[CatalogueRow, list[str]]]:
        while (item := self._q.get()) is not None:
            yield item

    def _run(self, columns: Any, path: Path, source_name: str) -> None:
        try:
            self._summary = write_report(self._rows(), columns, path, source_name=source_name)
        except BaseException as e:  # reported to the caller by close()
            self._error = e
            while self._q.get() is not None:  # keep draining so that put() never blocks forever
                pass

    def put(self, row: CatalogueRow, errors: list[str]) -> None:
        self._q.put((row, errors))

    def close(self) -> Any:
        if not self._closed:
            self._closed = True
            self._q.put(None)
            self._t.join()
        if self._error is not None:
            raise self._error
        return self._summary


def _estimate_rows(cat: Catalogue) -> int:
    return cat.estimated_rows()


def _fp_text(p: FieldProblem | str) -> str:
    if isinstance(p, FieldProblem):
        name = p.label or p.field
        return p.message if p.message.startswith(name) else f"{name}：{p.message}"
    return str(p)
