"""The 收集与整理 pages through TestClient: 批量导入 and its job page, 接收归档, 归档计划, the dashboard's
reminders, 保管期限表, 归档文件目录, and the record page's outputs and return notice. Each page's main path
and a refusal for someone without the right."""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from dangan.db.models import CaptureJob
from dangan.services import prefiling
from dangan.services.context import Actor, Dangan
from dangan.web.app import create_app
from test_api import API, GOOD, add_user, new_record, session_client
from test_capture_api import catalogue_bytes, files_zip, real_pdf


@pytest.fixture
def web(app: Dangan) -> Any:
    return create_app(app)


def client(web: Any, app: Dangan, username: str) -> TestClient:
    c = session_client(web, app, username)
    c.follow_redirects = False  # the pages answer a POST with 303: the tests look at where it leads
    return c


@pytest.fixture
def users(web: Any, app: Dangan) -> dict[str, TestClient]:
    add_user(app, "head", ["records_head"], "机密", ["BGS"])
    add_user(app, "bgs", ["clerk"], "内部", ["BGS"])
    add_user(app, "cwk", ["clerk"], "内部", ["CWK"])
    add_user(app, "reader", ["reader"])
    return {u: client(web, app, u) for u in ("head", "bgs", "cwk", "reader")}


def form(c: TestClient, **data: Any) -> dict[str, Any]:
    return {"csrf_token": c.csrf, **data}  # type: ignore[attr-defined]


def denied(r: Any) -> bool:
    return r.status_code == 403 and "操作被拒绝" in r.text


def upload(n: int = 3) -> dict[str, Any]:
    return {"catalogue": ("归档文件目录.xlsx", catalogue_bytes(n), "application/octet-stream"),
            "files": ("电子文件.zip", files_zip(n), "application/zip")}


def job_id_of(r: Any) -> str:
    assert r.status_code == 303, r.text[:2000]
    m = re.fullmatch(r"/import/jobs/([0-9a-f]+)", r.headers["location"])
    assert m, r.headers["location"]
    return m.group(1)


# ---------------------------------------------------------------- 批量导入


def test_import_page_dry_run_then_import(web: Any, app: Dangan, users: dict[str, TestClient]) -> None:
    bgs = users["bgs"]
    page = bgs.get("/import")
    assert page.status_code == 200
    for words in ("只校验（试导入）", "下载目录模板", "文件名", "保管期限", "最近的导入任务", "还没有导入任务"):
        assert words in page.text, words
    assert 'value="filed"' not in page.text  # a clerk does not file on import
    assert "批量导入" in page.text.split('class="sidenav"')[1]

    tpl = bgs.get("/import/template.xlsx", params={"fonds": "Z109", "category": "WS"})
    assert tpl.status_code == 200 and "attachment" in tpl.headers["content-disposition"]
    wb = openpyxl.load_workbook(io.BytesIO(tpl.content))
    header = [c.value for c in wb["归档文件目录"][1]]
    assert header[:5] == ["序号", "档号", "文号", "责任者", "题名"] and header[-1] == "文件名" and "保管期限" in header
    assert wb["填写说明"]["A1"].value == "列名"

    r = bgs.post("/import", data=form(bgs, target="Z109/WS", department="BGS", state="pre_filing", dry_run="1"),
                 files=upload())
    jid = job_id_of(r)
    web.state.jobs.join()
    job = bgs.get(f"/import/jobs/{jid}")
    assert job.status_code == 200
    assert "全部 3 行校验通过" in job.text and f"/api/v1/jobs/{jid}/report" in job.text
    assert "导入预检（不入库）" in job.text and "归档文件目录.xlsx" in job.text
    assert bgs.get(f"{API}/records").json()["total"] == 0

    r = bgs.post("/import", data=form(bgs, target="Z109/WS", department="BGS", state="pending"), files=upload())
    jid2 = job_id_of(r)
    web.state.jobs.join()
    job = bgs.get(f"/import/jobs/{jid2}")
    assert "新增 3 件" in job.text and "失败 0 行" in job.text
    assert 'id="job-created">3<' in job.text
    assert bgs.get(f"{API}/records", params={"state": "pending"}).json()["total"] == 3
    listing = bgs.get("/import").text
    assert jid in listing and jid2 in listing and "已完成" in listing

    # someone else's job does not exist for them; a reader may not import at all
    assert users["head"].get(f"/import/jobs/{jid}").status_code == 404
    assert denied(users["reader"].get("/import"))
    assert denied(users["reader"].post("/import", data=form(users["reader"], target="Z109/WS"), files=upload()))
    assert denied(users["reader"].get("/import/template.xlsx"))


