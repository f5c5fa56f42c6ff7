"""The check engine: items as small classes, schemes as data, one run = every enabled item over one target.

An item declares its number within its dimension (GD-1-7 is item 7 of 真实性 at 归档), what it checks, the
stages it belongs to, its parameters with defaults and whether it reads content. A scheme says, per item,
whether it runs, with which parameters, and whether it vetoes (一票否决): a failing veto item fails the run
whatever else passed; a failing non-veto item fails its dimension but the run still reports 不通过 — the
archivist decides — unless the scheme marks it `advisory`, in which case it only warns.

Items never raise out of the engine: an item that crashes is reported as 不通过 with the error as evidence,
so one broken file or one bug cannot hide the results of the other items.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from dangan.checks.model import (
    CheckTarget,
    Dimension,
    Evidence,
    FileUnderCheck,
    Outcome,
    RecordUnderCheck,
    Stage,
)

MAX_EVIDENCE = 500  # evidence kept per item and run (the count is kept whole)

ALL_STAGES = frozenset(Stage)


class CheckEnv(Protocol):
    """What items may ask of the world beyond the target (the database, the blob store, ClamAV)."""

    def schema_for(self, record: RecordUnderCheck) -> Any: ...  # MetadataSchema | None

    def code_template_for(self, record: RecordUnderCheck) -> Any: ...  # CodeTemplate | None

    def existing_values(self, field: str, values: list[str], exclude_record_ids: set[int]) -> dict[str, list[str]]: ...

    def class_numbers(self, record: RecordUnderCheck) -> list[int] | None: ...

    def blob_exists(self, f: FileUnderCheck) -> bool: ...

    def schedule_rules_for(self, record: RecordUnderCheck) -> list[Any]: ...

    def department_of(self, record: RecordUnderCheck) -> tuple[str, str] | None: ...

    def audit_history(self, record: RecordUnderCheck) -> dict[str, Any] | None: ...

    def virus_scanner(self) -> Any: ...  # ClamdClient | None


class NullEnv:
    """An environment that knows nothing beyond the target (a package checked on its own)."""

    def schema_for(self, record: RecordUnderCheck) -> Any:
        return None

    def code_template_for(self, record: RecordUnderCheck) -> Any:
        return None

    def existing_values(self, field: str, values: list[str], exclude_record_ids: set[int]) -> dict[str, list[str]]:
        return {}

    def class_numbers(self, record: RecordUnderCheck) -> list[int] | None:
        return None

    def blob_exists(self, f: FileUnderCheck) -> bool:
        return f.opener is not None

    def schedule_rules_for(self, record: RecordUnderCheck) -> list[Any]:
        return []

    def department_of(self, record: RecordUnderCheck) -> tuple[str, str] | None:
        return None

    def audit_history(self, record: RecordUnderCheck) -> dict[str, Any] | None:
        return None

    def virus_scanner(self) -> Any:
        return None


@dataclass
class ItemReport:
    """What one item found in one run."""

    key: str
    code: str
    title: str
    dimension: Dimension
    outcome: Outcome
    veto: bool = False
    advisory: bool = False
    checked: int = 0
    evidence: list[Evidence] = field(default_factory=list)
    evidence_count: int = 0
    note: str = ""
    seconds: float = 0.0
    purpose: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "code": self.code, "title": self.title, "dimension": int(self.dimension),
                "dimension_label": self.dimension.label, "outcome": self.outcome.value, "veto": self.veto,
                "advisory": self.advisory, "checked": self.checked, "evidence_count": self.evidence_count,
                "evidence": [e.as_dict() for e in self.evidence], "note": self.note, "purpose": self.purpose,
                "seconds": round(self.seconds, 3)}


@dataclass
class RunReport:
    stage: Stage
    target_kind: str
    target_label: str
    items: list[ItemReport]
    records: int
    files: int
    bytes_read: int
    seconds: float
    file_results: dict[int, dict[str, Any]] = field(default_factory=dict)  # stored file id -> identification

    @property
    def verdict(self) -> Outcome:
        return verdict(self.items)

    def summary(self) -> dict[str, Any]:
        return summarise(self.items) | {"records": self.records, "files": self.files, "bytes_read": self.bytes_read,
                                         "seconds": round(self.seconds, 3)}


def verdict(items: Iterable[ItemReport]) -> Outcome:
    """不通过 when any non-advisory item failed (a veto item always counts); otherwise 通过."""
    for it in items:
        if it.outcome == Outcome.FAIL and (it.veto or not it.advisory):
            return Outcome.FAIL
    return Outcome.PASS


def dimension_outcome(items: list[ItemReport]) -> Outcome:
    """不通过 if a binding item failed; 警告 if only advisory items failed or items warned; 不适用 if nothing ran."""
    if not items or all(i.outcome == Outcome.NA for i in items):
        return Outcome.NA
    if verdict(items) == Outcome.FAIL:
        return Outcome.FAIL
    if any(i.outcome in (Outcome.FAIL, Outcome.WARN) for i in items):
        return Outcome.WARN
    return Outcome.PASS


def summarise(items: Iterable[ItemReport]) -> dict[str, Any]:
    items = list(items)
    dims: dict[str, dict[str, Any]] = {}
    for d in Dimension:
        mine = [i for i in items if i.dimension == d]
        counts = {o.value: sum(1 for i in mine if i.outcome == o) for o in Outcome}
        dims[str(int(d))] = {"label": d.label, "items": len(mine), "counts": counts,
                             "outcome": dimension_outcome(mine).value,
                             "failed_codes": [i.code for i in mine if i.outcome == Outcome.FAIL]}
    return {"verdict": verdict(items).value, "dimensions": dims,
            "counts": {o.value: sum(1 for i in items if i.outcome == o) for o in Outcome},
            "vetoed": [i.code for i in items if i.veto and i.outcome == Outcome.FAIL],
            "advisory_failed": [i.code for i in items if i.advisory and i.outcome == Outcome.FAIL]}


class Findings:
    """Collects an item's evidence; the outcome follows from what was collected."""

    def __init__(self) -> None:
        self.evidence: list[Evidence] = []
        self.count = 0
        self.checked = 0
        self.note = ""
        self._worst = Outcome.PASS

    def fail(self, message: str, **kw: Any) -> None:
        self.add(Evidence(message, outcome=Outcome.FAIL, **kw))

    def warn(self, message: str, **kw: Any) -> None:
        self.add(Evidence(message, outcome=Outcome.WARN, **kw))

    def add(self, ev: Evidence) -> None:
        self.count += 1
        if len(self.evidence) < MAX_EVIDENCE:
            self.evidence.append(ev)
        if ev.outcome == Outcome.FAIL:
            self._worst = Outcome.FAIL
        elif ev.outcome == Outcome.WARN and self._worst == Outcome.PASS:
            self._worst = Outcome.WARN

    def outcome(self) -> Outcome:
        if self.count:
            return self._worst
        return Outcome.PASS if self.checked else Outcome.NA


