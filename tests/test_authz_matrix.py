"""The authorisation matrix: every route of the web app and the API, as every kind of principal.

The test enumerates `app.routes` itself (pages, the mounted API, static files). Each route needs a rule in
EXPECT below; a route without one fails the test, so a new page or endpoint cannot slip in unchecked.
Routes that name a record or a file are called with a visible record (公开, 办公室, 已归档) and a hidden one
(秘密, same department) and a file of each.

"allowed" means the request got past authentication and authorisation: any answer but 401, 403, 404 or a
redirect to the login page (a 409 or 422 from the business rules is fine: the caller was let in). "denied"
is one of those. A 5xx answer always fails.

A second test checks that list totals, facets and dashboard counts of two users with the same role and
scope are equal, and do not move when records they may not see are added.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from dangan.config import load_settings
from dangan.demo.build import build_demo
from dangan.domain.access_rules import PRESET_RULES
from dangan.services import browse, prefiling, schedule
from dangan.services import identity as idn
from dangan.services.context import Actor, Dangan
from dangan.services.files import NewFile
from dangan.services.records import RecordInput, create_record
from dangan.services.setup import init
from dangan.web.app import create_app
from test_api import add_user, session_client
from test_capture_api import catalogue_bytes, files_zip

USERS = ("sysadmin", "secadmin", "auditor", "head", "dangan", "bgs", "cwk", "leader", "reader")
PRINCIPALS = ("anonymous", *USERS, "token")
EVERYONE = frozenset(PRINCIPALS)
LOGIN = frozenset(USERS)                      # a page: any logged-in user (API tokens do not open pages)
LOGIN_API = frozenset(USERS) | {"token"}      # an endpoint: any logged-in user or token


def only(*names: str) -> frozenset[str]:
    return frozenset(names)


THREE_ADMINS = only("sysadmin", "secadmin", "auditor")
FIXITY = only("sysadmin", "head", "dangan")
FONDS_MANAGE = only("sysadmin", "head")
ARCHIVISTS = only("head", "dangan")
# the visible record V: 公开, 办公室 (BGS), filed, 文书 (WS). The hidden one H: 秘密, otherwise the same.
READ = {"V": only("head", "dangan", "bgs", "leader", "reader", "token"), "H": only("head", "dangan", "leader")}
READ_PAGE = {"V": only("head", "dangan", "bgs", "leader", "reader"), "H": only("head", "dangan", "leader")}
# the original (and the copy with the 归档章): those who manage the record (after filing, the archivists), others
# only with a grant to copy or certify, which nobody in this world holds (services/viewer.py)
DOWNLOAD = {"V": ARCHIVISTS, "H": ARCHIVISTS}
# 在线阅览: the archivists, others with an approved grant. The API routes are called before POST /api/v1/requests
# (sorted by path), when nobody holds one; the viewer page after it, when each requester holds the 查阅 of V that
# the preset rules grant at once (公开). The world's files are not real PDFs: once let in, 409 FILE_UNREADABLE.
VIEW_API = {"V": ARCHIVISTS, "H": ARCHIVISTS}
VIEW_PAGE = {"V": only("head", "dangan", "bgs", "leader", "reader"), "H": ARCHIVISTS}
# after filing only the archivists act on a record (clerks: their department, before filing)
CHANGE = {"V": ARCHIVISTS, "H": ARCHIVISTS}
IMPORTERS = only("head", "dangan", "bgs", "cwk")            # record.import (clerks: their department)
PLAN_READERS = only("head", "dangan", "bgs", "cwk")         # plan.manage, or record.create for their department's
CREATORS_API = only("head", "dangan", "bgs", "cwk", "token")  # record.create
# A capture job is seen only by the person who started it (services/jobs.get_job): the world's job is a
# finished dry run started by the 专职档案员 `dangan`; to everyone else it answers 404 like a missing job.
JOB_OWNER = only("dangan")
CHECKERS = only("head", "dangan")                           # check.run (and check.manage for schemes)
REQUESTERS = only("head", "dangan", "bgs", "leader", "reader")  # request.create, of a record they can see

EXPECT: dict[str, Any] = {
    # ------------------------------------------------------------ pages
    "GET /login": EVERYONE,
    "POST /login": EVERYONE,
    "POST /logout": EVERYONE,
    "GET /password": LOGIN,
    "POST /password": LOGIN,
    "GET /": LOGIN,
    "GET /records": only("head", "dangan", "bgs", "cwk", "leader", "reader"),
    "GET /records/new": only("head", "dangan", "bgs", "cwk"),
    "POST /records/new": only("head", "dangan", "bgs"),  # into 办公室: not the 财务科 clerk
    "GET /records/{record_id}": READ_PAGE,
    "POST /records/{record_id}/submit": CHANGE,
    "POST /records/{record_id}/file": CHANGE,
    "POST /records/{record_id}/return": CHANGE,
    "POST /records/{record_id}/files": CHANGE,
    "GET /fonds": only("sysadmin", "head", "dangan", "bgs", "cwk", "leader", "reader"),
    "GET /admin/users": only("sysadmin"),
    "POST /admin/users": only("sysadmin"),
    "POST /admin/users/{username}/password": only("sysadmin"),
    "POST /admin/users/{username}/active": only("sysadmin"),
    "POST /admin/users/{username}/departments": only("sysadmin"),
    "GET /admin/roles": only("secadmin"),
    "POST /admin/roles/{username}": only("secadmin"),
    "POST /admin/roles/{username}/clearance": only("secadmin"),
    "GET /admin/matrix": THREE_ADMINS,
    "GET /admin/security": THREE_ADMINS,                  # read-only for the 系统管理员 and the 安全审计员
    "POST /admin/security/ceiling": only("secadmin"),
    "POST /admin/security/password-policy": only("secadmin"),
    "GET /admin/departments": FONDS_MANAGE,
    "POST /admin/departments": FONDS_MANAGE,
    "GET /admin/tokens": only("sysadmin"),
    "POST /admin/tokens": only("sysadmin"),
    "POST /admin/tokens/{token_id}/revoke": only("sysadmin"),
    "GET /audit": only("auditor"),
    "POST /audit/verify": only("auditor"),
    "GET /audit/export": only("auditor"),
    # 收集与整理 pages (ui/capture.py)
    "GET /import": IMPORTERS,
    "POST /import": IMPORTERS,              # a dry run into 办公室: 财务科's clerk is let in, then 422 (not her department)
    "GET /import/template.xlsx": IMPORTERS,
    "GET /import/jobs/{job_id}": JOB_OWNER,
    "POST /import/jobs/{job_id}/resume": JOB_OWNER,  # let in, then 422: a finished dry run is not resumable
    "GET /review": ARCHIVISTS,
    "POST /review/accept": ARCHIVISTS,
    "POST /review/return": ARCHIVISTS,
    "POST /review/order": ARCHIVISTS,
    "POST /review/auto": ARCHIVISTS,
    "GET /plans": PLAN_READERS,
    "POST /plans": ARCHIVISTS,
    "POST /plans/{plan_id}/delete": ARCHIVISTS,
    "GET /schedule": PLAN_READERS,           # schedule.manage edits; those who register records read it
    "POST /schedule": ARCHIVISTS,
    "GET /catalogue": only("head", "dangan", "bgs", "cwk", "leader", "reader"),
    "GET /fixity": FIXITY,
    "POST /fixity/start": FIXITY,
    "GET /fixity/status.json": FIXITY,
    # 四性检测与长期保存 pages (ui/checks.py)
    "GET /checks": CHECKERS,
    "POST /checks/start": CHECKERS,                 # one record: checked at once, then 303 to its report
    "POST /checks/package": CHECKERS,               # no package chosen: let in, then 422
    "GET /checks/jobs/{job_id}": JOB_OWNER,         # the world's check job was started by `dangan`
    "GET /checks/{run_id}": CHECKERS,
    "GET /checks/{run_id}/compare": CHECKERS,
    "GET /checks/{run_id}/report.json": CHECKERS,
    "GET /checks/{run_id}/report.pdf": CHECKERS,
    "GET /check-schemes": CHECKERS,
    "GET /check-schemes/{scheme_id}": CHECKERS,
    "POST /check-schemes/{scheme_id}": CHECKERS,
    "GET /packages/import": IMPORTERS,
    "POST /packages/import": IMPORTERS,             # no package chosen: let in, then 422
    "GET /preservation": FIXITY,
    "POST /preservation/audit": FIXITY,
    "POST /records/{record_id}/check": {"V": CHECKERS, "H": CHECKERS},
    "POST /records/{record_id}/export": {"V": ARCHIVISTS, "H": ARCHIVISTS},
    "GET /search": only("head", "dangan", "bgs", "cwk", "leader", "reader"),  # record.read; trimmed like the list
    # 利用 pages (ui/access.py), on the requests of `_access_requests` like the 利用 API below
    "GET /requests/new": REQUESTERS,                 # the form for V (cwk holds request.create, but not for 办公室)
    "POST /requests/new": REQUESTERS,                # no purpose: let in, then 422 (nothing made)
    "GET /requests": only("head", "dangan", "bgs", "cwk", "leader", "reader"),  # request.create: one's own
    "POST /requests/{request_id}/withdraw": only("reader"),  # only the requester (409 once it is withdrawn)
    "POST /requests/{request_id}/effect": ARCHIVISTS,        # the requester or request.register
    "GET /approvals": only("head", "dangan", "leader"),      # request.approve
    "POST /approvals/{request_id}/approve": only("head"),    # the step's role; the others: NOT_YOUR_STEP
    "POST /approvals/{request_id}/refuse": only("head"),     # no reason: let in, then 422 (still pending)
    "GET /lending": ARCHIVISTS,                              # loan.manage
    "POST /lending/{request_id}/lend": ARCHIVISTS,           # a certificate is no loan: 409 once let in
    "POST /lending/{request_id}/return": ARCHIVISTS,         # nothing lent: 409 once let in
    "GET /register": ARCHIVISTS,                             # request.register
    "GET /api/v1/docs": LOGIN_API,  # the API documentation page also opens with an API token
    "GET /static/{path}": EVERYONE,
    # ------------------------------------------------------------ API
    "GET /api/v1/openapi.json": EVERYONE,
    "GET /api/v1/me": LOGIN_API,
    "POST /api/v1/me/password": LOGIN,  # not with a token
    "GET /api/v1/users": only("sysadmin", "secadmin"),
    "GET /api/v1/users/{username}": only("sysadmin", "secadmin"),
    "POST /api/v1/users": only("sysadmin"),
    "POST /api/v1/users/{username}/password": only("sysadmin"),
    "PUT /api/v1/users/{username}/active": only("sysadmin"),
    "PUT /api/v1/users/{username}/departments": only("sysadmin"),
    "PUT /api/v1/users/{username}/roles": only("secadmin"),
    "PUT /api/v1/users/{username}/clearance": only("secadmin"),
    "GET /api/v1/permission-matrix": THREE_ADMINS,
    "GET /api/v1/security": THREE_ADMINS,
    "PUT /api/v1/security/ceiling": only("secadmin"),
    "PUT /api/v1/security/password-policy": only("secadmin"),
    "GET /api/v1/tokens": only("sysadmin"),
    "POST /api/v1/tokens": only("sysadmin"),
    "POST /api/v1/tokens/{token_id}/revoke": only("sysadmin"),
    "GET /api/v1/fonds": LOGIN_API,
    "POST /api/v1/fonds": FONDS_MANAGE,
    "GET /api/v1/fonds/{fonds_code}": LOGIN_API,
    "GET /api/v1/fonds/{fonds_code}/departments": LOGIN_API,
    "POST /api/v1/fonds/{fonds_code}/departments": FONDS_MANAGE,
    "GET /api/v1/fonds/{fonds_code}/categories": LOGIN_API,
    "GET /api/v1/fonds/{fonds_code}/categories/{category_code}": LOGIN_API,
    "POST /api/v1/fonds/{fonds_code}/categories": FONDS_MANAGE,
    "GET /api/v1/category-presets": LOGIN_API,
    "GET /api/v1/records": LOGIN_API,          # everyone gets a list: trimmed to what they may see
    "GET /api/v1/records/facets": LOGIN_API,
    "POST /api/v1/records": only("head", "dangan", "bgs", "token"),
    "POST /api/v1/records/multipart": only("head", "dangan", "bgs", "token"),
    "GET /api/v1/records/{record_id}": READ,
    "PATCH /api/v1/records/{record_id}": CHANGE,
    "POST /api/v1/records/{record_id}/submit": CHANGE,
    "POST /api/v1/records/{record_id}/return": CHANGE,
    "POST /api/v1/records/{record_id}/file": CHANGE,
    "POST /api/v1/records/{record_id}/files": CHANGE,
    "GET /api/v1/records/{record_id}/files": READ,
    "GET /api/v1/files/{file_id}": READ,
    "GET /api/v1/files/{file_id}/content": DOWNLOAD,
    "GET /api/v1/files/{file_id}/pages": VIEW_API,
    "GET /api/v1/files/{file_id}/pages/{page}": VIEW_API,
    "GET /files/{file_id}/view": VIEW_PAGE,
    "GET /api/v1/audit/events": only("auditor"),
    "GET /api/v1/audit/export": only("auditor"),
    "POST /api/v1/audit/verify": only("auditor"),
    "POST /api/v1/fixity/check": FIXITY,
    "POST /api/v1/fixity/jobs": FIXITY,
    "GET /api/v1/fixity/jobs/{job_id}": FIXITY,
    "GET /api/v1/fixity/runs": FIXITY,
    "GET /api/v1/fixity/runs/{run_id}/failures": FIXITY,
    # 收集与整理 API (api/capture.py)
    "POST /api/v1/submissions/package": CREATORS_API,  # cwk: let in, the package is refused whole (422: not its department)
    "POST /api/v1/submissions/eep": CREATORS_API,      # let in, then 422 for the malformed package
    "GET /api/v1/jobs": LOGIN_API,                     # one's own jobs (an empty list for most)
    "GET /api/v1/jobs/{job_id}": JOB_OWNER,            # someone else's job does not exist for them
    "GET /api/v1/jobs/{job_id}/report": JOB_OWNER,
    "POST /api/v1/jobs/{job_id}/resume": JOB_OWNER,
    "POST /api/v1/imports": IMPORTERS,                 # the token holds no record.import
    "GET /api/v1/plans": LOGIN_API,                    # trimmed: archivists all, clerks their department's, others none
    "POST /api/v1/plans": ARCHIVISTS,
    "PATCH /api/v1/plans/{plan_id}": ARCHIVISTS,
    "DELETE /api/v1/plans/{plan_id}": ARCHIVISTS,
    "GET /api/v1/reminders": LOGIN_API,
    "GET /api/v1/review-queue": ARCHIVISTS,
    "POST /api/v1/accept": ARCHIVISTS,                 # the filed record is refused in the answer (200)
    "PUT /api/v1/arrangement": ARCHIVISTS,             # 409 for a filed record once let in
    "POST /api/v1/arrangement/auto": ARCHIVISTS,
    "GET /api/v1/fonds/{fonds_code}/categories/{category_code}/schedule": LOGIN_API,  # as the category itself
    "PUT /api/v1/fonds/{fonds_code}/categories/{category_code}/schedule": ARCHIVISTS,
    "POST /api/v1/retention/suggest": CREATORS_API,
    "GET /api/v1/catalogue": LOGIN_API,                # trimmed like the record list: empty for the 三员
    "GET /api/v1/records/{record_id}/stamp": READ,
    "GET /api/v1/files/{file_id}/stamped": DOWNLOAD,
    "GET /api/v1/records/{record_id}/volume/{kind}": READ,  # an item: 422 NOT_A_VOLUME once let in
    # 四性检测与长期保存 API (api/checks.py)
    "GET /api/v1/check-items": CHECKERS,
    "GET /api/v1/check-schemes": CHECKERS,
    "POST /api/v1/check-schemes": CHECKERS,
    "GET /api/v1/check-schemes/{scheme_id}": CHECKERS,
    "PUT /api/v1/check-schemes/{scheme_id}": CHECKERS,
    "GET /api/v1/checks": CHECKERS,
    "POST /api/v1/checks": CHECKERS,
    "POST /api/v1/checks/package": CHECKERS,        # not a package: let in, then 422
    "GET /api/v1/checks/{run_id}": CHECKERS,
    "GET /api/v1/checks/{run_id}/compare": CHECKERS,  # 409 NO_PREVIOUS_RUN or the comparison, once let in
    "GET /api/v1/checks/{run_id}/report.pdf": CHECKERS,
    "GET /api/v1/fixity/audit": FIXITY,
    "POST /api/v1/fixity/audit": FIXITY,
    "POST /api/v1/packages/export": ARCHIVISTS,     # package.export, of a record the caller may download
    "POST /api/v1/packages/import": IMPORTERS,      # not a package: let in, then 422 (nothing stored)
    # 检索 API (api/search.py)
    "GET /api/v1/search": only("head", "dangan", "bgs", "cwk", "leader", "reader", "token"),
    "GET /api/v1/search/status": only("sysadmin", "head", "dangan", "bgs", "cwk", "leader", "reader", "token"),
    "POST /api/v1/search/reindex": only("sysadmin", "head", "dangan"),
    "GET /search/index": only("sysadmin", "head", "dangan"),             # search.reindex: counts, own-trimmed list
    "GET /search/index/jobs/{job_id}": only(),  # the world's job is an import: not an index job for anyone
    "POST /search/index/reindex": only("sysadmin", "head", "dangan"),
    # 利用 API (api/requests.py). The requests the routes decide are made by `_access_requests`: `target` (a
    # reader of no department) asks for a certificate of V, which the 档案部门负责人 alone approves.
    "GET /api/v1/requests": LOGIN_API,                        # one's own requests (an empty list for most)
    "POST /api/v1/requests": REQUESTERS,                      # 查阅 of V (公开): granted at once
    "GET /api/v1/requests/grant": REQUESTERS,                 # the grant each of them was just given
    "GET /api/v1/requests/queue": only("head", "dangan", "leader"),  # request.approve
    "POST /api/v1/requests/approve": only("head"),            # the step's role; the others hold request.approve but not it
    "POST /api/v1/requests/refuse": only("head"),             # no reason: let in, then 422 (the request stays pending)
    "POST /api/v1/requests/withdraw": only("reader"),         # only the requester
    "POST /api/v1/requests/lend": ARCHIVISTS,                 # loan.manage; a certificate is no loan: 409 once let in
    "POST /api/v1/requests/return": ARCHIVISTS,               # nothing lent: 409 once let in
    "GET /api/v1/requests/overdue": ARCHIVISTS,
    "POST /api/v1/requests/effect": ARCHIVISTS,               # the requester or request.register
    "GET /api/v1/requests/register": ARCHIVISTS,              # request.register
    "GET /api/v1/requests/register.xlsx": ARCHIVISTS,
    "GET /api/v1/request-rules": LOGIN_API,
    "PUT /api/v1/request-rules": only("head"),                # request.rules; the presets, i.e. the rules in force
    # 数字化 (ui/digitise.py, api/digitise.py): the world's batch (`_scan_batch`) has a checked and recognised page
    # of V and an unreadable page matching no record, so every call let in changes nothing the next one sees:
    # QC and OCR have nothing to do (409), acceptance is refused (422), uploads without images are refused (422)
    "GET /scan": ARCHIVISTS,
    "POST /scan": ARCHIVISTS,
    "GET /scan/jobs/{job_id}": JOB_OWNER,                     # the world's import job was started by `dangan`
    "GET /scan/{batch_id}": ARCHIVISTS,
    "POST /scan/{batch_id}/qc": ARCHIVISTS,
    "POST /scan/{batch_id}/ocr": ARCHIVISTS,
    "POST /scan/{batch_id}/sample": ARCHIVISTS,
    "POST /scan/{batch_id}/inspect": ARCHIVISTS,
    "POST /scan/{batch_id}/blank": ARCHIVISTS,
    "POST /scan/{batch_id}/rescan": ARCHIVISTS,
    "POST /scan/{batch_id}/accept": ARCHIVISTS,
    "GET /scan/pages/{page_id}": ARCHIVISTS,
    "POST /scan/pages/{page_id}/confirm": ARCHIVISTS,
    "GET /api/v1/scan-batches": ARCHIVISTS,
    "POST /api/v1/scan-batches": ARCHIVISTS,
    "GET /api/v1/scan-batches/{batch_id}": ARCHIVISTS,
    "GET /api/v1/scan-batches/{batch_id}/status": ARCHIVISTS,
    "GET /api/v1/scan-batches/{batch_id}/report.xlsx": ARCHIVISTS,
    "POST /api/v1/scan-batches/{batch_id}/qc": ARCHIVISTS,
    "POST /api/v1/scan-batches/{batch_id}/ocr": ARCHIVISTS,
    "POST /api/v1/scan-batches/{batch_id}/sample": ARCHIVISTS,
    "POST /api/v1/scan-batches/{batch_id}/inspect": ARCHIVISTS,
    "POST /api/v1/scan-batches/{batch_id}/blank": ARCHIVISTS,
    "POST /api/v1/scan-batches/{batch_id}/rescan": ARCHIVISTS,
    "POST /api/v1/scan-batches/{batch_id}/accept": ARCHIVISTS,
    "GET /api/v1/scan-pages/{page_id}": ARCHIVISTS,
    "GET /api/v1/scan-pages/{page_id}/image": ARCHIVISTS,
    "GET /api/v1/scan-pages/{page_id}/thumb": ARCHIVISTS,
    "GET /api/v1/scan-pages/{page_id}/master": ARCHIVISTS,    # file.download too
    "POST /api/v1/scan-pages/{page_id}/confirm": ARCHIVISTS,
}

BASE = {"year": 2024, "retention_period": "D30", "responsible": "示范市人民政府办公室", "date": "2024-05-06"}
PDF = b"%PDF-1.4\n% authz matrix\n%%EOF\n"


def enumerate_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path template) of every route, through included routers and mounted apps."""
    for ctx in iter_route_contexts(routes):
        r = ctx.original_route
        if isinstance(r, Mount):
            sub = getattr(r.app, "routes", None)
            if sub is not None:
                yield from enumerate_routes(list(sub), prefix + r.path)
            else:  # static files
                yield "GET", prefix + r.path + "/{path}"
            continue
        for m in sorted(ctx.methods or {"GET"}):
            if m != "HEAD":
                yield m, prefix + str(ctx.path)


