"""The 利用 pages through TestClient: 申请利用 (record, route, inline errors), 我的申请 (withdraw, 利用效果),
待我审批 (同意 / 不同意, two steps for 秘密, refusals that change nothing), 借阅登记台 (借出, 借出 state, 催还,
归还, search) and 利用登记 (period filter, export). Each form with bad input and a caller without the right."""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from dangan.db.models import Loan, Record
from dangan.domain.access_rules import PURPOSES
from dangan.services import requests as rq
from dangan.services.context import Dangan
from dangan.web.app import create_app
from test_api import session_client
from test_requests import _record, make_user


@pytest.fixture
def web(app: Dangan) -> Any:
    return create_app(app)


def client(web: Any, app: Dangan, username: str, **kw: Any) -> TestClient:
    c = session_client(web, app, username, **kw)
    c.follow_redirects = False  # the pages answer a POST with 303: the tests look at where it leads
    return c


@pytest.fixture
def people(app: Dangan) -> dict[str, Any]:
    return {
        "reader": make_user(app, "sunlei", ["reader"], "机密"),
        "low": make_user(app, "public", ["reader"], "公开"),
        "head": make_user(app, "liufang", ["records_head"], "机密", depts=["BGS"]),
        "leader": make_user(app, "zhaoqiang", ["leader"], "机密"),
        "archivist": make_user(app, "chenjing", ["archivist"], "机密", depts=["BGS"]),
        "clerk": make_user(app, "wangming", ["clerk"], "内部", depts=["BGS"]),
    }


@pytest.fixture
def users(web: Any, app: Dangan, people: dict[str, Any]) -> dict[str, TestClient]:
    return {k: client(web, app, a.username) for k, a in people.items()}


def form(c: TestClient, **data: Any) -> dict[str, Any]:
    return {"csrf_token": c.csrf, **data}  # type: ignore[attr-defined]


def denied(r: Any) -> bool:
    return r.status_code == 403 and "操作被拒绝" in r.text


def field_errors(html: str) -> list[str]:
    return re.findall(r'<p class="field-error"[^>]*>([^<]+)</p>', html)


def new_request(c: TestClient, record_id: int, **over: str) -> Any:
    data = {"record_id": str(record_id), "kind": "view", "purpose": "工作查考", "purpose_note": "", "period_from": "",
            "period_to": "", **over}
    return c.post("/requests/new", data=form(c, **data))


def created_id(r: Any) -> int:
    assert r.status_code == 303, r.text[:3000]
    m = re.fullmatch(r"/requests\?done=(created|granted)&id=(\d+)#r\d+", r.headers["location"])
    assert m, r.headers["location"]
    return int(m.group(2))


def status_of(app: Dangan, actor: Any, request_id: int) -> dict[str, Any]:
    return next(v for v in rq.my_requests(app, actor) if v["id"] == request_id)


# ---------------------------------------------------------------- 申请利用