class CheckContext:
    """What an item works with: the target, the environment, the item's parameters and the file profiles."""

    def __init__(self, target: CheckTarget, env: CheckEnv, profiles: Callable[[FileUnderCheck], Any]) -> None:
        self.target = target
        self.env = env
        self._profile = profiles
        self.params: dict[str, Any] = {}
        self.cache: dict[Any, Any] = {}  # shared by the items of one run (e.g. one schema validation per record)

    @property
    def stage(self) -> Stage:
        return self.target.stage

    @property
    def records(self) -> list[RecordUnderCheck]:
        return self.target.records

    def files(self) -> Iterable[tuple[RecordUnderCheck, FileUnderCheck]]:
        for r in self.target.records:
            for f in r.files:
                yield r, f

    def profile(self, f: FileUnderCheck) -> Any:
        """The content profile of a file (read once per run): digests, identification, validation."""
        return self._profile(f)


class CheckItem:
    """One DA/T 70 check item. Subclasses set the class attributes and implement `check`."""

    key: ClassVar[str]
    number: ClassVar[int]
    dimension: ClassVar[Dimension]
    title: ClassVar[str]
    purpose: ClassVar[str]
    stages: ClassVar[frozenset[Stage]] = ALL_STAGES
    needs_content: ClassVar[bool] = False
    needs_package: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {}
    param_labels: ClassVar[dict[str, str]] = {}

    def code(self, stage: Stage) -> str:
        return f"{stage.prefix}-{int(self.dimension)}-{self.number}"

    def check(self, ctx: CheckContext, out: Findings) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self, stage: Stage) -> dict[str, Any]:
        return {"key": self.key, "code": self.code(stage), "title": self.title, "purpose": self.purpose,
                "dimension": int(self.dimension), "dimension_label": self.dimension.label,
                "needs_content": self.needs_content, "needs_package": self.needs_package,
                "defaults": dict(self.defaults), "param_labels": dict(self.param_labels)}


