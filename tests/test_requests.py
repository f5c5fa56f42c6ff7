"""利用: approval routes as data, requests, approval in order, refusals, expiry, lending, effect, register."""

import datetime as dt
import io

import openpyxl
import pytest
from sqlalchemy import select, update

from dangan.db.models import AccessRequest, Record, User
from dangan.domain.access_rules import (
    PRESET_RULES,
    AccessRules,
    ApprovalRule,
    RequestFacts,
    RulesError,
    parse_rules,
    route_for,
)
from dangan.errors import NotFound, PermissionDenied, StateError, ValidationFailed
from dangan.services import requests as rq
from dangan.services.audit import list_events
from dangan.services.context import Actor
from dangan.services.files import NewFile
from dangan.services.identity import actor_for
from dangan.services.records import RecordInput, create_record
from test_api import add_user

BASE = {"year": 2024, "retention_period": "D30", "responsible": "办公室", "date": "2024-06-01"}


# ---------------------------------------------------------------- routes as data (pure)


def F(kind, level, same=True, open_status="未开放"):  # noqa: N802
    return RequestFacts(kind=kind, security_level=level, open_status=open_status, same_department=same)


def test_preset_routes():
    assert route_for(F("view", "公开")) == []
    assert route_for(F("view", "公开", same=False)) == []
    assert route_for(F("view", "内部")) == ["records_head"]
    assert route_for(F("view", "秘密")) == ["records_head", "leader"]
    assert route_for(F("view", "机密", same=False)) == ["records_head", "leader"]
    assert route_for(F("borrow", "公开")) == ["archivist"]
    assert route_for(F("borrow", "公开", same=False)) == ["archivist", "records_head"]
    assert route_for(F("borrow", "秘密", same=False)) == ["archivist", "records_head", "leader"]
    assert route_for(F("copy", "内部")) == ["archivist", "records_head"]
    assert route_for(F("certify", "公开", same=None)) == ["records_head"]


def test_custom_rules_default_route_and_open_status():
    rules = AccessRules(rules=(ApprovalRule(kind="view", open_status=("开放",), steps=()),
                               ApprovalRule(requester_department="same", steps=("archivist",))),
                        default_steps=("leader",))
    assert route_for(F("view", "内部", open_status="开放", same=False), rules) == []
    assert route_for(F("view", "内部", open_status="控制", same=False), rules) == ["leader"]  # no rule: default
    assert route_for(F("copy", "内部", same=True), rules) == ["archivist"]
    assert route_for(F("copy", "内部", same=None), rules) == ["leader"]  # a record without department is neither
    assert parse_rules(PRESET_RULES.as_dict()) == PRESET_RULES


def test_bad_rules_name_every_problem():
    with pytest.raises(RulesError) as ei:
        parse_rules({"rules": [{"kind": ["lend"], "security_levels": ["绝绝密"], "steps": ["sysadmin"],
                                "requester_department": "mine", "colour": 1}], "default_steps": [], "grant_days": 0})
    fields = {f for f, _ in ei.value.problems}
    assert {"rules[0].kind", "rules[0].security_levels", "rules[0].steps", "rules[0].requester_department",
            "rules[0]", "default_steps", "grant_days"} <= fields


# ---------------------------------------------------------------- the archive and its people


def _record(app, title, level="公开", dept="BGS"):
    meta = {**BASE, "title": title, "security_level": level}
    if level in ("秘密", "机密"):
        meta["secrecy_period"] = "10年"
    return create_record(app, Actor.system(), RecordInput("Z109", "WS", meta, department=dept, state="filed"),
                         [NewFile(f"{title}.pdf", io.BytesIO(title.encode()))])["id"]


@pytest.fixture
def people(app):
    return _people(app)


def make_user(app, username, roles=(), clearance="公开", depts=()):
    """As test_identity.make_user, without the password hashing and login it does not need here."""
    add_user(app, username, roles, clearance, depts)
    with app.read_sessions() as s:
        return actor_for(s, s.scalar(select(User).where(User.username == username)))


def _people(app):
    return {
        "reader": make_user(app, "sunlei", ["reader"], "机密"),
        "low": make_user(app, "public", ["reader"], "公开"),
        "head": make_user(app, "liufang", ["records_head"], "机密", depts=["BGS"]),
        "head2": make_user(app, "head2", ["records_head"], "内部", depts=["BGS"]),
        "leader": make_user(app, "zhaoqiang", ["leader"], "机密"),
        "archivist": make_user(app, "chenjing", ["archivist"], "机密", depts=["BGS"]),
        "auditor": make_user(app, "aud", ["auditor"]),
    }


def _events(app, rid):
    return [(e["action"], e["outcome"], e["actor"]) for e in
            reversed(list_events(app, Actor.system(), object_type="access_request", object_id=str(rid),
                                 audit_the_view=False))]


