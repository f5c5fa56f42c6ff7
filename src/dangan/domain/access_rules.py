"""利用 (access) rules as data: which approvals a request to view, borrow, copy or certify a record needs.

Pure: no database. A rule names the requests it applies to (利用方式, 密级, 开放状态, whether the requester belongs
to the department that formed the record) and the roles that approve them, in order. Every rule that matches a
request adds its steps; the steps are then put in order from the lowest level to the highest
(专职档案员 → 档案部门负责人 → 分管领导), each role once. A request no rule matches goes to the default route;
a route with no steps is granted at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dangan.domain.access import ROLE_LABELS

ANY = "any"

KINDS: dict[str, str] = {"view": "查阅", "borrow": "借阅（纸质）", "copy": "复制（摘抄、复印）", "certify": "出具档案证明"}
PURPOSES: tuple[str, ...] = ("工作查考", "编史修志", "学术研究", "经济建设", "落实政策", "个人取证", "其他")
OPEN_STATUSES: tuple[str, ...] = ("开放", "控制", "未开放")
DEPARTMENT_MATCH: dict[str, str] = {"same": "本部门", "other": "其他部门", ANY: "不限"}
EFFECTS: tuple[str, ...] = ("有效", "一般", "无效")

# roles that may appear as approval steps; lower rank approves first
STEP_RANK: dict[str, int] = {"archivist": 10, "records_head": 20, "leader": 30}
APPROVER_ROLES = tuple(STEP_RANK)

MAX_RULES = 100


@dataclass(frozen=True)
class RequestFacts:
    """What the route depends on: the kind of use, the record's 密级 and 开放状态, and whether the requester
    belongs to the department that formed the record (None: the record has no department)."""

    kind: str
    security_level: str
    open_status: str = "未开放"
    same_department: bool | None = None


@dataclass(frozen=True)
class ApprovalRule:
    kind: str | tuple[str, ...] = ANY
    security_levels: str | tuple[str, ...] = ANY
    open_status: str | tuple[str, ...] = ANY
    requester_department: str = ANY  # same | other | any
    steps: tuple[str, ...] = ()
    note: str = ""

    def matches(self, f: RequestFacts) -> bool:
        if not _in(self.kind, f.kind) or not _in(self.security_levels, f.security_level):
            return False
        if not _in(self.open_status, f.open_status):
            return False
        if self.requester_department == "same":
            return f.same_department is True
        if self.requester_department == "other":
            return f.same_department is False
        return True

    def as_dict(self) -> dict[str, Any]:
        def out(v: str | tuple[str, ...]) -> str | list[str]:
            return v if isinstance(v, str) else list(v)

        return {"kind": out(self.kind), "security_levels": out(self.security_levels),
                "open_status": out(self.open_status), "requester_department": self.requester_department,
                "steps": list(self.steps), "note": self.note}


@dataclass(frozen=True)
class AccessRules:
    rules: tuple[ApprovalRule, ...]
    default_steps: tuple[str, ...] = ("records_head",)  # when no rule matches
    grant_days: int = 30  # a grant without a period runs this many days
    loan_days: int = 30  # a paper loan without a period is due after this many days
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"rules": [r.as_dict() for r in self.rules], "default_steps": list(self.default_steps),
                "grant_days": self.grant_days, "loan_days": self.loan_days}


def _in(cond: str | tuple[str, ...], value: str) -> bool:
    return cond in (ANY, value) or (isinstance(cond, tuple) and value in cond)


PRESET_RULES = AccessRules(rules=(
    ApprovalRule(kind=("view",), security_levels=("公开",), steps=(), note="公开档案的查阅：无需审批，即时准予"),
    ApprovalRule(security_levels=("内部",), steps=("records_head",), note="内部档案：档案部门负责人审批"),
    ApprovalRule(security_levels=("秘密", "机密", "绝密"), steps=("records_head", "leader"),
                 note="涉密档案：档案部门负责人审核，分管领导审批"),
    ApprovalRule(kind=("borrow",), steps=("archivist",), note="借阅纸质档案：专职档案员办理"),
    ApprovalRule(kind=("copy",), steps=("archivist",), note="复制：专职档案员审核"),
    ApprovalRule(kind=("certify",), steps=("records_head",), note="出具档案证明：档案部门负责人审批"),
    ApprovalRule(kind=("borrow", "copy", "certify"), requester_department="other", steps=("records_head",),
                 note="利用其他部门形成的档案（借阅、复制、出证）：增加档案部门负责人审批"),
))


def route_for(facts: RequestFacts, rules: AccessRules = PRESET_RULES) -> list[str]:
    """The approval steps (role codes, in order) for a request; [] means granted at once."""
    matched = [r for r in rules.rules if r.matches(facts)]
    steps: list[str] = []
    for r in matched or [ApprovalRule(steps=rules.default_steps)]:
        for role in r.steps:
            if role not in steps:
                steps.append(role)
    order = {role: i for i, role in enumerate(steps)}
    return sorted(steps, key=lambda role: (STEP_RANK.get(role, 25), order[role]))


# ---------------------------------------------------------------- parsing rules edited by a person


class RulesError(ValueError):
    """The rules as edited are not usable: every problem, as (field, Chinese message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(m for _, m in problems))
        self.problems = problems