# ---------------------------------------------------------------- the archive and the principals


def _record(app: Dangan, title: str, level: str) -> dict[str, Any]:
    meta = {**BASE, "title": title, "security_level": level}
    if level in ("秘密", "机密"):
        meta["secrecy_period"] = "10年"
    return create_record(app, Actor.system(), RecordInput("Z109", "WS", meta, department="BGS", state="filed"),
                         [NewFile(f"{title}.pdf", io.BytesIO(PDF + title.encode()))])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings = load_settings(tmp_path_factory.mktemp("authz") / "data")
    init(settings, admin_accounts=False)
    app = Dangan(settings)
    build_demo(app, Actor.system(), size=60)
    vis, hid = _record(app, "公开的通知", "公开"), _record(app, "秘密的通知", "秘密")
    add_user(app, "oa", ["clerk"], "内部", ["BGS"], system=True)
    add_user(app, "target", ["reader"])
    token = idn.create_token(app, Actor.system(), "OA 推送", "oa",
                             actions=["record.read", "record.create", "file.add", "file.download"],
                             categories=["WS"], departments=["BGS"])["token"]
    spare = idn.create_token(app, Actor.system(), "待吊销", "oa", actions=["record.read"])["id"]
    web = create_app(app)
    web.state.jobs.start_fixity(app, Actor.system(), vis["id"])  # a job whose status the routes may ask for
    web.state.jobs.join()
    clients: dict[str, TestClient] = {u: session_client(web, app, u) for u in USERS}
    r = clients["dangan"].post("/api/v1/imports", files=_import_files(), data={**IMPORT_FORM, "dry_run": "true"})
    assert r.status_code == 202, r.text
    web.state.jobs.join()
    assert clients["dangan"].get(f"/api/v1/jobs/{r.json()['id']}").json()["status"] == "done"
    r2 = clients["dangan"].post("/api/v1/checks", json={"stage": "长期保存", "record_ids": [vis["id"]], "background": True})
    assert r2.status_code == 201, r2.text
    web.state.jobs.capture.join()
    check_job = r2.json()["job"]["id"]
    check_run = clients["dangan"].get(f"/api/v1/jobs/{check_job}").json()["result"]["check_run_id"]
    scheme_id = clients["dangan"].get("/api/v1/check-schemes").json()[0]["id"]
    plan = prefiling.create_plan(app, Actor.system(), "Z109", "BGS", "WS", 2024, "2099-12-31", 10)
    scan = _scan_batch(app, vis, tmp_path_factory.mktemp("scans"))
    rules = schedule.get_schedule(app, Actor.system(), "Z109", "WS")["rules"]
    anon = TestClient(web, base_url="http://testserver")
    anon.get("/login")
    anon.csrf = anon.cookies["dangan_csrf"]  # type: ignore[attr-defined]
    clients["anonymous"] = anon
    tok = TestClient(web, base_url="http://testserver", headers={"Authorization": f"Bearer {token}"})
    tok.get("/login")  # like any visitor, it may use the login form (the token itself does not open pages)
    tok.csrf = tok.cookies["dangan_csrf"]  # type: ignore[attr-defined]
    clients["token"] = tok
    yield {"app": app, "web": web, "clients": clients, "token": token,
           "ids": {"V": (vis["id"], vis["files"][0]["id"]), "H": (hid["id"], hid["files"][0]["id"])},
           "spare_token": spare, "run_id": browse.fixity_runs(app, Actor.system())[0]["id"],
           "capture_job": r.json()["id"], "check_job": check_job, "check_run": check_run, "scheme_id": scheme_id,
           "plan_id": plan["id"], "rules": rules, "fresh_plans": iter(range(2100, 2999)), "scan": scan}
    web.state.jobs.join()
    app.close()