# ---------------------------------------------------------------- requests and approval


def test_public_view_is_granted_at_once(any_app):
    app = any_app
    u = _people(app)
    rec = _record(app, "公开的通知")
    r = rq.create_request(app, u["low"], rec, "view", "工作查考")
    assert r["status"] == "approved" and r["route"] == [] and r["expires_at"]
    assert rq.check_grant(app, u["low"], rec, "view")["id"] == r["id"]
    assert [a for a, *_ in _events(app, r["id"])] == ["request.create", "request.grant", "request.use"]
    assert rq.my_requests(app, u["low"])[0]["id"] == r["id"]
    with pytest.raises(PermissionDenied) as ei:
        rq.check_grant(app, u["low"], rec, "copy")
    assert ei.value.code == "NO_GRANT"


def test_secret_needs_head_then_leader_in_that_order(any_app):
    app = any_app
    u = _people(app)
    rec = _record(app, "秘密的请示", "秘密")
    r = rq.create_request(app, u["reader"], rec, "view", "编史修志", period_to=rq._today() + dt.timedelta(days=5))
    assert r["status"] == "pending" and [s["role"] for s in r["route"]] == ["records_head", "leader"]
    with pytest.raises(PermissionDenied) as ei:  # the leader's step comes second
        rq.approve(app, u["leader"], r["id"])
    assert ei.value.code == "NOT_YOUR_STEP"
    assert [x["id"] for x in rq.approval_queue(app, u["head"])] == [r["id"]]
    assert rq.approval_queue(app, u["leader"]) == []
    a = rq.approve(app, u["head"], r["id"], "同意，请注意保密")
    assert a["status"] == "pending" and a["current_role"] == "leader"
    with pytest.raises(PermissionDenied):
        rq.check_grant(app, u["reader"], rec)
    with pytest.raises(PermissionDenied) as ei:
        rq.approve(app, u["head"], r["id"])
    assert ei.value.code == "NOT_YOUR_STEP"
    assert [x["id"] for x in rq.approval_queue(app, u["leader"])] == [r["id"]]
    b = rq.approve(app, u["leader"], r["id"])
    assert b["status"] == "approved"
    assert [(s["decided_by"], s["decision"]) for s in b["route"]] == [("liufang", "approve"), ("zhaoqiang", "approve")]
    assert rq.check_grant(app, u["reader"], rec)["id"] == r["id"]
    with pytest.raises(StateError) as se:
        rq.approve(app, u["leader"], r["id"])
    assert se.value.code == "REQUEST_DECIDED"
    assert _events(app, r["id"]) == [
        ("request.create", "success", "sunlei"), ("request.approve", "denied", "zhaoqiang"),
        ("request.approve", "success", "liufang"), ("request.approve", "denied", "liufang"),
        ("request.approve", "success", "zhaoqiang"), ("request.grant", "success", "zhaoqiang"),
        ("request.use", "success", "sunlei"), ("request.approve", "failure", "zhaoqiang")]


def test_approval_without_the_right_is_refused_and_changes_nothing(app, people):
    u = people
    rec = _record(app, "内部的通知", "内部")
    r = rq.create_request(app, u["reader"], rec, "view", "学术研究")
    before = rq.my_requests(app, u["reader"])
    for who, code in (("low", "PERMISSION_DENIED"), ("auditor", "PERMISSION_DENIED"), ("archivist", "NOT_YOUR_STEP"),
                      ("leader", "NOT_YOUR_STEP")):
        with pytest.raises(PermissionDenied) as ei:
            rq.approve(app, u[who], r["id"])
        assert ei.value.code == code, who
        with pytest.raises(PermissionDenied):
            rq.refuse(app, u[who], r["id"], "不同意")
    assert rq.my_requests(app, u["reader"]) == before
    denied = [e for e in _events(app, r["id"]) if e[1] == "denied"]
    assert len(denied) == 8
    with pytest.raises(PermissionDenied):
        rq.approval_queue(app, u["low"])


def test_the_requester_cannot_approve_their_own(app, people):
    u = people
    rec = _record(app, "内部的纪要", "内部")
    r = rq.create_request(app, u["head"], rec, "view", "工作查考")
    assert [s["role"] for s in r["route"]] == ["records_head"]
    assert rq.approval_queue(app, u["head"]) == []
    with pytest.raises(PermissionDenied) as ei:
        rq.approve(app, u["head"], r["id"])
    assert ei.value.code == "SELF_APPROVAL"
    assert [x["id"] for x in rq.approval_queue(app, u["head2"])] == [r["id"]]
    assert rq.approve(app, u["head2"], r["id"])["status"] == "approved"


