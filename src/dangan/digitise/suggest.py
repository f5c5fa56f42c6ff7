"""公文 metadata suggested from the OCR text of one page laid out per GB/T 9704-2012, for a clerk to confirm.

:func:`suggest` reads the lines of a page — OCR lines (anything with ``.text`` and, optionally, ``.box`` =
``(x0, y0, x1, y1)`` in page pixels and ``.score`` in 0..1), mappings with the same keys, or plain strings — and
proposes, at most once each:

=================  =========================================================================================
field              where it comes from (GB/T 9704-2012)
=================  =========================================================================================
responsible        发文机关标志 in the 版头 minus a trailing 文件 (stacked marks of a 联合行文 joined with 、; the
                   organ of a ``……令`` or ``…… 公告`` heading); the 发文机关署名 above the 成文日期; the organ
                   before 关于 in the 标题. Agreeing sources raise the confidence.
doc_number         the 发文字号 line; 〔〕 [] () （） 【】 ［］ 〖〗 ﹝﹞ brackets, 第, leading zeros, spaces and O/l
                   read for 0/1 are normalised to ``国办发〔2024〕12号`` (the form of
                   ``dangan.search.segment.normalize_doc_number``). A 文号 quoted inside a sentence
                   (``（国办发〔2023〕5号）同时废止``) is never taken for the page's own.
title              the 标题: ``[机关]关于……的通知/决定/意见/报告/请示/批复/函…``, wrapped lines merged (a
                   ``（试行）`` tail included); ``国家档案局公告``; never for a 令.
doc_type           the 文种 ending the 标题, when it is one of the 文书 schema's 文种 (复函 → 函, 令 → 命令).
date               the 成文日期 (ISO ``yyyy-mm-dd``) in Arabic or Chinese numerals (二〇二四年三月五日, with 〇 ○ 零
                   O 0 for zero), checked to exist; the one under the 署名 is preferred, the 印发日期 of the
                   版记 is only a fallback; dates inside sentences are ignored.
security_level     密级 in the 版头 (秘密/机密/绝密, ``秘密★5年``), 内部 for 内部/工作秘密 marks, 公开 for a
                   “此件公开发布/主动公开” 附注 — the names of ``dangan.domain.presets.SECURITY_LEVELS``.
secrecy_period     保密期限 after the ★ (``5年``, ``6个月``, ``长期``), dropped when longer than the law allows
                   for the level (秘密 10, 机密 20, 绝密 30 年).
urgency            紧急程度 特急/加急; the telegram marks 特提 → 特急 and 平急 → 加急 (with a note); 平件 only
                   when a full 版头 was read and carries no mark.
main_recipient     the 主送机关 line(s) ending in ： after the 标题 (or a ``主送：`` line); a list of organs
                   right under the 标题 whose ： OCR lost is offered less sure, with a note.
cc                 the 抄送机关 of the 版记.
=================  =========================================================================================

Every suggestion carries a confidence in 0..1 (pattern strength × position on the page × the OCR score),
the text it was read from and the index of its (first) line. Position uses the boxes when given: with
``page_height`` the 版头 is expected in the upper part of the page and the 署名/日期 below it; without it the
order of the lines stands in. Suggestions under :data:`MIN_CONFIDENCE` are not returned: no suggestion is
better than a wrong one. Pass one page at a time (the first page carries the 版头, the last the 署名 and
版记); lines of several pages may be concatenated if ``page_height`` is left out.

Pure Python, no I/O, linear in the number of lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from dangan.domain.presets import DOC_TYPES, SECURITY_LEVELS

FIELDS: tuple[str, ...] = (
    "responsible", "doc_number", "title", "doc_type", "date", "security_level", "secrecy_period", "urgency",
    "main_recipient", "cc",
)
URGENCY_LEVELS: tuple[str, ...] = ("特急", "加急", "平件")
MIN_CONFIDENCE = 0.3
MAX_CONFIDENCE = 0.97
MAX_ROW_CHARS = 300  # longer lines are cut for the analysis (a printed line has < 60 characters)

# 《中华人民共和国保守国家秘密法》: the longest 保密期限 of each level, in years
_MAX_YEARS = {"秘密": 10, "机密": 20, "绝密": 30}


@dataclass
class Suggestion:
    field: str  # one of FIELDS
    value: str
    confidence: float  # 0..1
    source: str  # the OCR text it came from (lines joined with a space)
    line: int | None  # index in the lines passed in of the first line it came from
    lines: tuple[int, ...] = ()  # every line it came from
    note: str = ""  # Chinese remark for the clerk (a mapping made, a fallback used)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lines"] = list(self.lines)
        return d


# ---------------------------------------------------------------------------------------------- text folding

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_ZH_PUNCT = {",": "，", ":": "：", ";": "；", "(": "（", ")": "）", "?": "？", "!": "！"}


def _fold_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0xFF01, 0xFF5F):  # full-width ASCII → ASCII, except the Chinese punctuation kept as is
        ascii_char = chr(code - 0xFEE0)
        table[code] = _ZH_PUNCT.get(ascii_char, ascii_char)
    for a, z in _ZH_PUNCT.items():
        table[ord(a)] = z
    table[0x3000] = " "
    for zw in ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"):
        table[ord(zw)] = ""
    table.update({ord("﹐"): "，", ord("﹕"): "：", ord("︰"): "：", ord("﹔"): "；", ord("﹙"): "（", ord("﹚"): "）"})
    return table


_FOLD = _fold_table()
_FOLD_RE = re.compile("[" + re.escape("".join(chr(c) for c in _FOLD)) + "]")
_SPACES = re.compile(r"\s+")
_LATIN = re.compile(r"[A-Za-z]")


def _fold(raw: str) -> str:
    """Full-width letters/digits to ASCII, Chinese punctuation full-width, white space removed (OCR puts spaces
    between the characters of widely spaced lines) except one space between two Latin letters."""
    s = _FOLD_RE.sub(lambda m: _FOLD[ord(m.group())], raw[:MAX_ROW_CHARS]).strip()

    def space(m: re.Match[str]) -> str:
        a, b = m.start() - 1, m.end()
        if a >= 0 and b < len(s) and _LATIN.match(s[a]) and _LATIN.match(s[b]):
            return " "
        return ""

    return _SPACES.sub(space, s)


# ----------------------------------------------------------------------------------------------------- rows


@dataclass
class _Row:
    n: int  # row number
    index: tuple[int, ...]  # input line indexes
    raw: str
    text: str  # folded
    box: tuple[float, float, float, float] | None
    score: float | None

    @property
    def ocr_factor(self) -> float:
        if self.score is None:
            return 1.0
        return 0.7 + 0.3 * min(1.0, max(0.0, self.score))


def _get(item: Any, key: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(key)
    return getattr(item, key, None)


def _as_box(value: Any) -> tuple[float, float, float, float] | None:
    try:
        x0, y0, x1, y1 = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if not (x1 > x0 and y1 > y0):
        return None
    return (x0, y0, x1, y1)


def _same_row(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """b continues row a on the right (two boxes OCR made of one printed line); never columns of vertical text."""
    if a[3] - a[1] > 1.5 * (a[2] - a[0]) or b[3] - b[1] > 1.5 * (b[2] - b[0]):
        return False
    h = min(a[3] - a[1], b[3] - b[1])
    overlap = min(a[3], b[3]) - max(a[1], b[1])
    return overlap >= 0.6 * h and b[0] >= a[2] - 0.3 * h


def _rows(lines: Iterable[Any]) -> list[_Row]:
    rows: list[_Row] = []
    for i, item in enumerate(lines):
        if isinstance(item, str):
            raw, box, score = item, None, None
        else:
            raw = _get(item, "text")
            raw = raw if isinstance(raw, str) else ("" if raw is None else str(raw))
            box = _as_box(_get(item, "box"))
            sc = _get(item, "score")
            score = float(sc) if isinstance(sc, int | float) else None
        text = _fold(raw)
        if not text:
            continue
        last = rows[-1] if rows else None
        if last and box and last.box and _same_row(last.box, box):
            last.index += (i,)
            last.raw = f"{last.raw} {raw.strip()}"
            last.text = _fold(last.raw)
            lb = last.box
            last.box = (min(lb[0], box[0]), min(lb[1], box[1]), max(lb[2], box[2]), max(lb[3], box[3]))
            if score is not None:
                last.score = score if last.score is None else min(last.score, score)
            continue
        rows.append(_Row(len(rows), (i,), raw.strip(), text, box, score))
    return rows


# ------------------------------------------------------------------------------------------------- patterns

_OPEN = "〔[（【〖﹝{<〈「"
_CLOSE = "〕]）】〗﹞}>〉」"
_DIG = "0-9OoIl|"
_DIGIT_FIX = str.maketrans("OoIl|", "00111")
_DAIZI = rf"[{_HAN}A-Z×]"
_DOCNO_LABEL = r"(?:(?:发文字号|发文号|文号|文件编号)：?)?"
_SIGNER = rf"(?:签发人：?[{_HAN}·、，\s]{{0,40}})?"
_DOCNO = re.compile(
    rf"{_DOCNO_LABEL}(?P<d>{_DAIZI}{{1,12}}?)(?P<o>[{re.escape(_OPEN)}])(?P<y>[{_DIG}]{{4}})"
    rf"(?P<c>[{re.escape(_CLOSE)}])(?P<di>第)?(?P<n>[{_DIG}]{{1,5}})(?P<hao>号)?{_SIGNER}"
)
_DOCNO_HINT = re.compile(f"[{re.escape(_OPEN)}号]")
_DIGIT = re.compile("[0-9]")
_DOCNO_BARE = re.compile(
    rf"{_DOCNO_LABEL}(?P<d>{_DAIZI}{{0,11}}[发函字办电复报请])(?P<y>(?:19|20)[0-9]{{2}})年?(?P<di>第)?"
    rf"(?P<n>[0-9]{{1,5}})(?P<hao>号){_SIGNER}"
)

_STAR = "★☆✩✪✫✬✭✮✯✰⭐*※•·✱✲✳✴✵✶✷✸✹✺✻✼✽✾✿❀❁❂❃❄❅❆❇❈❉❊❋"
_CN_SMALL = "一二三四五六七八九十"
_SECRET = re.compile(
    rf"(?:份号：?)?(?P<copy>[0-9]{{1,8}})?(?:密级(?:和保密期限)?：?)?(?P<lvl>绝密|机密|秘密)(?P<star>[{re.escape(_STAR)}])?"
    rf"(?P<per>[0-9]{{1,2}}年|[0-9]{{1,2}}个月|[{_CN_SMALL}]{{1,3}}年|[{_CN_SMALL}]{{1,3}}个月|长期)?"
    rf"(?P<urg>特急|加急|特提|平急)?"
)
_INTERNAL = re.compile(r"(?:[0-9]{1,8})?(?:密级：?)?(?P<lvl>内部|内部资料|内部文件|内部发行|内部资料注意保存|工作秘密)(?:[★*]?)")
_PUBLIC = re.compile(r"此件(?:主动)?公开(?:发布)?")
_URGENCY = re.compile(r"(?:紧急程度：?)?(?P<urg>特急|加急|特提|平急|急件)")
_URGENCY_MAP = {"特急": ("特急", 1.0, ""), "加急": ("加急", 1.0, ""),
                "特提": ("特急", 0.85, "电报紧急程度“特提”记为最高一级“特急”"),
                "平急": ("加急", 0.7, "电报紧急程度“平急”记为“加急”"),
                "急件": ("加急", 0.7, "“急件”记为“加急”")}

_ZERO = "〇○◯零O0oΟ口"
_CN_DIGIT = {**dict.fromkeys(_ZERO, 0), "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_DATE_AR = re.compile(rf"(?P<y>[{_DIG}]{{4}})年(?P<m>[{_DIG}]{{1,2}})月(?P<d>[{_DIG}]{{1,2}})日")
_DATE_CN = re.compile(
    rf"(?P<y>[{_ZERO}一二三四五六七八九]{{4}})年(?P<m>[{_CN_SMALL}]{{1,2}})月(?P<d>[{_CN_SMALL}廿卅]{{1,3}})日"
)

_KIND = r"(?P<kind>通知|通报|决定|决议|意见|报告|请示|批复|复函|函|命令|令|公报|公告|通告|议案|纪要|规定|办法|方案|答复|规划|细则|条例|计划|要点)"
_TITLE_END = re.compile(rf"(?P<de>的)?{_KIND}(?:（[^（）]{{1,12}}）)?$")
_KIND_TO_TYPE = {"复函": "函", "令": "命令"}
_HEADING = re.compile(rf"(?P<org>[{_HAN}×X·（）]{{2,30}}?)(?P<kind>公告|通告|公报|令)")
_ENUM_START = re.compile(rf"^(?:[{_CN_SMALL}]+[、.]|（[{_CN_SMALL}0-9]+）|[0-9]+[.、]|第[{_CN_SMALL}0-9]+[章条节])")
_SENTENCE = re.compile(r"[。；！？]")
_HAS_HAN = re.compile(f"[{_HAN}]")

_ORG_SUFFIXES = (
    "人民政府", "政府", "办公厅", "办公室", "委员会", "常委会", "人大", "政协", "党委", "党组", "工委", "纪委", "监委",
    "委", "部", "厅", "局", "署", "院", "会", "办", "处", "科", "室", "所", "站", "中心", "司", "行", "社", "公司",
    "集团", "学校", "大学", "学院", "医院", "机关", "机构", "单位", "部门", "企业", "省", "市", "县", "区", "州", "盟",
    "旗", "乡", "镇", "街道", "村", "团", "组", "队", "海关", "支部", "馆", "府", "同志", "军区", "部队", "主席",
)
_ORG_CHARS = re.compile(rf"[{_HAN}×X·（）0-9]+")
_TRAILING_PAREN = re.compile(r"（[^（）]{1,8}）$")
_LABEL = re.compile(
    r"^(?:附件|抄送|抄报|签发人|联系人|联系电话|电话|传真|地址|邮编|主题词|关键词|发文字号|文号|密级|日期|印发|份号|附注|说明|注|事由|备注)"
)
_NOISE = re.compile(r"^(?:[（(]?(?:印章|盖章|公章|签章|章)[）)]?|[^\w]{1,3}|.{1})$")


def _organ(text: str, max_len: int = 30) -> bool:
    """One organ name (发文机关, 署名): Chinese characters ending like an organ, no sentence punctuation."""
    if not (2 <= len(text) <= max_len) or "关于" in text or not _ORG_CHARS.fullmatch(text):
        return False
    return _TRAILING_PAREN.sub("", text).endswith(_ORG_SUFFIXES)


def _organ_list(text: str) -> bool:
    """A list of organs as in a 主送/抄送 line: 各省、自治区、直辖市人民政府，国务院各部委、各直属机构."""
    if not (2 <= len(text) <= 300) or _SENTENCE.search(text) or "关于" in text:
        return False
    parts = [p for p in re.split(r"[、，；]", text) if p]
    if not parts:
        return False
    good = sum(1 for p in parts if len(p) <= 40 and (p.startswith("各") or p == "有关单位" or _organ(p, 40)))
    return good / len(parts) >= 0.6


# ----------------------------------------------------------------------------------------------------- parse


def _digits(s: str) -> int:
    return int(s.translate(_DIGIT_FIX))


def _cn_small(s: str) -> int | None:
    """一 … 三十一 (also 廿 二十, 卅 三十) → int; None when not a well-formed small number."""
    s = s.replace("廿", "二十").replace("卅", "三十")
    if not s:
        return None
    if "十" in s:
        left, _, right = s.partition("十")
        if "十" in right or len(left) > 1 or len(right) > 1:
            return None
        tens = _CN_DIGIT.get(left, -1) if left else 1
        ones = _CN_DIGIT.get(right, -1) if right else 0
        if tens <= 0 or ones < 0:
            return None
        return tens * 10 + ones
    if len(s) != 1:
        return None
    v = _CN_DIGIT.get(s, -1)
    return v if v > 0 else None


def _cn_year(s: str) -> int | None:
    if not any(c in "一二三四五六七八九" for c in s):
        return None
    return int("".join(str(_CN_DIGIT[c]) for c in s))


def _make_date(y: int | None, m: int | None, d: int | None) -> str | None:
    if y is None or m is None or d is None or not 1900 <= y <= 2100:
        return None
    try:
        return date(y, m, d).isoformat()
    except ValueError:
        return None


def _dates(text: str) -> list[tuple[int, int, str | None]]:
    """(start, end, iso or None when the date does not exist) of every date written in *text*."""
    out: list[tuple[int, int, str | None]] = []
    if "年" not in text or "日" not in text:
        return out
    for m in _DATE_AR.finditer(text):
        if sum(c.isdigit() for c in m.group("y")) < 2:
            continue
        out.append((m.start(), m.end(), _make_date(_digits(m["y"]), _digits(m["m"]), _digits(m["d"]))))
    for m in _DATE_CN.finditer(text):
        out.append((m.start(), m.end(), _make_date(_cn_year(m["y"]), _cn_small(m["m"]), _cn_small(m["d"]))))
    return out


def _period(s: str | None) -> str | None:
    if not s:
        return None
    if s == "长期":
        return s
    unit = "个月" if s.endswith("个月") else "年"
    num = s[: -len(unit)]
    value = int(num) if num.isdigit() else _cn_small(num)
    if not value:
        return None
    return f"{value}{unit}"


def _period_years(p: str) -> float:
    if p == "长期":
        return 0
    return int(p[:-2]) / 12 if p.endswith("个月") else int(p[:-1])


# ------------------------------------------------------------------------------------------------- analysis


@dataclass
class _Cand:
    field: str
    value: str
    confidence: float
    rows: list[_Row]
    note: str = ""
    fallback: bool = False  # a second-best source (印发日期): never casts doubt on the first-hand one
    via: str = ""  # where on the page, for the note when several places agree (发文机关标志, 署名, 标题)


class _Page:
    def __init__(self, rows: list[_Row], page_height: float | None) -> None:
        self.rows = rows
        self.height = page_height if page_height and page_height > 0 else None
        boxes = [r.box for r in rows if r.box]
        self.block = (min(b[0] for b in boxes), max(b[2] for b in boxes)) if len(boxes) >= 3 else None
        self.head_end = len(rows)  # first row of the 主体 (标题, 主送 or a sentence)

    def rel_y(self, row: _Row) -> float | None:
        if self.height is None or row.box is None:
            return None
        return min(1.0, max(0.0, (row.box[1] + row.box[3]) / 2 / self.height))

    def head_factor(self, row: _Row) -> float:
        """How much *row*'s place fits the 版头 (top of the page, before the 标题)."""
        y = self.rel_y(row)
        if y is not None:
            return 1.0 if y <= 0.35 else 0.85 if y <= 0.5 else 0.55
        return 1.0 if row.n < self.head_end else 0.75

    def low_factor(self, row: _Row) -> float:
        """How much *row*'s place fits the 署名/成文日期 (below the 正文)."""
        y = self.rel_y(row)
        if y is not None:
            return 1.0 if y >= 0.3 else 0.75
        return 1.0 if row.n > self.head_end else 0.7

    def centred(self, rows: list[_Row]) -> float:
        if self.block is None or any(r.box is None for r in rows):
            return 1.0
        left, right = self.block
        width = right - left
        if width <= 0:
            return 1.0
        off = max(abs((r.box[0] + r.box[2]) / 2 - (left + right) / 2) for r in rows if r.box) / width
        return 1.0 if off <= 0.12 else 0.85


