"""Dates and whole numbers as clerks type them in catalogues (归档文件目录) and business systems export them.

`parse_date` accepts 2024-03-05, 2024.3.5, 2024/3/5, 2024年3月5日, 20240305, full-width digits (２０２４),
surrounding and inner spaces, an ISO time after the date (2024-03-05 10:20:30, as exported by systems) and
date/datetime objects (Excel date cells). `parse_int` accepts 12, 12.0, "12", "１２", "12页", "1,234".
Both raise ValueError with a Chinese message that says how to write the value.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Any

__all__ = ["DATE_HINT", "parse_date", "parse_int"]

DATE_HINT = "应写作 20240305、2024-03-05、2024.3.5 或 2024年3月5日"

_DATE_PATTERNS = [
    re.compile(  # ISO date, optionally with the time a system export adds
        r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    ),
    re.compile(r"(\d{4})(\d{2})(\d{2})"),
    re.compile(r"(\d{4})\.(\d{1,2})\.(\d{1,2})"),
    re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})"),
    re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日?"),
]
_SPACES = re.compile(r"[\s\u200b\ufeff]+")
_INT = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)")
# units clerks write after a count: 12页, 3张, 2件, 2024年
_INT_UNITS = "页张件份年卷册盒个秒"
MIN_YEAR, MAX_YEAR = 1000, 2999


def _show(value: Any, n: int = 40) -> str:
    s = str(value).strip()
    return s if len(s) <= n else s[:n] + "…"


def _clean(value: str) -> str:
    """NFKC turns full-width digits and punctuation (２０２４．３．５, ／, －) into ASCII; spaces go."""
    return _SPACES.sub("", unicodedata.normalize("NFKC", value))


def parse_date(value: Any) -> dt.date:
    """Return the date a clerk or a system meant, or raise ValueError with a Chinese message.

    Rejects impossible dates (month 13, 2024-02-30), years outside 1000–2999 and free text.
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, bool) or value is None:
        raise ValueError(f"日期“{_show(value)}”无效，{DATE_HINT}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", str(value))).strip()
    for s in (text, text.replace(" ", "")):  # "2024-03-05 10:20:30" keeps its space, "2024 年 3 月" loses it
        for pat in _DATE_PATTERNS:
            m = pat.fullmatch(s)
            if m:
                y, mo, d = (int(g) for g in m.groups())
                if MIN_YEAR <= y <= MAX_YEAR:
                    try:
                        return dt.date(y, mo, d)
                    except ValueError:
                        pass
                raise ValueError(f"日期“{_show(value)}”无效，{DATE_HINT}")
    raise ValueError(f"日期“{_show(value)}”无效，{DATE_HINT}")


def parse_int(value: Any) -> int:
    """Return a whole number (页数, 件号, 年度…), or raise ValueError with a Chinese message.

    Accepts int, a float without fraction (Excel stores 12 as 12.0), and text with full-width digits,
    thousands separators and one trailing unit (页, 张, 件, 份, 年, 卷, 册, 盒, 个, 秒).
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"“{_show(value)}”不是整数，请填写阿拉伯数字，如 12")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueError(f"“{_show(value)}”不是整数，请填写不带小数的数字，如 12")
    s = _clean(str(value))
    if s and s[-1] in _INT_UNITS:
        s = s[:-1]
    if s.endswith(".0") and _INT.fullmatch(s[:-2]):
        s = s[:-2]
    if not _INT.fullmatch(s):
        raise ValueError(f"“{_show(value)}”不是整数，请填写阿拉伯数字，如 12")
    return int(s.replace(",", ""))