def test_refuse_needs_a_reason(app, people):
    u = people
    rec = _record(app, "内部的函", "内部")
    r = rq.create_request(app, u["reader"], rec, "view", "其他", "核对历史数据")
    for reason in ("", "   "):
        with pytest.raises(ValidationFailed) as ei:
            rq.refuse(app, u["head"], r["id"], reason)
        assert ei.value.code == "REASON_REQUIRED"
    assert rq.my_requests(app, u["reader"])[0]["status"] == "pending"
    v = rq.refuse(app, u["head"], r["id"], "与所述目的无关")
    assert v["status"] == "refused" and v["route"][0]["reason"] == "与所述目的无关"
    with pytest.raises(PermissionDenied) as ei2:
        rq.check_grant(app, u["reader"], rec)
    assert ei2.value.code == "NO_GRANT"
    with pytest.raises(StateError):
        rq.approve(app, u["head"], r["id"])


def test_bad_requests_are_refused_with_every_problem(app, people):
    rec = _record(app, "公开的公告")
    with pytest.raises(ValidationFailed) as ei:
        rq.create_request(app, people["reader"], rec, "lend", "好奇", period_from="2024-13-01")
    assert {p.field for p in ei.value.problems} == {"kind", "purpose", "period_from"}
    with pytest.raises(ValidationFailed) as ei:
        rq.create_request(app, people["reader"], rec, "view", "其他")
    assert [p.field for p in ei.value.problems] == ["purpose_note"]
    with pytest.raises(ValidationFailed) as ei:
        rq.create_request(app, people["reader"], rec, "view", "工作查考", period_from=rq._today() - dt.timedelta(days=3))
    assert ei.value.problems[0].code == "IN_THE_PAST"
    with pytest.raises(PermissionDenied):
        rq.create_request(app, people["auditor"], rec, "view", "工作查考")


def test_a_grant_used_after_expiry_is_refused(any_app):
    app = any_app
    u = _people(app)
    rec = _record(app, "公开的简报")
    today = rq._today()
    r = rq.create_request(app, u["low"], rec, "view", "工作查考", period_from=today,
                          period_to=today + dt.timedelta(days=2))
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert rq.check_grant(app, u["low"], rec, now=soon)["status"] == "approved"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=4)
    with pytest.raises(PermissionDenied) as ei:
        rq.check_grant(app, u["low"], rec, now=later)
    assert ei.value.code == "GRANT_EXPIRED"
    with pytest.raises(PermissionDenied) as ei:  # and stays refused
        rq.check_grant(app, u["low"], rec)
    assert ei.value.code == "GRANT_EXPIRED"
    assert rq.my_requests(app, u["low"])[0]["status"] == "expired"
    acts = [a for a, *_ in _events(app, r["id"])]
    assert acts[-2:] == ["request.use", "request.expire"]
    refused = [e for e in list_events(app, Actor.system(), object_type="record", object_id=str(rec), action="request.use",
                                      audit_the_view=False)]
    assert {e["outcome"] for e in refused} == {"denied"}


def test_expiry_shows_in_views_before_any_use(app, people):
    rec = _record(app, "公开的年报")
    r = rq.create_request(app, people["low"], rec, "view", "经济建设")
    with app.sessions() as s, s.begin():
        s.execute(update(AccessRequest).where(AccessRequest.id == r["id"])
                  .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))
    assert rq.my_requests(app, people["low"])[0]["status"] == "expired"
    with pytest.raises(PermissionDenied) as ei:
        rq.check_grant(app, people["low"], rec)
    assert ei.value.code == "GRANT_EXPIRED"


def test_above_clearance_is_not_found_like_a_missing_record(app, people):
    hidden = _record(app, "机密的报告", "机密")
    with pytest.raises(NotFound) as a:
        rq.create_request(app, people["low"], hidden, "view", "工作查考")
    with pytest.raises(NotFound) as b:
        rq.create_request(app, people["low"], 999_999, "view", "工作查考")
    assert (a.value.code, a.value.status) == (b.value.code, b.value.status) == ("RECORD_NOT_FOUND", 404)
    assert a.value.message.replace(str(hidden), "N") == b.value.message.replace("999999", "N")
    # a request about it does not exist for them either
    r = rq.create_request(app, people["reader"], hidden, "view", "工作查考")
    with pytest.raises(NotFound) as c:
        rq.approve(app, people["head2"], r["id"])  # 内部 clearance
    with pytest.raises(NotFound) as d:
        rq.approve(app, people["head2"], 999_999)
    assert c.value.code == d.value.code == "REQUEST_NOT_FOUND"
    assert rq.approval_queue(app, people["head2"]) == []
    assert [x["id"] for x in rq.approval_queue(app, people["head"])] == [r["id"]]


