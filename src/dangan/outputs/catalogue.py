"""归档文件目录 (DA/T 22-2015 §10.2): the filing catalogue, as a streaming Excel workbook and as a PDF.

`heading` holds the catalogue's heading line, in order. Its keys are either field codes known here
(fonds_code 全宗号, fonds_name 全宗名称, category 门类, year 年度, retention 保管期限, department 机构（问题）)
or ready Chinese labels ("全宗号": "Z109"); empty values are left out.

`columns` is a list of (field_code, label) pairs, e.g. DEFAULT_COLUMNS; each row is a dict keyed by field
code. Dates (field codes `date`, `doc_date`, … or date objects) are printed as 8 digits, 20240305.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import Any, BinaryIO

from dangan.outputs._render import Column, cell_text, fit_columns, join_with_page_footers, render_pdf, ymd

TITLE = "归档文件目录"

DEFAULT_COLUMNS: list[tuple[str, str]] = [
    ("seq", "序号"),
    ("archival_code", "档号"),
    ("doc_number", "文号"),
    ("responsible", "责任者"),
    ("title", "题名"),
    ("date", "日期"),
    ("security_level", "密级"),
    ("pages", "页数"),
    ("remarks", "备注"),
]

HEADING_LABELS = {
    "fonds_code": "全宗号",
    "fonds_name": "全宗名称",
    "category": "门类",
    "category_name": "门类",
    "year": "年度",
    "retention": "保管期限",
    "department": "机构（问题）",
}

# Printed widths on A4 landscape (267 mm between the margins); the title column takes what is left.
WIDTHS_MM = {
    "seq": 11,
    "archival_code": 45,
    "doc_number": 37,
    "responsible": 36,
    "date": 18,
    "security_level": 11,
    "pages": 11,
    "remarks": 14,
    "retention": 16,
}
# Excel column widths in characters.
XLSX_WIDTHS = {
    "seq": 7,
    "archival_code": 26,
    "doc_number": 20,
    "responsible": 20,
    "title": 52,
    "date": 11,
    "security_level": 7,
    "pages": 7,
    "remarks": 14,
    "retention": 9,
}
NUMERIC_FIELDS = frozenset({"seq", "pages", "items"})


def heading_items(heading: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs of the heading line, in the given order, without empty values."""
    return [(HEADING_LABELS.get(k, k), cell_text(k, v)) for k, v in heading.items() if cell_text(k, v)]


# --------------------------------------------------------------------------------------------- Excel

_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _xlsx_value(code: str, value: Any) -> Any:
    """Numbers stay numbers (序号, 页数) so that Excel can sum them; everything else is text."""
    if value is None or value == "":
        return None
    if code in NUMERIC_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return value
    if code in NUMERIC_FIELDS and isinstance(value, str) and value.isdigit() and not value.startswith("0"):
        return int(value)
    return cell_text(code, value)


