"""Shared rendering: Jinja2 (autoescaped) HTML → WeasyPrint PDF with the installed Chinese font, plus value
formatting helpers used by every printed output."""

from __future__ import annotations

import datetime as dt
import functools
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import jinja2
from markupsafe import Markup

from dangan.outputs.fonts import CJKFont, cjk_font

# Base layout every PDF extends: page box, fonts, page footer "第 N 页 共 M 页", the bordered grid table.
BASE_HTML = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{{ doc_title }}</title>
<style>
@page {
  size: {{ page_size }};
  margin: {{ page_margin }};
{% if footer %}
  @bottom-center {
    content: "第 " counter(page) " 页 共 " counter(pages) " 页";
    font-family: {{ css_body }}; font-size: 9pt; color: #000;
  }
{% endif %}
}
html { font-family: {{ css_body }}; font-size: 10.5pt; line-height: 1.35; color: #000; }
body { margin: 0; }
h1, .heading { font-family: {{ css_heading }}; font-weight: bold; }
table.grid { width: 100%; border-collapse: collapse; table-layout: fixed; }
table.grid th, table.grid td {
  border: 0.75pt solid #000; padding: 1.4mm 1mm; vertical-align: middle;
  overflow-wrap: anywhere; text-align: center;
}
table.grid th { font-family: {{ css_heading }}; font-weight: bold; font-size: 10pt; padding: 1.8mm 1mm; }
table.grid td.left { text-align: left; }
table.grid td.nowrap { white-space: nowrap; overflow-wrap: normal; }
table.grid tbody tr { break-inside: avoid; }
table.grid thead tr.caption th { border: none; padding: 0 0 2.5mm 0; font-weight: normal; }
.doc-title {
  font-family: {{ css_heading }}; font-weight: bold; font-size: 20pt; letter-spacing: 0.12em;
  text-align: center; margin: 0 0 2.5mm 0;
}
.info { font-family: {{ css_body }}; font-size: 10.5pt; text-align: center; }
.info .item { margin: 0 1.1em; white-space: nowrap; }
.info .label { font-family: {{ css_heading }}; }
{% block css %}{% endblock %}
</style></head>
<body>{% block body %}{% endblock %}</body></html>
"""

# A titled table whose caption (title + heading line) and column header repeat on every page.
TABLE_HTML = """{% extends "base.html" %}
{% block css %}
{% for c in columns %}table.grid col.c{{ loop.index }} { width: {{ c.width }}%; }
{% endfor %}
table.grid td { font-size: {{ cell_font }}; }
{% endblock %}
{% block body %}
<table class="grid">
<colgroup>{% for c in columns %}<col class="c{{ loop.index }}">{% endfor %}</colgroup>
<thead>
<tr class="caption"><th colspan="{{ columns|length }}">
  <div class="doc-title">{{ title }}</div>
  {% if info %}
  <div class="info">
  {% for label, value in info %}
    <span class="item"><span class="label">{{ label }}：</span>{{ value }}</span>
  {% endfor %}
  </div>
  {% endif %}
</th></tr>
<tr class="cols">{% for c in columns %}<th>{{ c.label }}</th>{% endfor %}</tr>
</thead>
<tbody>
{% for row in rows %}
<tr>{% for c in columns %}<td class="{{ c.css }}">{{ row[loop.index0] }}</td>{% endfor %}</tr>
{% endfor %}
</tbody>
</table>
{% endblock %}
"""

_ENV = jinja2.Environment(
    loader=jinja2.DictLoader({"base.html": BASE_HTML, "table.html": TABLE_HTML}),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

_SAFE_FAMILY = re.compile(r"[^\w .\-]")


@functools.cache
def _template(source: str) -> jinja2.Template:
    return _ENV.get_template(source) if source in ("base.html", "table.html") else _ENV.from_string(source)


def _css_family(*families: str) -> Markup:
    """A CSS font-family value from fontconfig family names (quoted, de-duplicated, nothing but name chars)."""
    names = dict.fromkeys(_SAFE_FAMILY.sub("", f) for f in families)
    return Markup(", ".join(f'"{n}"' for n in names if n) + ", serif")


def _css_fonts(font: CJKFont) -> dict[str, Markup]:
    return {
        "css_body": _css_family(font.body.family, font.heading.family),
        "css_heading": _css_family(font.heading.family, font.body.family),
    }


def render_pdf(
    template: str,
    *,
    doc_title: str,
    page_size: str = "A4",
    page_margin: str = "20mm",
    footer: bool = True,
    **context: Any,
) -> bytes:
    """Render a Jinja2 template (a source string extending "base.html", or "table.html") to PDF bytes.

    Checks the Chinese font first (OutputError CJK_FONT_MISSING); all values are HTML-escaped.
    """
    font = cjk_font()
    html = _template(template).render(
        doc_title=doc_title,
        page_size=Markup(page_size),
        page_margin=Markup(page_margin),
        footer=footer,
        font=font,
        **_css_fonts(font),
        **context,
    )
    from weasyprint import HTML  # imported late: loading WeasyPrint takes about a second

    return HTML(string=html).write_pdf()


# Blank pages carrying only the page footer, laid over the pages of a document rendered in parts.
FOOTERS_HTML = """{% extends "base.html" %}
{% block css %}.blank { break-after: page; height: 1px; }{% endblock %}
{% block body %}{% for _ in range(pages - 1) %}<div class="blank"></div>{% endfor %}<div></div>{% endblock %}
"""


def join_with_page_footers(parts: list[bytes], *, page_size: str, doc_title: str) -> bytes:
    """Join PDFs rendered with footer=False into one and print 第 N 页 共 M 页 on every page.

    The footers come from a second rendering of blank pages of the same size, each laid over its page as a
    form XObject (a vector overlay, text stays searchable).
    """
    import pikepdf

    out = pikepdf.new()
    opened = [pikepdf.open(io.BytesIO(p)) for p in parts]
    try:
        for src in opened:
            out.pages.extend(src.pages)
        total = len(out.pages)
        footers_pdf = render_pdf(FOOTERS_HTML, doc_title=doc_title, page_size=page_size, pages=total)
        with pikepdf.open(io.BytesIO(footers_pdf)) as footers:
            for page, footer in zip(out.pages, footers.pages, strict=True):
                name = page.add_resource(footer.as_form_xobject(), pikepdf.Name.XObject, prefix="Footer")
                page.contents_add(b"q\n", prepend=True)
                page.contents_add(f"Q\nq {name} Do Q\n".encode(), prepend=False)
        with pikepdf.open(io.BytesIO(parts[0])) as first:  # keep the document title and producer
            out.docinfo = out.copy_foreign(first.docinfo)
        buf = io.BytesIO()
        out.save(buf)
        return buf.getvalue()
    finally:
        for src in opened:
            src.close()
        out.close()


@dataclass(frozen=True)
class Column:
    """One column of a printed table: label, share of the table width in percent, left-aligned or centred."""

    code: str
    label: str
    width: float
    left: bool = False
    nowrap: bool = False

    @property
    def css(self) -> str:
        return "left" if self.left else "nowrap" if self.nowrap else ""


NOWRAP_FIELDS = frozenset({"seq", "date", "pages", "page_no", "security_level"})


def fit_columns(
    columns: Iterable[tuple[str, str]],
    widths_mm: Mapping[str, float],
    total_mm: float,
    flexible: str = "title",
    left: Iterable[str] = ("title",),
    default_mm: float = 20,
) -> list[Column]:
    """Give each column its printed width (mm, from `widths_mm`); the `flexible` column takes what is left.
    Short fields (序号, 日期, 页数, 页号, 密级) never wrap: "105-108" must not break at its hyphen."""
    cols = list(columns)
    left_set = set(left)
    fixed = sum(widths_mm.get(code, default_mm) for code, _ in cols if code != flexible)
    has_flex = any(code == flexible for code, _ in cols)
    flex_mm = max(total_mm - fixed, 50.0) if has_flex else 0.0
    mm = [flex_mm if code == flexible else widths_mm.get(code, default_mm) for code, _ in cols]
    total = sum(mm) or 1.0
    return [
        Column(code, label, round(100 * w / total, 3), code in left_set, code in NOWRAP_FIELDS)
        for (code, label), w in zip(cols, mm, strict=True)
    ]


_ISO_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})(?:[T ].*)?$")
_ISO_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def ymd(value: Any) -> str:
    """A date as printed in archival catalogues (DA/T 22-2015 §7.7): 8 digits, e.g. 20240305.

    Accepts date/datetime objects and ISO strings (2024-03-05, 2024-03-05T10:00, 20240305); a year-month
    becomes 202403, a bare year stays 2024; anything else is printed as given.
    """
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        return value.strftime("%Y%m%d")
    s = str(value).strip()
    m = _ISO_DATE.match(s)
    if m:
        return "".join(m.groups())
    m = _ISO_MONTH.match(s)
    if m:
        return "".join(m.groups())
    return s


def date_span(start: Any, end: Any) -> str:
    """起止时间: "20240105—20241220" (one date alone when both are equal or one is missing)."""
    a, b = ymd(start), ymd(end)
    if a and b and a != b:
        return f"{a}—{b}"
    return a or b


def text(value: Any) -> str:
    """Any value as printed text: None → "", Decimal 12.0 → "12", dates → YYYYMMDD."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        return ymd(value)
    if isinstance(value, float | Decimal) and value == int(value):
        return str(int(value))
    return str(value)


DATE_FIELDS = frozenset(
    {"date", "doc_date", "start_date", "end_date", "filed_on", "compiled_on", "checked_on"}
)


def cell_text(code: str, value: Any) -> str:
    """A table cell: date fields are printed as 8 digits, everything else as text."""
    return ymd(value) if code in DATE_FIELDS else text(value)
