"""Volume-mode (案卷) printed outputs after GB/T 9705-2008 文书档案案卷格式, A4 portrait PDFs:
案卷封面 (cover), 卷内目录 (list of the volume's documents) and 卷内备考表 (notes sheet).

Volume dict `v` keys (all optional; missing ones print blank):
  archival_code 档号, fonds_code 全宗号, fonds_name 全宗名称, category_name 类目名称, title 案卷题名,
  start_date / end_date 起止时间 (date or ISO string), retention 保管期限, items 件数, pages 页数,
  security_level 密级, notes 本卷情况说明 (free text, newlines kept), compiler 立卷人, compiled_on 立卷时间,
  checker 检查人, checked_on 检查时间, cross_reference 互见号.

Item dict keys for the 卷内目录: seq 序号 (default 1, 2, …), doc_number 文件编号, responsible 责任者, title 题名,
  date 日期, pages 页数 (used to number pages), page_range 页号 (e.g. "6-9"; or start_page/end_page),
  remarks 备注.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from dangan.outputs._render import date_span, fit_columns, render_pdf, text, ymd

COVER_HTML = """{% extends "base.html" %}
{% block css %}
.cover { border: 1.6pt solid #000; height: 257mm; box-sizing: border-box; padding: 10mm 14mm 12mm 14mm;
         position: relative; }