def _fill(key: str, w: dict[str, Any], variant: str | None) -> str:
    method, path = key.split(" ", 1)
    rid, fid = w["ids"][variant or "V"]
    job = w["web"].state.jobs.current.id if path.startswith("/api/v1/fixity/") else w["capture_job"]
    if path.startswith("/checks/jobs/"):
        job = w["check_job"]
    if path.startswith("/scan/jobs/"):
        job = w["scan"]["job"]
    path = path.replace("{batch_id}", str(w["scan"]["batch"])).replace("{page_id}", str(w["scan"]["page"]))
    run = w["check_run"] if "/checks/" in path else w["run_id"]
    plan = w["plan_id"]
    if method in ("DELETE", "POST") and "{plan_id}" in path:  # each deletion takes a plan of its own
        plan = prefiling.create_plan(w["app"], Actor.system(), "Z109", "BGS", "WS", next(w["fresh_plans"]),
                                     "2999-12-31")["id"]
    if "{request_id}" in path:  # the 利用 pages act on the requests the 利用 API routes decide
        which = "refuse" if path.endswith("/refuse") else "withdraw" if path.endswith("/withdraw") else "decide"
        path = path.replace("{request_id}", str(_access_requests(w)[which]))
    return (path.replace("{record_id}", str(rid)).replace("{file_id}", str(fid)).replace("{username}", "target")
            .replace("{token_id}", str(w["spare_token"])).replace("{job_id}", job).replace("{plan_id}", str(plan))
            .replace("{run_id}", str(run)).replace("{scheme_id}", str(w["scheme_id"])).replace("{fonds_code}", "Z109").replace("{category_code}", "WS")
            .replace("{kind}", "cover").replace("{path}", "app.css").replace("{page}", "1"))