def test_destroyed_record_is_refused(app, people):
    rec = _record(app, "已销毁的通知")
    with app.sessions() as s, s.begin():
        s.execute(update(Record).where(Record.id == rec).values(state="destroyed"))
    with pytest.raises(StateError) as ei:
        rq.create_request(app, people["reader"], rec, "view", "工作查考")
    assert ei.value.code == "RECORD_DESTROYED" and "已销毁" in ei.value.message
    with app.read_sessions() as s:
        assert s.scalar(select(AccessRequest.id)) is None


# ---------------------------------------------------------------- lending, effect, register


def test_lending_return_due_dates_and_overdue(any_app):
    app = any_app
    u = _people(app)
    rec = _record(app, "纸质的会议记录")
    today = rq._today()
    r = rq.create_request(app, u["reader"], rec, "borrow", "编史修志", period_from=today,
                          period_to=today + dt.timedelta(days=9))
    assert [s["role"] for s in r["route"]] == ["archivist", "records_head"]  # another department's record
    with pytest.raises(StateError) as ei:
        rq.lend(app, u["archivist"], r["id"])
    assert ei.value.code == "NOT_APPROVED"
    rq.approve(app, u["archivist"], r["id"])
    rq.approve(app, u["head"], r["id"])
    with pytest.raises(PermissionDenied):
        rq.lend(app, u["leader"], r["id"])
    v = rq.lend(app, u["archivist"], r["id"])
    assert v["status"] == "lent" and v["loan"]["due_date"] == (today + dt.timedelta(days=9)).isoformat()
    assert rq.check_grant(app, u["reader"], rec, "borrow")["id"] == r["id"]
    # the one paper original cannot go out twice
    r2 = rq.create_request(app, u["leader"], rec, "borrow", "工作查考")
    rq.approve(app, u["archivist"], r2["id"])
    rq.approve(app, u["head"], r2["id"])
    with pytest.raises(StateError) as ei:
        rq.lend(app, u["archivist"], r2["id"])
    assert ei.value.code == "ALREADY_LENT"
    assert rq.overdue(app, u["archivist"]) == []
    assert [x["id"] for x in rq.overdue(app, u["archivist"], soon_days=10)] == [r["id"]]
    late = dt.datetime.now(dt.UTC) + dt.timedelta(days=15)
    od = rq.overdue(app, u["archivist"], now=late)
    assert [x["id"] for x in od] == [r["id"]] and od[0]["days_overdue"] >= 5 and "催还" in od[0]["reminder"]
    with pytest.raises(PermissionDenied):
        rq.overdue(app, u["reader"])
    back = rq.return_loan(app, u["archivist"], r["id"], "完好", now=late)
    assert back["status"] == "returned" and back["loan"]["received_by"] == "chenjing"
    assert rq.overdue(app, u["archivist"], now=late) == []
    with pytest.raises(StateError) as ei:
        rq.return_loan(app, u["archivist"], r["id"])
    assert ei.value.code == "NOT_LENT"
    assert rq.lend(app, u["archivist"], r2["id"], due=today + dt.timedelta(days=3))["status"] == "lent"
    assert [(a, o) for a, o, _ in _events(app, r["id"])] == [
        ("request.create", "success"), ("loan.lend", "failure"), ("request.approve", "success"),
        ("request.approve", "success"), ("request.grant", "success"), ("loan.lend", "denied"), ("loan.lend", "success"),
        ("request.use", "success"), ("loan.return", "success"), ("loan.return", "failure")]


def test_effect_is_recorded(app, people):
    u = people
    rec = _record(app, "公开的决定")
    r = rq.create_request(app, u["low"], rec, "view", "落实政策")
    with pytest.raises(ValidationFailed) as ei:
        rq.record_effect(app, u["low"], r["id"], "很好")
    assert ei.value.code == "BAD_EFFECT"
    with pytest.raises(PermissionDenied):
        rq.record_effect(app, u["reader"], r["id"], "有效")  # neither the requester nor keeping the register
    v = rq.record_effect(app, u["low"], r["id"], "有效", "据此落实了退休待遇")
    assert (v["effect"], v["effect_note"], v["effect_by"]) == ("有效", "据此落实了退休待遇", "public")
    assert rq.record_effect(app, u["archivist"], r["id"], "一般")["effect_by"] == "chenjing"
    pending = rq.create_request(app, u["reader"], _record(app, "内部的报告", "内部"), "view", "工作查考")
    with pytest.raises(StateError) as se:
        rq.record_effect(app, u["reader"], pending["id"], "有效")
    assert se.value.code == "NOT_USED"
    assert [a for a, *_ in _events(app, r["id"])][-2:] == ["request.effect", "request.effect"]


