"""四性检测 (DA/T 70) vocabulary: stages, dimensions, outcomes, evidence, and what is put under check.

A check item never sees the database or the blob store directly: it is handed a `CheckTarget` (records with
their metadata and files, and for a package what is physically in it and what its manifest declares). The
same items therefore check records already stored (归档, 长期保存) and a package before anything of it is
stored (移交与接收).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, BinaryIO


class Stage(StrEnum):
    """The three stages of DA/T 70, with the prefix of their item codes."""

    FILING = "归档"
    TRANSFER = "移交与接收"
    PRESERVATION = "长期保存"

    @property
    def prefix(self) -> str:
        return {"归档": "GD", "移交与接收": "YJ", "长期保存": "BC"}[self.value]

    @classmethod
    def parse(cls, value: str) -> Stage:
        v = (value or "").strip()
        aliases = {"归档": cls.FILING, "gd": cls.FILING, "filing": cls.FILING,
                   "移交": cls.TRANSFER, "接收": cls.TRANSFER, "移交与接收": cls.TRANSFER, "yj": cls.TRANSFER,
                   "transfer": cls.TRANSFER,
                   "长期保存": cls.PRESERVATION, "保存": cls.PRESERVATION, "bc": cls.PRESERVATION,
                   "preservation": cls.PRESERVATION}
        try:
            return aliases[v.lower()] if v.lower() in aliases else aliases[v]
        except KeyError:
            raise ValueError(f"检测环节“{value}”不存在，应为：归档、移交与接收、长期保存") from None


class Dimension(IntEnum):
    AUTHENTICITY = 1
    INTEGRITY = 2
    USABILITY = 3
    SECURITY = 4

    @property
    def label(self) -> str:
        return {1: "真实性", 2: "完整性", 3: "可用性", 4: "安全性"}[int(self)]


class Outcome(StrEnum):
    PASS = "通过"
    FAIL = "不通过"
    WARN = "警告"
    NA = "不适用"


@dataclass
class Evidence:
    """One finding of an item about one record or file: what was expected and what was found."""

    message: str
    subject: str = ""             # how a person finds it: 档号 / 电子文件号 / file path in the package
    record_ref: str = ""          # record id (stored) or 电子文件号 / package record key
    file_ref: str = ""            # file id (stored) or path in the package
    field: str = ""               # metadata field code, when the finding is about one field
    expected: Any = None
    found: Any = None
    outcome: Outcome = Outcome.FAIL

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message, "subject": self.subject, "record_ref": self.record_ref,
                "file_ref": self.file_ref, "field": self.field, "expected": _plain(self.expected),
                "found": _plain(self.found), "outcome": self.outcome.value}


def _plain(v: Any) -> Any:
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    return v


@dataclass
class FileUnderCheck:
    """A content file as recorded (declared) plus a way to read what is really there (`opener`, None if absent)."""

    ref: str                                  # file id, or path inside the package
    name: str
    role: str = "main"                       # main 正文 | attachment 附件 | processing_sheet 处理单 | ...
    size: int | None = None                   # declared size
    sha256: str | None = None                 # declared digests (recorded at capture / listed in the manifest)
    sm3: str | None = None
    media_type: str | None = None             # declared format
    format_name: str | None = None
    puid: str | None = None
    created_at: dt.datetime | None = None     # declared creation time (电子属性)
    location: str = ""                        # storage key, or the path inside the package
    opener: Callable[[], BinaryIO] | None = None
    local_path: str | None = None             # a real file path when the content is on a local disk
    file_id: int | None = None


@dataclass
class RecordUnderCheck:
    """One record (件 or 案卷) with its metadata as captured and its files."""

    ref: str
    title: str = ""
    archival_code: str | None = None
    record_id: int | None = None
    level: str = "item"
    state: str | None = None
    category_code: str | None = None
    fonds_code: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    files: list[FileUnderCheck] = field(default_factory=list)
    class_key: str | None = None
    seq: int | None = None
    declared_file_count: int | None = None    # how many files the sender said the record has
    department: tuple[str, str] | None = None  # (code, name) of 机构（问题）
    parent_code: str | None = None             # 档号 of the 案卷/项目/组 this record belongs to

    @property
    def subject(self) -> str:
        return self.archival_code or self.title[:30] or self.ref


@dataclass
class PackageEntry:
    """A file physically present in a package (folder or ZIP), by its path relative to the package root."""

    path: str
    size: int
    opener: Callable[[], BinaryIO]
    local_path: str | None = None


@dataclass
class ManifestEntry:
    """A file the package's manifest declares, with the digests it declares (algorithm -> hex)."""

    path: str
    digests: dict[str, str] = field(default_factory=dict)
    size: int | None = None


@dataclass
class PackageUnderCheck:
    """What a package holds and what it claims about itself."""

    kind: str                                 # bagit | eep | zip | folder
    label: str                                # file name shown in reports
    entries: list[PackageEntry] = field(default_factory=list)
    manifest: list[ManifestEntry] = field(default_factory=list)
    tag_manifest: list[ManifestEntry] = field(default_factory=list)
    declared_counts: dict[str, int] = field(default_factory=dict)  # records / files / bytes the sender declared
    metadata_files: list[str] = field(default_factory=list)        # paths of the XML/JSON descriptions
    allowed_extra: list[str] = field(default_factory=list)         # paths that belong to the package format
    structure_problems: list[Evidence] = field(default_factory=list)
    signatures: list[dict[str, Any]] = field(default_factory=list)  # package-level signature checks
    sent_digest: dict[str, str] | None = None  # digest of the package as the sender announced it, if any
    received_digest: dict[str, str] | None = None


@dataclass
class CheckTarget:
    stage: Stage
    kind: str                                 # record | batch | package
    label: str
    records: list[RecordUnderCheck] = field(default_factory=list)
    package: PackageUnderCheck | None = None