def _docno(row: _Row) -> tuple[str, float, str] | None:
    t = row.text
    m = _DOCNO.fullmatch(t)
    strength, note = 0.0, ""
    if m:
        strength = 0.92 if m["o"] == "〔" and m["c"] == "〕" else 0.86
    else:
        m = _DOCNO_BARE.fullmatch(t)
        if not m:
            return None
        strength, note = 0.62, "原文年份未加六角括号"
    daizi = m["d"]
    if not any("\u3400" <= c <= "\u9fff" for c in daizi):
        return None
    year, num = m["y"], m["n"]
    if sum(c.isdigit() for c in year) < 3 or not any(c.isdigit() for c in num):
        return None
    y, n = _digits(year), _digits(num)
    if not (1900 <= y <= 2100) or n <= 0:
        return None
    if not m["hao"]:
        strength -= 0.1
    if m["di"]:
        strength -= 0.04
    if year != year.translate(_DIGIT_FIX) or num != num.translate(_DIGIT_FIX):
        strength -= 0.05
    return f"{daizi}〔{y}〕{n}号", strength, note


def _title_at(page: _Page, end: int, doc_rows: set[int]) -> _Cand | None:
    rows = page.rows
    last = rows[end]
    m = _title_end(last.text)
    if not m or not _title_row_ok(last.text):
        return None
    start = end
    while start > 0 and end - start < 3:
        prev = rows[start - 1]
        if prev.n in doc_rows or not _title_row_ok(prev.text) or _title_end(prev.text):
            break
        if not _HAS_HAN.search(prev.text):  # 份号, a rule read as dashes
            break
        if prev.text.endswith("：") or _SECRET.fullmatch(prev.text) or _URGENCY.fullmatch(prev.text):
            break
        if prev.text.endswith("文件") or _dates(prev.text) or _INTERNAL.fullmatch(prev.text):
            break
        if _organ(prev.text) and start - 1 < page.head_end and "关于" not in "".join(r.text for r in rows[start:end + 1]):
            # 发文机关标志 of a 函 directly above a title without 关于: keep it out
            break
        start -= 1
        if "关于" in prev.text:
            break
    part = rows[start:end + 1]
    # a stray line above the 关于 line is not part of the title
    for k, r in enumerate(part):
        if "关于" in r.text:
            part = part[k:]
            break
    title = "".join(r.text for r in part)
    if len(title) > 150 or title.count("《") != title.count("》") or _ENUM_START.match(title):
        return None
    about = title.find("关于")
    if about == 0:
        strength = 0.92 if m["de"] else 0.8
    elif about > 0:
        prefix = title[:about]
        if not _organ(prefix, 60) and not all(_organ(p, 40) for p in re.split(r"[、，]", prefix) if p):
            return None
        strength = 0.92 if m["de"] else 0.8
    else:
        y = page.rel_y(part[0])
        if not (part[0].n <= page.head_end and (y is None or y <= 0.4)):
            return None  # no 关于 and not at the head of the 主体: a wrapped sentence, not a title
        if m["de"]:
            strength = 0.55
        elif len(part) == 1 and len(title) >= 4 and m["kind"] in ("纪要", "报告", "公告", "通告", "公报"):
            strength = 0.45
        else:
            return None
    y = page.rel_y(part[0])
    in_head = y <= 0.55 if y is not None else part[0].n <= page.head_end
    place = 1.0 if in_head else 0.7
    score = min(r.ocr_factor for r in part)
    return _Cand("title", title, strength * place * page.centred(part) * score, list(part))