def test_import_form_problems_are_shown_by_field(users: dict[str, TestClient]) -> None:
    bgs = users["bgs"]
    r = bgs.post("/import", data=form(bgs, target="Z109/WS", department="CWK", state="filed"),
                 files={"files": ("电子文件.rar", b"x", "application/octet-stream")})
    assert r.status_code == 422
    html = r.text
    assert "未开始导入" in html
    assert "请选择归档文件目录" in html and "ZIP" in html
    assert "只能选择您有权导入的机构" in html and "您不能把导入的档案直接设为该状态" in html
    assert html.count('class="field-error"') == 4
    assert "浏览器不会保留已选择的文件" in html


def test_failed_rows_are_listed_and_an_interrupted_import_resumes(web: Any, app: Dangan,
                                                                  users: dict[str, TestClient]) -> None:
    head = users["head"]
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["题名", "责任者", "日期", "年度", "保管期限", "文件名", "承办人"])
    ws.append(["正常的一件", "办公室", "2024-03-01", 2024, "永久", "1.pdf", "张三"])
    ws.append(["年度写错的一件", "办公室", "2024-03-02", "二〇二四", "永久", "2.pdf", "李四"])
    buf = io.BytesIO()
    wb.save(buf)
    files = {"catalogue": ("目录.xlsx", buf.getvalue(), "application/octet-stream"),
             "files": ("files.zip", files_zip(3), "application/zip")}
    jid = job_id_of(head.post("/import", data=form(head, target="Z109/WS", department="BGS", state="pre_filing"),
                              files=files))
    web.state.jobs.join()
    html = head.get(f"/import/jobs/{jid}").text
    assert "新增 1 件" in html and "失败 1 行" in html
    assert "承办人" in html  # the unknown column
    assert "未挂接的文件" in html and "3.pdf" in html  # in the ZIP, named by no row
    assert "第 3 行" in html and "年度" in html

    # a process died half way: the job is "interrupted"; 继续导入 runs it again, stored rows are skipped
    with app.sessions.begin() as s:
        s.execute(update(CaptureJob).where(CaptureJob.id == jid).values(status="interrupted"))
    html = head.get(f"/import/jobs/{jid}").text
    assert "继续导入" in html and "导入被中断" in html
    r = head.post(f"/import/jobs/{jid}/resume", data=form(head))
    assert r.status_code == 303 and r.headers["location"] == f"/import/jobs/{jid}"
    web.state.jobs.join()
    html = head.get(f"/import/jobs/{jid}").text
    assert "新增 0 件，已存在 1 件" in html and "继续导入" not in html
    again = head.post(f"/import/jobs/{jid}/resume", data=form(head))
    assert again.status_code == 422 and "只有中断或失败的导入任务可以继续" in again.text
    assert users["bgs"].post(f"/import/jobs/{jid}/resume", data=form(users["bgs"])).status_code == 404


# ---------------------------------------------------------------- 接收归档


def submitted(c: TestClient, title: str, date: str, **meta: Any) -> int:
    v = new_record(c, metadata={**GOOD, "title": title, "date": date, "year": int(date[:4]), **meta})
    assert c.post(f"{API}/records/{v['id']}/submit", json={}).status_code == 200
    return int(v["id"])