def test_form_shows_the_record_and_the_route_then_submits(app: Dangan, users: dict[str, TestClient],
                                                          people: dict[str, Any]) -> None:
    rec = _record(app, "秘密的请示", "秘密")
    page = users["reader"].get(f"/requests/new?record={rec}")
    assert page.status_code == 200, page.text[:2000]
    html = page.text
    for words in ("申请利用", "秘密的请示", "秘密", "审批路线", "利用目的", "利用期限起", "利用期限止", "提交申请",
                  "查阅", "借阅（纸质）", "复制（摘抄、复印）", "出具档案证明"):
        assert words in html, words
    assert all(f'<option value="{p}"' in html for p in PURPOSES)
    code = rq.request_form(app, people["reader"], rec)["record"]["archival_code"]
    assert code and code in html
    # the route the rules give for each kind, before anything is sent; 查阅 is preselected
    view_row = re.search(r'<tr data-kind="view" class="current">(.*?)</tr>', html, re.S)
    assert view_row and re.findall(r'class="route-role">([^<]+)<', view_row.group(1)) == ["档案部门负责人", "分管领导"]
    borrow_row = re.search(r'<tr data-kind="borrow"[^>]*>(.*?)</tr>', html, re.S)
    assert borrow_row and re.findall(r'class="route-role">([^<]+)<', borrow_row.group(1)) == [
        "专职档案员", "档案部门负责人", "分管领导"]
    # the kind comes preselected from the link (the viewer's link asks for kind=view)
    borrow = users["reader"].get(f"/requests/new?record={rec}&kind=borrow").text
    assert re.search(r'value="borrow" checked', borrow) and '<tr data-kind="borrow" class="current">' in borrow
    assert re.search(r'value="view" checked', users["reader"].get(f"/requests/new?record={rec}&kind=view").text)
    assert re.search(r'value="view" checked', users["reader"].get(f"/requests/new?record={rec}&kind=lend").text)

    r = new_request(users["reader"], rec, purpose="编史修志", purpose_note="编写大事记",
                    period_to=(rq._today() + dt.timedelta(days=5)).isoformat())
    rid = created_id(r)
    mine = users["reader"].get(r.headers["location"])
    assert mine.status_code == 200
    assert "利用申请已提交" in mine.text and f'id="r{rid}"' in mine.text
    item = mine.text.split(f'id="r{rid}"')[1].split("</article>")[0]
    assert "待审批" in item and "等待档案部门负责人审批" in item and "编写大事记" in item and "撤回申请" in item
    v = status_of(app, people["reader"], rid)
    assert (v["status"], v["purpose"], v["kind"]) == ("pending", "编史修志", "view")


def test_bad_input_is_shown_at_its_field_and_nothing_is_made(app: Dangan, users: dict[str, TestClient],
                                                            people: dict[str, Any]) -> None:
    rec = _record(app, "内部的通知", "内部")
    c = users["reader"]
    today = rq._today()
    r = new_request(c, rec, kind="lend", purpose="其他", purpose_note="",
                    period_from=(today + dt.timedelta(days=3)).isoformat(), period_to=today.isoformat())
    assert r.status_code == 422
    errs = field_errors(r.text)
    assert any("利用方式应为" in m for m in errs)
    assert "利用目的为“其他”时，请写明具体目的" in errs
    assert "利用期限止不能早于起始日期" in errs
    assert 'id="form-errors"' in r.text and "未提交" in r.text
    assert 'value="其他" selected' in r.text  # what was typed stays
    r = new_request(c, rec, purpose="好奇", period_from="2025-02-30")
    assert r.status_code == 422
    assert any("利用目的应为" in m for m in field_errors(r.text))
    assert "利用期限起应写作 2025-03-31" in field_errors(r.text)
    long_note = "说" * 1001
    r = new_request(c, rec, purpose_note=long_note)
    assert r.status_code == 422 and "目的说明不超过 1000 字" in field_errors(r.text)
    assert long_note in r.text  # kept for the person to shorten
    r = new_request(c, rec, period_from=(today - dt.timedelta(days=1)).isoformat())
    assert r.status_code == 422 and "利用期限不能从今天之前开始" in field_errors(r.text)
    assert rq.my_requests(app, people["reader"]) == []