IMPORT_FORM = {"fonds": "Z109", "category": "WS", "department": "BGS"}


def _scan_batch(app: Dangan, vis: dict[str, Any], folder: Any) -> dict[str, Any]:
    """The 数字化批次 of the scan routes, taken in by the 专职档案员 `dangan`: a page of V, checked, its OCR text and
    PDF/A recorded (no OCR engine runs here), and an unreadable page whose name matches no record."""
    from PIL import Image, ImageDraw
    from sqlalchemy import select

    from dangan.db.models import ScanOutput, ScanPage, User, utcnow
    from dangan.services import digitise as dg
    from dangan.services import jobs

    with app.read_sessions() as s:
        dangan = idn.actor_for(s, s.scalar(select(User).where(User.username == "dangan")))
    img = Image.new("L", (620, 877), 255)
    ImageDraw.Draw(img).rectangle((80, 80, 540, 140), fill=0)
    img.save(folder / f"{vis['archival_code']}-0001.jpg", dpi=(300, 300))
    (folder / "Z109-WS·2024-D30-BGS-9999-0001.jpg").write_bytes(b"not a scan")
    sources, _ = dg.sources_from_dir(folder)
    batch = dg.import_batch(app, dangan, sources, fonds="Z109")["id"]
    dg.run_qc(app, dangan, batch)
    f = vis["files"][0]
    with app.sessions.begin() as s:
        page = s.scalar(select(ScanPage).where(ScanPage.batch_id == batch, ScanPage.record_id == vis["id"]))
        page.ocr_text = "公开的通知"
        page.ocr = {"lines": [[80, 80, 540, 140, 0.99, "公开的通知"]], "width": 620, "height": 877, "dpi": 300,
                    "engine": "authz", "seconds": 0}
        page.ocr_at = utcnow()
        s.add(ScanOutput(batch_id=batch, record_id=vis["id"], size=f["size"], sha256=f["sha256"], sm3=f["sm3"],
                         storage_key=f["storage_key"], pages=1, page_ids=[page.id], created_by="dangan"))
        page_id = page.id
    job = jobs.create_job(app, dangan, "scan_import", {"files": 2, "fonds": "Z109"})
    jobs.run(app, job, lambda prog: {"batch_id": batch})
    return {"batch": batch, "page": page_id, "job": job}