def test_register_is_complete_and_exported(any_app):
    app = any_app
    u = _people(app)
    a = rq.create_request(app, u["low"], _record(app, "公开的办法"), "view", "个人取证", "办理公证")
    rq.record_effect(app, u["low"], a["id"], "有效", "公证已办")
    b = rq.create_request(app, u["reader"], _record(app, "秘密的方案", "秘密"), "copy", "学术研究")
    rq.approve(app, u["archivist"], b["id"])
    rq.approve(app, u["head"], b["id"], "限复制一份")
    rq.approve(app, u["leader"], b["id"])
    c = rq.create_request(app, u["reader"], _record(app, "内部的计划", "内部"), "view", "工作查考")
    rq.refuse(app, u["head"], c["id"], "不属利用范围")
    with pytest.raises(PermissionDenied):
        rq.register(app, u["leader"])
    reg = rq.register(app, u["archivist"])
    assert [x["id"] for x in reg["items"]] == [a["id"], b["id"], c["id"]]
    assert reg["items"][1]["status"] == "approved" and reg["items"][2]["status"] == "refused"
    assert rq.register(app, u["archivist"], date_to="2000-01-01")["total"] == 0
    wb = openpyxl.load_workbook(io.BytesIO(rq.register_xlsx(app, u["head"])))
    ws = wb["利用登记"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][0].startswith("档案利用登记表")
    header = list(rows[1])
    assert header[:6] == ["序号", "申请编号", "申请日期", "利用者", "档号", "题名"] and "利用效果" in header
    data = [dict(zip(header, r, strict=True)) for r in rows[2:]]
    assert [d["申请编号"] for d in data] == [a["id"], b["id"], c["id"]]
    assert data[0]["利用目的"] == "个人取证" and data[0]["目的说明"] == "办理公证" and data[0]["利用效果"] == "有效"
    assert data[0]["审批"] == "无需审批" and data[0]["题名"] == "公开的办法"
    assert "CHENJING 同意" in data[1]["审批"] and "限复制一份" in data[1]["审批"] and "ZHAOQIANG 同意" in data[1]["审批"]
    assert data[1]["利用方式"].startswith("复制") and data[1]["密级"] == "秘密"
    assert data[2]["状态"] == "未准予" and "不属利用范围" in data[2]["审批"]
    # trimmed: a register keeper of lower clearance does not see the 秘密 request
    low_keeper = make_user(app, "keeper", ["archivist"], "内部")
    assert [x["id"] for x in rq.register(app, low_keeper)["items"]] == [a["id"], c["id"]]
    exports = list_events(app, Actor.system(), action="request.export", audit_the_view=False)
    assert len(exports) == 1 and exports[0]["detail"]["count"] == 3


def test_rules_are_edited_by_the_records_head(app, people):
    u = people
    with pytest.raises(PermissionDenied):
        rq.set_rules(app, u["archivist"], PRESET_RULES.as_dict())
    with pytest.raises(ValidationFailed) as ei:
        rq.set_rules(app, u["head"], {"rules": [{"kind": "view", "steps": ["reader"]}]})
    assert ei.value.problems[0].field == "rules[0].steps"
    new = PRESET_RULES.as_dict()
    new["rules"][0]["steps"] = ["archivist"]  # 公开 view now needs the archivist
    got = rq.set_rules(app, u["head"], new)
    assert got["custom"] and got["rules"][0]["steps"] == ["archivist"]
    r = rq.create_request(app, u["low"], _record(app, "公开的规定"), "view", "工作查考")
    assert r["status"] == "pending" and r["current_role"] == "archivist"
    ev = list_events(app, Actor.system(), action="request.rules", audit_the_view=False)
    assert [e["outcome"] for e in ev] == ["success", "failure", "denied"]


# ---------------------------------------------------------------- the command line


