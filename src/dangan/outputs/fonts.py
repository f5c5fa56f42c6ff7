"""Find an installed Chinese font through fontconfig.

WeasyPrint draws Chinese text as empty boxes, without any error, when no CJK font is installed; Pillow cannot
draw it at all. So every output calls `cjk_font()` first and fails loudly with CJK_FONT_MISSING instead.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass

from dangan.outputs import OutputError

# Preferred families, best first: a serif (宋体-like) face for body text, then sans (黑体-like) faces.
SERIF_FAMILIES = (
    "Noto Serif CJK SC",
    "Source Han Serif SC",
    "Source Han Serif CN",
    "AR PL UMing CN",
    "AR PL SungtiL GB",
)
SANS_FAMILIES = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "AR PL UKai CN",
)
MISSING_MESSAGE = "未安装中文字体（fonts-noto-cjk），无法生成 PDF。请安装：apt-get install fonts-noto-cjk"

_FC_FORMAT = "%{file}\t%{index}\t%{family}\t%{style}\n"


@dataclass(frozen=True)
class FontFace:
    """One face inside a font file (a .ttc holds several faces; Pillow needs the index)."""

    family: str
    file: str
    index: int = 0


@dataclass(frozen=True)
class CJKFont:
    """The Chinese fonts to print with: `body` for text (serif if installed) and `heading` for titles."""

    body: FontFace
    heading: FontFace
    bold: FontFace  # bold face of the body family (the regular face when no bold one is installed)


@dataclass(frozen=True)
class _Entry:
    file: str
    index: int
    families: tuple[str, ...]
    styles: tuple[str, ...]

    @property
    def bold(self) -> bool:
        return any("bold" in s.lower() or "heavy" in s.lower() or "black" in s.lower() for s in self.styles)


def _parse(fc_output: str) -> list[_Entry]:
    entries = []
    for line in fc_output.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or not parts[0]:
            continue
        try:
            index = int(parts[1] or 0)
        except ValueError:
            index = 0
        families = tuple(f.strip() for f in parts[2].split(",") if f.strip())
        styles = tuple(s.strip() for s in (parts[3] if len(parts) > 3 else "").split(",") if s.strip())
        entries.append(_Entry(parts[0], index, families, styles))
    return entries


def _face(entries: list[_Entry], family: str, bold: bool) -> FontFace | None:
    for e in entries:
        if family in e.families and e.bold == bold:
            return FontFace(family, e.file, e.index)
    return None


def pick_font(fc_output: str) -> CJKFont | None:
    """Choose the fonts from the output of `fc-list :lang=zh` (format `_FC_FORMAT`); None when none fits."""
    entries = _parse(fc_output)
    if not entries:
        return None

    def first(families: tuple[str, ...]) -> tuple[FontFace, FontFace] | None:
        for fam in families:
            regular = _face(entries, fam, bold=False) or _face(entries, fam, bold=True)
            if regular:
                return regular, _face(entries, fam, bold=True) or regular
        return None

    serif, sans = first(SERIF_FAMILIES), first(SANS_FAMILIES)
    main, head = serif or sans, sans or serif
    if main is None or head is None:
        # Any other Chinese face fontconfig knows about (e.g. a vendor 宋体): better than empty boxes.
        e = next((e for e in entries if not e.bold), entries[0])
        face = FontFace(e.families[0] if e.families else "serif", e.file, e.index)
        return CJKFont(body=face, heading=face, bold=face)
    return CJKFont(body=main[0], heading=head[0], bold=main[1])


def _run_fc_list() -> str:
    exe = shutil.which("fc-list")
    if not exe:
        return ""
    try:
        res = subprocess.run(
            [exe, ":lang=zh", "--format", _FC_FORMAT], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return res.stdout if res.returncode == 0 else ""


@functools.cache
def _cached() -> CJKFont | None:
    return pick_font(_run_fc_list())


def cjk_font() -> CJKFont:
    """The installed Chinese fonts (cached); raises OutputError CJK_FONT_MISSING when there is none."""
    font = _cached()
    if font is None:
        _cached.cache_clear()  # installing the fonts later must not need a restart
        raise OutputError(MISSING_MESSAGE, code="CJK_FONT_MISSING", message_en="no CJK font installed")
    return font
