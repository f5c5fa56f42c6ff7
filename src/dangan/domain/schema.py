"""Category metadata schemas stored as data, and their validation (every problem reported, field by field)."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dangan.domain.retention import parse_retention
from dangan.errors import Problems

FIELD_TYPES = {"text": "文本", "integer": "整数", "date": "日期", "year": "年度", "enum": "代码", "retention": "保管期限"}
OBLIGATIONS = {"required": "必选", "conditional": "条件选", "optional": "可选"}

_DATE_PATTERNS = [
    re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
    re.compile(r"^(\d{4})\.(\d{1,2})\.(\d{1,2})$"),
    re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日$"),
]


def parse_date(value: Any) -> dt.date:
    """Accept the ways archivists write dates (2024-03-05, 20240305, 2024.3.5, 2024年3月5日)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    s = str(value).strip()
    for pat in _DATE_PATTERNS:
        m = pat.match(s)
        if m:
            y, mo, d = (int(g) for g in m.groups())
            return dt.date(y, mo, d)  # raises ValueError for 2024-02-30
    raise ValueError(s)


def has_control_chars(s: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cs", "Co") and c not in "\t\n\r" for c in s)


@dataclass(frozen=True)
class FieldSpec:
    code: str
    label: str
    type: str = "text"
    obligation: str = "optional"
    condition: Mapping[str, Any] | None = None  # for 条件选: {"field": "security_level", "in": ["秘密", ...]}
    max_length: int | None = None
    domain: tuple[str, ...] = ()
    pattern: str | None = None
    repeatable: bool = False
    dat46: str = ""  # DA/T 46-2009 element number, e.g. "M22"
    description: str = ""
    default: Any = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"code": self.code, "label": self.label, "type": self.type, "obligation": self.obligation}
        for k in ("condition", "max_length", "pattern", "dat46", "description", "default"):
            v = getattr(self, k)
            if v:
                d[k] = dict(v) if k == "condition" else v
        if self.domain:
            d["domain"] = list(self.domain)
        if self.repeatable:
            d["repeatable"] = True
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FieldSpec:
        spec = cls(
            code=d["code"],
            label=d["label"],
            type=d.get("type", "text"),
            obligation=d.get("obligation", "optional"),
            condition=d.get("condition"),
            max_length=d.get("max_length"),
            domain=tuple(d.get("domain") or ()),
            pattern=d.get("pattern"),
            repeatable=bool(d.get("repeatable", False)),
            dat46=d.get("dat46", ""),
            description=d.get("description", ""),
            default=d.get("default"),
        )
        spec.check_definition()
        return spec

    def check_definition(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", self.code):
            raise ValueError(f"字段代码“{self.code}”无效：只能用小写字母、数字和下划线，以字母开头")
        if self.type not in FIELD_TYPES:
            raise ValueError(f"字段“{self.label}”的类型“{self.type}”无效，可选：{'、'.join(FIELD_TYPES)}")
        if self.obligation not in OBLIGATIONS:
            raise ValueError(f"字段“{self.label}”的约束性“{self.obligation}”无效")
        if self.obligation == "conditional" and not (self.condition and "field" in self.condition):
            raise ValueError(f"条件选字段“{self.label}”必须写明条件")
        if self.type == "enum" and not self.domain:
            raise ValueError(f"代码型字段“{self.label}”必须给出值域")
        if self.pattern:
            try:
                re.compile(self.pattern)
            except re.error as e:
                raise ValueError(f"字段“{self.label}”的格式规则（正则表达式）无效：{e}") from e

    @property
    def obligation_label(self) -> str:
        return OBLIGATIONS[self.obligation]

    @property
    def type_label(self) -> str:
        return FIELD_TYPES[self.type]


@dataclass(frozen=True)
class MetadataSchema:
    fields: tuple[FieldSpec, ...]
    rules: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        codes = [f.code for f in self.fields]
        dup = {c for c in codes if codes.count(c) > 1}
        if dup:
            raise ValueError("字段代码重复：" + "、".join(sorted(dup)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MetadataSchema:
        return cls(tuple(FieldSpec.from_dict(f) for f in d.get("fields", [])), tuple(d.get("rules", [])))

    def as_dict(self) -> dict[str, Any]:
        return {"fields": [f.as_dict() for f in self.fields], "rules": [dict(r) for r in self.rules]}

    def get(self, code: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.code == code), None)

    def validate(self, metadata: Mapping[str, Any], *, partial: bool = False) -> tuple[dict[str, Any], Problems]:
        """Check metadata against the schema; return the normalised values and every problem found.

        `partial=True` checks only the given fields (an update of some fields); the caller merges and
        validates the whole record again before writing.
        """
        problems = Problems()
        out: dict[str, Any] = {}
        known = {f.code: f for f in self.fields}
        for key in metadata:
            if key not in known:
                problems.add(key, "UNKNOWN_FIELD", f"本门类没有字段“{key}”，请删除该项或检查字段代码", key)
        for spec in self.fields:
            raw = metadata.get(spec.code)
            if _empty(raw):
                if spec.default is not None and not partial:
                    raw = spec.default
                else:
                    continue
            values = raw if isinstance(raw, list) else [raw]
            if isinstance(raw, list) and not spec.repeatable:
                problems.add(spec.code, "NOT_REPEATABLE", "该字段不可重复，只能填写一个值", spec.label)
                continue
            normalised = []
            for v in values:
                ok, nv = _check_value(spec, v, problems)
                if ok:
                    normalised.append(nv)
            if len(normalised) == len(values):
                out[spec.code] = normalised if spec.repeatable else normalised[0]
        if not partial:
            for spec in self.fields:
                if spec.code in out or _has_problem(problems, spec.code):
                    continue
                if spec.obligation == "required":
                    problems.add(spec.code, "REQUIRED", "必选字段，不能为空", spec.label)
                elif spec.obligation == "conditional" and _condition_holds(spec.condition or {}, out):
                    cond = spec.condition or {}
                    other = known.get(cond["field"])
                    problems.add(
                        spec.code,
                        "REQUIRED",
                        f"当{other.label if other else cond['field']}为“{'、'.join(cond.get('in', []))}”时必须填写",
                        spec.label,
                    )
            for rule in self.rules:
                _apply_rule(rule, out, known, problems)
        return out, problems


def _empty(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, list) and not v)


def _has_problem(problems: Problems, code: str) -> bool:
    return any(p.field == code for p in problems.items)


def _condition_holds(cond: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    v = values.get(cond.get("field", ""))
    if "in" in cond:
        return v in cond["in"]
    if cond.get("present"):
        return not _empty(v)
    return False


def _check_value(spec: FieldSpec, v: Any, problems: Problems) -> tuple[bool, Any]:
    label = spec.label
    if spec.type == "integer":
        if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, str) and v.strip().isdigit())):
            problems.add(spec.code, "WRONG_TYPE", f"应为整数，收到“{_short(v)}”", label, v)
            return False, None
        n = int(v)
        if n < 0:
            problems.add(spec.code, "OUT_OF_RANGE", "不能为负数", label, v)
            return False, None
        return True, n
    if spec.type == "year":
        s = str(v).strip()
        if isinstance(v, bool) or not re.fullmatch(r"\d{4}", s) or not 1900 <= int(s) <= 2999:
            problems.add(spec.code, "WRONG_TYPE", f"应为四位年度（如 2024），收到“{_short(v)}”", label, v)
            return False, None
        return True, int(s)
    if spec.type == "date":
        try:
            d = parse_date(v)
        except ValueError:
            problems.add(
                spec.code, "WRONG_TYPE", f"日期“{_short(v)}”无法识别，请写成 2024-03-05 或 20240305", label, v
            )
            return False, None
        return True, d.isoformat()
    if not isinstance(v, str | int) or isinstance(v, bool):
        problems.add(spec.code, "WRONG_TYPE", f"应为文本，收到 {type(v).__name__}", label, v)
        return False, None
    s = str(v).strip()
    if spec.type == "retention":
        try:
            s = parse_retention(s).code
        except ValueError as e:
            problems.add(spec.code, "NOT_IN_DOMAIN", str(e), label, v)
            return False, None
    if has_control_chars(s):
        problems.add(spec.code, "INVALID_CHARACTERS", "包含控制字符或无效字符，请删除后重试", label, v)
        return False, None
    if spec.max_length and len(s) > spec.max_length:
        problems.add(
            spec.code, "TOO_LONG", f"长度为 {len(s)} 个字符，超过上限 {spec.max_length}，请删减", label, None
        )
        return False, None
    if spec.domain and s not in spec.domain:
        problems.add(
            spec.code, "NOT_IN_DOMAIN", f"“{_short(s)}”不在值域内，可选值：{'、'.join(spec.domain)}", label, v
        )
        return False, None
    if spec.pattern and not re.fullmatch(spec.pattern, s):
        problems.add(spec.code, "PATTERN_MISMATCH", f"“{_short(s)}”格式不符合要求（{spec.description or spec.pattern}）", label, v)
        return False, None
    return True, s


def _short(v: Any, n: int = 40) -> str:
    s = str(v)
    return s if len(s) <= n else s[:n] + "…"


def _apply_rule(rule: Mapping[str, Any], out: dict[str, Any], known: Mapping[str, FieldSpec], problems: Problems) -> None:
    kind = rule.get("rule")
    if kind == "year_matches_date":
        yf, df = rule.get("year", "year"), rule.get("date", "date")
        if yf in out and df in out and int(str(out[df])[:4]) != out[yf]:
            label = known[yf].label if yf in known else yf
            problems.add(
                yf,
                "YEAR_DATE_MISMATCH",
                f"年度 {out[yf]} 与{known[df].label if df in known else df} {out[df]} 不一致，请核对",
                label,
            )
    elif kind == "date_order":
        a, b = rule["start"], rule["end"]
        if a in out and b in out and out[a] > out[b]:
            problems.add(b, "DATE_ORDER", f"结束日期 {out[b]} 早于起始日期 {out[a]}", known[b].label if b in known else b)