def test_cli_request_flow(tmp_path):
    import json

    from typer.testing import CliRunner

    from dangan.cli import app as cli

    runner, d = CliRunner(), str(tmp_path / "data")
    assert runner.invoke(cli, ["--data", d, "init", "--demo", "--demo-size", "20"]).exit_code == 0

    def run(user, *args):
        return runner.invoke(cli, ["--data", d, "--user", user, *args], env={"DANGAN_PASSWORD": "Dangan@2026"})

    def js(user, *args):
        r = run(user, *args, "--json")
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    from dangan.services.context import Dangan

    a = Dangan.open(d)
    with a.read_sessions() as s:
        rec = {"id": s.scalar(select(Record.id).where(Record.state == "filed", Record.security_level == "公开",
                                                      Record.level == "item").order_by(Record.id))}
    a.close()
    v = js("reader", "request", "create", str(rec["id"]), "--kind", "borrow", "--purpose", "编史修志")
    assert v["status"] == "pending" and v["current_role"] == "archivist"
    r = run("reader", "request", "approve", str(v["id"]))
    assert r.exit_code == 1 and "PERMISSION_DENIED" in r.output and "Traceback" not in r.output
    assert [x["id"] for x in js("dangan", "request", "queue")] == [v["id"]]
    assert "待我审批（1 项）" in run("dangan", "request", "queue").output
    run("dangan", "request", "approve", str(v["id"]))
    r = run("head", "request", "refuse", str(v["id"]))
    assert r.exit_code == 1 and "REASON_REQUIRED" in r.output
    assert "已准予" in run("head", "request", "approve", str(v["id"]), "--reason", "同意").output
    assert "应于" in run("dangan", "request", "lend", str(v["id"])).output
    assert js("dangan", "request", "overdue") == []
    assert "已归还" in run("dangan", "request", "return", str(v["id"]), "--note", "完好").output
    assert js("reader", "request", "effect", str(v["id"]), "有效", "--note", "写入大事记")["effect"] == "有效"
    assert js("reader", "request", "list")[0]["status"] == "returned"
    out = tmp_path / "登记.xlsx"
    assert run("head", "request", "register", "--xlsx", str(out)).exit_code == 0
    rows = list(openpyxl.load_workbook(out)["利用登记"].iter_rows(values_only=True))
    assert len(rows) == 3 and rows[2][1] == v["id"] and rows[2][-2] == "有效"
    assert js("dangan", "request", "register")["total"] == 1
    assert "无需审批" in run("reader", "request", "rules").output


# ---------------------------------------------------------------- the record's state follows its paper original


def test_a_lent_record_shows_on_loan_until_it_is_returned(any_app):
    from dangan.services.records import RecordFilter, get_record, list_records, transition

    app = any_app
    u = _people(app)
    rec = _record(app, "纸质的任免文件")
    r = rq.create_request(app, u["reader"], rec, "borrow", "工作查考")
    rq.approve(app, u["archivist"], r["id"])
    rq.approve(app, u["head"], r["id"])
    rq.lend(app, u["archivist"], r["id"])
    got = get_record(app, u["archivist"], rec)
    assert (got["state"], got["state_label"]) == ("on_loan", "借出") and got["archival_code"]
    listed = list_records(app, u["archivist"], RecordFilter(state="on_loan"), audit=False)["items"]
    assert [x["id"] for x in listed] == [rec] and listed[0]["state_label"] == "借出"
    # a record on loan cannot be lent again, nor moved by the filing transitions (no second 档号)
    r2 = rq.create_request(app, u["leader"], rec, "borrow", "编史修志")
    rq.approve(app, u["archivist"], r2["id"])
    rq.approve(app, u["head"], r2["id"])
    with pytest.raises(StateError) as ei:
        rq.lend(app, u["archivist"], r2["id"])
    assert ei.value.code == "ALREADY_LENT"
    with pytest.raises(StateError) as ei:
        transition(app, u["archivist"], rec, "pending")
    assert ei.value.code == "INVALID_TRANSITION"
    assert get_record(app, u["archivist"], rec)["archival_code"] == got["archival_code"]
    # viewing the electronic record is not held up by the paper being out
    assert rq.create_request(app, u["low"], rec, "view", "工作查考")["status"] == "approved"
    rq.return_loan(app, u["archivist"], r["id"], "完好")
    assert get_record(app, u["archivist"], rec)["state"] == "filed"
    moves = [(e["detail"]["from_state"], e["detail"]["to_state"], e["actor"]) for e in reversed(list_events(
        app, Actor.system(), object_type="record", object_id=str(rec), action="record.transition", audit_the_view=False))]
    assert moves == [("filed", "on_loan", "chenjing"), ("on_loan", "filed", "chenjing")]
    assert rq.lend(app, u["archivist"], r2["id"])["status"] == "lent"  # back on the shelf: it may go out again
    assert get_record(app, u["archivist"], rec)["state"] == "on_loan"


def test_a_record_on_loan_stays_in_the_holdings(app):
    """借出 is the paper original's whereabouts, not a new life stage: the record stays in the 归档文件目录, in the
    filed counts, and its metadata may be corrected as a filed record's may (with a reason)."""
    from dangan.services.browse import dashboard
    from dangan.services.outputs import catalogue
    from dangan.services.records import RecordFilter, get_record, update_record

    u = _people(app)
    rec = _record(app, "借出期间仍在目录中的文件")
    r = rq.create_request(app, u["reader"], rec, "borrow", "工作查考")
    rq.approve(app, u["archivist"], r["id"])
    rq.approve(app, u["head"], r["id"])
    rq.lend(app, u["archivist"], r["id"])
    stream, _mt, _name = catalogue(app, u["archivist"], RecordFilter(fonds="Z109", category="WS"))
    cells = [c for row in openpyxl.load_workbook(stream).active.iter_rows(values_only=True) for c in row]
    assert "借出期间仍在目录中的文件" in cells
    with pytest.raises(ValidationFailed):  # as for a filed record: a change needs its reason
        update_record(app, u["archivist"], rec, {"responsible": "示范市档案馆"})
    update_record(app, u["archivist"], rec, {"responsible": "示范市档案馆"}, reason="更正责任者")
    got = get_record(app, u["archivist"], rec)
    assert got["state"] == "on_loan" and got["responsible"] == "示范市档案馆"
    years = dashboard(app, u["archivist"])["filed_by_year"]
    assert sum(y["count"] for y in years) >= 1