def test_destroyed_hidden_and_missing_records_cannot_be_requested(app: Dangan, users: dict[str, TestClient],
                                                                  people: dict[str, Any]) -> None:
    gone = _record(app, "已销毁的通知")
    page = users["reader"].get(f"/requests/new?record={gone}")
    assert page.status_code == 200
    with app.sessions() as s, s.begin():  # destroyed between opening the form and sending it
        s.execute(update(Record).where(Record.id == gone).values(state="destroyed"))
    r = new_request(users["reader"], gone)
    assert r.status_code == 409 and "已销毁，不能再提供利用" in r.text and "RECORD_DESTROYED" in r.text
    r = users["reader"].get(f"/requests/new?record={gone}")
    assert r.status_code == 409 and "已销毁" in r.text
    assert rq.my_requests(app, people["reader"]) == []
    # above the reader's clearance: exactly like a record that does not exist
    hidden = _record(app, "机密的报告", "机密")
    a, b = users["low"].get(f"/requests/new?record={hidden}"), users["low"].get("/requests/new?record=999999")
    assert a.status_code == b.status_code == 404
    main = [x.text.split('id="main"')[1].split("</main>")[0] for x in (a, b)]
    assert f"档案 {hidden} 不存在" in main[0]
    assert main[0].replace(f"档案 {hidden} ", "档案 N ") == main[1].replace("档案 999999 ", "档案 N ")
    assert new_request(users["low"], hidden).status_code == 404
    r = users["reader"].get("/requests/new")
    assert r.status_code == 422 and "申请利用" in r.text and "RECORD_REQUIRED" in r.text
    c = users["reader"]
    assert c.post("/requests/new", data=form(c, record_id="abc", kind="view", purpose="工作查考")).status_code == 404


def test_the_record_page_offers_a_request_and_the_nav_shows_the_menu(app: Dangan, users: dict[str, TestClient]) -> None:
    rec = _record(app, "公开的公告")
    page = users["reader"].get(f"/records/{rec}").text
    assert f'href="/requests/new?record={rec}"' in page and "申请利用" in page
    nav = page.split('class="sidenav"')[1].split("</nav>")[0]
    assert "档案利用" in nav and "我的申请" in nav and "待我审批" not in nav and "借阅登记台" not in nav
    nav = users["archivist"].get("/requests").text.split('class="sidenav"')[1].split("</nav>")[0]
    assert all(w in nav for w in ("我的申请", "待我审批", "借阅登记台", "利用登记"))
    nav = users["leader"].get("/approvals").text.split('class="sidenav"')[1].split("</nav>")[0]
    assert "待我审批" in nav and "借阅登记台" not in nav and "利用登记" not in nav
    empty = users["reader"].get("/requests").text
    assert "还没有利用申请" in empty and "申请利用" in empty


# ---------------------------------------------------------------- 我的申请: granted at once, withdraw, effect


def test_public_view_is_granted_and_its_effect_recorded(app: Dangan, users: dict[str, TestClient],
                                                        people: dict[str, Any]) -> None:
    rec = _record(app, "公开的决定")
    c = users["low"]
    r = new_request(c, rec, purpose="落实政策")
    rid = created_id(r)
    assert "done=granted" in r.headers["location"]
    item = c.get("/requests").text.split(f'id="r{rid}"')[1].split("</article>")[0]
    assert "已准予" in item and "无需审批" in item and f'href="/records/{rec}"' in item and "查看档案" in item
    assert "登记利用效果" in item and "撤回申请" not in item
    # bad effect, over-long note: the error at the request, nothing recorded
    r = c.post(f"/requests/{rid}/effect", data=form(c, effect="很好", note=""))
    assert r.status_code == 422 and "利用效果应为：有效、一般、无效" in r.text
    r = c.post(f"/requests/{rid}/effect", data=form(c, effect="有效", note="长" * 1001))
    assert r.status_code == 422 and "效果说明不超过 1000 字" in r.text
    assert status_of(app, people["low"], rid)["effect"] is None
    r = c.post(f"/requests/{rid}/effect", data=form(c, effect="有效", note="据此落实了退休待遇"))
    assert r.status_code == 303 and "done=effect" in r.headers["location"]
    item = c.get(r.headers["location"]).text.split(f'id="r{rid}"')[1].split("</article>")[0]
    assert "effect-有效" in item and "据此落实了退休待遇" in item and "修改利用效果" in item
    # someone else's request is not theirs to rate
    assert denied(users["reader"].post(f"/requests/{rid}/effect", data=form(users["reader"], effect="无效")))
    assert status_of(app, people["low"], rid)["effect"] == "有效"


