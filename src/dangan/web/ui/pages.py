"""The Chinese web pages. Each route gathers what its page shows from the services and renders a template."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from dangan.domain.access import ACTION_LABELS, SCOPE_LABELS
from dangan.domain.presets import ARRANGEMENTS
from dangan.domain.retention import STANDARD_PERIODS, parse_retention
from dangan.domain.schema import FIELD_TYPES, OBLIGATIONS
from dangan.domain.states import IN_HOLDINGS, STATE_LABELS, RecordState
from dangan.errors import DanganError, NotFound, ValidationFailed
from dangan.services import audit, browse, categories, files, fonds, prefiling, records
from dangan.services.context import Actor, Dangan
from dangan.services.files import NewFile
from dangan.services.views import ROLE_LABELS
from dangan.web.deps import can, current_actor, get_dangan, require_any
from dangan.web.exports import AUDIT_ACTION_LABELS, AUDIT_OUTCOME_LABELS, audit_export_response
from dangan.web.ui.render import csrf_guard, query, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])

PAGE_SIZE = 50
FILE_ROWS = 3
STATE_CHOICES = [(s.value, STATE_LABELS[s]) for s in (RecordState.PRE_FILING, RecordState.PENDING, RecordState.FILED)]
RECORD_ACTIONS = ("record.update", "record.submit", "record.file", "file.add", "file.download")
DONE_MESSAGES = {
    "created": "档案已保存。",
    "submit": "已提交归档，等待档案员审核归档。",
    "file": "已归档，档号已赋予。",
    "return": "已退回，状态恢复为预归档。",
    "files": "电子文件已添加，SHA-256 与 SM3 已记录。",
}


async def form_data(request: Request) -> AsyncIterator[FormData]:
    """The submitted form (uploads are spooled to temporary files by the parser, never held whole in memory)."""
    form = await request.form()
    try:
        yield form
    finally:
        await form.close()


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# ---------------------------------------------------------------- 首页


@router.get("/", response_class=HTMLResponse)
def home(request: Request, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    if actor.scope_for("record.read") is None:
        # the 三员 (and anyone without a right to records) see their own tasks, not empty counts
        return render(request, "home_admin.html", {"crumbs": [("首页", None)]}, active="home")
    stats = browse.dashboard(dangan, actor)
    recent = records.list_records(dangan, actor, records.RecordFilter(), limit=8, sort="newest", audit=False)["items"]
    peak = max([y["count"] for y in stats["filed_by_year"]] or [1])
    depts = [d["name"] for f in fonds.list_fonds(dangan, actor) for d in fonds.list_departments(dangan, actor, f["code"])
             if d["id"] in actor.department_ids]
    rights = [ACTION_LABELS[a] + ("" if sc == "all" else f"（{SCOPE_LABELS.get(sc, sc)}）")
              for a in ACTION_LABELS if (sc := actor.scope_for(a)) is not None]
    reminders = sorted(prefiling.reminders(dangan, actor), key=lambda p: (p["status"] != "overdue", p["days_left"]))
    to_accept = prefiling.queue(dangan, actor, limit=1)["total"] if actor.scope_for("record.file") else None
    from dangan.services.requests import my_loans_due

    loans_due = my_loans_due(dangan, actor)
    return render(request, "home.html", {"stats": stats, "recent": recent, "peak": peak, "my_rights": rights,
                                         "my_departments": depts, "state_labels": STATE_LABELS,
                                         "reminders": reminders, "to_accept": to_accept, "loans_due": loans_due,
                                         "crumbs": [("首页", None)]}, active="home")


# ---------------------------------------------------------------- 档案浏览


def _one_fonds(dangan: Dangan, actor: Actor, code: str | None) -> tuple[list[dict[str, Any]], str | None]:
    all_fonds = fonds.list_fonds(dangan, actor)
    if not code and len(all_fonds) == 1:
        code = all_fonds[0]["code"]
    return all_fonds, (code.upper() if code else None)


@router.get("/records", response_class=HTMLResponse)
def browse_records(
    request: Request,
    fonds_code: str | None = Query(None, alias="fonds", max_length=16),
    category: str | None = Query(None, max_length=16),
    year: int | None = Query(None, ge=1900, le=2999),
    retention: str | None = Query(None, max_length=16),
    department: str | None = Query(None, max_length=100),
    state: str | None = Query(None, max_length=16),
    level: str | None = Query(None, max_length=16),
    q: str | None = Query(None, max_length=200),
    sort: str = Query("code", max_length=16),
    cursor: str | None = Query(None, max_length=2000),
    page: int = Query(1, ge=1, le=100000),
    dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor),
) -> Response:
    require_any(request, actor, "record.read")
    all_fonds, fonds_code = _one_fonds(dangan, actor, fonds_code)
    q = (q or "").strip() or None
    params = {"fonds": fonds_code, "category": category, "year": year, "retention": retention,
              "department": department, "state": state, "level": level, "q": q, "sort": sort if sort != "code" else None}

    def flt(**over: Any) -> records.RecordFilter:
        d = {"fonds": fonds_code, "category": category, "year": year, "retention_period": retention,
             "department": department, "state": state, "level": level, "q": q, **over}
        return records.RecordFilter(**d)

    result = records.list_records(dangan, actor, flt(), limit=PAGE_SIZE, cursor=cursor, sort=sort)

    # the tree: 全宗 → 门类 → 年度 → 保管期限 → 机构, each level counted under the selection above it
    tree: list[dict[str, Any]] = []
    cat_info: dict[str, Any] | None = None
    dept_names: dict[int, dict[str, Any]] = {}
    for f in all_fonds:
        node: dict[str, Any] = {"label": f"{f['code']} {f['name']}", "kind": "全宗",
                                "href": "/records" + records_query(fonds=f["code"], q=q, state=state),
                                "selected": f["code"] == fonds_code, "children": []}
        fc = records.facets(dangan, actor, records.RecordFilter(fonds=f["code"], q=q, state=state))
        node["count"] = sum(c["count"] for c in fc["category_id"])
        tree.append(node)
        if f["code"] != fonds_code:
            continue
        cats = {c["id"]: c for c in categories.list_categories(dangan, actor, f["code"])}
        dept_names = {d["id"]: d for d in fonds.list_departments(dangan, actor, f["code"])}
        counts = {c["value"]: c["count"] for c in fc["category_id"]}
        for cid, c in cats.items():
            sel = bool(category) and c["code"] == category.upper()
            cn = {"label": c["name"], "code": c["code"], "count": counts.get(cid, 0), "selected": sel, "children": [],
                  "href": "/records" + records_query(fonds=fonds_code, category=c["code"], q=q, state=state)}
            node["children"].append(cn)
            if not sel:
                continue
            cat_info = c
            base = {"fonds": fonds_code, "category": c["code"], "q": q, "state": state, "level": level}
            for y in _facet(dangan, actor, flt(year=None, retention_period=None, department=None), "year"):
                ysel = year == y["value"]
                yn = {"label": f"{y['value']} 年", "count": y["count"], "selected": ysel, "children": [],
                      "href": "/records" + records_query(**base, year=y["value"])}
                cn["children"].append(yn)
                if not ysel:
                    continue
                for r in _facet(dangan, actor, flt(retention_period=None, department=None), "retention_period"):
                    rsel = bool(retention) and _same_retention(retention, r["value"])
                    rn = {"label": _retention_label(r["value"]), "count": r["count"], "selected": rsel, "children": [],
                          "href": "/records" + records_query(**base, year=y["value"], retention=r["value"])}
                    yn["children"].append(rn)
                    if not rsel:
                        continue
                    for d in _facet(dangan, actor, flt(department=None), "department_id"):
                        dept = dept_names.get(d["value"])
                        if dept is None:
                            continue
                        rn["children"].append({
                            "label": dept["name"], "count": d["count"], "children": [],
                            "selected": bool(department) and department.upper() in (dept["code"], dept["name"]),
                            "href": "/records" + records_query(**base, year=y["value"], retention=r["value"],
                                                               department=dept["code"])})

    state_counts: list[dict[str, Any]] = []
    if fonds_code:
        sc = {s["value"]: s["count"] for s in _facet(dangan, actor, flt(state=None), "state")}
        state_counts = [{"value": v, "label": STATE_LABELS[RecordState(v)], "count": n} for v, n in sc.items()]
    levels = [(lvl, cat_info["level_labels"][lvl]) for lvl in cat_info["levels"]] if cat_info else []
    crumbs: list[tuple[str, str | None]] = [("首页", "/"), ("档案浏览", "/records")]
    if cat_info:
        crumbs.append((cat_info["name"], "/records" + records_query(fonds=fonds_code, category=cat_info["code"])))
        if year:
            crumbs.append((f"{year} 年", "/records" + records_query(fonds=fonds_code, category=cat_info["code"], year=year)))
        if retention:
            crumbs.append((_retention_label(retention), None))
    crumbs[-1] = (crumbs[-1][0], None)
    return render(request, "browse.html", {
        "result": result, "tree": tree, "params": params, "page": page, "cursor": cursor, "cat": cat_info,
        "levels": levels, "state_counts": state_counts, "crumbs": crumbs, "fonds_code": fonds_code,
    }, active="browse")


def records_query(**kw: Any) -> str:
    return query({}, **kw)


def _facet(dangan: Dangan, actor: Actor, flt: records.RecordFilter, name: str) -> list[dict[str, Any]]:
    return [v for v in records.facets(dangan, actor, flt)[name] if v["value"] is not None]


def _retention_label(code: str) -> str:
    try:
        return parse_retention(code).label
    except ValueError:
        return code


def _same_retention(a: str, b: str) -> bool:
    try:
        return parse_retention(a).code == parse_retention(b).code
    except ValueError:
        return a == b


# ---------------------------------------------------------------- 档案详情 and its actions


def _detail(request: Request, dangan: Dangan, actor: Actor, record_id: int, *, notice: str = "",
            error: DanganError | None = None, status: int = 200) -> Response:
    rec = records.get_record(dangan, actor, record_id)
    cat = categories.show_category(dangan, actor, rec["fonds_code"], rec["category_code"])
    fields = cat["schemas"][rec["level"]]["fields"]
    known = {f["code"] for f in fields}
    extra = {k: v for k, v in rec["metadata"].items() if k not in known}
    children = None
    if rec["level"] != cat["levels"][-1]:
        children = records.list_records(dangan, actor, records.RecordFilter(parent_id=record_id), limit=500, audit=False)
    chain = []
    pid = rec["parent_id"]
    while pid:
        p = browse.record_brief(dangan, actor, pid)
        if p is None:
            break
        chain.insert(0, p)
        pid = p["parent_id"]
    rights = browse.record_rights(dangan, actor, record_id, RECORD_ACTIONS)
    check_runs = None
    if can(actor, "check.run"):
        from dangan.services import checks as check_svc

        check_runs = check_svc.list_runs(dangan, actor, record_id=record_id, limit=5)
    crumbs: list[tuple[str, str | None]] = [
        ("首页", "/"), ("档案浏览", "/records"),
        (rec["category_name"], "/records" + records_query(fonds=rec["fonds_code"], category=rec["category_code"])),
    ]
    if rec["year"] and not chain:
        crumbs.append((f"{rec['year']} 年", "/records" + records_query(fonds=rec["fonds_code"], category=rec["category_code"],
                                                                    year=rec["year"])))
    for p in chain:
        crumbs.append((p["archival_code"] or p["title"][:20], f"/records/{p['id']}"))
    crumbs.append((rec["archival_code"] or (rec["title"][:24] + ("…" if len(rec["title"]) > 24 else "")), None))
    return render(request, "record.html", {
        "rec": rec, "cat": cat, "fields": fields, "extra": extra, "children": children, "chain": chain,
        "rights": rights, "notice": notice, "error": error, "crumbs": crumbs, "roles": ROLE_LABELS,
        "editable": rec["state"] in (RecordState.PRE_FILING.value, RecordState.PENDING.value),
        "stampable": rec["state"] in {st.value for st in IN_HOLDINGS} and bool(rec["archival_code"]) and rec["seq"] is not None
        and rec["level"] not in ("volume", "project", "group"),  # a volume has its 案卷封面 instead
        "is_volume": rec["level"] in ("volume", "project", "group"),
        "check_runs": check_runs,
        **_viewing(dangan, actor, rec),
    }, status=status, active="browse")


def _viewing(dangan: Dangan, actor: Actor, rec: dict[str, Any]) -> dict[str, Any]:
    """在线阅览 and download on the record page: who manages the record or holds a grant (services.viewer)."""
    from dangan.services import viewer

    return {"may_view": viewer.may_view(dangan, actor, rec["id"]),
            "may_download": viewer.may_download(dangan, actor, rec["id"]),
            "viewable": lambda media_type: viewer.viewable_kind(media_type or "") is not None,
            "apply_view_url": viewer.apply_url(rec["id"], "view")}


@router.get("/records/new", response_class=HTMLResponse)
def new_record_form(
    request: Request,
    fonds_code: str | None = Query(None, alias="fonds", max_length=16),
    category: str | None = Query(None, max_length=16),
    level: str | None = Query(None, max_length=16),
    parent_id: int | None = Query(None),
    dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor),
) -> Response:
    require_any(request, actor, "record.create")
    ctx = _form_ctx(dangan, actor, fonds_code, category, level)
    if parent_id:
        ctx["values"]["parent_id"] = str(parent_id)
    return render(request, "record_new.html", ctx, active="new")


def _form_ctx(dangan: Dangan, actor: Actor, fonds_code: str | None, category: str | None, level: str | None) -> dict[str, Any]:
    all_fonds = fonds.list_fonds(dangan, actor)
    if not all_fonds:
        raise NotFound("还没有全宗，请先用 dangan fonds create 或接口 POST /api/v1/fonds 新建全宗", code="FONDS_NOT_FOUND")
    codes = [f["code"] for f in all_fonds]
    if not (fonds_code and fonds_code.upper() in codes):
        # the first fonds that has categories to file into (a fonds just created has none yet)
        fonds_code = next((c for c in codes if categories.list_categories(dangan, actor, c)), codes[0])
    fonds_code = fonds_code.upper()
    cats = categories.list_categories(dangan, actor, fonds_code)
    if not cats:
        raise NotFound(f"全宗 {fonds_code} 还没有门类，请先新建门类", code="CATEGORY_NOT_FOUND")
    cat_codes = [c["code"] for c in cats]
    category = category.upper() if category and category.upper() in cat_codes else cat_codes[0]
    cat = categories.show_category(dangan, actor, fonds_code, category)
    level = level if level in cat["levels"] else cat["levels"][0]
    idx = cat["levels"].index(level)
    parents = None
    if idx > 0:
        parents = records.list_records(dangan, actor, records.RecordFilter(fonds=fonds_code, category=category,
                                                                            level=cat["levels"][idx - 1]),
                                       limit=500, sort="newest", audit=False)["items"]
    needs_dept = any(p["source"] in ("department_code", "department_name") for p in cat["code_templates"][level])
    return {
        "fonds_list": all_fonds, "fonds_code": fonds_code, "cats": cats, "cat": cat, "level": level,
        "fields": cat["schemas"][level]["fields"], "departments": fonds.list_departments(dangan, actor, fonds_code),
        "needs_dept": needs_dept, "parents": parents, "parent_level": cat["level_labels"][cat["levels"][idx - 1]] if idx else "",
        "values": {"save_as": RecordState.PRE_FILING.value}, "errors": {}, "general_errors": [], "error": None,
        "retentions": [(r.code, r.label) for r in STANDARD_PERIODS], "roles": ROLE_LABELS, "file_rows": range(FILE_ROWS),
        "state_choices": STATE_CHOICES, "types": FIELD_TYPES, "obligations": OBLIGATIONS,
        "crumbs": [("首页", "/"), ("档案浏览", "/records"), ("新建档案", None)],
    }


def _text(form: FormData, key: str) -> str:
    v = form.get(key)
    return v if isinstance(v, str) else ""


@router.post("/records/new", response_class=HTMLResponse)
def new_record_submit(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                      actor: Actor = Depends(current_actor)) -> Response:
    ctx = _form_ctx(dangan, actor, _text(form, "fonds"), _text(form, "category"), _text(form, "level"))
    values: dict[str, Any] = {k: _text(form, k) for k in ("department", "parent_id", "save_as")}
    meta: dict[str, Any] = {}
    for f in ctx["fields"]:
        raw = _text(form, "m_" + f["code"])
        values["m_" + f["code"]] = raw
        if not raw.strip():
            continue
        meta[f["code"]] = [v for v in re.split(r"[；;，,\s]+", raw.strip()) if v] if f.get("repeatable") else raw.strip()
    ctx["values"] = values
    uploads = []
    for i in ctx["file_rows"]:
        u = form.get(f"file_{i}")
        if isinstance(u, UploadFile) and (u.filename or u.size):
            uploads.append((i, NewFile(name=u.filename or "", stream=u.file, role=_text(form, f"role_{i}") or "main",
                                       media_type=u.content_type, expected_size=u.size)))
    parent_id: int | None = None
    try:
        if values["parent_id"]:
            if not values["parent_id"].isdigit():
                raise ValidationFailed("上级档案编号应为数字", problems=[])
            parent_id = int(values["parent_id"])
        inp = records.RecordInput(ctx["fonds_code"], ctx["cat"]["code"], meta, level=ctx["level"],
                                  department=values["department"] or None, parent_id=parent_id,
                                  state=values["save_as"] or RecordState.PRE_FILING.value)
        rec = records.create_record(dangan, actor, inp, [nf for _, nf in uploads])
    except DanganError as e:
        rows = {f"files[{n}]": i for n, (i, _) in enumerate(uploads)}
        for p in e.problems:
            key = p.field
            m = re.match(r"(files\[\d+\])\.", key)
            if m and m.group(1) in rows:
                key = f"file_{rows[m.group(1)]}"
            elif key not in ("department", "parent_id", "level") and key not in {f["code"] for f in ctx["fields"]}:
                ctx["general_errors"].append(f"{p.label or p.field}：{p.message}")
                continue
            elif key in {f["code"] for f in ctx["fields"]}:
                key = "m_" + key
            ctx["errors"].setdefault(key, []).append(p.message)
        ctx["error"] = e
        ctx["had_files"] = bool(uploads)
        return render(request, "record_new.html", ctx, status=e.status, active="new")
    return _see_other(f"/records/{rec['id']}?done=created")


@router.get("/records/{record_id}", response_class=HTMLResponse)
def record_detail(request: Request, record_id: int, done: str | None = Query(None, max_length=16),
                  dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _detail(request, dangan, actor, record_id, notice=DONE_MESSAGES.get(done or "", ""))


def _transition(request: Request, form: FormData, dangan: Dangan, actor: Actor, record_id: int, to: str,
                done: str) -> Response:
    try:
        records.transition(dangan, actor, record_id, to, _text(form, "reason"))
    except NotFound:
        raise
    except DanganError as e:
        return _detail(request, dangan, actor, record_id, error=e, status=e.status)
    return _see_other(f"/records/{record_id}?done={done}")


@router.post("/records/{record_id}/submit")
def record_submit(request: Request, record_id: int, form: FormData = Depends(form_data),
                  dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _transition(request, form, dangan, actor, record_id, RecordState.PENDING.value, "submit")


@router.post("/records/{record_id}/file")
def record_file(request: Request, record_id: int, form: FormData = Depends(form_data),
                dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _transition(request, form, dangan, actor, record_id, RecordState.FILED.value, "file")


@router.post("/records/{record_id}/return")
def record_return(request: Request, record_id: int, form: FormData = Depends(form_data),
                  dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _transition(request, form, dangan, actor, record_id, RecordState.PRE_FILING.value, "return")


@router.post("/records/{record_id}/files")
def record_add_files(request: Request, record_id: int, form: FormData = Depends(form_data),
                     dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    new = [NewFile(name=u.filename or "", stream=u.file, role=_text(form, "role") or "main", media_type=u.content_type,
                   expected_size=u.size)
           for u in form.getlist("files") if isinstance(u, UploadFile) and (u.filename or u.size)]
    try:
        files.add_files(dangan, actor, record_id, new, _text(form, "reason"))
    except NotFound:
        raise
    except DanganError as e:
        return _detail(request, dangan, actor, record_id, error=e, status=e.status)
    return _see_other(f"/records/{record_id}?done=files")


# ---------------------------------------------------------------- 全宗与门类


@router.get("/fonds", response_class=HTMLResponse)
def fonds_page(request: Request, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "fonds.manage", "record.read")
    out = []
    for f in fonds.list_fonds(dangan, actor):
        cats = [categories.show_category(dangan, actor, f["code"], c["code"])
                for c in categories.list_categories(dangan, actor, f["code"])]
        out.append({**f, "departments": fonds.list_departments(dangan, actor, f["code"]), "categories": cats})
    return render(request, "fonds.html", {"fonds": out, "types": FIELD_TYPES, "obligations": OBLIGATIONS,
                                          "arrangements": ARRANGEMENTS,
                                          "crumbs": [("首页", "/"), ("全宗与门类", None)]}, active="fonds")


# ---------------------------------------------------------------- 审计日志 (安全审计员)

AUDIT_OBJECT_TYPES = {"record": "档案", "file": "电子文件", "user": "用户", "token": "接口令牌", "fonds": "全宗",
                      "department": "机构", "category": "门类", "fixity_run": "固化检测", "audit": "审计日志",
                      "page": "页面", "system": "系统"}


def _audit_filters(object_type: str | None, object_id: str | None, actor_name: str | None,
                   action: str | None) -> dict[str, Any]:
    return {"object_type": object_type or None, "object_id": (object_id or "").strip() or None,
            "actor": (actor_name or "").strip() or None, "action": action or None}


def _audit_page(request: Request, dangan: Dangan, actor: Actor, filters: dict[str, Any], before_seq: int | None,
                verify: dict[str, Any] | None = None) -> Response:
    items = browse.list_audit_events(dangan, actor, object_type=filters.get("object_type"), object_id=filters.get("object_id"),
                                     actor_name=filters.get("actor"), action=filters.get("action"), before_seq=before_seq,
                                     limit=PAGE_SIZE)
    for e in items:
        e["action_label"] = AUDIT_ACTION_LABELS.get(e["action"], e["action_label"])
        e["outcome_label"] = AUDIT_OUTCOME_LABELS.get(e["outcome"], e["outcome_label"])
    older = items[-1]["seq"] if len(items) == PAGE_SIZE else None
    return render(request, "audit.html", {
        "items": items, "filters": filters, "older": older, "before_seq": before_seq, "verify": verify,
        "actions": AUDIT_ACTION_LABELS, "object_types": AUDIT_OBJECT_TYPES,
        "crumbs": [("首页", "/"), ("审计日志", None)],
    }, active="audit")


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    object_type: str | None = Query(None, max_length=32), object_id: str | None = Query(None, max_length=64),
    actor_name: str | None = Query(None, alias="actor", max_length=64), action: str | None = Query(None, max_length=64),
    before_seq: int | None = Query(None, ge=1),
    dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor),
) -> Response:
    return _audit_page(request, dangan, actor, _audit_filters(object_type, object_id, actor_name, action), before_seq)


@router.post("/audit/verify", response_class=HTMLResponse)
def audit_verify(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> Response:
    rep = audit.verify(dangan, actor).as_dict()
    return _audit_page(request, dangan, actor, {}, None, verify=rep)


@router.get("/audit/export")
def audit_export(
    request: Request, fmt: str = Query("csv", alias="format", pattern="^(csv|json)$"),
    object_type: str | None = Query(None, max_length=32), object_id: str | None = Query(None, max_length=64),
    actor_name: str | None = Query(None, alias="actor", max_length=64), action: str | None = Query(None, max_length=64),
    dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor),
) -> Response:
    f = _audit_filters(object_type, object_id, actor_name, action)
    return audit_export_response(dangan, actor, f, fmt)


# ---------------------------------------------------------------- 固化检测


@router.get("/fixity", response_class=HTMLResponse)
def fixity_page(request: Request, run: int | None = Query(None, ge=1), dangan: Dangan = Depends(get_dangan),
                actor: Actor = Depends(current_actor)) -> Response:
    runs = browse.fixity_runs(dangan, actor, limit=15)
    job = request.app.state.jobs.get()
    shown = next((r for r in runs if r["id"] == run), None) if run else next((r for r in runs if r["finished"]), None)
    failures = browse.fixity_failures(dangan, actor, shown["id"]) if shown and shown["failed"] else []
    return render(request, "fixity.html", {"runs": runs, "job": job.as_dict() if job else None, "shown": shown,
                                           "failures": failures, "crumbs": [("首页", "/"), ("固化检测", None)]},
                  active="fixity")


@router.post("/fixity/start")
def fixity_start(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "fixity.run")
    request.app.state.jobs.start_fixity(dangan, actor)
    return _see_other("/fixity")


@router.get("/fixity/status.json")
def fixity_status(request: Request, actor: Actor = Depends(current_actor)) -> JSONResponse:
    require_any(request, actor, "fixity.run")
    job = request.app.state.jobs.get()
    return JSONResponse(job.as_dict() if job else {"state": "idle"})


# ---------------------------------------------------------------- API documentation (offline, no CDN)


def _type(s: dict[str, Any], schemas: dict[str, Any]) -> str:
    if "$ref" in s:
        return s["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in s:
        return " | ".join(_type(x, schemas) for x in s["anyOf"])
    t = s.get("type", "")
    if t == "array":
        return f"array[{_type(s.get('items', {}), schemas)}]"
    if s.get("format") == "binary":
        return "file"
    return str(t or "any")


@router.get("/api/v1/docs", response_class=HTMLResponse)
def api_docs(request: Request, actor: Actor = Depends(current_actor)) -> Response:
    spec = request.app.state.api.openapi()
    schemas = spec.get("components", {}).get("schemas", {})
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            params = [{"name": p["name"], "in": {"query": "查询", "path": "路径", "header": "请求头"}.get(p["in"], p["in"]),
                       "required": p.get("required", False), "type": _type(p.get("schema", {}), schemas),
                       "description": p.get("description", "")} for p in op.get("parameters", [])]
            body = []
            content_type = ""
            for ct, c in (op.get("requestBody") or {}).get("content", {}).items():
                content_type = ct
                ref = c.get("schema", {})
                sch = schemas.get(ref.get("$ref", "").rsplit("/", 1)[-1], ref)
                req = set(sch.get("required", []))
                body = [{"name": n, "type": _type(p, schemas), "required": n in req, "description": p.get("description", "")}
                        for n, p in sch.get("properties", {}).items()]
            ok = next((k for k in op.get("responses", {}) if k.startswith("2")), "200")
            groups.setdefault((op.get("tags") or ["其他"])[0], []).append({
                "method": method.upper(), "path": "/api/v1" + path, "summary": op.get("summary", ""),
                "params": params, "body": body, "content_type": content_type, "ok": ok})
    return render(request, "api_docs.html", {"groups": groups, "spec": spec,
                                             "crumbs": [("首页", "/"), ("接口文档", None)]}, active="api")
