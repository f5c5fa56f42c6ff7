"""Department pre-filing: plans and reminders, submit / return with reason / accept in arranged order, the
retention schedule's suggestion, and the filing-check hook that the 四性检测 engine plugs into."""

import datetime as dt

import pytest
from sqlalchemy import select

from dangan.db.models import Record
from dangan.errors import Conflict, NotFound, PermissionDenied, StateError, ValidationFailed
from dangan.services import prefiling, schedule
from dangan.services.records import RecordInput, create_record, get_record, transition
from test_identity import make_user

META = {"title": "关于调整值班安排的通知", "year": 2024, "retention_period": "D10", "responsible": "办公室",
        "date": "2024-03-05", "doc_type": "通知"}


@pytest.fixture
def people(app):
    return {
        "clerk": make_user(app, "bgsclerk", ["clerk"], depts=["BGS"]),
        "cwclerk": make_user(app, "cwkclerk", ["clerk"], depts=["CWK"]),
        "archivist": make_user(app, "archivist", ["archivist"], clearance="机密"),
        "reader": make_user(app, "reader", ["reader"]),
    }


def register(app, actor, dept="BGS", **meta):
    return create_record(app, actor, RecordInput("Z109", "WS", {**META, **meta}, department=dept))


def test_clerk_submits_archivist_returns_with_reason_then_accepts(app, people):
    clerk, arch = people["clerk"], people["archivist"]
    r = register(app, clerk)
    assert r["state"] == "pre_filing"
    transition(app, clerk, r["id"], "pending")
    v = prefiling.return_record(app, arch, r["id"], "缺少处理单，请补充后重新提交")
    assert v["state"] == "pre_filing"
    seen = get_record(app, clerk, r["id"])
    assert seen["return_reason"] == "缺少处理单，请补充后重新提交"
    v = transition(app, clerk, r["id"], "pending")
    assert v["return_reason"] is None and v["submitted_by"] == "bgsclerk"
    out = prefiling.accept(app, arch, [r["id"]])
    assert out["refused"] == [] and out["accepted"][0]["archival_code"] == "Z109-WS·2024-D10-BGS-0001"
    with pytest.raises(ValidationFailed) as ei:
        prefiling.return_record(app, arch, r["id"], "  ")
    assert ei.value.code == "REASON_REQUIRED"


def test_clerk_cannot_accept_or_act_for_another_department(app, people):
    r = register(app, people["clerk"])
    transition(app, people["clerk"], r["id"], "pending")
    with pytest.raises(PermissionDenied):
        prefiling.accept(app, people["clerk"], [r["id"]])
    with pytest.raises(PermissionDenied):
        register(app, people["cwclerk"], dept="BGS")
    with pytest.raises(NotFound):  # another department's record answers like a missing one
        transition(app, people["cwclerk"], r["id"], "pre_filing", reason="x")


def test_accept_numbers_in_arranged_order_and_reports_refusals(app, people):
    arch = people["archivist"]
    dates = ["2024-05-01", "2024-01-10", "2024-03-03"]
    ids = []
    for i, d in enumerate(dates):
        r = register(app, arch, title=f"通知{i}", date=d)
        transition(app, arch, r["id"], "pending")
        ids.append(r["id"])
    prefiling.auto_order(app, arch, ids)  # by date
    out = prefiling.accept(app, arch, list(reversed(ids)) + [999999])
    got = {a["id"]: a["archival_code"] for a in out["accepted"]}
    assert got[ids[1]].endswith("-0001") and got[ids[2]].endswith("-0002") and got[ids[0]].endswith("-0003")
    assert [r["code"] for r in out["refused"]] == ["RECORD_NOT_FOUND"]
    with pytest.raises(StateError):  # filed records cannot be re-ordered
        prefiling.set_order(app, arch, ids)


def test_manual_order_overrides_dates(app, people):
    arch = people["archivist"]
    ids = []
    for i, d in enumerate(["2024-01-01", "2024-02-01"]):
        r = register(app, arch, title=f"通知{i}", date=d)
        transition(app, arch, r["id"], "pending")
        ids.append(r["id"])
    prefiling.set_order(app, arch, [ids[1], ids[0]])
    q = prefiling.queue(app, arch, "Z109", "WS")
    assert [it["id"] for it in q["items"]] == [ids[1], ids[0]]
    out = prefiling.accept(app, arch, ids)
    codes = {a["id"]: a["archival_code"] for a in out["accepted"]}
    assert codes[ids[1]].endswith("-0001") and codes[ids[0]].endswith("-0002")