def test_withdraw_a_pending_request(app: Dangan, users: dict[str, TestClient], people: dict[str, Any]) -> None:
    rec = _record(app, "内部的纪要", "内部")
    rid = created_id(new_request(users["reader"], rec))
    assert denied(users["leader"].post(f"/requests/{rid}/withdraw", data=form(users["leader"])))
    assert status_of(app, people["reader"], rid)["status"] == "pending"
    r = users["reader"].post(f"/requests/{rid}/withdraw", data=form(users["reader"]))
    assert r.status_code == 303
    item = users["reader"].get(r.headers["location"]).text.split(f'id="r{rid}"')[1].split("</article>")[0]
    assert "已撤回" in item and "撤回申请" not in item
    r = users["reader"].post(f"/requests/{rid}/withdraw", data=form(users["reader"]))
    assert r.status_code == 409 and "不能撤回" in r.text.split(f'id="r{rid}"')[1]
    assert users["head"].get("/approvals").text.count(f'id="r{rid}"') == 0


# ---------------------------------------------------------------- 待我审批


def test_secret_goes_head_then_leader_and_wrong_decisions_change_nothing(app: Dangan, users: dict[str, TestClient],
                                                                         people: dict[str, Any]) -> None:
    rec = _record(app, "秘密的方案", "秘密")
    rid = created_id(new_request(users["clerk"], _record(app, "内部的方案", "内部")))  # someone else's, 内部
    rid = created_id(new_request(users["reader"], rec, purpose="学术研究", purpose_note="研究机构沿革",
                                 period_to=(rq._today() + dt.timedelta(days=9)).isoformat()))
    head, leader = users["head"], users["leader"]
    q = head.get("/approvals")
    assert q.status_code == 200
    item = q.text.split(f'id="r{rid}"')[1].split("</article>")[0]
    for words in ("SUNLEI", "未分配机构", "秘密的方案", "秘密", "学术研究", "研究机构沿革", "至", "同意", "不同意"):
        assert words in item, words
    clerk_item = q.text.split('id="r')[1]
    assert "办公室" in clerk_item  # the clerk's department, first in the queue (made first)
    assert "没有待您审批的申请" in leader.get("/approvals").text
    pending = status_of(app, people["reader"], rid)

    # the leader's step comes second: refused with the reason at the request, nothing changes
    r = leader.post(f"/approvals/{rid}/approve", data=form(leader, reason="同意"))
    assert r.status_code == 403 and "档案部门负责人" in r.text and "NOT_YOUR_STEP" in r.text
    # someone without request.approve at all
    assert denied(users["reader"].post(f"/approvals/{rid}/approve", data=form(users["reader"])))
    assert denied(users["clerk"].post(f"/approvals/{rid}/refuse", data=form(users["clerk"], reason="不行")))
    # refusing needs a reason
    r = head.post(f"/approvals/{rid}/refuse", data=form(head, reason="  "))
    assert r.status_code == 422 and "必须写明理由" in r.text.split(f'id="r{rid}"')[1].split("</article>")[0]
    r = head.post(f"/approvals/{rid}/approve", data=form(head, reason="意" * 1001))
    assert r.status_code == 422 and "不超过 1000 字" in r.text and "意" * 1001 in r.text
    assert status_of(app, people["reader"], rid) == pending

    r = head.post(f"/approvals/{rid}/approve", data=form(head, reason="同意，请注意保密"))
    assert r.status_code == 303 and r.headers["location"] == "/approvals?done=approved"
    after = head.get(r.headers["location"]).text
    assert "已同意" in after and f'id="r{rid}"' not in after.split('id="history"')[0]
    hist = after.split('id="history"')[1]
    assert "秘密的方案" in hist and "同意" in hist and "同意，请注意保密" in hist and "第 1 步" in hist
    mine = users["reader"].get("/requests").text.split(f'id="r{rid}"')[1].split("</article>")[0]
    assert "LIUFANG 同意" in mine and "等待分管领导审批" in mine

    item = leader.get("/approvals").text.split(f'id="r{rid}"')[1].split("</article>")[0]
    assert "LIUFANG 同意" in item and "同意，请注意保密" in item
    r = leader.post(f"/approvals/{rid}/approve", data=form(leader))
    assert r.status_code == 303 and "granted_final" in r.headers["location"]
    assert status_of(app, people["reader"], rid)["status"] == "approved"
    r = leader.post(f"/approvals/{rid}/approve", data=form(leader))
    assert r.status_code == 409 and "不能再审批" in r.text and "REQUEST_DECIDED" in r.text