def _import_files() -> dict[str, Any]:
    return {"catalogue": ("目录.xlsx", catalogue_bytes(2), "application/octet-stream"),
            "files": ("files.zip", files_zip(2), "application/zip")}


def _package(who: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        manifest = {"fonds": "Z109", "category": "WS", "department": "BGS", "records": [
            {"sender_ref": f"authz-{who}", "metadata": {**BASE, "title": f"{who} 的数据包"},
             "files": [{"path": "正文.pdf", "role": "main"}]}]}
        zf.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False))
        zf.writestr("正文.pdf", PDF + who.encode())
    return buf.getvalue()


def _access_requests(w: dict[str, Any]) -> dict[str, int]:
    """Pending requests for the 利用 routes to decide, made once: two of `target`'s, one of `reader`'s."""
    if "access_requests" not in w:
        from sqlalchemy import select

        from dangan.db.models import User
        from dangan.services import requests as rq

        app, vis = w["app"], w["ids"]["V"][0]
        with app.read_sessions() as s:
            people = {u: idn.actor_for(s, s.scalar(select(User).where(User.username == u))) for u in ("target", "reader")}
        w["access_requests"] = {k: rq.create_request(app, people[u], vis, "certify", "工作查考")["id"]
                                for k, u in (("decide", "target"), ("refuse", "target"), ("withdraw", "reader"))}
    return w["access_requests"]


