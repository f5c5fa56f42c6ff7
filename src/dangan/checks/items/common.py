"""Helpers shared by the items: subjects for evidence, one schema validation per record, metadata strings."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

from dangan.checks.engine import CheckContext
from dangan.checks.model import FileUnderCheck, RecordUnderCheck
from dangan.errors import Problems

# problems of the category schema's validation, by the item that reports them
SCHEMA_CODES = {
    "length": {"TOO_LONG"},
    "type": {"WRONG_TYPE", "PATTERN_MISMATCH", "NOT_REPEATABLE", "UNKNOWN_FIELD"},
    "domain": {"NOT_IN_DOMAIN"},
    "reasonable": {"YEAR_DATE_MISMATCH", "DATE_ORDER", "OUT_OF_RANGE"},
    "chars": {"INVALID_CHARACTERS"},
    "required": {"REQUIRED"},
}


def file_subject(r: RecordUnderCheck, f: FileUnderCheck) -> str:
    return f"{r.subject} / {f.name}"


def rec_kw(r: RecordUnderCheck, **kw: Any) -> dict[str, Any]:
    return {"subject": r.subject, "record_ref": r.ref, **kw}


def file_kw(r: RecordUnderCheck, f: FileUnderCheck, **kw: Any) -> dict[str, Any]:
    return {"subject": file_subject(r, f), "record_ref": r.ref, "file_ref": f.ref, **kw}


def schema_problems(ctx: CheckContext, r: RecordUnderCheck) -> Problems | None:
    """The record's metadata validated against its category schema, once per run (None: no schema known)."""
    key = ("schema", id(r))
    if key not in ctx.cache:
        schema = ctx.env.schema_for(r)
        if schema is None:
            ctx.cache[key] = None
        else:
            _, problems = schema.validate(_schema_input(r.metadata))
            ctx.cache[key] = problems
    return ctx.cache[key]


def _schema_input(meta: dict[str, Any]) -> dict[str, Any]:
    # the fields dangan itself keeps beside the metadata are not the category's fields
    return {k: v for k, v in meta.items() if k not in ("archival_code",) and v is not None and v != ""}


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(field, text) for every string inside a metadata value (lists and nested dicts included)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from strings(v, f"{path}[{i}]")


ZERO_WIDTH = {"\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2028", "\u2029", "\u2060", "\ufeff"}


def special_chars(s: str, forbidden: str = "") -> list[str]:
    """Readable names of the special characters in a text: control, surrogate, private use, zero width, U+FFFD."""
    found: list[str] = []
    for c in s:
        cat = unicodedata.category(c)
        if cat == "Cc" and c not in "\t\n\r":
            found.append(f"控制字符 U+{ord(c):04X}")
        elif cat == "Cs":
            found.append(f"代理码位 U+{ord(c):04X}")
        elif cat == "Co":
            found.append(f"私用区字符 U+{ord(c):04X}（造字，其他系统无法显示）")
        elif c in ZERO_WIDTH:
            found.append(f"不可见字符 U+{ord(c):04X}")
        elif c == "\ufffd":
            found.append("替换字符 U+FFFD（转换编码时已丢失内容）")
        elif forbidden and c in forbidden:
            found.append(f"不允许的字符“{c}”")
    return sorted(set(found))


# text that was encoded in one charset and decoded in another (乱码)
_MOJIBAKE = re.compile(r"锟斤拷|烫烫烫|屯屯屯|\ufffd")


def looks_garbled(s: str) -> str | None:
    """The garbled fragment when a text looks like mojibake, else None.

    Besides the well-known fillers (锟斤拷 from a UTF-8 replacement character read as GBK), a text is taken as
    garbled when its bytes in GBK or in Latin-1 happen to be valid UTF-8 with non-ASCII characters in them:
    genuine Chinese text almost never is (GBK byte pairs rarely form UTF-8 sequences), while UTF-8 decoded as
    GBK ("鍏充簬" for 关于) or as Latin-1 ("Ã©" for é) always is.
    """
    m = _MOJIBAKE.search(s)
    if m:
        return m.group(0)
    for chunk in re.findall(r"[^\x00-\x7f]{2,}", s):
        for enc, plausible in (("gbk", _plausible_chinese), ("latin-1", _plausible_latin)):
            try:
                raw = chunk.encode(enc)
            except UnicodeEncodeError:
                continue
            fixed = raw.decode("utf-8", errors="replace")
            if fixed != chunk and plausible(fixed):
                return chunk
    return None


def _cjk(c: str) -> bool:
    return "\u4e00" <= c <= "\u9fff" or "\u3000" <= c <= "\u303f" or "\uff00" <= c <= "\uffef"


def _plausible_chinese(t: str) -> bool:
    # the repaired text reads as Chinese: mostly ideographs, few bytes that were not UTF-8 (genuine GBK text
    # decoded as UTF-8 gives almost only replacement characters)
    ideographs = sum("\u4e00" <= c <= "\u9fff" for c in t)
    return ideographs >= 2 and ideographs >= 0.6 * len(t) and t.count("\ufffd") <= 0.2 * len(t)


def _plausible_latin(t: str) -> bool:
    return "\ufffd" not in t and any(ord(c) > 0x7f for c in t) and all(
        c.isascii() or "\u00c0" <= c <= "\u024f" or _cjk(c) for c in t)


def short(v: Any, n: int = 60) -> str:
    s = str(v)
    return s if len(s) <= n else s[:n] + "…"