def _signature(row: _Row) -> str:
    """The 发文机关署名 of *row*: one organ, or several side by side (联合行文) joined with 、; "" if none."""
    for gap in (r"\s{2,}", r"\s+"):
        parts = [_fold(p) for p in re.split(gap, row.raw.translate(_FOLD)) if p.strip()]
        if len(parts) > 1 and all(len(p) >= 3 and _organ(p) for p in parts):
            return "、".join(parts)
    return row.text if _organ(row.text) else ""


def _title_end(text: str) -> re.Match[str] | None:
    """The 文种 ending a title line (``…的通知``, ``…办法（试行）``); only the tail is looked at."""
    return _TITLE_END.search(text[-18:])


def _title_row_ok(text: str) -> bool:
    return len(text) <= 60 and not re.search(r"[，。；：？！]", text)


def _recipient_from(page: _Page, end: int, title: _Cand | None, doc_rows: set[int]) -> _Cand | None:
    rows = page.rows
    last = rows[end]
    colon = last.text.endswith("：")
    body = last.text[:-1] if colon else last.text
    if not body or _LABEL.match(body) or not _organ_list(body):
        return None
    if not colon and (title is None or _dates(body)):
        return None
    part = [last]
    text = body
    k = end - 1
    while colon and k >= 0 and end - k <= 2 and k >= page.head_end:
        prev = rows[k]
        if prev.text.endswith(("：", "。")) or not _organ_list(prev.text.rstrip("、，")):
            break
        if _title_end(prev.text) and _title_row_ok(prev.text):
            break
        part.insert(0, prev)
        text = prev.text + text
        k -= 1
    # right after the title (a 文号 or a dated line between them allowed: web copies put the 文号 there)
    near = title is not None and all(
        b.n in doc_rows or (b.text.startswith("（") and bool(_dates(b.text)))
        for b in rows[title.rows[-1].n + 1:part[0].n]
    )
    if colon:
        strength, note = (0.9 if near else 0.62), ""
    elif near:  # OCR lost the ：, but a list of organs right under the 标题 is the 主送机关
        strength, note = 0.55, "原文行末冒号未识别"
    else:
        return None
    return _Cand("main_recipient", text, strength * min(r.ocr_factor for r in part), part, note)