def _request(key: str, who: str, n: int, w: dict[str, Any]) -> dict[str, Any]:
    """A well-formed request for the route, unique per principal where it creates something."""
    rid = w["ids"]["V"][0]
    ws = {"fonds": "Z109", "category": "WS", "department": "BGS", "state": "pre_filing",
          "metadata": {**BASE, "title": f"{who} 推送的通知"}}
    bodies: dict[str, dict[str, Any]] = {
        "POST /login": {"data": {"username": "", "password": ""}},
        "POST /password": {"data": {"old_password": "x", "new_password": "Abcdef#12345", "confirm": "different"}},
        "POST /admin/users": {"data": {"username": f"new{n}", "display_name": f"新用户{n}", "departments": "Z109/BGS"}},
        "POST /admin/users/{username}/active": {"data": {"active": "1"}},
        "POST /admin/users/{username}/departments": {"data": {"departments": "Z109/BGS"}},
        "POST /admin/roles/{username}": {"data": {"roles": "reader"}},
        "POST /admin/roles/{username}/clearance": {"data": {"clearance": "公开"}},
        # the values in force: let in, they change nothing the other routes depend on
        "POST /admin/security/ceiling": {"data": {"level": "机密"}},
        "POST /admin/security/password-policy": {"data": {"lockout_minutes": "15", "idle_timeout_minutes": "30"}},
        "PUT /api/v1/security/ceiling": {"json": {"level": "机密"}},
        "PUT /api/v1/security/password-policy": {"json": {"lockout_minutes": 15}},
        "POST /admin/departments": {"data": {"fonds": "Z109", "code": f"PD{n}", "name": f"页面机构{n}"}},
        "POST /admin/tokens": {"data": {"name": f"page-{who}", "username": "target", "actions": "record.read",
                                        "expires_days": "30"}},
        "POST /records/new": {"data": {"fonds": "Z109", "category": "WS", "level": "item", "department": "BGS",
                                       "save_as": "pre_filing", "m_title": f"{who} 新建的通知", "m_year": "2024",
                                       "m_date": "2024-03-05", "m_retention_period": "D30", "m_responsible": "办公室",
                                       "m_security_level": "公开"}},
        "POST /records/{record_id}/submit": {"data": {"reason": "核对"}},
        "POST /records/{record_id}/file": {"data": {"reason": "核对"}},
        "POST /records/{record_id}/return": {"data": {"reason": "核对"}},
        "POST /records/{record_id}/files": {"data": {"role": "main"}, "files": {"files": ("补充.pdf", PDF + b"x", "application/pdf")}},
        "POST /api/v1/me/password": {"json": {"old_password": "not-the-password", "new_password": "Another#2026x"}},
        "POST /api/v1/users": {"json": {"username": f"api{n}", "display_name": f"接口用户{n}", "password": "Archive#2026x!"}},
        "POST /api/v1/users/{username}/password": {"json": {"password": "Reset#2026abcd"}},
        "PUT /api/v1/users/{username}/active": {"json": {"active": True}},
        "PUT /api/v1/users/{username}/departments": {"json": {"departments": ["BGS"]}},
        "PUT /api/v1/users/{username}/roles": {"json": {"roles": ["reader"]}},
        "PUT /api/v1/users/{username}/clearance": {"json": {"clearance": "公开"}},
        "POST /api/v1/tokens": {"json": {"name": f"api-{who}", "username": "target", "actions": ["record.read"],
                                         "expires_days": 30}},
        "POST /api/v1/fonds": {"json": {"code": f"T{n:03d}", "name": f"测试全宗{n}"}},
        "POST /api/v1/fonds/{fonds_code}/departments": {"json": {"code": f"AD{n}", "name": f"接口机构{n}"}},
        "POST /api/v1/fonds/{fonds_code}/categories": {"json": {"preset": "WS"}},  # exists: 409 once let in
        "POST /api/v1/records": {"json": ws},
        "POST /api/v1/records/multipart": {"data": {**ws, "metadata": json.dumps(ws["metadata"], ensure_ascii=False)},
                                           "files": {"files": (f"{who}.pdf", PDF + who.encode(), "application/pdf")}},
        "PATCH /api/v1/records/{record_id}": {"json": {"metadata": {"pages": 2}, "reason": "核对", "row_version": 0}},
        "POST /api/v1/records/{record_id}/submit": {"json": {"reason": "核对"}},
        "POST /api/v1/records/{record_id}/return": {"json": {"reason": "核对"}},
        "POST /api/v1/records/{record_id}/file": {"json": {"reason": "核对"}},
        "POST /api/v1/records/{record_id}/files": {"files": {"files": ("补充.pdf", PDF + b"y", "application/pdf")}},
        "POST /api/v1/fixity/check": {"json": {"record_id": rid}},
        "POST /api/v1/fixity/jobs": {"json": {"record_id": rid}},
        "GET /api/v1/audit/export": {"params": {"format": "json"}},
        "GET /audit/export": {"params": {"format": "csv"}},
        "GET /api/v1/audit/events": {"params": {"limit": 5}},
        # 收集与整理: dry runs and refusals, so that the archive the later tests count does not move
        "POST /import": {"data": {"target": "Z109/WS", "department": "BGS", "state": "pre_filing", "dry_run": "1"},
                         "files": _import_files()},
        "GET /import/template.xlsx": {"params": {"fonds": "Z109", "category": "WS"}},
        "POST /review/accept": {"data": {"ids": str(rid)}},
        "POST /review/return": {"data": {"ids": str(rid), "reason": "核对"}},
        "POST /review/order": {"data": {"move": f"{rid}:up", "g1": str(rid)}},
        "POST /review/auto": {"data": {"group": "1", "g1": str(rid)}},
        "POST /plans": {"data": {"fonds": "Z109", "department": "BGS", "category": "WS", "year": str(2000 + n),
                                 "deadline": "2999-06-30", "expected_count": "5"}},
        "POST /schedule": {"data": {"fonds": "Z109", "category": "WS", **{
            f"{k}_{i}": ("、".join(v) if isinstance(v, list) else v)
            for i, rule in enumerate(w["rules"]) for k, v in rule.items()}}},
        "GET /catalogue": {"params": {"fonds": "Z109", "category": "WS", "year": "2024"}},
        "POST /api/v1/submissions/package": {"files": {"package": ("pkg.zip", _package(who), "application/zip")},
                                             "data": {"dry_run": "true"}},
        "POST /api/v1/submissions/eep": {"files": {"eep": ("eep.xml", b"<not-an-eep/>", "application/xml")},
                                         "data": {"category": "WS", "department": "BGS"}},
        "POST /api/v1/imports": {"files": _import_files(), "data": {**IMPORT_FORM, "dry_run": "true"}},
        "POST /api/v1/plans": {"json": {"fonds": "Z109", "department": "BGS", "category": "WS", "year": 2000 + n,
                                        "deadline": "2999-06-30"}},
        "PATCH /api/v1/plans/{plan_id}": {"json": {"note": f"{who} 核对"}},
        "PUT /api/v1/fonds/{fonds_code}/categories/{category_code}/schedule": {"json": {"rules": w["rules"]}},
        "POST /api/v1/retention/suggest": {"json": {"fonds": "Z109", "category": "WS",
                                                    "metadata": {"title": "关于张三同志任职的通知"}}},
        "GET /api/v1/catalogue": {"params": {"fonds": "Z109", "category": "WS", "year": 2024}},
        "POST /api/v1/accept": {"json": {"record_ids": [rid]}},
        "PUT /api/v1/arrangement": {"json": {"record_ids": [rid]}},
        "POST /api/v1/arrangement/auto": {"json": {"record_ids": [rid]}},
        "POST /checks/start": {"data": {"stage": "长期保存", "record_id": str(rid)}},
        "POST /check-schemes/{scheme_id}": {"data": {"name": ""}},
        "POST /api/v1/check-schemes": {"json": {"name": f"{who} 的方案", "stage": "归档", "items": {}}},
        "PUT /api/v1/check-schemes/{scheme_id}": {"json": {"items": {}}},
        "POST /api/v1/checks": {"json": {"stage": "长期保存", "record_ids": [rid]}},
        "POST /api/v1/checks/package": {"files": {"package": ("pkg.zip", b"not a zip", "application/zip")},
                                        "data": {"stage": "移交与接收"}},
        "POST /api/v1/packages/export": {"json": {"record_ids": [rid], "format": "eep"}},
        "POST /api/v1/packages/import": {"files": {"package": ("pkg.zip", b"not a zip", "application/zip")},
                                         "data": {"fonds": "Z109", "category": "WS"}},
        "POST /api/v1/fixity/audit": {"json": {"limit": 5}},
        "GET /search": {"params": {"q": "通知"}},
        "GET /requests/new": {"params": {"record": rid}},
        "POST /requests/new": {"data": {"record_id": str(rid), "kind": "view", "purpose": ""}},
        "POST /requests/{request_id}/effect": {"data": {"effect": "有效"}},
        "GET /api/v1/search": {"params": {"q": "通知"}},
        # 利用: the requests of `_access_requests`; refusals where a success would change what later calls see
        "POST /api/v1/requests": {"json": {"record_id": rid, "kind": "view", "purpose": "工作查考"}},
        "GET /api/v1/requests/grant": {"params": {"record_id": rid, "kind": "view"}},
        "POST /api/v1/requests/approve": {"json": {"request_id": _access_requests(w)["decide"], "reason": "同意"}},
        "POST /api/v1/requests/refuse": {"json": {"request_id": _access_requests(w)["refuse"], "reason": ""}},
        "POST /api/v1/requests/withdraw": {"json": {"request_id": _access_requests(w)["withdraw"]}},
        "POST /api/v1/requests/lend": {"json": {"request_id": _access_requests(w)["decide"]}},
        "POST /api/v1/requests/return": {"json": {"request_id": _access_requests(w)["decide"]}},
        "POST /api/v1/requests/effect": {"json": {"request_id": _access_requests(w)["decide"], "effect": "有效"}},
        "PUT /api/v1/request-rules": {"json": PRESET_RULES.as_dict()},
        # 数字化: refusals and repeatable marks (see EXPECT)
        "POST /scan": {"data": {"fonds": "Z109"}},
        "POST /scan/{batch_id}/inspect": {"data": {"page_id": str(w["scan"]["page"]), "verdict": "合格"}},
        "POST /scan/{batch_id}/blank": {"data": {"page_id": str(w["scan"]["page"]), "blank": "0"}},
        "POST /scan/{batch_id}/rescan": {"data": {"page_id": str(w["scan"]["page"])}},
        "POST /api/v1/scan-batches": {"files": {"files": ("说明.txt", b"no scan", "text/plain")}, "data": {"fonds": "Z109"}},
        "POST /api/v1/scan-batches/{batch_id}/qc": {"json": {}},
        "POST /api/v1/scan-batches/{batch_id}/ocr": {"json": {}},
        "POST /api/v1/scan-batches/{batch_id}/sample": {"json": {}},
        "POST /api/v1/scan-batches/{batch_id}/inspect": {"json": {"page_id": w["scan"]["page"], "verdict": "合格"}},
        "POST /api/v1/scan-batches/{batch_id}/blank": {"json": {"page_id": w["scan"]["page"], "blank": False}},
        "POST /api/v1/scan-batches/{batch_id}/rescan": {"data": {"page_id": str(w["scan"]["page"])},
                                                        "files": {"file": ("rescan.jpg", b"not an image", "image/jpeg")}},
        "POST /api/v1/scan-batches/{batch_id}/accept": {"json": {}},
        "POST /api/v1/scan-pages/{page_id}/confirm": {"json": {"values": {}}},
    }
    return dict(bodies.get(key, {}))


