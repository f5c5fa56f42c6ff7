"""档号 archival codes: per-category templates as ordered parts, formatted and parsed without I/O.

A template is a list of parts. Each part names where its value comes from, the separator written before
it ("-" joins codes of different levels, "·" joins codes of the same level, DA/T 13-2022), and an optional
width with zero padding. The last part of a level's template is the sequence number (件号, 案卷号, 组号...)
allocated gaplessly inside the class formed by everything before it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SEQ = "seq"
PARENT = "parent_code"

SOURCE_LABELS = {
    "fonds_code": "全宗号",
    "category_code": "门类代码",
    "year": "年度",
    "retention_period": "保管期限",
    "department_code": "机构（问题）代码",
    "department_name": "机构（问题）名称",
    "class_code": "类别号",
    "project_no": "项目号",
    PARENT: "上级档号",
    SEQ: "顺序号",
}

SEPARATORS = ("", "-", "·")
CONST = "const:"  # a literal class code, e.g. const:M marks the separately numbered classified series
CLASSIFIED = "@classified"  # suffix of a level's alternative template for state-secret records


@dataclass(frozen=True)
class CodePart:
    source: str  # fonds_code | category_code | parent_code | seq | a metadata field code
    sep: str = ""  # written before this part; "" only for the first part
    width: int | None = None  # zero-padded to this width (seq) or exact width expected (others)
    label: str = ""

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"source": self.source, "sep": self.sep}
        if self.width:
            d["width"] = self.width
        if self.label:
            d["label"] = self.label
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CodePart:
        return cls(source=d["source"], sep=d.get("sep", ""), width=d.get("width"), label=d.get("label", ""))

    @property
    def display_label(self) -> str:
        if self.source.startswith(CONST):
            return self.label or self.source[len(CONST):]
        return self.label or SOURCE_LABELS.get(self.source, self.source)


@dataclass(frozen=True)
class CodeTemplate:
    parts: tuple[CodePart, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("档号模板不能为空")
        if self.parts[-1].source != SEQ:
            raise ValueError("档号模板的最后一项必须是顺序号（件号、案卷号或组号）")
        if sum(1 for p in self.parts if p.source == SEQ) != 1:
            raise ValueError("档号模板只能有一个顺序号")
        for i, p in enumerate(self.parts):
            if p.sep not in SEPARATORS:
                raise ValueError(f"档号分隔符“{p.sep}”无效，只能用“-”或“·”")
            if i == 0 and p.sep:
                raise ValueError("档号模板第一项前不能有分隔符")
            if i > 0 and not p.sep:
                raise ValueError(f"档号模板第 {i + 1} 项（{p.display_label}）前缺少分隔符")
            if p.source == PARENT and i != 0:
                raise ValueError("上级档号只能作为档号模板的第一项")
            if p.source.startswith(CONST):
                lit = p.source[len(CONST):]
                if not lit or "-" in lit or "·" in lit or len(lit) > 8:
                    raise ValueError(f"固定代码“{lit}”无效：1–8 个字符，不能含“-”或“·”")

    @classmethod
    def from_list(cls, items: list[Mapping[str, Any]]) -> CodeTemplate:
        return cls(tuple(CodePart.from_dict(d) for d in items))

    def as_list(self) -> list[dict[str, Any]]:
        return [p.as_dict() for p in self.parts]

    @property
    def uses_parent(self) -> bool:
        return self.parts[0].source == PARENT

    @property
    def seq_width(self) -> int | None:
        return self.parts[-1].width

    def class_key(self, values: Mapping[str, Any]) -> str:
        """The code of the lowest class (everything before the sequence number): the numbering scope."""
        missing = [p.display_label for p in self.parts[:-1]
                   if not p.source.startswith(CONST) and _blank(values.get(p.source))]
        if missing:
            raise ValueError("生成档号缺少：" + "、".join(missing))
        out = []
        for p in self.parts[:-1]:
            out.append(p.sep + _render(p, p.source[len(CONST):] if p.source.startswith(CONST) else values[p.source]))
        return "".join(out)

    def format(self, values: Mapping[str, Any], seq: int) -> str:
        seq_part = self.parts[-1]
        return self.class_key(values) + seq_part.sep + _render(seq_part, seq)

    def describe(self) -> str:
        """Human pattern such as 全宗号-门类代码·年度-保管期限-机构（问题）代码-件号(4位)."""
        out = []
        for p in self.parts:
            w = f"({p.width}位)" if p.width and p.source == SEQ else ""
            out.append(p.sep + p.display_label + w)
        return "".join(out)

    def regex(self) -> re.Pattern[str]:
        """A pattern that matches codes made by this template (used by the 档号规范性 check)."""
        pieces = []
        for p in self.parts:
            sep = re.escape(p.sep)
            if p.source == SEQ:
                body = rf"\d{{{p.width}}}" if p.width else r"\d+"
            elif p.source.startswith(CONST):
                body = re.escape(p.source[len(CONST):])
            elif p.width:
                body = rf"[^-·]{{{p.width}}}"
            elif p.source == PARENT:
                body = r".+"
            else:
                body = r"[^-·]+"
            pieces.append(sep + f"({body})")
        return re.compile("^" + "".join(pieces) + "$")


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _render(part: CodePart, value: Any) -> str:
    if part.source == SEQ:
        n = int(value)
        if n < 1:
            raise ValueError("顺序号从 1 开始")
        s = str(n)
        if part.width and len(s) > part.width:
            raise ValueError(f"{part.display_label} {n} 超过模板规定的 {part.width} 位")
        return s.zfill(part.width or 0)
    s = str(value).strip()
    if part.width and s.isdigit() and len(s) < part.width:
        s = s.zfill(part.width)
    if ("-" in s or "·" in s) and part.source != PARENT:
        raise ValueError(f"{part.display_label}“{s}”不能包含档号分隔符“-”或“·”")
    return s


SEQ_LABELS = {"item": "件号", "volume": "案卷号", "project": "项目号", "group": "组号"}


def _parts(spec: str, level: str = "item") -> CodeTemplate:
    """Compact notation for presets: 'fonds_code -category_code ·year -seq:4'."""
    parts = []
    for i, tok in enumerate(spec.split()):
        sep = ""
        if i > 0:
            sep, tok = tok[0], tok[1:]
        width = None
        if ":" in tok and tok.rsplit(":", 1)[1].isdigit():
            tok, w = tok.rsplit(":", 1)
            width = int(w)
        parts.append(CodePart(tok, sep, width, SEQ_LABELS[level] if tok == SEQ else ""))
    return CodeTemplate(tuple(parts))


# Presets that reproduce the standards' examples exactly (see tests/test_archival_code.py).
PRESETS: dict[str, dict[str, CodeTemplate]] = {
    # DA/T 22-2015: Z109-WS·2011-Y-BGS-0001
    "DA/T 22-2015 文书": {"item": _parts("fonds_code -category_code ·year -retention_period -department_code -seq:4")},
    # DA/T 13-2022: Z109-WS·2011·Y·办公室-0001
    "DA/T 13-2022 文书（机构名称）": {
        "item": _parts("fonds_code -category_code ·year ·retention_period ·department_name -seq:4")
    },
    # DA/T 13-2022: A439-WS·2015·D30·003-005 style with department code
    "DA/T 13-2022 文书（机构代码）": {
        "item": _parts("fonds_code -category_code ·year ·retention_period ·department_code -seq:4")
    },
    # DA/T 22-2015 with state-secret items numbered in their own series (Z109-WS·2011-Y-BGS·M-0001), so that the
    # gapless 件号 of ordinary items reveal nothing about classified ones to users who may not see them
    "DA/T 22-2015 文书（涉密件单独编号）": {
        "item": _parts("fonds_code -category_code ·year -retention_period -department_code -seq:4"),
        "item" + CLASSIFIED: _parts("fonds_code -category_code ·year -retention_period -department_code ·const:M -seq:4"),
    },
    # DA/T 13-2022: J019-KU·01·2017-001-001
    "DA/T 13-2022 会计": {
        "volume": _parts("fonds_code -category_code ·class_code ·year -seq:3", "volume"),
        "item": _parts("parent_code -seq:3"),
    },
    # DA/T 13-2022: X032-KJ·JJ·02-005-054
    "DA/T 13-2022 科技·基建": {
        "project": _parts("fonds_code -category_code ·class_code ·seq:2", "project"),
        "volume": _parts("parent_code -seq:3", "volume"),
        "item": _parts("parent_code -seq:3"),
    },
    # DA/T 13-2022: K021-ZP·2019·D30-025-005
    "DA/T 13-2022 照片": {
        "group": _parts("fonds_code -category_code ·year ·retention_period -seq:3", "group"),
        "item": _parts("parent_code -seq:3"),
    },
    # DA/T 13-2022 style for 录像 LX (item level)
    "DA/T 13-2022 音像": {"item": _parts("fonds_code -category_code ·year ·retention_period -seq:4")},
}