def _analyse(rows: list[_Row], page_height: float | None) -> list[_Cand]:
    page = _Page(rows, page_height)
    cands: list[_Cand] = []

    # 发文字号 rows first: they bound the 版头 and the title
    docnos: dict[int, tuple[str, float, str]] = {}
    for r in rows:
        if len(r.text) <= 80 and _DOCNO_HINT.search(r.text) and _DIGIT.search(r.text):
            found = _docno(r)
            if found:
                docnos[r.n] = found
    doc_rows = set(docnos)

    # titles (the best one bounds the 主体)
    first_sentence = next(
        (r.n for r in rows
         if len(r.text) >= 15 and r.n not in doc_rows and not _LABEL.match(r.text) and re.search(r"[，。；]", r.text)),
        len(rows),
    )
    page.head_end = first_sentence
    titles: list[_Cand] = []
    for r in rows:
        if r.text[-1] in "知报定见示复函令告议要法案划则例点" or r.text.endswith("）"):
            t = _title_at(page, r.n, doc_rows)
            if t:
                titles.append(t)
    title = max(titles, key=lambda c: (round(c.confidence, 3), -c.rows[0].n)) if titles else None
    if title:
        page.head_end = min(first_sentence, title.rows[0].n)
        # recompute the place factor now that the 版头 is known
        title = _title_at(page, title.rows[-1].n, doc_rows) or title
        cands.append(title)
        kind = _title_end(title.value)
        if kind:
            dtype = _KIND_TO_TYPE.get(kind["kind"], kind["kind"])
            if dtype in DOC_TYPES:
                cands.append(_Cand("doc_type", dtype, title.confidence * 0.95, title.rows))
        about = title.value.find("关于")
        if about > 0:
            cands.append(_Cand("responsible", title.value[:about], 0.6 * title.rows[0].ocr_factor, title.rows[:1],
                               "取自标题中的发文机关名称", via="标题"))

    for n, (value, strength, note) in docnos.items():
        r = rows[n]
        place = page.head_factor(r)
        if title and n > title.rows[-1].n:
            # just under the 标题 (web and reprint layouts) is still a place for the 文号; further down is not
            place = 0.9 if n - title.rows[-1].n <= 2 else min(place, 0.6)
        cands.append(_Cand("doc_number", value, strength * place * r.ocr_factor, [r], note))

    # 版头: 密级, 保密期限, 紧急程度, 发文机关标志
    mark_rows: list[_Row] = []
    for r in rows:
        t = r.text
        if len(t) > 40:
            continue
        place = page.head_factor(r) * r.ocr_factor
        sec = _SECRET.fullmatch(t)
        if sec:
            lvl = sec["lvl"]
            per = _period(sec["per"])
            cands.append(_Cand("security_level", lvl, (0.92 if sec["star"] and per else 0.85) * place, [r]))
            if per:
                if per != "长期" and _period_years(per) > _MAX_YEARS[lvl]:
                    pass  # longer than the law allows for the level: a misread, say nothing
                else:
                    cands.append(_Cand("secrecy_period", per, (0.9 if sec["star"] else 0.72) * place, [r]))
            if sec["urg"]:
                value, f, note = _URGENCY_MAP[sec["urg"]]
                cands.append(_Cand("urgency", value, 0.85 * f * place, [r], note))
            continue
        internal = _INTERNAL.fullmatch(t)
        if internal:
            note = "“工作秘密”不属国家秘密，记为“内部”" if internal["lvl"] == "工作秘密" else ""
            cands.append(_Cand("security_level", "内部", 0.62 * place, [r], note))
            continue
        urg = _URGENCY.fullmatch(t)
        if urg:
            value, f, note = _URGENCY_MAP[urg["urg"]]
            cands.append(_Cand("urgency", value, 0.88 * f * place, [r], note))
            continue
        if _PUBLIC.search(t) and len(t) <= 20:
            cands.append(_Cand("security_level", "公开", 0.68 * r.ocr_factor, [r], "取自附注“此件公开发布”"))
        if r.n < page.head_end and r.n < 10:
            below = doc_rows | ({title.rows[0].n} if title else set())
            named_file = t.endswith("文件") and "关于" not in t and (
                _organ(t[:-2]) or (bool(_ORG_CHARS.fullmatch(t)) and 3 <= len(t) <= 32)
            )
            # without 文件 (信函格式 “国务院办公厅”), the mark must stand just above the 文号 or the 标题
            if named_file or (_organ(t) and any(0 < d - r.n <= 3 for d in below)):
                mark_rows.append(r)

    # 命令(令)格式 and 公告/通告/公报: “中华人民共和国国务院令”, “国家档案局 / 公告” (the organ is the mark)
    heading = False
    for r in rows[:6]:
        if r.n >= page.head_end and not (title and r.n == title.rows[0].n):
            break
        head = _HEADING.fullmatch(r.text)
        if head and _organ(head["org"]):
            org, kind, part = head["org"], head["kind"], [r]
        elif r.text in ("公告", "通告", "公报", "令") and r.n > 0 and _organ(rows[r.n - 1].text):
            org, kind, part = rows[r.n - 1].text, r.text, [rows[r.n - 1], r]
        else:
            continue
        factor = page.head_factor(part[0]) * min(p.ocr_factor for p in part)
        cands.append(_Cand("responsible", org, 0.8 * factor, part, via="发文机关标志"))
        cands.append(_Cand("doc_type", _KIND_TO_TYPE.get(kind, kind), 0.8 * factor, part))
        if kind != "令":  # the title of a 令 is the name of what it promulgates, further down
            cands.append(_Cand("title", org + kind, 0.6 * factor, part))
        heading = True
        break

    if mark_rows:
        # stacked joint marks (A / B / 文件) are consecutive rows; take the run that ends nearest the 文号/标题
        run = [mark_rows[-1]]
        for r in reversed(mark_rows[:-1]):
            if r.n == run[0].n - 1:
                run.insert(0, r)
            else:
                break
        names = [r.text[:-2] if r.text.endswith("文件") else r.text for r in run]
        names = [x for x in names if x]
        if names:
            strong = any(r.text.endswith("文件") for r in run)
            value = "、".join(names)
            conf = (0.9 if strong else 0.76) * min(page.head_factor(r) * r.ocr_factor for r in run)
            note = "联合发文，各发文机关以顿号分隔" if len(names) > 1 else ""
            cands.append(_Cand("responsible", value, conf * (0.85 if len(names) > 1 else 1.0), run, note,
                               via="发文机关标志"))

    # 主送机关
    recipient: _Cand | None = None
    for r in rows:
        if r.text.startswith("主送：") and len(r.text) > 3:
            value = r.text[3:].rstrip("。")
            if _organ_list(value):
                recipient = _Cand("main_recipient", value, 0.85 * r.ocr_factor, [r])
                break
    if recipient is None:
        start = title.rows[-1].n + 1 if title else 0
        found_here = [c for n in range(start, min(len(rows), start + 6)) if (c := _recipient_from(page, n, title, doc_rows))]
        # the first line ending in ： wins over a list of organs without it
        recipient = next((c for c in found_here if c.rows[-1].text.endswith("：")), found_here[0] if found_here else None)
        if recipient:
            y = page.rel_y(recipient.rows[0])
            if y is not None and y > 0.6:
                recipient.confidence *= 0.7
    if recipient:
        cands.append(recipient)

    # 成文日期 (and the 署名 above it), 印发日期
    signed_cands: list[_Cand] = []
    for r in rows:
        t = r.text
        for s, e, iso in _dates(t):
            if iso is None:
                continue
            before, after = t[:s], t[e:]
            if after.startswith("印发") or before.endswith("印发日期："):
                cands.append(_Cand("date", iso, 0.45 * r.ocr_factor, [r], "取自版记印发日期，请核对成文日期",
                                   fallback=True))
                continue
            if before.startswith("（") and after.endswith("）") and (title and 0 < r.n - title.rows[-1].n <= 2):
                cands.append(_Cand("date", iso, 0.6 * r.ocr_factor, [r], "取自标题下的日期"))
                continue
            bare = before.strip("（") == "" and after.strip("）") == ""
            sign = before.strip() if after == "" and before and _organ(before) else ""
            if not bare and not sign:
                continue  # a date inside a sentence: not this document's date
            signer: list[_Row] = []
            if sign:
                signer = [r]
            else:
                for k in (r.n - 1, r.n - 2):
                    if k < 0 or k <= page.head_end - 1:
                        break
                    prev = rows[k]
                    if _NOISE.match(prev.text):
                        continue
                    names = _signature(prev)
                    if names:
                        signer = [prev]
                        sign = names
                    break
            place = page.low_factor(r) * r.ocr_factor
            if signer:
                cands.append(_Cand("date", iso, 0.9 * place, [r]))
                signed_cands.append(_Cand("responsible", sign, 0.7 * signer[0].ocr_factor, signer,
                                          "取自发文机关署名", via="发文机关署名"))
            else:
                cands.append(_Cand("date", iso, 0.72 * place, [r]))
    cands.extend(signed_cands)

    # 抄送
    for r in rows:
        if r.text.startswith(("抄送：", "抄报：")) and len(r.text) > 3:
            value = r.text[3:]
            part = [r]
            k = r.n + 1
            while not value.endswith("。") and k < len(rows) and k - r.n <= 3:
                nxt = rows[k]
                if _LABEL.match(nxt.text) or _dates(nxt.text) or not _organ_list(nxt.text.rstrip("。、，")):
                    break
                value += nxt.text
                part.append(nxt)
                k += 1
            value = value.rstrip("。")
            if _organ_list(value):
                cands.append(_Cand("cc", value, 0.85 * min(p.ocr_factor for p in part), part))
            break

    # 平件: a full 版头 (机关标志 and 文号) was read and it has no 紧急程度
    if mark_rows and any(rows[n].n < page.head_end for n in doc_rows) and not any(c.field == "urgency" for c in cands):
        head = [rows[n] for n in sorted(doc_rows) if n < page.head_end][:1]
        cands.append(_Cand("urgency", "平件", 0.4, head, "版头未标紧急程度（请核对原件，OCR 可能漏识）"))

    formal = bool(title or mark_rows or heading or any(c.field == "doc_number" and c.confidence >= 0.6 for c in cands))
    if not formal:  # no 版头 and no 标题: perhaps a later page of a 公文, perhaps no 公文 at all
        for c in cands:
            if c.field != "cc":  # “抄送：” names itself
                c.confidence *= 0.6
    return cands