def _cond(v: Any, allowed: tuple[str, ...] | None, where: str, label: str, problems: list[tuple[str, str]]) -> Any:
    if v is None or v == ANY or v == [] or v == "":
        return ANY
    vals = [v] if isinstance(v, str) else v
    if not isinstance(vals, list) or not all(isinstance(x, str) for x in vals):
        problems.append((where, f"{label}应为 any 或取值列表"))
        return ANY
    if allowed is not None:
        bad = [x for x in vals if x not in allowed]
        if bad:
            problems.append((where, f"{label}“{'、'.join(bad)}”无法识别，可选：{'、'.join(allowed)}"))
    return tuple(dict.fromkeys(vals))


def _steps(v: Any, where: str, problems: list[tuple[str, str]]) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        problems.append((where, "审批步骤应为角色代码列表，如 [\"records_head\", \"leader\"]"))
        return ()
    bad = [x for x in v if x not in APPROVER_ROLES]
    if bad:
        labels = "、".join(f"{r}（{ROLE_LABELS[r]}）" for r in APPROVER_ROLES)
        problems.append((where, f"审批角色“{'、'.join(bad)}”不能审批利用申请，可选：{labels}"))
    return tuple(dict.fromkeys(v))


def parse_rules(data: dict[str, Any] | None, levels: tuple[str, ...] = ("公开", "内部", "秘密", "机密", "绝密")) -> AccessRules:
    """Rules from their stored or edited form; raises RulesError naming every problem."""
    if not data:
        return PRESET_RULES
    problems: list[tuple[str, str]] = []
    raw = data.get("rules")
    if not isinstance(raw, list):
        raise RulesError([("rules", "审批规则应为列表")])
    if len(raw) > MAX_RULES:
        problems.append(("rules", f"审批规则最多 {MAX_RULES} 条"))
    rules = []
    for i, r in enumerate(raw[:MAX_RULES]):
        w = f"rules[{i}]"
        if not isinstance(r, dict):
            problems.append((w, "每条规则应为对象"))
            continue
        unknown = sorted(set(r) - {"kind", "security_levels", "open_status", "requester_department", "steps", "note"})
        if unknown:
            problems.append((w, f"不认识的项：{'、'.join(unknown)}"))
        dept = r.get("requester_department") or ANY
        if dept not in DEPARTMENT_MATCH:
            problems.append((f"{w}.requester_department", "申请人部门应为 same（本部门）、other（其他部门）或 any"))
        note = r.get("note") or ""
        if not isinstance(note, str) or len(note) > 200:
            problems.append((f"{w}.note", "说明应为不超过 200 字的文字"))
            note = ""
        rules.append(ApprovalRule(
            kind=_cond(r.get("kind"), tuple(KINDS), f"{w}.kind", "利用方式", problems),
            security_levels=_cond(r.get("security_levels"), levels, f"{w}.security_levels", "密级", problems),
            open_status=_cond(r.get("open_status"), OPEN_STATUSES, f"{w}.open_status", "开放状态", problems),
            requester_department=dept, steps=_steps(r.get("steps"), f"{w}.steps", problems), note=note))
    default = _steps(data.get("default_steps", ["records_head"]), "default_steps", problems)
    if not default:
        problems.append(("default_steps", "没有规则适用时的审批步骤不能为空（否则未列明的利用将无需审批）"))
    days = {}
    for k, label in (("grant_days", "准予利用的默认天数"), ("loan_days", "借阅默认天数")):
        v = data.get(k, getattr(PRESET_RULES, k))
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 365:
            problems.append((k, f"{label}应为 1 至 365 的整数"))
            v = getattr(PRESET_RULES, k)
        days[k] = v
    if problems:
        raise RulesError(problems)
    return AccessRules(rules=tuple(rules), default_steps=default, **days)