def outcome(r: Any) -> str:
    if r.status_code >= 500:
        return f"ERROR {r.status_code}"
    if r.status_code in (401, 403, 404):
        return "deny"
    if r.status_code in (301, 302, 303, 307):
        loc = r.headers.get("location", "")
        if loc == "/login" or loc.startswith("/login?next="):
            return "deny"
    return "allow"


def test_every_route_answers_every_principal_as_the_matrix_says(world: dict[str, Any]) -> None:
    web = world["web"]
    routes = sorted(set(enumerate_routes(list(web.routes))), key=lambda mp: (mp == ("POST", "/logout"), mp[1], mp[0]))
    keys = [f"{m} {p}" for m, p in routes]
    missing = [k for k in keys if k not in EXPECT]
    assert not missing, "routes without a rule in EXPECT (add one): " + ", ".join(missing)
    stale = sorted(set(EXPECT) - set(keys))
    assert not stale, "rules for routes that no longer exist: " + ", ".join(stale)

    wrong: list[str] = []
    calls = 0
    for n, who in enumerate(PRINCIPALS):
        c = world["clients"][who]
        for key in keys:  # POST /logout last: it ends the session
            method, template = key.split(" ", 1)
            rule = EXPECT[key]
            variants = ["V", "H"] if isinstance(rule, dict) else [None]
            for variant in variants:
                allowed = rule[variant] if variant else rule
                kw = _request(key, who, n, world)
                if method != "GET" and not template.startswith("/api/") and c.csrf:  # type: ignore[attr-defined]
                    kw["data"] = {**kw.get("data", {}), "csrf_token": c.csrf}  # type: ignore[attr-defined]
                r = c.request(method, _fill(key, world, variant), follow_redirects=False, **kw)
                calls += 1
                got, want = outcome(r), ("allow" if who in allowed else "deny")
                if got != want:
                    wrong.append(f"{who:9} {key}{f' [{variant}]' if variant else ''}: expected {want}, got "
                                 f"{r.status_code} {r.headers.get('location', '')} {r.text[:160]!r}")
    assert calls > 900
    assert not wrong, f"{len(wrong)} of {calls} answers differ from the matrix:\n" + "\n".join(wrong)