def test_only_a_filed_record_goes_out_on_loan(app, people):
    u = people
    rec = _record(app, "纸质的冻结档案")
    r = rq.create_request(app, u["reader"], rec, "borrow", "工作查考")
    rq.approve(app, u["archivist"], r["id"])
    rq.approve(app, u["head"], r["id"])
    with app.sessions() as s, s.begin():  # a legal hold (冻结) after the approval
        s.execute(update(Record).where(Record.id == rec).values(state="frozen"))
    with pytest.raises(StateError) as ei:
        rq.lend(app, u["archivist"], r["id"])
    assert ei.value.code == "INVALID_TRANSITION" and "冻结" in ei.value.message
    assert rq.my_requests(app, u["reader"])[0]["status"] == "approved"  # nothing changed
    with app.read_sessions() as s:
        assert s.get(Record, rec).state == "frozen"


def test_page_helpers_form_queue_history_and_lending_desk(any_app):
    app = any_app
    u = _people(app)
    clerk = make_user(app, "wangming", ["clerk"], "内部", depts=["BGS", "CWK"])
    rec = _record(app, "纸质的机构沿革", "内部")
    form = rq.request_form(app, u["reader"], rec)
    assert form["record"]["state_label"] == "已归档" and form["out_until"] is None
    assert [s["role"] for s in form["routes"]["borrow"]["steps"]] == ["archivist", "records_head"]
    assert form["routes"]["view"]["steps"][0]["role_label"] == "档案部门负责人"
    with pytest.raises(NotFound):
        rq.request_form(app, u["low"], rec)  # above clearance: as if missing
    mine = rq.create_request(app, clerk, rec, "borrow", "工作查考")
    page = rq.approvals_page(app, u["archivist"])
    assert [(v["id"], v["requester_departments"]) for v in page["queue"]] == [(mine["id"], "办公室、财务科")]
    rq.approve(app, u["archivist"], mine["id"], "可以")
    rq.approve(app, u["head"], mine["id"])
    hist = rq.approvals_page(app, u["archivist"])["history"]
    assert [(h["id"], h["my_decision_label"], h["my_reason"], h["status"]) for h in hist] == [
        (mine["id"], "同意", "可以", "approved")]
    desk = rq.lending_desk(app, u["archivist"])
    assert [v["id"] for v in desk["waiting"]] == [mine["id"]] and desk["out"] == []
    rq.lend(app, u["archivist"], mine["id"], due=rq._today() + dt.timedelta(days=2))
    assert rq.request_form(app, u["reader"], rec)["out_until"] == (rq._today() + dt.timedelta(days=2)).isoformat()
    late = dt.datetime.now(dt.UTC) + dt.timedelta(days=5)
    desk = rq.lending_desk(app, u["archivist"], now=late)
    assert [(v["id"], v["days_overdue"]) for v in desk["out"]] == [(mine["id"], 3)] and desk["overdue"] == 1
    for q in ("WANGMING", "沿革", desk["out"][0]["archival_code"].lower()):
        assert [v["id"] for v in rq.lending_desk(app, u["archivist"], q)["out"]] == [mine["id"]], q
    assert rq.lending_desk(app, u["archivist"], "%")["out"] == []  # LIKE characters are plain text
    with pytest.raises(PermissionDenied):
        rq.lending_desk(app, u["reader"])
    rq.return_loan(app, u["archivist"], mine["id"], "完好")
    desk = rq.lending_desk(app, u["archivist"])
    assert desk["out"] == [] and desk["returned"][0]["loan"]["note"] == "完好"


# ---------------------------------------------------------------- found in review: periods, separation of duties