def test_refusal_with_reason_and_no_self_approval(app: Dangan, users: dict[str, TestClient],
                                                  people: dict[str, Any]) -> None:
    rec = _record(app, "内部的计划", "内部")
    own = created_id(new_request(users["head"], rec))
    assert f'id="r{own}"' not in users["head"].get("/approvals").text
    r = users["head"].post(f"/approvals/{own}/approve", data=form(users["head"]))
    assert r.status_code == 403 and "不能审批本人提出的利用申请" in r.text
    assert status_of(app, people["head"], own)["status"] == "pending"
    rid = created_id(new_request(users["reader"], rec))
    r = users["head"].post(f"/approvals/{rid}/refuse", data=form(users["head"], reason="与所述目的无关"))
    assert r.status_code == 303 and "done=refused" in r.headers["location"]
    item = users["reader"].get("/requests").text.split(f'id="r{rid}"')[1].split("</article>")[0]
    assert "未准予" in item and "与所述目的无关" in item and "登记利用效果" not in item
    assert users["head"].post("/approvals/999999/approve", data=form(users["head"])).status_code == 404


def test_a_form_without_its_csrf_token_does_nothing(web: Any, app: Dangan, users: dict[str, TestClient],
                                                   people: dict[str, Any]) -> None:
    rec = _record(app, "内部的函", "内部")
    rid = created_id(new_request(users["reader"], rec))
    bare = client(web, app, "liufang", csrf_header=False)
    for path, data in ((f"/approvals/{rid}/approve", {"reason": "同意"}), (f"/approvals/{rid}/refuse", {"reason": "不"}),
                       ("/requests/new", {"record_id": str(rec), "kind": "view", "purpose": "工作查考"})):
        r = bare.post(path, data=data)
        assert r.status_code == 403 and "安全校验未通过" in r.text, path
        r = bare.post(path, data={**data, "csrf_token": "x" * 40})
        assert r.status_code == 403 and "安全校验未通过" in r.text, path
    assert status_of(app, people["reader"], rid)["status"] == "pending"
    assert rq.my_requests(app, people["head"]) == []
    assert bare.get("/approvals").status_code == 200  # reading needs no token


# ---------------------------------------------------------------- 借阅登记台


def _approved_borrow(app: Dangan, people: dict[str, Any], title: str) -> tuple[int, int]:
    rec = _record(app, title)
    r = rq.create_request(app, people["reader"], rec, "borrow", "编史修志",
                          period_to=rq._today() + dt.timedelta(days=9))
    for who in ("archivist", "head"):  # another department's record: 专职档案员 then 档案部门负责人
        rq.approve(app, people[who], r["id"])
    return rec, r["id"]