def order_on_page(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr id="r(\d+)"', html)]


def test_review_orders_accepts_and_returns(users: dict[str, TestClient]) -> None:
    head, bgs = users["head"], users["bgs"]
    a = submitted(bgs, "第一件：六月的通知", "2024-06-01")
    b = submitted(bgs, "第二件：一月的通知", "2024-01-05")
    c = submitted(bgs, "第三件：三月的请示", "2024-03-09")
    page = head.get("/review")
    assert page.status_code == 200
    assert "待接收 3 件" in page.text and "文书档案" in page.text and "2024 年" in page.text and "办公室" in page.text
    assert order_on_page(page.text) == [b, c, a]  # by date until arranged
    assert page.text.count('<td class="nowrap small">bgs<div class="muted">') == 3  # 提交人 / 时间

    groups = {"g1": [str(b), str(c), str(a)]}
    r = head.post("/review/order", data=form(head, move=f"{a}:up", **groups))
    assert r.status_code == 303 and r.headers["location"].endswith(f"#r{a}")
    page = head.get(r.headers["location"].split("#")[0])
    assert order_on_page(page.text) == [b, a, c] and "已调整排列顺序" in page.text
    r = head.post("/review/auto", data=form(head, group="1", g1=[str(b), str(a), str(c)]))
    assert r.status_code == 303
    assert order_on_page(head.get("/review").text) == [b, c, a]

    r = head.post("/review/return", data=form(head, ids=[str(c)], reason=""))
    assert r.status_code == 422 and "退回必须写明原因" in r.text
    r = head.post("/review/return", data=form(head, ids=[str(c)], reason="缺少领导签批的处理单"))
    assert r.status_code == 200 and "已退回 1 件" in r.text and "缺少领导签批的处理单" in r.text
    detail = bgs.get(f"/records/{c}").text
    assert "退回原因：缺少领导签批的处理单" in detail and "提交归档" in detail

    r = head.post("/review/accept", data=form(head, ids=[str(b), str(a)]))
    assert r.status_code == 200
    codes = re.findall(r"Z109-WS·2024-Y-BGS-\d{4}", r.text)
    assert "已接收 2 件" in r.text and codes[:2] == ["Z109-WS·2024-Y-BGS-0001", "Z109-WS·2024-Y-BGS-0002"]
    assert head.get(f"{API}/records/{b}").json()["archival_code"].endswith("-0001")
    r = head.post("/review/accept", data=form(head, ids=[str(b)]))  # filed already: refused with the reason
    assert "1 件未能接收" in r.text and "INVALID_TRANSITION" in r.text
    assert "没有待接收的档案" in head.get("/review").text

    assert denied(bgs.get("/review"))
    assert denied(bgs.post("/review/accept", data=form(bgs, ids=[str(a)])))
    assert denied(users["reader"].post("/review/return", data=form(users["reader"], ids=[str(a)], reason="x")))


# ---------------------------------------------------------------- 归档计划 and the dashboard


def test_plans_page_create_errors_read_only_and_delete(users: dict[str, TestClient]) -> None:
    head, bgs, cwk = users["head"], users["bgs"], users["cwk"]
    soon = (dt.date.today() + dt.timedelta(days=12)).isoformat()
    r = head.post("/plans", data=form(head, fonds="Z109", department="BGS", category="WS", year="2024",
                                      deadline=soon, expected_count="4", note="含会议纪要"))
    assert r.status_code == 303 and r.headers["location"] == "/plans?done=plan_created"
    page = head.get(r.headers["location"])
    assert "归档计划已制定" in page.text and "还剩 12 天" in page.text and "含会议纪要" in page.text
    assert 'action="/plans"' in page.text  # the create form

    r = head.post("/plans", data=form(head, fonds="Z109", department="", category="WS", year="二〇二四",
                                      deadline="2025-13-01", expected_count="-3"))
    assert r.status_code == 422
    for msg in ("请选择机构", "年度应为四位数字", "截止日期应写作", "应归档件数应为 0 或正整数"):
        assert msg in r.text, msg
    assert r.text.count('class="field has-error"') == 4 and 'value="二〇二四"' in r.text
    dup = head.post("/plans", data=form(head, fonds="Z109", department="BGS", category="WS", year="2024",
                                        deadline=soon))
    assert dup.status_code == 409 and "已有归档计划" in dup.text

    own = bgs.get("/plans")
    assert own.status_code == 200 and "还剩 12 天" in own.text and 'action="/plans"' not in own.text
    assert "删除" not in own.text
    assert "还没有为本部门制定归档计划" in cwk.get("/plans").text  # 财务科 has none
    assert denied(bgs.post("/plans", data=form(bgs, fonds="Z109", department="BGS", category="WS", year="2023",
                                                deadline=soon)))
    assert denied(users["reader"].get("/plans"))

    pid = head.get(f"{API}/plans").json()[0]["id"]
    assert denied(bgs.post(f"/plans/{pid}/delete", data=form(bgs)))
    r = head.post(f"/plans/{pid}/delete", data=form(head))
    assert r.status_code == 303 and "归档计划已删除" in head.get(r.headers["location"]).text
    assert head.get(f"{API}/plans").json() == []


def test_dashboard_reminders_and_review_count(app: Dangan, users: dict[str, TestClient]) -> None:
    head, bgs, reader = users["head"], users["bgs"], users["reader"]
    assert 'id="reminders"' not in bgs.get("/").text  # no plans, no panel
    past = (dt.date.today() - dt.timedelta(days=5)).isoformat()
    soon = (dt.date.today() + dt.timedelta(days=20)).isoformat()
    prefiling.create_plan(app, Actor.system(), "Z109", "CWK", "WS", 2024, soon, 10)
    prefiling.create_plan(app, Actor.system(), "Z109", "BGS", "WS", 2024, past, 10)
    submitted(bgs, "待接收的一件", "2024-05-05")
    home = head.get("/").text
    assert 'id="reminders"' in home and "归档提醒" in home
    assert home.index("已逾期 5 天") < home.index("还剩 20 天")  # overdue first
    assert 'id="todo-review"' in home and re.search(r'class="todo-count">1<', home)
    mine = bgs.get("/").text
    assert "已逾期 5 天" in mine and "还剩 20 天" not in mine  # a clerk sees their department's plans
    assert 'id="todo-review"' not in mine  # and does not accept records
    assert 'id="reminders"' not in reader.get("/").text


# ---------------------------------------------------------------- 保管期限表


def test_schedule_page_edit_with_errors_then_save(users: dict[str, TestClient]) -> None:
    head, bgs = users["head"], users["bgs"]
    page = head.get("/schedule", params={"fonds": "Z109", "category": "WS"})
    assert page.status_code == 200
    assert "本机关制定的法规政策性文件材料" in page.text and "国家档案局令第8号" in page.text
    n = len(re.findall(r'name="item_\d+"', page.text))
    assert n >= 13  # the rules and one blank row

    data = {"fonds": "Z109", "category": "WS",
            "item_0": "本机关制定的法规政策性文件材料", "retention_period_0": "Y", "keywords_0": "条例、规定",
            "item_1": "临时性文件", "retention_period_1": "D7X", "keywords_1": "值班",
            "item_2": "", "retention_period_2": "D10",  # an item missing
            "item_3": "要删去的一条", "retention_period_3": "D10", "delete_3": "1",
            "item_4": "", "retention_period_4": ""}  # the blank row
    r = head.post("/schedule", data=form(head, **data))
    assert r.status_code == 422
    assert "未保存" in r.text and r.text.count('class="field-error"') == 2
    assert 'value="值班"' in r.text or ">值班<" in r.text  # what was typed is kept
    assert "要删去的一条" not in r.text

    data.update(retention_period_1="D10", item_2="一般性来函", keywords_2="来函")
    r = head.post("/schedule", data=form(head, **data))
    assert r.status_code == 303
    saved = head.get(f"{API}/fonds/Z109/categories/WS/schedule").json()["rules"]
    assert [x["item"] for x in saved] == ["本机关制定的法规政策性文件材料", "临时性文件", "一般性来函"]
    assert saved[0]["keywords"] == ["条例", "规定"]
    assert "保管期限表已保存" in head.get(r.headers["location"]).text

    ro = bgs.get("/schedule?category=WS")
    assert ro.status_code == 200 and "此处只读" in ro.text and 'name="item_0"' not in ro.text and "一般性来函" in ro.text
    assert denied(bgs.post("/schedule", data=form(bgs, **data)))
    assert denied(users["reader"].get("/schedule"))


# ---------------------------------------------------------------- 归档文件目录, record outputs, the suggestion


def filed(c: TestClient, title: str, **meta: Any) -> dict[str, Any]:
    import json

    r = c.post(f"{API}/records/multipart", data={
        "fonds": "Z109", "category": "WS", "department": "BGS", "state": "filed",
        "metadata": json.dumps({**GOOD, "title": title, **meta}, ensure_ascii=False)},
        files={"files": ("正文.pdf", real_pdf(title), "application/pdf")})
    assert r.status_code == 201, r.text
    return r.json()


def test_catalogue_page_and_downloads(app: Dangan, web: Any, users: dict[str, TestClient]) -> None:
    head, reader = users["head"], users["reader"]
    filed(head, "公开的通知")
    filed(head, "秘密的通知", security_level="秘密", secrecy_period="10年")
    page = head.get("/catalogue", params={"fonds": "Z109", "category": "WS", "year": "2024"})
    assert page.status_code == 200 and "公开的通知" in page.text and "秘密的通知" in page.text
    xlsx = re.search(r'id="download-xlsx" href="([^"]+)"', page.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    assert xlsx.startswith("/api/v1/catalogue?") and "year=2024" in xlsx and "category=WS" in xlsx
    r = head.get(xlsx)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxmlformats")
    mine = reader.get("/catalogue", params={"category": "WS"})
    assert "公开的通知" in mine.text and "秘密的通知" not in mine.text  # trimmed to what the reader may see
    pdf = re.search(r'id="download-pdf" href="([^"]+)"', mine.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    assert reader.get(pdf).headers["content-type"] == "application/pdf"
    assert "没有符合条件的已归档文件" in reader.get("/catalogue", params={"year": "1999"}).text
    add_user(app, "sys", ["sysadmin"])
    assert denied(client(web, app, "sys").get("/catalogue"))


def test_record_page_outputs_and_the_suggestion_box(users: dict[str, TestClient]) -> None:
    head = users["head"]
    v = filed(head, "加盖归档章的通知")
    html = head.get(f"/records/{v['id']}").text
    assert f"/api/v1/records/{v['id']}/stamp" in html and "归档章（PNG）" in html
    assert f"/api/v1/files/{v['files'][0]['id']}/stamped" in html and "加盖归档章的副本" in html
    assert "案卷封面" not in html
    pending = new_record(head)
    assert "归档章（PNG）" not in head.get(f"/records/{pending['id']}").text
    vol = head.post(f"{API}/records", json={"fonds": "Z109", "category": "KU", "level": "volume", "metadata": {
        "title": "2024年1月记账凭证", "year": 2024, "retention_period": "D30", "class_code": "01"}}).json()
    html = head.get(f"/records/{vol['id']}").text
    for kind, label in (("cover", "案卷封面"), ("contents", "卷内目录"), ("notes", "备考表")):
        assert f"/api/v1/records/{vol['id']}/volume/{kind}" in html and label in html

    form_page = head.get("/records/new?fonds=Z109&category=WS").text
    assert 'data-suggest-url="/api/v1/retention/suggest"' in form_page and 'id="retention-suggest"' in form_page
    assert 'id="suggest-apply"' in form_page