.cover::before { content: ""; position: absolute; left: 1.4mm; top: 1.4mm; right: 1.4mm; bottom: 1.4mm;
                 border: 0.5pt solid #000; }
table.codes { border-collapse: collapse; margin: 0 0 0 auto; }
table.codes th, table.codes td { border: 0.9pt solid #000; height: 9mm; padding: 0 2.5mm; font-size: 11pt; }
table.codes th { font-family: {{ css_heading }}; font-weight: bold; width: 16mm; text-align: center; }
table.codes td { min-width: 52mm; text-align: center; font-size: 12pt; }
.line { margin: 0 auto; width: 140mm; text-align: center; }
.line .value { border-bottom: 0.9pt solid #000; min-height: 10mm; font-size: 18pt; line-height: 1.35;
               padding-bottom: 1mm; }
.line .caption { font-size: 10pt; margin-top: 1.2mm; }
.fonds { margin-top: 18mm; }
.category { margin-top: 8mm; }
.category .value { font-size: 15pt; }
.doc-kind { text-align: center; font-family: {{ css_heading }}; font-weight: bold; font-size: 30pt;
            letter-spacing: 0.5em; margin: 15mm 0 0 0.5em; }
table.title-block { width: 100%; margin: 8mm 0 0 0; border-collapse: collapse; }
table.title-block td { height: 50mm; text-align: center; vertical-align: middle;
                       font-family: {{ css_heading }}; font-weight: bold; font-size: {{ title_size }};
                       line-height: 1.5;
                       border-top: 0.9pt solid #000; border-bottom: 0.9pt solid #000; padding: 3mm 8mm; }
.title-caption { text-align: center; font-size: 10pt; margin-top: 1.2mm; }
.facts { position: absolute; left: 14mm; right: 14mm; bottom: 14mm; }
.facts table { width: 100%; border-collapse: collapse; table-layout: fixed; }
.facts th, .facts td { border: 0.9pt solid #000; height: 11mm; font-size: 12pt; text-align: center; }
.facts th { font-family: {{ css_heading }}; font-weight: bold; }
.facts col.k { width: 26mm; }
{% endblock %}
{% block body %}
<div class="cover">
<table class="codes">
{% if v.fonds_code %}<tr><th>全宗号</th><td>{{ v.fonds_code }}</td></tr>{% endif %}
<tr><th>档号</th><td>{{ v.archival_code }}</td></tr>
</table>
<div class="line fonds">
  <div class="value">{{ v.fonds_name }}</div><div class="caption">（全宗名称）</div>
</div>
<div class="line category">
  <div class="value">{{ v.category_name }}</div><div class="caption">（类目名称）</div>
</div>
<div class="doc-kind">案卷</div>
<table class="title-block"><tr><td>{{ v.title }}</td></tr></table>
<div class="title-caption">（案卷题名）</div>
<div class="facts"><table>
<colgroup><col class="k"><col><col class="k"><col></colgroup>
<tr><th>起止时间</th><td colspan="3">{{ span }}</td></tr>
<tr><th>保管期限</th><td>{{ v.retention }}</td><th>密级</th><td>{{ v.security_level }}</td></tr>
<tr>
  <th>件数</th><td>{{ v['items'] }}{% if v['items'] %} 件{% endif %}</td>
  <th>页数</th><td>{{ v['pages'] }}{% if v['pages'] %} 页{% endif %}</td>
</tr>
</table></div>
</div>
{% endblock %}
"""

NOTES_HTML = """{% extends "base.html" %}
{% block css %}
.doc-title { font-size: 22pt; margin: 2mm 0 6mm 0; }
.meta { display: table; width: 100%; margin-bottom: 2.5mm; font-size: 11pt; }
.meta div { display: table-cell; }
.meta .right { text-align: right; }
.meta .label { font-family: {{ css_heading }}; font-weight: bold; }
.sheet { border: 1.2pt solid #000; height: 232mm; box-sizing: border-box; position: relative;
         padding: 8mm 10mm; }
.sheet h2 { font-family: {{ css_heading }}; font-size: 13pt; margin: 0 0 4mm 0; }
.notes p { margin: 0 0 2mm 0; text-indent: 2em; font-size: 12pt; line-height: 1.8; }
table.sign { position: absolute; right: 14mm; bottom: 14mm; border-collapse: collapse; font-size: 12pt; }
table.sign th { font-family: {{ css_heading }}; font-weight: bold; text-align: right;
                padding: 2.2mm 2mm 2.2mm 0; }
table.sign td { width: 46mm; border-bottom: 0.75pt solid #000; padding: 2.2mm 1mm 0.6mm 1mm; }
table.sign tr.gap th, table.sign tr.gap td { padding-top: 6mm; }
{% endblock %}
{% block body %}
<div class="doc-title">卷内备考表</div>
<div class="meta">
  <div><span class="label">互见号：</span>{{ v.cross_reference }}</div>
  <div class="right"><span class="label">档号：</span>{{ v.archival_code }}</div>
</div>
<div class="sheet">
<h2>本卷情况说明</h2>
<div class="notes">{% for p in paragraphs %}<p>{{ p }}</p>{% endfor %}</div>
<table class="sign">
<tr><th>立卷人：</th><td>{{ v.compiler }}</td></tr>
<tr><th>立卷时间：</th><td>{{ compiled_on }}</td></tr>
<tr class="gap"><th>检查人：</th><td>{{ v.checker }}</td></tr>
<tr><th>检查时间：</th><td>{{ checked_on }}</td></tr>
</table>
</div>
{% endblock %}
"""

CONTENTS_COLUMNS: list[tuple[str, str]] = [
    ("seq", "序号"),
    ("doc_number", "文件编号"),
    ("responsible", "责任者"),
    ("title", "题名"),
    ("date", "日期"),
    ("page_no", "页号"),
    ("remarks", "备注"),
]
# Printed widths on A4 portrait (175 mm between the margins); the title column takes what is left.
CONTENTS_WIDTHS_MM = {
    "seq": 10,
    "doc_number": 38,
    "responsible": 24,
    "date": 18,
    "page_no": 16,
    "remarks": 10,
}


def _printable(v: Mapping[str, Any]) -> dict[str, str]:
    """The volume's fields as printed text (missing keys → "")."""
    keys = ("archival_code", "fonds_code", "fonds_name", "category_name", "title", "retention", "items",
            "pages", "security_level", "compiler", "checker", "cross_reference")
    return {k: text(v.get(k)).strip() for k in keys}


def volume_cover_pdf(v: Mapping[str, Any]) -> bytes:
    """案卷封面: 档号 boxes at the top right, 全宗名称 and 类目名称 on ruled lines, the 案卷题名 in a large centred
    block, and a table of 起止时间, 保管期限, 密级, 件数, 页数 at the bottom. One A4 portrait page."""
    pv = _printable(v)
    n = len(pv["title"])
    title_size = "22pt" if n <= 40 else "18pt" if n <= 80 else "15pt"
    return render_pdf(
        COVER_HTML,
        doc_title=f"案卷封面 {pv['archival_code']}".strip(),
        page_margin="20mm 18mm 20mm 22mm",
        footer=False,
        v=pv,
        span=date_span(v.get("start_date"), v.get("end_date")),
        title_size=title_size,
    )


def page_numbers(items: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """页号 of each item: its page_range or start_page/end_page when given, otherwise counted on from the
    previous item's last page using `pages` ("1-5", then "6" for a one-page document)."""
    last = 0
    for item in items:
        given = text(item.get("page_range")).strip()
        start, end = item.get("start_page"), item.get("end_page")
        pages = item.get("pages")
        try:
            count = int(pages) if pages not in (None, "") else 0
        except (TypeError, ValueError):
            count = 0
        if given:
            tail = given.replace("—", "-").replace("–", "-").split("-")[-1].strip()
            last = int(tail) if tail.isdigit() else last + count
            yield given
        elif start not in (None, ""):
            s = int(start)
            e = int(end) if end not in (None, "") else s + max(count, 1) - 1
            last = e
            yield f"{s}-{e}" if e != s else str(s)
        elif count > 0:
            s, last = last + 1, last + count
            yield f"{s}-{last}" if last != s else str(s)
        else:
            yield ""


def volume_contents_pdf(v: Mapping[str, Any], items: list[Mapping[str, Any]]) -> bytes:
    """卷内目录: the volume's 档号 and 案卷题名 above a bordered table (序号, 文件编号, 责任者, 题名, 日期, 页号,
    备注) whose header repeats on every page; footer 第 N 页 共 M 页. A4 portrait."""
    pv = _printable(v)
    rows = []
    for n, (item, page_no) in enumerate(zip(items, page_numbers(items), strict=True), 1):
        seq = item.get("seq")
        rows.append([
            text(seq if seq not in (None, "") else n),
            text(item.get("doc_number")),
            text(item.get("responsible")),
            text(item.get("title")),
            ymd(item.get("date")),
            page_no,
            text(item.get("remarks")),
        ])
    info = [("档号", pv["archival_code"]), ("案卷题名", pv["title"])]
    return render_pdf(
        "table.html",
        doc_title="卷内目录",
        page_size="A4",
        page_margin="15mm 15mm 16mm 20mm",
        title="卷内目录",
        info=[(label, value) for label, value in info if value],
        columns=fit_columns(CONTENTS_COLUMNS, CONTENTS_WIDTHS_MM, 175, flexible="title", left=("title",)),
        rows=rows,
        cell_font="9.5pt",
    )


def notes_paragraphs(v: Mapping[str, Any]) -> list[str]:
    """本卷情况说明: "本卷共 N 件，M 页。" (unless the notes already say so) followed by the notes' paragraphs."""
    notes = text(v.get("notes")).strip()
    paragraphs = [p.strip() for p in notes.splitlines() if p.strip()]
    items, pages = text(v.get("items")).strip(), text(v.get("pages")).strip()
    if (items or pages) and "本卷共" not in notes:
        parts = [f"{items} 件" if items else "", f"{pages} 页" if pages else ""]
        paragraphs.insert(0, "本卷共 " + "，".join(p for p in parts if p) + "。")
    return paragraphs


def volume_notes_pdf(v: Mapping[str, Any]) -> bytes:
    """卷内备考表: 互见号 and 档号 above a framed sheet holding 本卷情况说明, with 立卷人 / 立卷时间 and
    检查人 / 检查时间 at its foot. One A4 portrait page."""
    return render_pdf(
        NOTES_HTML,
        doc_title="卷内备考表",
        page_margin="18mm 18mm 18mm 22mm",
        footer=False,
        v=_printable(v),
        paragraphs=notes_paragraphs(v),
        compiled_on=ymd(v.get("compiled_on")),
        checked_on=ymd(v.get("checked_on")),
    )


__all__ = ["page_numbers", "volume_contents_pdf", "volume_cover_pdf", "volume_notes_pdf"]
