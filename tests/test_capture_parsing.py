"""Capture parsing: dates, the Excel catalogue (归档文件目录), safe ZIPs and DA/T 48 EEPs (no database)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import random
import re
import stat
import struct
import time
import unicodedata
import zipfile
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from conftest import CORPUS
from dangan.capture.dates import parse_date, parse_int
from dangan.capture.eep import EEP_NAMESPACE, map_retention, parse_eep
from dangan.capture.workbook import CatalogueRow, open_catalogue, write_report
from dangan.capture.zipsafe import SafeZip, entry_path
from dangan.errors import FieldProblem, ValidationFailed

XSD = CORPUS / "schemas" / "dat48-eep-2009.xsd"
EEP_EXAMPLE = CORPUS / "schemas" / "dat48-eep-example-no-namespace.xml"
needs_corpus = pytest.mark.skipif(not XSD.is_file(), reason="shared corpus not available")

FIELDS: list[dict[str, Any]] = [
    {"code": "title", "label": "题名", "obligation": "required"},
    {"code": "year", "label": "年度", "type": "year", "obligation": "required"},
    {"code": "retention_period", "label": "保管期限", "type": "retention", "obligation": "required"},
    {"code": "responsible", "label": "责任者", "obligation": "required"},
    {"code": "date", "label": "日期", "type": "date", "obligation": "required"},
    {"code": "doc_number", "label": "文号"},
    {"code": "security_level", "label": "密级", "type": "enum", "obligation": "required"},
    {"code": "doc_type", "label": "文种", "type": "enum"},
    {"code": "keywords", "label": "主题词", "repeatable": True},
    {"code": "pages", "label": "页数", "type": "integer"},
    {"code": "remarks", "label": "备注"},
]


def codes_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> set[str]:
    return {p.code for p in exc.value.problems}


# -- dates -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2024-03-05", "2024.3.5", "2024/3/5", "2024年3月5日", "20240305", " 2024-03-05 ", "２０２４．３．５",
        "２０２４年３月５日", "\u30002024.03.05\u3000", "2024 年 3 月 5 日", "2024-03-05 10:20:30", "2024-03-05T10:20",
        20240305, 20240305.0, dt.date(2024, 3, 5), dt.datetime(2024, 3, 5, 14, 30),
    ],
)
def test_parse_date_accepts_what_clerks_write(value: Any) -> None:
    assert parse_date(value) == dt.date(2024, 3, 5)


@pytest.mark.parametrize(
    "value",
    ["2024.13.5", "2024-02-30", "2023.2.29", "三月五日", "", "2024", "2024.3", "0024.3.5", None, True, 45356],
)
def test_parse_date_refuses_with_a_chinese_message(value: Any) -> None:
    with pytest.raises(ValueError) as e:
        parse_date(value)
    assert "无效" in str(e.value) and "20240305、2024-03-05、2024.3.5 或 2024年3月5日" in str(e.value)


def test_parse_date_message_names_the_value() -> None:
    with pytest.raises(ValueError, match="日期“2024.13.5”无效，应写作 20240305、2024-03-05、2024.3.5 或 2024年3月5日"):
        parse_date("2024.13.5")


@pytest.mark.parametrize(
    "value,expected",
    [("12", 12), (12, 12), (12.0, 12), ("１２", 12), ("１２页", 12), (" 3 张", 3), ("1,234", 1234), ("2024年", 2024),
     ("7.0", 7), ("-3", -3)],
)
def test_parse_int(value: Any, expected: int) -> None:
    assert parse_int(value) == expected


@pytest.mark.parametrize("value", ["12.5", 12.5, "十二", "", "12页3", None, True, "1,23"])
def test_parse_int_refuses(value: Any) -> None:
    with pytest.raises(ValueError, match="不是整数"):
        parse_int(value)


# -- workbook fixtures -----------------------------------------------------------------------------------

HEADER = ["序号", "档号", "文号", "责任者", "*题名", "日期（YYYYMMDD）", "页　数", "密级", "备注", "文件名", "经办人",
          "年度", "保管期限", "机构（问题）", "主题词"]


def build_catalogue(path: Path) -> Path:
    """Title row and a note row above the header (row 3); 责任者 merged over rows 5–7; an empty row."""
    wb = Workbook()
    ws = wb.active
    ws.title = "归档文件目录"
    ws.append(["示范市人民政府办公室 2024年度 归档文件目录"])
    ws.merge_cells("A1:O1")
    ws.append(["全宗号：Z109", None, None, None, "保管期限：永久"])
    ws.append(HEADER)
    rows = [
        [1, "Z109-WS·2024-Y-BGS-0001", "示政办发〔2024〕1号", "示范市人民政府办公室", "关于印发2024年工作要点的通知",
         "2024.3.5", 12, "公开", None, "0001.pdf", "张三", 2024, "永久", "办公室", "工作要点；通知"],
        [2, None, "示政办发〔2024〕2号", "示范市人民政府", "关于表彰先进集体的决定", "2024年3月5日", "３页", "公开", None,
         "0002.pdf；0002-附件.pdf", "李四", "2024", "Y", "办公室", None],
        [3, None, None, None, "会议纪要", 20240305, None, "内部", "=1+1", "0003.pdf、0003-附件.ofd\n0003-签发单.pdf",
         None, 2024, "D30", "办公室", None],
        [4, None, None, None, "值班安排", dt.datetime(2024, 3, 5), None, "公开", None, None, None, 2024, "D10",
         None, None],
        [None] * 15,  # empty row 8
        [6, None, None, "办公室", "错误日期的文件", "2024.13.5", "十二", "公开", None, None, None, "二〇二四", "D10",
         None, None],
        [7] + [None] * 14,  # only 序号: a pre-numbered template row, skipped
        [8, None, None, "办公室", "  题名前后有空格\u3000", dt.date(2024, 2, 29), 1.0, "公开", None, None, None, 2024,
         "D10", None, None],
    ]
    for r in rows:
        ws.append(r)
    ws["D5"] = "示范市人民政府办公室（合并）"
    ws["D6"] = None
    ws["D7"] = None
    ws.merge_cells("D5:D7")
    ws["I6"].data_type = "s"  # the text "=1+1", not a formula
    wb.save(path)
    return path


@pytest.fixture
def catalogue_xlsx(tmp_path: Path) -> Path:
    return build_catalogue(tmp_path / "目录.xlsx")


def test_catalogue_header_mapping_and_unknown_columns(catalogue_xlsx: Path) -> None:
    with open_catalogue(catalogue_xlsx, FIELDS) as cat:
        assert cat.sheet_name == "归档文件目录"
        assert cat.header_row == 3
        mapped = {code: (idx, label) for idx, label, code in cat.columns}
        assert mapped["_seq"] == (1, "序号")
        assert mapped["archival_code"][0] == 2
        assert mapped["title"] == (5, "*题名")
        assert mapped["date"] == (6, "日期（YYYYMMDD）")
        assert mapped["pages"] == (7, "页　数")
        assert mapped["_files"][0] == 10
        assert mapped["department"] == (14, "机构（问题）")
        assert mapped["keywords"][0] == 15
        assert cat.unknown_columns == [(11, "经办人")]
        assert [label for _, label in cat.header] == HEADER
        assert ("doc_type", "文种") not in cat.missing_fields  # optional
        assert cat.missing_fields == []


def test_catalogue_rows_are_normalised(catalogue_xlsx: Path) -> None:
    with open_catalogue(catalogue_xlsx, FIELDS) as cat:
        rows = list(cat.rows())
    by_seq = {r.values.get("_seq"): r for r in rows}
    assert [r.row_number for r in rows] == [4, 5, 6, 7, 9, 11]  # empty row 8 and 序号-only row 10 skipped
    r1 = by_seq[1]
    assert r1.values["date"] == "2024-03-05"
    assert r1.values["pages"] == 12 and r1.values["year"] == 2024
    assert r1.values["retention_period"] == "永久"
    assert r1.values["keywords"] == ["工作要点", "通知"]
    assert r1.values["department"] == "办公室"
    assert r1.files == ["0001.pdf"] and r1.problems == []
    # every accepted date form gives the same ISO date
    assert {by_seq[i].values["date"] for i in (1, 2, 3, 4)} == {"2024-03-05"}
    assert by_seq[2].values["pages"] == 3 and by_seq[2].values["year"] == 2024
    assert by_seq[2].files == ["0002.pdf", "0002-附件.pdf"]
    assert by_seq[3].files == ["0003.pdf", "0003-附件.ofd", "0003-签发单.pdf"]
    assert by_seq[3].values["remarks"] == "=1+1"
    # 责任者 merged over rows 5–7: filled from the top-left cell
    assert [by_seq[i].values["responsible"] for i in (2, 3, 4)] == ["示范市人民政府办公室（合并）"] * 3
    assert "responsible" not in by_seq[8].values or by_seq[8].values["responsible"] == "办公室"
    assert by_seq[8].values["title"] == "题名前后有空格"
    assert by_seq[8].values["date"] == "2024-02-29" and by_seq[8].values["pages"] == 1


def test_catalogue_bad_values_become_row_problems(catalogue_xlsx: Path) -> None:
    with open_catalogue(catalogue_xlsx, FIELDS) as cat:
        bad = next(r for r in cat.rows() if r.values.get("_seq") == 6)
    problems = {p.field: p for p in bad.problems}
    assert set(problems) == {"date", "pages", "year"}
    assert problems["date"].code == "INVALID_DATE" and "2024.13.5" in problems["date"].message
    assert problems["date"].label == "日期（YYYYMMDD）" and problems["date"].value == "2024.13.5"
    assert problems["pages"].code == "INVALID_INTEGER"
    assert "date" not in bad.values and "pages" not in bad.values
    assert bad.values["title"] == "错误日期的文件"


def test_catalogue_rows_can_be_read_twice(catalogue_xlsx: Path) -> None:
    with open_catalogue(catalogue_xlsx, FIELDS) as cat:
        assert len(list(cat.rows())) == len(list(cat.rows())) == 6


def test_catalogue_header_by_field_code_and_first_row(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(["title", "date", "Pages", "电子文件名", "件号", "成文日期"])
    ws.append(["通知", "20240102", "5", "a.pdf", "0001", None])
    wb.create_sheet("其他")
    p = tmp_path / "c.xlsx"
    wb.save(p)
    with open_catalogue(p, FIELDS) as cat:
        assert cat.header_row == 1
        assert [c[2] for c in cat.columns] == ["title", "date", "pages", "_files", "_item_no"]
        assert cat.unknown_columns == [(6, "成文日期")]  # an alias, but 日期 already has a column
        (row,) = list(cat.rows())
    assert row.values == {"title": "通知", "date": "2024-01-02", "pages": 5, "_item_no": 1}
    assert row.files == ["a.pdf"]


def test_catalogue_header_on_another_sheet(tmp_path: Path) -> None:
    wb = Workbook()
    wb.active.append(["说明：请在第二个工作表填写"])
    ws = wb.create_sheet("目录")
    ws.append(["题名", "日期"])
    ws.append(["通知", "2024-01-02"])
    p = tmp_path / "c.xlsx"
    wb.save(p)
    with open_catalogue(p, FIELDS) as cat:
        assert cat.sheet_name == "目录"
        assert [r.values["title"] for r in cat.rows()] == ["通知"]


def test_catalogue_without_header(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    for i in range(12):
        ws.append([f"第{i}行", "文号", "日期"])
    ws.append(["题名", "日期"])  # row 13: too far down
    p = tmp_path / "c.xlsx"
    wb.save(p)
    with pytest.raises(ValidationFailed) as e:
        open_catalogue(p, FIELDS)
    assert e.value.code == "CATALOGUE_NO_HEADER"
    assert "题名" in e.value.message and "责任者" in e.value.message and "前 10 行" in e.value.message


def test_catalogue_empty(tmp_path: Path) -> None:
    p = tmp_path / "empty.xlsx"
    Workbook().save(p)
    with pytest.raises(ValidationFailed) as e:
        open_catalogue(p, FIELDS)
    assert e.value.code == "CATALOGUE_EMPTY"


def test_encrypted_workbook_fake_ole(tmp_path: Path) -> None:
    p = tmp_path / "密码.xlsx"
    p.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00junk" * 2000)
    with pytest.raises(ValidationFailed) as e:
        open_catalogue(p, FIELDS)
    assert e.value.code == "XLSX_ENCRYPTED"
    assert "密码" in e.value.message and ".xlsx" in e.value.message


@needs_corpus
def test_encrypted_workbook_and_legacy_xls_from_corpus() -> None:
    with pytest.raises(ValidationFailed) as e:
        open_catalogue(CORPUS / "formats" / "xlsx-password-protected.xlsx", FIELDS)
    assert e.value.code == "XLSX_ENCRYPTED"
    assert e.value.message == "工作簿设置了打开密码，请在 Excel 中取消密码后另存为 .xlsx 再导入"
    with pytest.raises(ValidationFailed) as e:
        open_catalogue(CORPUS / "formats" / "xls-legacy.xls", FIELDS)
    assert e.value.code == "XLS_LEGACY" and ".xlsx" in e.value.message


def test_truncated_and_non_workbooks(tmp_path: Path, catalogue_xlsx: Path) -> None:
    data = catalogue_xlsx.read_bytes()
    cases = {
        "truncated.xlsx": data[: len(data) // 2],
        "text.xlsx": "题名,日期\n通知,2024-01-02\n".encode(),
        "empty.xlsx": b"",
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "not a workbook")
    cases["zip.xlsx"] = buf.getvalue()
    for name, content in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(ValidationFailed) as e:
            open_catalogue(p, FIELDS)
        assert e.value.code == "XLSX_MALFORMED", name
        assert e.value.message.startswith("文件不是有效的 Excel 工作簿（.xlsx），请用 Excel 另存为 .xlsx 后重试")


def test_workbook_zip_bomb(tmp_path: Path, catalogue_xlsx: Path) -> None:
    p = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(catalogue_xlsx) as src, zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("xl/media/zeros.bin", b"\0" * (50 * 2**20))
    with pytest.raises(ValidationFailed) as e:
        open_catalogue(p, FIELDS)
    assert e.value.code == "XLSX_TOO_LARGE"


def test_workbook_with_doctype_in_a_part(tmp_path: Path, catalogue_xlsx: Path) -> None:
    p = tmp_path / "xxe.xlsx"
    with zipfile.ZipFile(catalogue_xlsx) as src, zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + data
            dst.writestr(info, data)
    with pytest.raises(ValidationFailed) as e:
        open_catalogue(p, FIELDS)
    assert e.value.code == "XLSX_MALFORMED" and "DOCTYPE" in e.value.message


# -- the dry-run report ----------------------------------------------------------------------------------


def test_write_report(tmp_path: Path, catalogue_xlsx: Path) -> None:
    out = tmp_path / "校验结果.xlsx"

    def checked(rows: Any) -> Any:
        for row in rows:
            errors: list[str | FieldProblem] = list(row.problems)
            if "date" not in row.values and not row.problems:
                errors.append("日期：必选字段，不能为空")
            yield row, errors

    with open_catalogue(catalogue_xlsx, FIELDS) as cat:
        summary = write_report(checked(cat.rows()), cat.header, out, source_name="目录.xlsx")
    assert (summary.rows, summary.passed, summary.failed) == (6, 5, 1)
    assert summary.top_problems[0][1] == 1

    wb = load_workbook(out)
    assert wb.sheetnames == ["汇总", "校验结果"]
    ws = wb["校验结果"]
    rows = list(ws.iter_rows(values_only=True))
    assert list(rows[0]) == HEADER + ["校验结果"]
    assert rows[1][4] == "关于印发2024年工作要点的通知" and rows[1][5] == "2024.3.5" and rows[1][-1] == "通过"
    assert rows[2][3] == "示范市人民政府办公室（合并）"  # merged value shown in every row
    assert rows[3][8] == "=1+1" and ws.cell(4, 9).data_type == "s"  # text, never a formula
    bad = rows[5]
    assert bad[5] == "2024.13.5"  # as the clerk typed it
    assert "日期（YYYYMMDD）" in bad[-1] and "页　数" in bad[-1] and "；" in bad[-1]
    assert ws.cell(6, 1).fill.fgColor.rgb.endswith("FFC7CE")
    assert ws.cell(2, 1).fill.fgColor.rgb in ("00000000", None)
    summary_values = [v for row in wb["汇总"].iter_rows(values_only=True) for v in row if v is not None]
    assert "读取行数" in summary_values and 6 in summary_values and "未通过" in summary_values
    assert "目录.xlsx" in summary_values


def test_write_report_from_values_without_cells(tmp_path: Path) -> None:
    out = tmp_path / "r.xlsx"
    rows = [
        (CatalogueRow(2, {"title": "通知", "date": "2024-01-02"}, ["a.pdf", "b.pdf"]), []),
        (CatalogueRow(3, {"title": "决定"}), ["日期：必选字段，不能为空"]),
    ]
    cols = [(1, "题名", "title"), (2, "日期", "date"), (3, "文件名", "_files")]
    summary = write_report(iter(rows), cols, out)
    assert (summary.passed, summary.failed) == (1, 1)
    got = list(load_workbook(out)["校验结果"].iter_rows(values_only=True))
    assert got[1] == ("通知", "2024-01-02", "a.pdf；b.pdf", "通过")
    assert got[2] == ("决定", None, None, "日期：必选字段，不能为空")


def to_shared_strings(src: Path, dst: Path) -> Path:
    """Rewrite openpyxl's inline strings as a shared string table, the way Excel and WPS store text."""
    strings: dict[bytes, int] = {}

    def repl(m: Any) -> bytes:
        idx = strings.setdefault(m.group(3), len(strings))
        return b"<c " + m.group(1) + b't="s"' + m.group(2) + b"><v>" + str(idx).encode() + b"</v></c>"

    pattern = rb'<c ([^>]*?)t="inlineStr"([^>]*)><is><t(?: [^>]*)?>([^<]*)</t></is></c>'
    content_type = (b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                    b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
    relationship = (b'<Relationship Id="rIdSS" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                    b'relationships/sharedStrings" Target="/xl/sharedStrings.xml"/></Relationships>')
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.startswith("xl/worksheets/"):
                data = re.sub(pattern, repl, data)
            elif info.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", content_type)
            elif info.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", relationship)
            zout.writestr(info.filename, data)
        items = b"".join(b"<si><t>" + t + b"</t></si>" for t in strings)
        sst = b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">' + items + b"</sst>"
        zout.writestr("xl/sharedStrings.xml", sst)
    assert strings
    return dst


def test_reader_agrees_with_openpyxl(tmp_path: Path, catalogue_xlsx: Path) -> None:
    """The catalogue's own sheet reader gives the values openpyxl gives, for inline and shared strings."""
    from dangan.capture.workbook import _XlsxReader

    files = [catalogue_xlsx, to_shared_strings(catalogue_xlsx, tmp_path / "shared.xlsx")]
    if CORPUS.is_dir():
        files.append(CORPUS / "formats" / "xlsx-stanley-cups.xlsx")
    for path in files:
        wb = load_workbook(path, read_only=True, data_only=True)
        with path.open("rb") as fp:
            reader = _XlsxReader(fp)
            assert [s.name for s in reader.sheets] == wb.sheetnames
            for sheet, ws in zip(reader.sheets, wb.worksheets, strict=True):
                ws.reset_dimensions()
                theirs = {r: list(v) for r, v in enumerate(ws.iter_rows(values_only=True), start=1)}
                mine = dict(reader.rows(sheet))
                for r, values in theirs.items():
                    got = mine.get(r, [])
                    assert got + [None] * (len(values) - len(got)) == values, (path.name, r)
            reader.close()
        wb.close()
    with open_catalogue(files[1], FIELDS) as cat:
        rows = {r.values.get("_seq"): r for r in cat.rows()}
    assert rows[1].values["title"] == "关于印发2024年工作要点的通知" and rows[3].values["remarks"] == "=1+1"
    assert rows[3].values["responsible"] == "示范市人民政府办公室（合并）" and rows[4].values["date"] == "2024-03-05"


def test_catalogue_named_sheet(catalogue_xlsx: Path) -> None:
    with open_catalogue(catalogue_xlsx, FIELDS, sheet="归档文件目录") as cat:
        assert cat.header_row == 3
    with pytest.raises(ValidationFailed) as e:
        open_catalogue(catalogue_xlsx, FIELDS, sheet="Sheet9")
    assert e.value.code == "CATALOGUE_NO_SHEET" and "归档文件目录" in e.value.message


def test_catalogue_read_speed(tmp_path: Path) -> None:
    """Prints rows/s for a 20,000-row catalogue (run with -s); asserts only that it was read."""
    n = 20_000
    p = tmp_path / "big.xlsx"
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("目录")
    ws.append(["归档文件目录"])
    ws.append(HEADER)
    for i in range(1, n + 1):
        ws.append([i, f"Z109-WS·2024-Y-BGS-{i:04d}", f"示政办发〔2024〕{i}号", "示范市人民政府办公室",
                   f"关于第{i}项工作的通知", f"2024.{i % 12 + 1}.{i % 28 + 1}", i % 30 + 1, "公开", None,
                   f"{i:04d}.pdf", "张三", 2024, "永久", "办公室", "通知"])
    wb.save(p)
    t0 = time.perf_counter()
    with open_catalogue(p, FIELDS) as cat:
        count = sum(1 for _ in cat.rows())
    secs = time.perf_counter() - t0
    rate = count / secs
    print(f"\ncatalogue read: {count} rows x {len(HEADER)} columns in {secs:.2f} s = {rate:,.0f} rows/s")
    assert count == n


# -- safe ZIP --------------------------------------------------------------------------------------------


class RawNameInfo(zipfile.ZipInfo):
    """A ZipInfo written with raw name bytes and the UTF-8 flag clear, as Chinese Windows archivers do."""

    def __init__(self, raw: bytes, **kw: Any) -> None:
        super().__init__(raw.decode("cp437"), **kw)
        self.raw = raw

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.raw, self.flag_bits & ~0x800


def make_zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


def test_zip_gbk_names_are_decoded(tmp_path: Path) -> None:
    names = ["2024年/通知.pdf", "2024年/会议纪要（第1次）.pdf", "说明.txt"]
    infos = []
    for n in names:
        info = RawNameInfo(n.encode("gbk"), date_time=(2024, 3, 5, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        infos.append((info, n.encode()))
    data = make_zip(infos)
    # Python wrote what we meant: GBK bytes, flag bit 11 clear
    assert "通知".encode("gbk") in data and "通知".encode() not in data
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert all(not i.flag_bits & 0x800 for i in z.infolist())
        assert z.infolist()[0].filename != names[0]  # mojibake without our decoding
    with SafeZip(io.BytesIO(data)) as sz:
        assert [e.name for e in sz.entries()] == names
        assert {e.encoding for e in sz.entries()} == {"gb18030"}
        assert sz.read(sz.find("通知.pdf")[0]) == names[0].encode()


def test_zip_utf8_names_and_corpus_unicode_zip() -> None:
    data = make_zip([("目录/通知.pdf", b"x"), ("a.txt", b"y")])
    with SafeZip(io.BytesIO(data)) as sz:
        assert [e.name for e in sz.entries()] == ["目录/通知.pdf", "a.txt"]
    if CORPUS.is_dir():
        with SafeZip(CORPUS / "formats" / "zip-unicode-and-tab-filenames.zip") as sz:
            files = sz.files()
            assert len(files) == 5 and any(e.name.endswith("léto ve městě.txt") for e in files)
            assert all(sz.read(e) == b"" for e in files)


def test_zip_find_by_path_and_base_name(tmp_path: Path) -> None:
    data = make_zip([
        ("批次1/通知.pdf", b"1"), ("批次2/通知.pdf", b"2"), ("批次2/决定.PDF", b"3"), ("纪要.pdf", b"4"),
        ("批次3/", b""),
    ])
    with SafeZip(io.BytesIO(data)) as sz:
        assert [e.name for e in sz.find("通知.pdf")] == ["批次1/通知.pdf", "批次2/通知.pdf"]  # ambiguous
        assert [e.name for e in sz.find("批次2/通知.pdf")] == ["批次2/通知.pdf"]
        assert [e.name for e in sz.find("批次2\\通知.pdf")] == ["批次2/通知.pdf"]
        assert [e.name for e in sz.find("决定.pdf")] == ["批次2/决定.PDF"]  # case-insensitive fallback
        assert [e.name for e in sz.find("纪要.pdf")] == ["纪要.pdf"]
        assert sz.find("缺失.pdf") == [] and sz.find("批次3") == [] and sz.find("../纪要.pdf") == []
        target = entry_path(tmp_path, sz.find("通知.pdf")[1])
        assert target == (tmp_path / "批次2" / "通知.pdf").resolve()
        assert [e.is_dir for e in sz.entries()] == [False, False, False, False, True]


@pytest.mark.parametrize(
    "name",
    ["../evil.txt", "/etc/passwd", "C:/Windows/evil.dll", "c:evil.txt", "..\\..\\evil.txt",
     "a/../../evil.txt",
     "a\\..\\..\\evil.txt", "a\x1b[31m.txt", "a\nb.txt"],
)
def test_zip_slip_is_refused(name: str) -> None:
    data = make_zip([("ok.txt", b"fine"), (zipfile.ZipInfo(name), b"evil")])
    with pytest.raises(ValidationFailed) as e:
        SafeZip(io.BytesIO(data))
    assert e.value.code == "ZIP_UNSAFE_PATH"
    assert codes_of(e) == {"ZIP_UNSAFE_PATH"} and len(e.value.problems) == 1


def test_zip_symlink_is_refused() -> None:
    info = zipfile.ZipInfo("link")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    data = make_zip([(info, b"/etc/passwd")])
    with pytest.raises(ValidationFailed) as e:
        SafeZip(io.BytesIO(data))
    assert e.value.code == "ZIP_UNSAFE_PATH" and "符号链接" in e.value.problems[0].message


def test_zip_bomb_by_ratio_count_and_total(tmp_path: Path) -> None:
    p = tmp_path / "bomb.zip"
    p.write_bytes(make_zip([("zeros.bin", b"\0" * (50 * 2**20))]))
    assert p.stat().st_size < 200_000
    with pytest.raises(ValidationFailed) as e:
        SafeZip(p)
    assert e.value.code == "ZIP_BOMB" and "压缩比" in e.value.message
    many = make_zip([(f"{i}.txt", b"x") for i in range(10)])
    with pytest.raises(ValidationFailed) as e:
        SafeZip(io.BytesIO(many), max_entries=5)
    assert e.value.code == "ZIP_BOMB"
    with pytest.raises(ValidationFailed) as e:
        SafeZip(io.BytesIO(make_zip([("a.bin", b"x" * 5000)])), max_total=4000)
    assert e.value.code == "ZIP_BOMB"
    # small entries may compress very well without being bombs
    with SafeZip(io.BytesIO(make_zip([("small.txt", b"\0" * 500_000)]))) as sz:
        assert sz.read("small.txt") == b"\0" * 500_000


def _patch_sizes(data: bytes, file_size: int) -> bytes:
    """Make the local and central headers of the (single) entry declare `file_size`."""
    b = bytearray(data)
    assert b[:4] == b"PK\x03\x04"
    struct.pack_into("<L", b, 22, file_size)
    cd = b.find(b"PK\x01\x02")
    struct.pack_into("<L", b, cd + 24, file_size)
    return bytes(b)


def test_zip_lying_header_is_a_bomb() -> None:
    content = bytes(range(256)) * 400  # 100 KB
    data = _patch_sizes(make_zip([("a.bin", content)]), 1000)
    with SafeZip(io.BytesIO(data)) as sz:
        (entry,) = sz.entries()
        assert entry.size == 1000
        with pytest.raises(ValidationFailed) as e, sz.open(entry) as f:
            while f.read(4096):
                pass
        assert e.value.code == "ZIP_BOMB"
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_BZIP2):
        data = _patch_sizes(make_zip([("a.bin", content)], method), 1000)
        with SafeZip(io.BytesIO(data)) as sz, pytest.raises(ValidationFailed) as e:
            sz.read("a.bin")
        assert e.value.code == "ZIP_BOMB"


def test_zip_header_claiming_more_than_there_is() -> None:
    data = _patch_sizes(make_zip([("a.bin", b"A" * 100_000)]), 200_000)
    with SafeZip(io.BytesIO(data)) as sz, pytest.raises(ValidationFailed) as e:
        sz.read("a.bin")
    assert e.value.code == "ZIP_MALFORMED"


def test_zip_crc_mismatch() -> None:
    b = bytearray(make_zip([("a.txt", b"hello world")], zipfile.ZIP_STORED))
    b[b.find(b"hello")] = ord("j")
    with SafeZip(io.BytesIO(bytes(b))) as sz, pytest.raises(ValidationFailed) as e:
        sz.read("a.txt")
    assert e.value.code == "ZIP_MALFORMED" and "CRC" in e.value.message


def test_zip_reads_every_method_in_bounded_steps() -> None:
    content = random.Random(1).randbytes(3_000_000)
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        with SafeZip(io.BytesIO(make_zip([("d/a.bin", content)], method))) as sz, sz.open("d/a.bin") as f:
            got = b"".join(iter(lambda: f.read(10_000), b""))  # noqa: B023
        assert got == content, method


def test_zip_encrypted_entry() -> None:
    b = bytearray(make_zip([("secret.txt", b"x" * 100)]))
    b[6] |= 1  # general purpose flag, local header
    cd = b.find(b"PK\x01\x02")
    b[cd + 8] |= 1  # and central directory
    with pytest.raises(ValidationFailed) as e:
        SafeZip(io.BytesIO(bytes(b)))
    assert e.value.code == "ZIP_ENCRYPTED" and "密码" in e.value.message


def test_zip_malformed(tmp_path: Path) -> None:
    good = make_zip([("a.txt", b"x" * 1000), ("b.txt", b"y" * 1000)])
    ole = b"\xd0\xcf\x11\xe0" + b"\0" * 600
    for data in (b"not a zip at all", b"", good[:-10], good[: len(good) // 2], ole):
        with pytest.raises(ValidationFailed) as e:
            SafeZip(io.BytesIO(data))
        assert e.value.code == "ZIP_MALFORMED"


def test_zip_duplicate_names() -> None:
    with pytest.warns(UserWarning):
        data = make_zip([("a/通知.pdf", b"1"), ("a/通知.pdf", b"2")])
    with pytest.raises(ValidationFailed) as e:
        SafeZip(io.BytesIO(data))
    assert e.value.code == "ZIP_DUPLICATE_NAME"
    nfd = unicodedata.normalize("NFD", "résumé.pdf")
    with pytest.raises(ValidationFailed) as e:
        SafeZip(io.BytesIO(make_zip([("résumé.pdf", b"1"), (nfd, b"2")])))
    assert e.value.code == "ZIP_DUPLICATE_NAME"
    with pytest.raises(ValidationFailed) as e:
        SafeZip(io.BytesIO(make_zip([("a\\b.pdf", b"1"), ("a/b.pdf", b"2")])))
    assert e.value.code == "ZIP_DUPLICATE_NAME"
    with pytest.raises(ValidationFailed) as e:
        SafeZip(io.BytesIO(make_zip([("a", b"1"), ("a/b.pdf", b"2")])))
    assert e.value.code == "ZIP_DUPLICATE_NAME"
    with SafeZip(io.BytesIO(make_zip([("A.pdf", b"1"), ("a.pdf", b"2")]))) as sz:  # case-sensitive
        assert len(sz.entries()) == 2


def test_zip_unsupported_method() -> None:
    b = bytearray(make_zip([("a.bin", b"x" * 100)]))
    struct.pack_into("<H", b, 8, 9)  # Deflate64, as Windows Explorer writes for big files
    cd = b.find(b"PK\x01\x02")
    struct.pack_into("<H", b, cd + 10, 9)
    with pytest.raises(ValidationFailed) as e:
        SafeZip(io.BytesIO(bytes(b)))
    assert e.value.code == "ZIP_UNSUPPORTED" and "Deflate64" in e.value.problems[0].message


# -- EEP (DA/T 48-2009) ----------------------------------------------------------------------------------


def with_namespace(xml: bytes) -> bytes:
    return xml.replace(
        "<电子文件封装包>".encode(), f'<电子文件封装包 xmlns="{EEP_NAMESPACE}">'.encode(), 1
    )


def small_pdf() -> bytes:
    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    pdf.docinfo["/Title"] = "测试"
    buf = io.BytesIO()
    pdf.save(buf)
    return buf.getvalue()


@needs_corpus
def test_eep_corpus_example_with_namespace_validates_and_maps() -> None:
    xml = with_namespace(EEP_EXAMPLE.read_bytes())
    with parse_eep(io.BytesIO(xml), xsd_path=XSD) as pkg:
        assert pkg.sender_ref == "电子文件号"
        assert pkg.metadata["title"] == "题名"
        assert pkg.metadata["year"] == 2001
        assert pkg.metadata["pages"] == 1
        assert pkg.metadata["keywords"] == ["主题词", "关键词"]
        assert pkg.metadata["doc_number"] == "文件编号" and pkg.metadata["responsible"] == "责任者"
        assert pkg.department == "机构或问题" and pkg.fonds_code == "全宗号"
        assert pkg.signatures_present is True and pkg.namespaced is True
        assert pkg.package_type == "原始型"
        # placeholders that do not fit: the date is left out, the unknown 保管期限 kept raw
        assert "date" not in pkg.metadata
        assert pkg.metadata["retention_period"] == "保管期限"
        assert {p.code for p in pkg.raw_problems} == {"INVALID_DATE", "UNKNOWN_RETENTION"}
        assert len(pkg.files) == 1 and pkg.files[0].read() == b"0" and pkg.files[0].format == "格式信息"
        assert pkg.files[0].role == "主文档"


@needs_corpus
def test_eep_corpus_example_as_is_fails_validation() -> None:
    with pytest.raises(ValidationFailed) as e:
        parse_eep(EEP_EXAMPLE, xsd_path=XSD)
    assert e.value.code == "EEP_INVALID"
    assert "xmlns" in e.value.problems[0].message and "第 2 行" in e.value.problems[0].message
    # read leniently, or without a schema, it maps the same way
    with parse_eep(EEP_EXAMPLE, xsd_path=XSD, allow_missing_namespace=True) as pkg:
        assert pkg.metadata["title"] == "题名" and pkg.namespaced is False
    with parse_eep(EEP_EXAMPLE) as pkg:
        assert pkg.sender_ref == "电子文件号" and pkg.metadata["year"] == 2001


@needs_corpus
def test_eep_schema_errors_have_lines_and_paths() -> None:
    xml = with_namespace(EEP_EXAMPLE.read_bytes())
    xml = xml.replace("<年度>2001</年度>".encode(), "<年度>二〇〇一</年度>".encode())
    xml = xml.replace("<题名>题名</题名>\n            <并列题名>".encode(), "<并列题名>".encode())
    with pytest.raises(ValidationFailed) as e:
        parse_eep(io.BytesIO(xml), xsd_path=XSD)
    assert e.value.code == "EEP_INVALID"
    by_label = {p.label: p for p in e.value.problems}
    year = by_label["年度"]
    assert year.field == "/电子文件封装包/被签名对象/封装内容/文件实体块/文件实体/档号/年度"
    assert year.message.startswith("第 24 行 年度：值无效，应为四位年份") and "gYear" in year.message
    assert year.value == 24
    assert "应为：题名" in by_label["并列题名"].message


def test_eep_structure_checked_without_schema() -> None:
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<电子文件封装包 xmlns="{EEP_NAMESPACE}"><版本>2009</版本><被签名对象><封装内容><文件实体块><文件实体>
<内容描述><责任者>办公室</责任者></内容描述></文件实体></文件实体块></封装内容></被签名对象></电子文件封装包>"""
    with pytest.raises(ValidationFailed) as e:
        parse_eep(io.BytesIO(xml.encode()))
    assert e.value.code == "EEP_INVALID" and e.value.problems[0].label == "题名"
    with pytest.raises(ValidationFailed) as e:
        parse_eep(io.BytesIO("<其他根元素/>".encode()))
    assert e.value.code == "EEP_INVALID"


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<电子文件封装包><被签名对象><封装内容><文件实体块><文件实体><内容描述><题名>&lol9;</题名></内容描述></文件实体>
</文件实体块></封装内容></被签名对象></电子文件封装包>""".encode()


def test_eep_billion_laughs_and_xxe_are_refused(tmp_path: Path) -> None:
    xxe = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE 电子文件封装包 [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<电子文件封装包><被签名对象><封装内容><文件实体块><文件实体><电子文件号>&x;</电子文件号>
<内容描述><题名>&x;</题名></内容描述></文件实体></文件实体块></封装内容></被签名对象></电子文件封装包>""".encode()
    passwd = Path("/etc/passwd").read_text(errors="replace") if Path("/etc/passwd").exists() else "root:x:0:0"
    first_line = passwd.splitlines()[0] if passwd else "root:x:0:0"
    lowercase_doctype = xxe.replace(b"<!DOCTYPE", b"<!doctype")
    param_entity = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><r/>'
    for doc in (BILLION_LAUGHS, xxe, lowercase_doctype, param_entity):
        for xsd in (None, XSD if XSD.is_file() else None):
            t0 = time.perf_counter()
            with pytest.raises(ValidationFailed) as e:
                parse_eep(io.BytesIO(doc), xsd_path=xsd)
            assert time.perf_counter() - t0 < 2
            assert e.value.code == "EEP_DTD_FORBIDDEN"
            assert e.value.message == "封装包含 DOCTYPE/实体声明，出于安全原因拒收"
            assert first_line not in str(e.value) and first_line not in repr(e.value.as_dict())
    p = tmp_path / "xxe.xml"
    p.write_bytes(xxe)
    with pytest.raises(ValidationFailed) as e:
        parse_eep(p)
    assert e.value.code == "EEP_DTD_FORBIDDEN"


@needs_corpus
def test_eep_truncated_and_not_xml() -> None:
    xml = with_namespace(EEP_EXAMPLE.read_bytes())
    bad_amp = xml.replace("<题名>题名</题名>".encode(), "<题名>A&B</题名>".encode(), 1)
    undefined = xml.replace("<题名>题名</题名>".encode(), "<题名>&nbsp;</题名>".encode(), 1)
    for doc in (xml[: len(xml) // 2], xml[:-30], b"not xml at all", b"", b"<a><b></a>", bad_amp, undefined):
        with pytest.raises(ValidationFailed) as e:
            parse_eep(io.BytesIO(doc), xsd_path=XSD)
        assert e.value.code == "EEP_MALFORMED", doc[-40:]
        assert "行" in e.value.message and isinstance(e.value.detail["line"], int)


def build_eep(files: list[tuple[str, bytes]], *, wrap: int = 76, title: str = "关于印发工作要点的通知") -> bytes:
    """A DA/T 48 package with real files in 编码数据 (base64, wrapped like MIME)."""
    docs = []
    for n, (name, data) in enumerate(files, start=1):
        b64 = base64.b64encode(data).decode()
        if wrap:
            b64 = "\n".join(b64[i : i + wrap] for i in range(0, len(b64), wrap))
        ext = name.rsplit(".", 1)[-1]
        docs.append(f"""<文档><文档标识符>doc{n}</文档标识符><文档主从声明>{"主文档" if n == 1 else "附属文档"}</文档主从声明>
<文档数据 文档数据ID="dd{n}"><编码 编码ID="c{n}"><电子属性><格式信息>{ext.upper()}</格式信息>
<计算机文件名>{name}</计算机文件名><计算机文件大小>{len(data)}</计算机文件大小></电子属性>
<编码描述>Base64</编码描述><反编码关键字>{ext}</反编码关键字>
<编码数据 编码数据ID="d{n}">
{b64}
</编码数据></编码></文档数据></文档>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<电子文件封装包 xmlns="{EEP_NAMESPACE}">
<封装包格式描述>本EEP根据中华人民共和国档案行业标准DA/T 48-2009《基于XML的电子文件封装规范》生成</封装包格式描述>
<版本>2009</版本>
<被签名对象 eep版本="2009"><封装包类型>原始型</封装包类型>
<封装包类型描述>本封装包包含电子文件数据及其元数据，原始封装，未经修改</封装包类型描述>
<封装包创建时间>2024-03-05T10:00:00</封装包创建时间><封装包创建单位>示范市OA系统</封装包创建单位>
<封装内容><文件实体块><文件实体><聚合层次>文件</聚合层次><来源><立档单位名称>示范市人民政府办公室</立档单位名称></来源>
<电子文件号>OA-2024-000123</电子文件号>
<档号><全宗号>Z109</全宗号><年度>2024</年度><保管期限>定期30年</保管期限><机构或问题>办公室</机构或问题><室编件号>12</室编件号></档号>
<内容描述><题名>{title}</题名><主题词>工作要点</主题词><主题词>通知</主题词><文件编号>示政办发〔2024〕1号</文件编号>
<责任者>示范市人民政府办公室</责任者><日期>20240305</日期><文种>通知</文种><紧急程度>平件</紧急程度>
<主送>各区人民政府</主送><密级>公开</密级></内容描述>
<形式特征><文件组合类型>组合文件</文件组合类型><页数>12</页数></形式特征>
<存储位置><脱机载体编号>无</脱机载体编号></存储位置><权限管理/>
<附注>测试</附注>
<文件数据>{"".join(docs)}</文件数据></文件实体></文件实体块>
<业务实体块><业务实体><业务标识符>b1</业务标识符><机构人员标识符>p1</机构人员标识符><文件标识符>f1</文件标识符>
<业务状态>历史行为</业务状态><业务行为>归档</业务行为><行为时间>2024-03-06</行为时间></业务实体></业务实体块>
<机构人员实体块><机构人员实体><机构人员标识符>p1</机构人员标识符><机构人员名称>张三</机构人员名称></机构人员实体></机构人员实体块>
</封装内容></被签名对象></电子文件封装包>""".encode()


def test_eep_with_embedded_pdf_round_trips(tmp_path: Path) -> None:
    pdf = small_pdf()
    attachment = bytes(range(256)) * 50
    xml = build_eep([("../../通知.pdf", pdf), ("附件1.bin", attachment)])
    xsd = XSD if XSD.is_file() else None
    for source in (io.BytesIO(xml), tmp_path / "p.xml"):
        if isinstance(source, Path):
            source.write_bytes(xml)
        with parse_eep(source, xsd_path=xsd) as pkg:
            assert pkg.sender_ref == "OA-2024-000123"
            assert pkg.metadata == {
                "title": "关于印发工作要点的通知", "doc_number": "示政办发〔2024〕1号", "responsible": "示范市人民政府办公室",
                "security_level": "公开", "doc_type": "通知", "urgency": "平件", "main_recipient": "各区人民政府",
                "date": "2024-03-05", "year": 2024, "retention_period": "D30", "pages": 12,
                "keywords": ["工作要点", "通知"], "remarks": "测试",
            }
            assert pkg.fonds_code == "Z109" and pkg.department == "办公室" and pkg.raw_problems == []
            assert pkg.extra["室编件号"] == "12" and pkg.extra["立档单位名称"] == "示范市人民政府办公室"
            assert pkg.signatures_present is False and pkg.created_by == "示范市OA系统"
            f0, f1 = pkg.files
            assert f0.data_stream.read() == pdf and f0.read().startswith(b"%PDF-")
            assert f0.name == "通知.pdf" and f0.format == "PDF" and f0.role == "主文档"  # path stripped
            assert f0.size == len(pdf) and f0.sha256 == hashlib.sha256(pdf).hexdigest()
            assert f1.read() == attachment and f1.role == "附属文档" and f1.declared_size == str(len(attachment))


def test_eep_big_file_streams_past_the_text_node_limit() -> None:
    """huge_tree=False refuses text nodes above 10 MB; 编码数据 is decoded on the side, so 12 MB passes."""
    data = hashlib.sha256(b"seed").digest() * (12 * 2**20 // 32)
    xml = build_eep([("扫描件.pdf", data)], wrap=0)  # one 16 MB line of base64
    assert len(xml) > 16 * 2**20
    with parse_eep(io.BytesIO(xml), xsd_path=XSD if XSD.is_file() else None, spool_size=2**20) as pkg:
        assert pkg.files[0].sha256 == hashlib.sha256(data).hexdigest()
        assert pkg.files[0].data_stream._rolled  # type: ignore[attr-defined]  # spooled to disk


def test_eep_bad_base64_and_size_limit() -> None:
    xml = build_eep([("a.pdf", b"%PDF-1.4 test")])
    broken = xml.replace(base64.b64encode(b"%PDF-1.4 test"), b"JVBERi0x!!!!LjQgdGVzdA==")
    with pytest.raises(ValidationFailed) as e:
        parse_eep(io.BytesIO(broken))
    assert e.value.code == "EEP_INVALID" and codes_of(e) == {"EEP_BAD_BASE64"}
    with pytest.raises(ValidationFailed) as e:
        parse_eep(io.BytesIO(xml), max_bytes=1000)
    assert e.value.code == "EEP_TOO_LARGE"


def test_eep_base64_in_cdata_and_with_char_refs() -> None:
    data = b"hello \x00 world" * 100
    b64 = base64.b64encode(data).decode()
    xml = build_eep([("a.txt", b"placeholder")])
    old = base64.b64encode(b"placeholder").decode()
    cdata = xml.replace(old.encode(), f"<![CDATA[{b64[:40]}]]>{b64[40:80]}&#13;&#10;{b64[80:]}".encode())
    with parse_eep(io.BytesIO(cdata)) as pkg:
        assert pkg.files[0].read() == data


def test_eep_gb18030_document() -> None:
    xml = build_eep([("a.txt", b"abc")]).decode().replace('encoding="UTF-8"', 'encoding="GB18030"')
    with parse_eep(io.BytesIO(xml.encode("gb18030"))) as pkg:
        assert pkg.metadata["title"] == "关于印发工作要点的通知" and pkg.files[0].read() == b"abc"


@pytest.mark.parametrize(
    "raw,code",
    [("永久", "Y"), ("定期30年", "D30"), ("30年", "D30"), ("定期10年", "D10"), ("10年", "D10"), ("长期", "D30"),
     ("短期", "D10"), ("D30", "D30"), ("y", "Y"), ("保管期限", None), ("", None)],
)
def test_map_retention(raw: str, code: str | None) -> None:
    assert map_retention(raw) == code



def test_eep_lexer_survives_any_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tags, comments, CDATA and character references cut at every possible place read the same."""
    import dangan.capture.eep as eep_module

    data = bytes(range(256)) * 3
    b64 = base64.b64encode(data).decode()
    xml = build_eep([("a.bin", b"placeholder")]).decode()
    xml = xml.replace(base64.b64encode(b"placeholder").decode(), f"<!-- 注释 <编码数据> <!DOCTYPE x> -->{b64[:100]}"
                      f"<![CDATA[{b64[100:300]}]]>&#10;{b64[300:]}")
    xml = xml.replace('<编码数据 编码数据ID="d1">', '<编码数据 编码数据ID="d1" 说明="a>b">')
    xml = xml.replace("?>\n<电子文件封装包", "?>\n<!-- 开头的注释 --><?xml-stylesheet href='x.xsl'?>\n<电子文件封装包", 1)
    assert "开头的注释" in xml
    doc = xml.encode()
    with parse_eep(io.BytesIO(doc)) as base:
        assert base.files[0].read() == data
        expected = (base.metadata, base.files[0].sha256)
    for chunk in (1, 2, 3, 5, 8, 13, 4096):
        monkeypatch.setattr(eep_module, "_CHUNK", chunk)
        with parse_eep(io.BytesIO(doc)) as pkg:
            assert (pkg.metadata, pkg.files[0].sha256) == expected, chunk


def test_eep_line_numbers_survive_the_diverted_data() -> None:
    data = bytes(range(256)) * 200  # 68 lines of base64
    xml = build_eep([("a.bin", data)]).decode()
    cut = xml.index("<业务实体块>")
    line = xml[:cut].count("\n") + 1
    broken = xml[:cut] + "<业务实体块 =>" + xml[cut + len("<业务实体块>"):]
    with pytest.raises(ValidationFailed) as e:
        parse_eep(io.BytesIO(broken.encode()))
    assert e.value.code == "EEP_MALFORMED" and e.value.detail["line"] == line
    if XSD.is_file():
        invalid = xml[:cut] + "<未知元素/>" + xml[cut:]
        with pytest.raises(ValidationFailed) as e:
            parse_eep(io.BytesIO(invalid.encode()), xsd_path=XSD)
        assert e.value.problems[0].value == line and e.value.problems[0].label == "未知元素"


@needs_corpus
def test_eep_with_a_namespace_prefix() -> None:
    xml = build_eep([("a.txt", b"abc")]).decode()
    xml = re.sub(r"<(/?)([\u4e00-\u9fff][^\s>/]*)", r"<\1eep:\2", xml)
    xml = xml.replace(f'xmlns="{EEP_NAMESPACE}"', f'xmlns:eep="{EEP_NAMESPACE}"')
    with parse_eep(io.BytesIO(xml.encode()), xsd_path=XSD) as pkg:
        assert pkg.metadata["title"] == "关于印发工作要点的通知" and pkg.files[0].read() == b"abc"


def test_eep_big_file_in_cdata() -> None:
    data = hashlib.sha256(b"cdata").digest() * (9 * 2**20 // 32)
    xml = build_eep([("a.bin", b"placeholder")])
    xml = xml.replace(base64.b64encode(b"placeholder"), b"<![CDATA[" + base64.b64encode(data) + b"]]>")
    with parse_eep(io.BytesIO(xml)) as pkg:
        assert pkg.files[0].sha256 == hashlib.sha256(data).hexdigest()


def test_zip_local_header_name_must_match_the_directory() -> None:
    data = make_zip([("good.txt", b"hello")], zipfile.ZIP_STORED)
    b = bytearray(data)
    b[30:38] = b"evil.txt"  # the name in the local header only
    with SafeZip(io.BytesIO(bytes(b))) as sz:
        assert [e.name for e in sz.entries()] == ["good.txt"]
        with pytest.raises(ValidationFailed) as e:
            sz.read("good.txt")
    assert e.value.code == "ZIP_MALFORMED"
