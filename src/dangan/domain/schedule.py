"""归档范围和保管期限表 (retention schedule) as data: rules that suggest a 保管期限 for a record.

A rule names an entry of the schedule (条目) and the period it prescribes, and says which records it covers:
words of the title (keywords), document types (文种), departments and, for accounting, the 会计档案类别.
A rule with no condition of a kind does not restrict on it. The suggestion is the rule that matches best
(more matched conditions first; on a tie the longer period, because keeping too long is the safe mistake);
the archivist sees the rule and its basis and decides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from dangan.domain.retention import parse_retention
from dangan.errors import Problems

_LIST_FIELDS = ("keywords", "doc_types", "departments")
MAX_RULES = 500


@dataclass(frozen=True)
class ScheduleRule:
    item: str  # 条目, e.g. 本机关制定的法规政策性文件材料
    retention_period: str  # Y, D30, D10, D5 ...
    keywords: list[str] = field(default_factory=list)
    doc_types: list[str] = field(default_factory=list)
    departments: list[str] = field(default_factory=list)  # department codes or names
    class_code: str | None = None
    basis: str = ""  # e.g. 国家档案局令第8号 第六条（一）
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "", [])}


@dataclass(frozen=True)
class Suggestion:
    retention_period: str
    label: str
    rule: ScheduleRule
    matched: list[str]  # what matched: keywords, 文种, 机构, 类别

    def as_dict(self) -> dict[str, Any]:
        return {"retention_period": self.retention_period, "label": self.label, "rule": self.rule.as_dict(),
                "matched": self.matched,
                "explanation": f"建议“{self.label}”：{self.rule.item}"
                               + (f"（{self.rule.basis}）" if self.rule.basis else "")
                               + (f"；匹配：{'、'.join(self.matched)}" if self.matched else "")}


def parse_rules(raw: Any) -> tuple[list[ScheduleRule], Problems]:
    """Validate a schedule given as a list of dicts; problems are reported per rule (规则 N)."""
    p = Problems()
    rules: list[ScheduleRule] = []
    if not isinstance(raw, list):
        p.add("rules", "WRONG_TYPE", "保管期限表应为条目列表", "保管期限表")
        return rules, p
    if len(raw) > MAX_RULES:
        p.add("rules", "TOO_MANY", f"保管期限表最多 {MAX_RULES} 条", "保管期限表")
        return rules, p
    for i, r in enumerate(raw, 1):
        label = f"第 {i} 条"
        if not isinstance(r, dict):
            p.add(f"rules[{i}]", "WRONG_TYPE", "每一条应为对象（条目、保管期限、关键词……）", label)
            continue
        item = str(r.get("item") or "").strip()
        if not item or len(item) > 300:
            p.add(f"rules[{i}].item", "REQUIRED", "条目内容不能为空且不超过 300 字", label)
        try:
            period = parse_retention(str(r.get("retention_period") or "")).code
        except ValueError as e:
            p.add(f"rules[{i}].retention_period", "NOT_IN_DOMAIN", str(e), label)
            period = ""
        lists: dict[str, list[str]] = {}
        for k in _LIST_FIELDS:
            v = r.get(k) or []
            if isinstance(v, str):
                v = [x for x in v.replace("，", ",").replace("、", ",").replace("；", ",").split(",")]
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                p.add(f"rules[{i}].{k}", "WRONG_TYPE", "应为文字列表（用逗号或顿号分隔）", label)
                v = []
            v = [x.strip() for x in v if x.strip()]
            if any(len(x) > 50 for x in v) or len(v) > 100:
                p.add(f"rules[{i}].{k}", "TOO_LONG", "每个词不超过 50 字，每条最多 100 个", label)
            lists[k] = v
        extra = set(r) - {"item", "retention_period", "class_code", "basis", "note", *_LIST_FIELDS}
        if extra:
            p.add(f"rules[{i}]", "UNKNOWN_FIELD", f"未知的项：{'、'.join(sorted(extra))}", label)
        if item and period:
            rules.append(ScheduleRule(item=item[:300], retention_period=period, class_code=r.get("class_code") or None,
                                      basis=str(r.get("basis") or "")[:200], note=str(r.get("note") or "")[:500],
                                      **lists))
    return rules, p


def _rank(period: str) -> int:
    years = parse_retention(period).years
    return 10_000 if years is None else years


def suggest(rules: list[ScheduleRule], metadata: dict[str, Any], department: tuple[str, str] | None = None
            ) -> Suggestion | None:
    """The best rule for a record: its title, 文种, department (code, name) and 会计档案类别."""
    title = str(metadata.get("title") or "")
    doc_type = metadata.get("doc_type")
    class_code = metadata.get("class_code")
    best: tuple[tuple[int, int], ScheduleRule, list[str]] | None = None
    for r in rules:
        matched: list[str] = []
        score = 0
        if r.doc_types:
            if doc_type not in r.doc_types:
                continue
            matched.append(f"文种：{doc_type}")
            score += 5
        if r.departments:
            if department is None or not set(department) & set(r.departments):
                continue
            matched.append(f"机构：{department[1]}")
            score += 3
        if r.class_code:
            if class_code != r.class_code:
                continue
            matched.append(f"类别：{class_code}")
            score += 3
        if r.keywords:
            hits = [k for k in r.keywords if k in title]
            if not hits:
                continue
            matched.extend(hits)
            score += 10 * len(hits) + max(len(k) for k in hits)
        if score == 0:
            continue  # a rule without any condition suggests nothing by itself
        key = (score, _rank(r.retention_period))
        if best is None or key > best[0]:
            best = (key, r, matched)
    if best is None:
        return None
    rule = best[1]
    return Suggestion(rule.retention_period, parse_retention(rule.retention_period).label, rule, best[2])
