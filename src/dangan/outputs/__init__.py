"""Printed outputs an archivist uses: 归档文件目录, 归档章, 案卷封面, 卷内目录, 备考表.

Pure rendering functions: they take plain Python data (dicts, lists, strings, dates) and return bytes or
write to a stream. They never touch the database or the store, so the services layer decides what to print
and these modules decide how it looks (DA/T 22-2015 归档文件整理规则, GB/T 9705-2008 文书档案案卷格式).

Every PDF function first checks that a Chinese font is installed (`fonts.cjk_font`): without one WeasyPrint
silently prints empty boxes instead of Chinese characters.
"""

from __future__ import annotations

from dangan.errors import DanganError


class OutputError(DanganError):
    """The server cannot produce the output (missing font, broken renderer): not the user's fault."""

    code = "OUTPUT_ERROR"
    status = 500


__all__ = [
    "OutputError",
    "catalogue_pdf",
    "catalogue_xlsx",
    "cjk_font",
    "stamp_pdf",
    "stamp_pdf_copy",
    "stamp_png",
    "volume_contents_pdf",
    "volume_cover_pdf",
    "volume_notes_pdf",
]


def __getattr__(name: str) -> object:
    """Lazy re-exports, so that importing `dangan.outputs` does not load WeasyPrint, pikepdf or openpyxl."""
    modules = {
        "catalogue_pdf": "catalogue",
        "catalogue_xlsx": "catalogue",
        "cjk_font": "fonts",
        "stamp_pdf": "stamp",
        "stamp_pdf_copy": "stamp",
        "stamp_png": "stamp",
        "volume_contents_pdf": "volume",
        "volume_cover_pdf": "volume",
        "volume_notes_pdf": "volume",
    }
    if name in modules:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{modules[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