def test_lending_desk_lends_shows_on_loan_reminds_and_returns(app: Dangan, users: dict[str, TestClient],
                                                              people: dict[str, Any]) -> None:
    rec, rid = _approved_borrow(app, people, "纸质的会议记录")
    desk = users["archivist"]
    page = desk.get("/lending")
    assert page.status_code == 200
    waiting = page.text.split('id="waiting"')[1].split("</section>")[0]
    due = (rq._today() + dt.timedelta(days=9)).isoformat()
    assert f'id="r{rid}"' in waiting and "SUNLEI" in waiting and f'value="{due}"' in waiting
    assert "没有借出中的纸质档案" in page.text.split('id="out"')[1]
    assert denied(users["reader"].get("/lending")) and denied(users["leader"].post(
        f"/lending/{rid}/lend", data=form(users["leader"], due=due)))
    # a due date in the past, a malformed one: shown, nothing lent
    r = desk.post(f"/lending/{rid}/lend", data=form(desk, due=(rq._today() - dt.timedelta(days=1)).isoformat()))
    assert r.status_code == 422 and "应还日期不能早于今天" in r.text
    r = desk.post(f"/lending/{rid}/lend", data=form(desk, due="明天"))
    assert r.status_code == 422 and "应还日期应写作 2025-03-31" in r.text
    assert status_of(app, people["reader"], rid)["status"] == "approved"
    r = desk.post(f"/lending/{rid}/lend", data=form(desk, due=due, note="共 12 页"))
    assert r.status_code == 303 and r.headers["location"] == "/lending?done=lent"
    # the record shows 借出 on its page and in browse
    assert "借出" in desk.get(f"/records/{rec}").text.split('class="record-code"')[1].split("</div>")[0]
    form_page = users["low"].get(f"/requests/new?record={rec}&kind=borrow").text
    assert f"纸质原件借出中，应于 {due} 归还" in form_page and "借出" in form_page.split('id="request-record"')[1]
    browse = desk.get("/records?state=on_loan").text
    assert "纸质的会议记录" in browse and "state-on_loan" in browse
    page = desk.get("/lending").text
    out = page.split('id="out"')[1].split("</section>")[0]
    assert f'id="r{rid}"' in out and due in out and "还有 9 天" in out
    assert f'id="r{rid}"' not in page.split('id="waiting"')[1].split("</section>")[0]
    # search by 档号 and by borrower
    code = status_of(app, people["reader"], rid)["archival_code"]
    assert f'id="r{rid}"' in desk.get("/lending", params={"q": code.lower()}).text
    assert f'id="r{rid}"' in desk.get("/lending", params={"q": "sunlei"}).text
    none = desk.get("/lending", params={"q": "没有这个人%_"}).text
    assert f'id="r{rid}"' not in none and "没有符合条件的借出" in none
    # overdue: marked for 催还
    with app.sessions() as s, s.begin():
        s.execute(update(Loan).where(Loan.request_id == rid).values(
            due_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=3)))
    out = desk.get("/lending").text.split('id="out"')[1].split("</section>")[0]
    assert re.search(rf'<tr id="r{rid}" class="loan-late">', out) and "已逾期 3 天" in out and "请催还" in out
    assert "逾期 1 件" in out
    r = desk.post(f"/lending/{rid}/return", data=form(desk, note="长" * 1001))
    assert r.status_code == 422 and "备注不超过 1000 字" in r.text
    r = desk.post(f"/lending/{rid}/return", data=form(desk, note="完好"))
    assert r.status_code == 303 and r.headers["location"] == "/lending?done=returned"
    page = desk.get(r.headers["location"]).text
    assert "已办理归还" in page and "完好" in page.split('id="returned"')[1]
    assert "已归档" in desk.get(f"/records/{rec}").text.split('class="record-code"')[1].split("</div>")[0]
    r = desk.post(f"/lending/{rid}/return", data=form(desk))
    assert r.status_code == 409 and "没有未归还的借出" in r.text