def test_denials_of_hidden_records_look_like_missing_ones(world: dict[str, Any]) -> None:
    """The matrix says 'deny'; here: the hidden record's 404 is the missing record's 404, word for word."""
    reader = session_client(world["web"], world["app"], "reader")  # the matrix test logged its clients out
    hid_rid, hid_fid = world["ids"]["H"]
    for path, missing in ((f"/api/v1/records/{hid_rid}", "/api/v1/records/99999999"),
                          (f"/api/v1/files/{hid_fid}", "/api/v1/files/99999999"),
                          (f"/api/v1/files/{hid_fid}/content", "/api/v1/files/99999999/content"),
                          (f"/api/v1/files/{hid_fid}/pages", "/api/v1/files/99999999/pages"),
                          (f"/api/v1/files/{hid_fid}/pages/1", "/api/v1/files/99999999/pages/1"),
                          (f"/api/v1/records/{hid_rid}/files", "/api/v1/records/99999999/files")):
        a, b = reader.get(path), reader.get(missing)
        assert a.status_code == b.status_code == 404
        ea, eb = a.json()["error"], b.json()["error"]
        assert ea["code"] == eb["code"]
        assert ea["message"].replace(str(hid_rid), "N").replace(str(hid_fid), "N") == eb["message"].replace("99999999", "N")


# ---------------------------------------------------------------- counts do not reveal hidden records


FILTERS = [{}, {"fonds": "Z109"}, {"fonds": "Z109", "category": "WS"}, {"year": 2024}, {"state": "filed"},
           {"retention_period": "Y"}, {"q": "通知"}, {"q": "秘密"}, {"fonds": "Z109", "department": "BGS"},
           {"fonds": "Z109", "department": "CWK"}, {"security_level": "秘密"}]


def _numbers(html: str, start: str, end: str) -> list[str]:
    part = html[html.index(start):html.index(end, html.index(start))]
    return (re.findall(r'class="(?:count|stat-value|num strong|num|bar-value)">([\d,]+)<', part)
            + re.findall(r"<b>([\d,]+)</b>", part) + re.findall(r"共 ([\d,]+) 条", part))


def snapshot(c: TestClient) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in FILTERS:
        key = json.dumps(f, ensure_ascii=False, sort_keys=True)
        r = c.get("/api/v1/records", params=f)
        assert r.status_code == 200, r.text
        out["total " + key] = r.json()["total"]
        out["facets " + key] = c.get("/api/v1/records/facets", params=f).json()
    home = c.get("/").text
    out["dashboard"] = _numbers(home, 'class="stats"', "最近著录")
    for url in ("/records", "/records?fonds=Z109&category=WS", "/records?fonds=Z109&category=WS&year=2024",
                "/records?fonds=Z109&category=WS&year=2024&retention=D30", "/records?q=%E9%80%9A%E7%9F%A5"):
        html = c.get(url).text
        out["tree " + url] = _numbers(html, 'class="browse"', "</main>")
    return out


def test_counts_facets_and_dashboard_do_not_change_with_hidden_records(world: dict[str, Any]) -> None:
    app, web = world["app"], world["web"]
    add_user(app, "reader2", ["reader"], "公开")
    add_user(app, "bgs2", ["clerk"], "内部", ["BGS"])
    pairs = {"reader": session_client(web, app, "reader2"), "bgs": session_client(web, app, "bgs2")}
    control = session_client(web, app, "dangan")  # 机密: sees the new 秘密 and 机密 records
    users = {who: session_client(web, app, who) for who in pairs}
    before = {who: snapshot(users[who]) for who in pairs}
    control_before = control.get("/api/v1/records").json()["total"]

    # records neither pair may see: above their clearance, or (for the clerks) in another department
    sysop = Actor.system()
    for i, (level, dept) in enumerate([("秘密", "BGS"), ("机密", "BGS"), ("秘密", "CWK"), ("机密", "JJK"),
                                       ("内部", "CWK"), ("内部", "JJK")]):
        meta = {**BASE, "title": f"{level}的通知（{dept}）第{i}号", "security_level": level, "retention_period": "Y"}
        if level in ("秘密", "机密"):
            meta["secrecy_period"] = "10年"
        create_record(app, sysop, RecordInput("Z109", "WS", meta, department=dept, state="filed"),
                      [NewFile(f"hidden{i}.pdf", io.BytesIO(PDF + bytes([i])))])

    for who, twin in pairs.items():
        after, twin_after = snapshot(users[who]), snapshot(twin)
        changed = sorted(k for k in before[who] if before[who][k] != after[k])
        assert not changed, f"{who}: counts moved when records they may not see were added: {changed}"
        assert after == twin_after, f"{who} and a user of the same role and scope see different counts"
    assert control.get("/api/v1/records").json()["total"] > control_before  # the records were really added


def test_reader_counts_ignore_above_clearance_records(app: Dangan) -> None:
    """The plainest case, on a fresh archive: a 公开 reader sees exactly the 公开 records, before and after."""
    web = create_app(app)
    add_user(app, "r1", ["reader"])
    add_user(app, "r2", ["reader"])
    r1, r2 = session_client(web, app, "r1"), session_client(web, app, "r2")
    _record(app, "公开甲", "公开")
    before = snapshot(r1)
    for i, level in enumerate(["内部", "秘密", "机密"] * 2):
        _record(app, f"{level}乙{i}", level)
    assert snapshot(r1) == before == snapshot(r2)
    assert r1.get("/api/v1/records").json()["total"] == 1