def _bare(value: str) -> str:
    return value.replace("、", "")


def _merge(cands: list[_Cand]) -> list[Suggestion]:
    by_field: dict[str, list[_Cand]] = {}
    for c in cands:
        by_field.setdefault(c.field, []).append(c)
    out: list[Suggestion] = []
    for name in FIELDS:
        group = by_field.get(name)
        if not group:
            continue
        if name == "security_level":  # only the schema's names (公开 内部 秘密 机密 绝密)
            group = [c for c in group if c.value in SECURITY_LEVELS]
            if not group:
                continue
        if name == "security_level" and any(c.value in _MAX_YEARS for c in group):
            # a state-secret mark outweighs a 公开 附注: never under-classify on a guess
            group = [c for c in group if c.value != "公开"] or group
        values: dict[str, list[_Cand]] = {}
        for c in group:
            values.setdefault(c.value, []).append(c)
        scored: list[tuple[float, int, str, list[_Cand]]] = []
        for value, cs in values.items():
            # independent places that agree (机关标志 and 署名) add up; the same place repeated does not
            per_via: dict[str, float] = {}
            for c in cs:
                per_via[c.via] = max(per_via.get(c.via, 0.0), c.confidence)
            miss = 1.0
            for v in per_via.values():
                miss *= 1.0 - min(0.99, max(0.0, v))
            conf = 1.0 - miss
            scored.append((conf, -min(c.rows[0].n for c in cs), value, cs))
        scored.sort(reverse=True)
        conf, _, value, cs = scored[0]
        # rivals that are not part of this value (a joint mark contains the single signature) cast doubt
        rival = max(
            (s[0] for s in scored[1:]
             if _bare(s[2]) not in _bare(value) and _bare(value) not in _bare(s[2]) and not all(c.fallback for c in s[3])),
            default=0.0,
        )
        if rival >= 0.5:
            conf -= 0.15
        conf = round(min(MAX_CONFIDENCE, max(0.0, conf)), 2)
        if conf < MIN_CONFIDENCE:
            continue
        best = max(cs, key=lambda c: c.confidence)
        rows = best.rows
        notes = [c.note for c in sorted(cs, key=lambda c: -c.confidence) if c.note]
        vias = list(dict.fromkeys(c.via for c in sorted(cs, key=lambda c: -c.confidence) if c.via))
        if len(vias) > 1:
            notes.insert(0, "、".join(vias) + "一致")
        out.append(Suggestion(
            field=name, value=value, confidence=conf, source=" ".join(r.raw for r in rows),
            line=rows[0].index[0], lines=tuple(i for r in rows for i in r.index), note=notes[0] if notes else "",
        ))
    return out


def suggest(lines: Iterable[Any], *, page_height: int | float | None = None) -> list[Suggestion]:
    """Suggested 公文 metadata of one page, at most one :class:`Suggestion` per field, in :data:`FIELDS` order.

    *lines* are the page's OCR lines in reading order: objects or mappings with ``text`` (and optionally
    ``box`` = (x0, y0, x1, y1) in page pixels and ``score`` in 0..1), or plain strings. Fragments OCR made of
    one printed line (boxes side by side at the same height) are read as one line. *page_height* (pixels)
    lets the position on the page count. Empty or non-公文 input gives few or no suggestions.
    """
    rows = _rows(lines)
    if not rows:
        return []
    return _merge(_analyse(rows, page_height))


__all__ = ["FIELDS", "MIN_CONFIDENCE", "URGENCY_LEVELS", "Suggestion", "suggest"]