def test_a_grant_is_not_usable_before_its_period_begins(app):
    from dangan.services import viewer
    from dangan.services.files import open_file
    from test_viewer import PDF, people, record

    u = people(app)
    rec = record(app, "内部通知", [("通知.pdf", PDF)])
    today = rq._today()
    start, end = today + dt.timedelta(days=30), today + dt.timedelta(days=40)
    r = rq.create_request(app, u["reader"], rec["id"], "copy", "工作查考", period_from=start.isoformat(),
                          period_to=end.isoformat())
    for st in r["route"]:
        r = rq.approve(app, u["head"] if st["role"] == "records_head" else u["archivist"], r["id"], "同意")
    assert r["status"] == "approved"
    with pytest.raises(PermissionDenied) as e:
        rq.check_grant(app, u["reader"], rec["id"], "copy")
    assert e.value.code == "GRANT_NOT_YET" and start.isoformat() in e.value.message
    with pytest.raises(PermissionDenied) as e:
        open_file(app, u["reader"], rec["files"][0]["id"])
    assert e.value.code == "GRANT_NOT_YET"
    assert not viewer.may_download(app, u["reader"], rec["id"])
    assert not viewer.may_view(app, u["reader"], rec["id"])
    # inside the period it works, and the early refusal did not mark the grant 已过期
    during = dt.datetime.combine(start + dt.timedelta(days=1), dt.time(10), rq.CST)
    assert rq.check_grant(app, u["reader"], rec["id"], "copy", now=during)["status"] == "approved"


def test_a_borrow_is_not_lent_before_its_period(app):
    u = _people(app)
    rec = _record(app, "纸质的任免文件")
    today = rq._today()
    r = rq.create_request(app, u["reader"], rec, "borrow", "工作查考",
                          period_from=(today + dt.timedelta(days=3)).isoformat(),
                          period_to=(today + dt.timedelta(days=10)).isoformat())
    rq.approve(app, u["archivist"], r["id"])
    rq.approve(app, u["head"], r["id"])
    with pytest.raises(StateError) as e:
        rq.lend(app, u["archivist"], r["id"])
    assert e.value.code == "GRANT_NOT_YET"


def test_one_person_cannot_approve_two_steps_of_a_route(app):
    rid = _record(app, "秘密会议纪要", "秘密")
    reader = make_user(app, "sunlei", ["reader"], "机密")
    both_roles = make_user(app, "boss", ["records_head", "leader"], "机密", depts=["BGS"])
    leader = make_user(app, "lead2", ["leader"], "机密", depts=["BGS"])
    r = rq.create_request(app, reader, rid, "view", "工作查考")
    assert [s["role"] for s in r["route"]] == ["records_head", "leader"]
    r = rq.approve(app, both_roles, r["id"], "同意")
    with pytest.raises(PermissionDenied) as e:
        rq.approve(app, both_roles, r["id"], "同意")
    assert e.value.code == "ALREADY_DECIDED_BY_YOU"
    assert rq.approve(app, leader, r["id"], "同意")["status"] == "approved"


@pytest.mark.parametrize("state", ["destroyed", "transferred"])
def test_a_request_is_not_approved_once_its_record_is_gone(app, state):
    rid = _record(app, "内部通知", "内部")
    reader = make_user(app, "sunlei", ["reader"], "机密")
    head = make_user(app, "liufang", ["records_head"], "机密", depts=["BGS"])
    r = rq.create_request(app, reader, rid, "view", "工作查考")
    with app.sessions.begin() as s:
        s.execute(update(Record).where(Record.id == rid).values(state=state))
    with pytest.raises(StateError) as e:
        rq.approve(app, head, r["id"], "同意")
    assert e.value.code == ("RECORD_DESTROYED" if state == "destroyed" else "RECORD_TRANSFERRED")
    assert rq.my_requests(app, reader)[0]["status"] == "pending"


def test_the_borrower_is_reminded_to_return_on_time(app):
    """催还 reaches the borrower: due within 3 days, then overdue, on the home page and 我的申请."""
    u = _people(app)
    rec = _record(app, "纸质的任免文件")
    r = rq.create_request(app, u["reader"], rec, "borrow", "工作查考")
    rq.approve(app, u["archivist"], r["id"])
    rq.approve(app, u["head"], r["id"])
    due = rq._today() + dt.timedelta(days=10)
    rq.lend(app, u["archivist"], r["id"], due=due.isoformat())
    assert rq.my_loans_due(app, u["reader"]) == []            # not yet
    soon = dt.datetime.combine(due - dt.timedelta(days=2), dt.time(9), rq.CST)
    [loan] = rq.my_loans_due(app, u["reader"], now=soon)
    assert not loan["overdue"] and due.isoformat() in loan["reminder"]
    late = dt.datetime.combine(due + dt.timedelta(days=4), dt.time(9), rq.CST)
    [loan] = rq.my_loans_due(app, u["reader"], now=late)
    assert loan["overdue"] and loan["days_overdue"] == 4 and "已逾期 4 天" in loan["reminder"]
    assert rq.my_loans_due(app, u["archivist"], now=late) == []   # only the borrower's own loans
    rq.return_loan(app, u["archivist"], r["id"], "完好")
    assert rq.my_loans_due(app, u["reader"], now=late) == []
