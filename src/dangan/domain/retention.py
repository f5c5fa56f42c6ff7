"""保管期限 retention periods: Y (永久), D30, D10 and D+n, with expiry computed from the year of formation."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_CODE = re.compile(r"^(Y|D(\d{1,3}))$")
_LABEL = re.compile(r"^定期(\d{1,3})年$")


@dataclass(frozen=True)
class RetentionPeriod:
    code: str  # "Y" or "D<n>"
    years: int | None  # None for 永久

    @property
    def label(self) -> str:
        return "永久" if self.years is None else f"定期{self.years}年"

    @property
    def permanent(self) -> bool:
        return self.years is None

    def expiry_date(self, year_of_formation: int) -> dt.date | None:
        """Last day the record must be kept.

        Retention counts from the first day of the year after formation (令第79号 says so for accounting;
        we apply the same rule to 文书): D10 of 2014 runs 2015-01-01 .. 2024-12-31.
        """
        if self.years is None:
            return None
        return dt.date(year_of_formation + self.years, 12, 31)


def parse_retention(value: str) -> RetentionPeriod:
    """Accept a code (Y, D30, D10, D5) or its label (永久, 定期30年). Raises ValueError with a Chinese message."""
    v = (value or "").strip()
    if v[:1] in ("y", "d"):
        v = v.upper()
    if v == "永久":
        return RetentionPeriod("Y", None)
    m = _LABEL.match(v)
    if m:
        n = int(m.group(1))
        if n < 1:
            raise ValueError("定期保管期限的年数至少为 1")
        return RetentionPeriod(f"D{n}", n)
    m = _CODE.match(v)
    if not m:
        raise ValueError(f"保管期限“{value}”无法识别，应为 Y（永久）、D30（定期30年）、D10（定期10年）或 D+年数")
    if m.group(1) == "Y":
        return RetentionPeriod("Y", None)
    n = int(m.group(2))
    if n < 1:
        raise ValueError("定期保管期限的年数至少为 1")
    return RetentionPeriod(f"D{n}", n)


STANDARD_PERIODS = [parse_retention(c) for c in ("Y", "D30", "D10")]