def test_filing_checks_hook_refuses_and_changes_nothing(app, people):
    arch = people["archivist"]
    r = register(app, arch)
    transition(app, arch, r["id"], "pending")
    calls = []

    def check(a, actor, record_id):
        calls.append(record_id)
        return {"name": "authenticity", "label": "真实性检测", "passed": False,
                "problems": [{"field": "files", "code": "NO_FILES", "message": "没有电子文件"}]}

    app.filing_checks.append(check)
    out = prefiling.accept(app, arch, [r["id"]])
    assert out["accepted"] == [] and out["refused"][0]["code"] == "FILING_CHECK_FAILED"
    assert out["refused"][0]["problems"][0]["code"] == "NO_FILES"
    assert get_record(app, arch, r["id"])["state"] == "pending" and calls == [r["id"]]
    app.filing_checks[:] = [lambda a, actor, rid: {"name": "ok", "passed": True, "problems": []}]
    assert prefiling.accept(app, arch, [r["id"]])["accepted"][0]["archival_code"].endswith("-0001")


def test_plans_progress_and_reminders(app, people):
    arch, clerk = people["archivist"], people["clerk"]
    today = dt.date(2025, 3, 1)
    plan = prefiling.create_plan(app, arch, "Z109", "BGS", "WS", 2024, "2025-03-20", expected_count=2, note="文书年度归档")
    prefiling.create_plan(app, arch, "Z109", "CWK", "WS", 2024, "2025-02-01")
    with pytest.raises(Conflict):
        prefiling.create_plan(app, arch, "Z109", "BGS", "WS", 2024, "2025-06-30")
    with pytest.raises(ValidationFailed) as ei:
        prefiling.create_plan(app, arch, "Z109", "JJK", "WS", 24, "31/03/2025", expected_count=-1)
    assert {p.field for p in ei.value.problems} == {"year", "deadline", "expected_count"}
    with pytest.raises(PermissionDenied):
        prefiling.create_plan(app, clerk, "Z109", "BGS", "WS", 2025, "2026-03-31")
    r = register(app, clerk)
    transition(app, clerk, r["id"], "pending")
    mine = prefiling.list_plans(app, clerk, today=today)
    assert [p["department_code"] for p in mine] == ["BGS"]  # a clerk sees only their department's plans
    assert mine[0]["counts"]["pending"] == 1 and mine[0]["status"] == "due_soon" and mine[0]["days_left"] == 19
    rem = prefiling.reminders(app, arch, today=today)
    assert {p["status_label"] for p in rem} == {"还剩 19 天", "已逾期 28 天"}
    assert prefiling.list_plans(app, people["reader"]) == []
    prefiling.update_plan(app, arch, plan["id"], deadline="2025-12-31")
    assert prefiling.reminders(app, clerk, today=today) == []


def test_schedule_suggests_and_fills_missing_retention(app, people):
    arch = people["archivist"]
    s = schedule.suggest_retention(app, arch, "Z109", "WS", {"title": "关于印发《档案管理办法》的通知", "doc_type": "通知"})
    assert s["retention_period"] == "Y" and "令第8号" in s["explanation"] and "办法" in s["matched"]
    meta = {k: v for k, v in META.items() if k != "retention_period"}
    r = create_record(app, arch, RecordInput("Z109", "WS", meta, department="BGS"))
    assert r["retention_period"] == "D10"  # 值班 → 临时性、事务性文件材料
    no_rule = {**meta, "title": "某某", "doc_type": "其他"}
    with pytest.raises(ValidationFailed) as ei:
        create_record(app, arch, RecordInput("Z109", "WS", no_rule, department="BGS"))
    assert [p.field for p in ei.value.problems] == ["retention_period"]


def test_schedule_replace_is_validated_and_needs_the_right(app, people):
    arch = people["archivist"]
    with pytest.raises(ValidationFailed) as ei:
        schedule.set_schedule(app, arch, "Z109", "WS", [{"item": "", "retention_period": "D99X"}, "x"])
    assert {p.field for p in ei.value.problems} == {"rules[1].item", "rules[1].retention_period", "rules[2]"}
    with pytest.raises(PermissionDenied):
        schedule.set_schedule(app, people["clerk"], "Z109", "WS", [])
    out = schedule.set_schedule(app, arch, "Z109", "WS",
                                [{"item": "招商引资项目文件", "retention_period": "Y", "keywords": "招商，引资"}])
    assert out["rules"][0]["keywords"] == ["招商", "引资"]
    sug = schedule.suggest_retention(app, arch, "Z109", "WS", {"title": "招商项目"})
    assert sug["retention_period"] == "Y"
    with app.read_sessions() as s:
        assert s.scalar(select(Record.id)) is None


def test_same_sender_ref_submitted_concurrently_is_stored_once_on_both_engines(any_app):
    import threading

    from sqlalchemy import func

    from dangan.services.context import Actor

    results, errors = [], []
    barrier = threading.Barrier(6)

    def go():
        barrier.wait()
        try:
            results.append(create_record(any_app, Actor.admin(), RecordInput(
                "Z109", "WS", {**META, "title": "并发提交"}, department="BGS", sender_ref="OA-SAME")))
        except Exception as e:  # noqa: BLE001 - the assertion below shows it
            errors.append(e)

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len({r["id"] for r in results}) == 1
    with any_app.read_sessions() as s:
        assert s.scalar(select(func.count()).select_from(Record)) == 1
