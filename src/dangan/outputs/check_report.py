"""四性检测报告 as PDF (A4, Chinese): summary per dimension, every item with its outcome, the evidence of each
failing or warning item (expected vs found, per record and file), and space for the signatures."""

from __future__ import annotations

from typing import Any

from dangan.outputs._render import render_pdf

MAX_EVIDENCE_PRINTED = 50  # per item; the count is always printed whole

REPORT_HTML = """{% extends "base.html" %}
{% block css %}
.doc-title { margin-bottom: 4mm; }
table.meta { width: 100%; border-collapse: collapse; margin-bottom: 4mm; }
table.meta td { border: 0.75pt solid #000; padding: 1.4mm 2mm; }
table.meta td.k { width: 22%; font-family: {{ css_heading }}; background: #f2f2f2; }
h2 { font-size: 12.5pt; margin: 5mm 0 2mm 0; }
.verdict { font-size: 14pt; font-weight: bold; }
.fail { color: #b00000; } .warn { color: #8a5a00; } .pass { color: #1d6b2a; }
table.grid td { font-size: 9.5pt; }
table.ev td { font-size: 8.5pt; text-align: left; }
.small { font-size: 8.5pt; color: #333; }
.sign { margin-top: 10mm; width: 100%; border-collapse: collapse; }
.sign td { border: 0.75pt solid #000; height: 18mm; vertical-align: top; padding: 2mm; width: 33%; }
{% endblock %}
{% block body %}
<div class="doc-title">电子档案{{ run.stage }}环节四性检测报告</div>
<table class="meta">
<tr><td class="k">检测对象</td><td>{{ run.target_kind_label }}：{{ run.target_label }}</td>
    <td class="k">检测编号</td><td>{{ run.id }}</td></tr>
<tr><td class="k">检测方案</td><td>{{ run.scheme_name or "" }}</td><td class="k">检测人</td><td>{{ run.actor }}</td></tr>
<tr><td class="k">开始时间</td><td>{{ started }}</td><td class="k">完成时间</td><td>{{ finished }}</td></tr>
<tr><td class="k">检测数量</td><td>{{ s.records or 0 }} 件，{{ s.files or 0 }} 个电子文件，{{ mb }} MB</td>
    <td class="k">检测结论</td><td class="verdict {{ 'pass' if run.verdict == '通过' else 'fail' }}">{{ run.verdict or run.status_label }}</td></tr>
</table>
<h2>一、检测结果汇总</h2>
<table class="grid">
<thead><tr><th style="width:16%">检测类别</th><th>检测项数</th><th>通过</th><th>不通过</th><th>警告</th><th>不适用</th><th style="width:18%">结论</th></tr></thead>
<tbody>
{% for d in dims %}
<tr><td>{{ d.label }}</td><td>{{ d['items'] }}</td><td>{{ d.counts['通过'] }}</td><td>{{ d.counts['不通过'] }}</td>
<td>{{ d.counts['警告'] }}</td><td>{{ d.counts['不适用'] }}</td>
<td class="{{ 'pass' if d.outcome == '通过' else ('fail' if d.outcome == '不通过' else '') }}">{{ d.outcome }}</td></tr>
{% endfor %}
</tbody></table>
{% if s.vetoed %}<p class="fail">一票否决项未通过：{{ s.vetoed | join("、") }}</p>{% endif %}
<h2>二、检测项明细</h2>
<table class="grid">
<thead><tr><th style="width:11%">编号</th><th style="width:27%">检测项目</th><th>检测内容</th><th style="width:9%">检测数</th><th style="width:10%">结果</th></tr></thead>
<tbody>
{% for it in items %}
<tr><td>{{ it.code }}</td><td class="left">{{ it.title }}{% if it.veto %}（否决项）{% endif %}</td>
<td class="left small">{{ it.purpose }}{% if it.note %}<br>{{ it.note }}{% endif %}</td><td>{{ it.checked }}</td>
<td class="{{ {'通过': 'pass', '不通过': 'fail', '警告': 'warn'}.get(it.outcome, '') }}">{{ it.outcome }}</td></tr>
{% endfor %}
</tbody></table>
{% if problems %}
<h2>三、问题明细（不通过与警告）</h2>
{% for it in problems %}
<p><b>{{ it.code }} {{ it.title }}</b>：<span class="{{ 'fail' if it.outcome == '不通过' else 'warn' }}">{{ it.outcome }}</span>，
共 {{ it.evidence_count }} 处{% if it.evidence_count > it.shown | length %}（以下列出前 {{ it.shown | length }} 处）{% endif %}</p>
<table class="grid ev"><thead><tr><th style="width:26%">对象</th><th>问题</th><th style="width:20%">应为</th><th style="width:20%">实际</th></tr></thead>
<tbody>{% for e in it.shown %}<tr><td>{{ e.subject }}</td><td>{{ e.message }}</td><td>{{ e.expected if e.expected is not none else "" }}</td>
<td>{{ e.found if e.found is not none else "" }}</td></tr>{% endfor %}</tbody></table>
{% endfor %}
{% endif %}
<table class="sign"><tr><td>检测人（签字）：</td><td>审核人（签字）：</td><td>档案部门负责人（签字）：</td></tr>
<tr><td>日期：</td><td>日期：</td><td>日期：</td></tr></table>
<p class="small">本报告由 dangan 电子档案管理系统生成；机读报告（JSON）与本报告内容一致，可通过检测编号 {{ run.id }} 调取。</p>
{% endblock %}
"""


def _short(v: Any, n: int = 120) -> Any:
    if v is None:
        return None
    s = str(v)
    return s if len(s) <= n else s[:n] + "…"


def report_pdf(run: dict[str, Any]) -> bytes:
    s = run.get("summary") or {}
    dims = [v for _, v in sorted((s.get("dimensions") or {}).items())]
    problems = []
    for it in run.get("items", []):
        if it["outcome"] in ("不通过", "警告") and it["evidence"]:
            shown = [{**e, "expected": _short(e.get("expected")), "found": _short(e.get("found")),
                      "message": _short(e.get("message"), 300)} for e in it["evidence"][:MAX_EVIDENCE_PRINTED]]
            problems.append({**it, "shown": shown})
    return render_pdf(REPORT_HTML, doc_title=f"四性检测报告 {run['id']}", run=run, s=s, dims=dims,
                      items=run.get("items", []), problems=problems,
                      started=(run.get("started_at") or "")[:19].replace("T", " "),
                      finished=(run.get("finished_at") or "")[:19].replace("T", " "),
                      mb=f"{(s.get('bytes_read') or 0) / 2**20:.1f}")