REGISTRY: dict[str, CheckItem] = {}


def register(cls: type[CheckItem]) -> type[CheckItem]:
    item = cls()
    if item.key in REGISTRY:
        raise ValueError(f"duplicate check item key {item.key}")
    REGISTRY[item.key] = item
    return cls


def items_for(stage: Stage) -> list[CheckItem]:
    _load_items()
    return sorted((i for i in REGISTRY.values() if stage in i.stages), key=lambda i: (int(i.dimension), i.number))


def _load_items() -> None:
    from dangan.checks import items  # noqa: F401  (registers every item)


@dataclass(frozen=True)
class ItemSetting:
    enabled: bool = True
    veto: bool = False
    advisory: bool = False
    params: dict[str, Any] = field(default_factory=dict)


def resolve_scheme(stage: Stage, config: dict[str, Any]) -> list[tuple[CheckItem, ItemSetting]]:
    """The items of a stage with the scheme's settings (items the scheme does not name run with defaults)."""
    out = []
    for item in items_for(stage):
        raw = config.get(item.key, {}) or {}
        params = {**item.defaults, **{k: v for k, v in (raw.get("params") or {}).items() if k in item.defaults}}
        s = ItemSetting(enabled=bool(raw.get("enabled", True)), veto=bool(raw.get("veto", False)),
                        advisory=bool(raw.get("advisory", False)), params=params)
        out.append((item, s))
    return out


def run_items(target: CheckTarget, scheme: dict[str, Any], env: CheckEnv, profiles: Callable[[FileUnderCheck], Any],
              *, on_item: Callable[[int, int, str], None] | None = None) -> list[ItemReport]:
    """Run every enabled item of the scheme over the target. Never raises for what an item finds or hits."""
    ctx = CheckContext(target, env, profiles)
    chosen = [(i, s) for i, s in resolve_scheme(target.stage, scheme) if s.enabled]
    reports: list[ItemReport] = []
    for n, (item, setting) in enumerate(chosen):
        if on_item:
            on_item(n, len(chosen), item.code(target.stage))
        ctx.params = dict(setting.params)
        out = Findings()
        t0 = time.perf_counter()
        if item.needs_package and target.package is None:
            out.note = "检测对象不是数据包，本项不适用"
        else:
            try:
                item.check(ctx, out)
            except Exception as e:  # an item bug or a hostile file must not hide the other results
                out.fail(f"检测项执行出错：{type(e).__name__}: {str(e)[:300]}", found=traceback.format_exc(limit=3)[-800:])
        reports.append(ItemReport(item.key, item.code(target.stage), item.title, item.dimension, out.outcome(),
                                  veto=setting.veto, advisory=setting.advisory and not setting.veto,
                                  checked=out.checked, evidence=out.evidence, evidence_count=out.count, note=out.note,
                                  seconds=time.perf_counter() - t0, purpose=item.purpose))
    if on_item:
        on_item(len(chosen), len(chosen), "")
    return reports