def test_the_same_original_is_not_lent_twice(app: Dangan, users: dict[str, TestClient], people: dict[str, Any]) -> None:
    rec, first = _approved_borrow(app, people, "纸质的任免文件")
    second = rq.create_request(app, people["leader"], rec, "borrow", "工作查考")["id"]
    for who in ("archivist", "head"):
        rq.approve(app, people[who], second)
    desk = users["archivist"]
    assert desk.post(f"/lending/{first}/lend", data=form(desk)).status_code == 303
    waiting = desk.get("/lending").text.split('id="waiting"')[1].split("</section>")[0]
    row = waiting.split(f'id="r{second}"')[1].split("</tr>")[0]
    assert "原件借出中" in row and "/lend" not in row
    r = desk.post(f"/lending/{second}/lend", data=form(desk))
    assert r.status_code == 409 and "已借出尚未归还" in r.text
    not_borrow = rq.create_request(app, people["low"], _record(app, "公开的简报"), "view", "工作查考")["id"]
    r = desk.post(f"/lending/{not_borrow}/lend", data=form(desk))
    assert r.status_code == 409 and "不是借阅" in r.text


# ---------------------------------------------------------------- 利用登记


def test_register_lists_filters_and_exports(app: Dangan, users: dict[str, TestClient], people: dict[str, Any]) -> None:
    a = rq.create_request(app, people["low"], _record(app, "公开的办法"), "view", "个人取证", "办理公证")
    rq.record_effect(app, people["low"], a["id"], "有效", "公证已办")
    b = rq.create_request(app, people["reader"], _record(app, "内部的报告", "内部"), "view", "工作查考")
    rq.refuse(app, people["head"], b["id"], "不属利用范围")
    keeper = users["archivist"]
    page = keeper.get("/register")
    assert page.status_code == 200
    body = page.text.split('id="register"')[1]
    for words in ("公开的办法", "个人取证", "办理公证", "有效", "公证已办", "内部的报告", "未准予", "不属利用范围",
                  "无需审批", "LIUFANG"):
        assert words in body, words
    assert "共 <b>2</b> 次" in page.text
    link = re.search(r'id="export-xlsx" href="([^"]+)"', page.text).group(1)
    assert link == "/api/v1/requests/register.xlsx"
    x = keeper.get(link)
    assert x.status_code == 200
    rows = list(openpyxl.load_workbook(io.BytesIO(x.content))["利用登记"].iter_rows(values_only=True))
    assert [r[1] for r in rows[2:]] == [a["id"], b["id"]]
    empty = keeper.get("/register", params={"date_to": "2000-01-01"})
    assert "这段时间没有利用申请" in empty.text
    assert re.search(r'id="export-xlsx" href="/api/v1/requests/register.xlsx\?date_to=2000-01-01"', empty.text)
    bad = keeper.get("/register", params={"date_from": "2025-13-01"})
    assert bad.status_code == 422 and "起始日期应写作 2025-03-31" in field_errors(bad.text)
    assert 'id="export-xlsx"' not in bad.text
    assert denied(users["reader"].get("/register")) and denied(users["leader"].get("/register"))
    empty_archive = users["head"].get("/register", params={"date_from": "2099-01-01"}).text
    assert "这段时间没有利用申请" in empty_archive


def test_the_borrower_sees_the_return_reminder_on_home_and_my_requests(app: Dangan, people: dict[str, Any],
                                                                      users: dict[str, TestClient]) -> None:
    rec = _record(app, "逾期未还的任免文件")
    r = rq.create_request(app, people["reader"], rec, "borrow", "工作查考")
    rq.approve(app, people["archivist"], r["id"])
    rq.approve(app, people["head"], r["id"])
    rq.lend(app, people["archivist"], r["id"])
    reader = users["reader"]
    assert 'id="loans-due"' not in reader.get("/requests").text  # due at the end of the period: no reminder yet
    with app.sessions.begin() as s:  # the due date has passed
        s.execute(update(Loan).where(Loan.request_id == r["id"]).values(
            due_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=2)))
    for path in ("/", "/requests"):
        page = reader.get(path).text
        assert 'id="loans-due"' in page and "逾期未还的任免文件" in page and "已逾期" in page, path
    assert 'id="loans-due"' not in users["archivist"].get("/").text  # not the archivist's loan