def catalogue_xlsx(
    out: BinaryIO,
    *,
    heading: Mapping[str, Any],
    columns: list[tuple[str, str]],
    rows: Iterable[Mapping[str, Any]],
) -> int:
    """Write the 归档文件目录 as an .xlsx workbook to `out`; return the number of rows written.

    Streams (openpyxl write-only mode): memory stays flat however many rows `rows` yields. The sheet is
    named 归档文件目录; row 1 is the title, row 2 the heading line, row 3 the column labels, then one row per
    document. Dates are text YYYYMMDD; 序号 and 页数 are numbers. Text that looks like a formula ("=…")
    is stored as text, never as a formula. Print setup: A4 landscape, fit to width, rows 1-3 repeat on
    every printed page, footer 第 N 页 共 M 页.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Border, Font, NamedStyle, Side
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.properties import PageSetupProperties

    codes = [code for code, _ in columns]
    ncols = max(len(codes), 1)
    last = get_column_letter(ncols)

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(TITLE)
    thin = Side(style="thin", color="000000")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)

    def named(name: str, font: Font, *, left: bool = False, grid: bool = True) -> NamedStyle:
        align = Alignment(horizontal="left" if left else "center", vertical="center", wrap_text=grid)
        return NamedStyle(name, font=font, border=border if grid else Border(), alignment=align)

    for style in (
        named("cat_title", Font(name="黑体", size=18, bold=True), grid=False),
        named("cat_info", Font(name="宋体", size=11), grid=False),
        named("cat_head", Font(name="黑体", size=11, bold=True)),
        named("cat_cell", Font(name="宋体", size=10.5)),
        named("cat_left", Font(name="宋体", size=10.5), left=True),
    ):
        wb.add_named_style(style)

    for i, code in enumerate(codes, 1):
        ws.column_dimensions[get_column_letter(i)].width = XLSX_WIDTHS.get(code, 14)
    ws.row_dimensions[1].height = 32
    ws.row_dimensions[2].height = 22
    ws.row_dimensions[3].height = 24
    ws.freeze_panes = "A4"
    ws.print_title_rows = "1:3"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = "9"  # A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.6
    ws.page_margins.top = 0.7
    ws.page_margins.bottom = 0.7
    ws.oddFooter.center.text = "第 &P 页 共 &N 页"
    if ncols > 1:
        ws.merged_cells.add(f"A1:{last}1")
        ws.merged_cells.add(f"A2:{last}2")

    def styled(value: Any, style: str) -> WriteOnlyCell:
        if isinstance(value, str):
            value = _ILLEGAL_XML.sub("", value)  # control characters Excel refuses
        cell = WriteOnlyCell(ws, value=value)
        if cell.data_type == "f":  # a title starting with "=" is text, not a formula
            cell.data_type = "s"
        cell.style = style
        return cell

    ws.append([styled(TITLE, "cat_title")])
    info = "　　".join(f"{label}：{value}" for label, value in heading_items(heading))
    ws.append([styled(info or None, "cat_info")])
    ws.append([styled(label, "cat_head") for _, label in columns])

    left = {"title": "cat_left"}
    count = 0
    for row in rows:
        ws.append([styled(_xlsx_value(code, row.get(code)), left.get(code, "cat_cell")) for code in codes])
        count += 1
    wb.save(out)
    return count


# ----------------------------------------------------------------------------------------------- PDF


def _table_rows(codes: list[str], rows: Iterable[Mapping[str, Any]]) -> Iterator[list[str]]:
    for row in rows:
        yield [cell_text(code, row.get(code)) for code in codes]


def catalogue_columns(columns: list[tuple[str, str]], total_mm: float = 267) -> list[Column]:
    return fit_columns(columns, WIDTHS_MM, total_mm, flexible="title", left=("title",))


CHUNK_ROWS = 1000  # rows laid out per WeasyPrint pass: bounds memory (WeasyPrint keeps ~0.16 MB per row)


def catalogue_pdf(
    *,
    heading: Mapping[str, Any],
    columns: list[tuple[str, str]],
    rows: Iterable[Mapping[str, Any]],
) -> bytes:
    """The 归档文件目录 as PDF bytes: A4 landscape, title and heading line on every page, a bordered table
    whose column header repeats on every page, long titles wrapping, footer 第 N 页 共 M 页.

    WeasyPrint lays out about 150 rows a second. A catalogue longer than CHUNK_ROWS rows is laid out in
    parts of CHUNK_ROWS rows (so memory stays bounded), joined, and then given its page footers; each
    part starts on a new page. Very large catalogues are still better exported as .xlsx.
    """
    codes = [code for code, _ in columns]
    context: dict[str, Any] = {
        "doc_title": TITLE,
        "page_size": "A4 landscape",
        "page_margin": "15mm 15mm 16mm 15mm",
        "title": TITLE,
        "info": heading_items(heading),
        "columns": catalogue_columns(columns),
        "cell_font": "9.5pt",
    }
    it = _table_rows(codes, rows)
    chunk = list(islice(it, CHUNK_ROWS))
    nxt = list(islice(it, 1))
    if not nxt:
        return render_pdf("table.html", rows=chunk, **context)
    parts = []
    while chunk:
        parts.append(render_pdf("table.html", rows=chunk, footer=False, **context))
        chunk = nxt + list(islice(it, CHUNK_ROWS - len(nxt)))
        nxt = []
    return join_with_page_footers(parts, page_size=context["page_size"], doc_title=TITLE)


__all__ = ["DEFAULT_COLUMNS", "TITLE", "catalogue_pdf", "catalogue_xlsx", "heading_items", "ymd"]
