"""Audit trail exports (CSV and JSON), streamed in batches; shared by the page and the API.

The export is audited (audit.export) by the service before the first event is read. CSV cells that a
spreadsheet would run as a formula (=, +, -, @ …) are prefixed with an apostrophe; the JSON export
carries every field exactly as stored, with the SM3 hash and the previous hash of each entry.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Any

from fastapi.responses import StreamingResponse

from dangan.services import browse
from dangan.services.audit import ACTION_LABELS
from dangan.services.audit import OUTCOME_LABELS as AUDIT_OUTCOMES
from dangan.services.context import Actor, Dangan

# labels of events the identity faces write that the audit module does not name yet
AUDIT_ACTION_LABELS = {**ACTION_LABELS, "audit.export": "导出审计日志"}
AUDIT_OUTCOME_LABELS = {**AUDIT_OUTCOMES, "locked": "已锁定"}

CSV_COLUMNS = [("seq", "序号"), ("occurred_at", "时间（UTC）"), ("actor", "操作者"), ("client_addr", "来源地址"),
               ("action", "操作代码"), ("action_label", "操作"), ("object_type", "对象类型"), ("object_id", "对象编号"),
               ("outcome", "结果代码"), ("outcome_label", "结果"), ("detail", "详情（JSON）"), ("hash", "SM3 哈希"),
               ("prev_hash", "上一条哈希")]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(v: Any) -> str:
    s = json.dumps(v, ensure_ascii=False, sort_keys=True) if isinstance(v, dict | list) else ("" if v is None else str(v))
    return "'" + s if s.startswith(FORMULA_START) else s


def _csv(events: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([label for _, label in CSV_COLUMNS])
    yield ("\ufeff" + buf.getvalue()).encode("utf-8")  # BOM: spreadsheets then read UTF-8 correctly
    for e in events:
        buf.seek(0)
        buf.truncate()
        e["action_label"] = AUDIT_ACTION_LABELS.get(e["action"], e["action_label"])
        e["outcome_label"] = AUDIT_OUTCOME_LABELS.get(e["outcome"], e["outcome_label"])
        w.writerow([_cell(e.get(k)) for k, _ in CSV_COLUMNS])
        yield buf.getvalue().encode("utf-8")


def _json(events: Iterator[dict[str, Any]], meta: dict[str, Any]) -> Iterator[bytes]:
    head = json.dumps(meta, ensure_ascii=False)[:-1]
    yield (head + ', "events": [\n').encode("utf-8")
    first = True
    for e in events:
        e.pop("id", None)
        e["action_label"] = AUDIT_ACTION_LABELS.get(e["action"], e["action_label"])
        e["outcome_label"] = AUDIT_OUTCOME_LABELS.get(e["outcome"], e["outcome"])
        yield (("" if first else ",\n") + json.dumps(e, ensure_ascii=False)).encode("utf-8")
        first = False
    yield b"\n]}\n"


def audit_export_response(dangan: Dangan, actor: Actor, filters: dict[str, Any], fmt: str) -> StreamingResponse:
    events = browse.export_audit_events(dangan, actor, object_type=filters.get("object_type"),
                                        object_id=filters.get("object_id"), actor_name=filters.get("actor"),
                                        action=filters.get("action"), fmt=fmt)
    now = dt.datetime.now(dt.UTC)
    name = f"audit-{now:%Y%m%d-%H%M%S}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    if fmt == "json":
        meta = {"exported_at": now.isoformat(timespec="seconds"), "exported_by": actor.username,
                "filters": {k: v for k, v in filters.items() if v}}
        return StreamingResponse(_json(events, meta), media_type="application/json", headers=headers)
    return StreamingResponse(_csv(events), media_type="text/csv; charset=utf-8", headers=headers)
