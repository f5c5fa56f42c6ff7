"""Security trimming: a user never learns that a record above their clearance or outside their scope exists."""

import io

import pytest

from dangan.errors import NotFound, PermissionDenied, ValidationFailed
from dangan.services import identity as idn
from dangan.services.audit import list_events
from dangan.services.context import Actor
from dangan.services.files import NewFile, add_files, get_file, list_files, open_file
from dangan.services.records import (
    RecordFilter,
    RecordInput,
    create_record,
    facets,
    find_by_code,
    get_record,
    list_records,
    transition,
    update_record,
)
from test_identity import make_user

BASE = {"year": 2024, "retention_period": "D30", "responsible": "办公室", "date": "2024-06-01"}


@pytest.fixture
def world(any_app):
    """Records of every level in two departments, and users of each kind."""
    app = any_app
    sysop = Actor.system()
    recs = {}
    for level in ("公开", "内部", "秘密", "机密"):
        for dept in ("BGS", "CWK"):
            meta = {**BASE, "title": f"{dept}{level}文件", "security_level": level}
            if level in ("秘密", "机密"):
                meta["secrecy_period"] = "10年"
            recs[(level, dept)] = create_record(app, sysop, RecordInput("Z109", "WS", meta, department=dept, state="filed"),
                                                [NewFile(f"{dept}{level}.pdf", io.BytesIO(f"{dept}{level}".encode()))])
    users = {
        "archivist_secret": make_user(app, "zhuanzhi", ["archivist"], "秘密"),
        "archivist_public": make_user(app, "zhuanzhi2", ["archivist"], "公开"),
        "clerk_bgs": make_user(app, "clerk", ["clerk"], "机密", depts=["BGS"]),
        "reader": make_user(app, "reader", ["reader"], "内部"),
        "auditor": make_user(app, "aud", ["auditor"], "机密"),
    }
    return app, recs, users


def total(app, actor, **flt):
    return list_records(app, actor, RecordFilter(fonds="Z109", **flt), audit=False)["total"]


def test_counts_and_facets_never_include_hidden_records(world):
    app, recs, u = world
    assert total(app, Actor.system()) == 8
    assert total(app, u["archivist_secret"]) == 6      # 公开, 内部, 秘密 × 2 departments
    assert total(app, u["archivist_public"]) == 2
    assert total(app, u["reader"]) == 4
    assert total(app, u["clerk_bgs"]) == 4             # own department only, up to 机密
    assert total(app, u["auditor"]) == 0               # 三员 read no content
    f = facets(app, u["archivist_public"], RecordFilter(fonds="Z109"))
    assert sum(x["count"] for x in f["year"]) == 2 and {x["value"] for x in f["state"]} == {"filed"}
    # a search that would only match hidden records answers like one that matches nothing
    assert total(app, u["archivist_public"], q="机密") == 0 == total(app, u["archivist_public"], q="不存在的词")


def test_hidden_record_is_indistinguishable_from_a_missing_one(world):
    app, recs, u = world
    hidden = recs[("机密", "BGS")]
    with pytest.raises(NotFound) as a:
        get_record(app, u["archivist_secret"], hidden["id"])
    with pytest.raises(NotFound) as b:
        get_record(app, u["archivist_secret"], 999_999)
    assert (a.value.code, a.value.status) == (b.value.code, b.value.status)
    assert a.value.message.replace(str(hidden["id"]), "N") == b.value.message.replace("999999", "N")
    with pytest.raises(NotFound):
        find_by_code(app, u["archivist_secret"], hidden["archival_code"])
    fid = hidden["files"][0]["id"]
    for call in (lambda: get_file(app, u["reader"], fid), lambda: open_file(app, u["reader"], fid),
                 lambda: list_files(app, u["reader"], hidden["id"])):
        with pytest.raises(NotFound):
            call()
    # the 安全审计员 sees the denial in the trail
    denied = [e for e in list_events(app, Actor.system(), object_type="record", object_id=str(hidden["id"]),
                                     audit_the_view=False) if e["outcome"] == "denied"]
    assert denied and denied[0]["actor"] == "zhuanzhi"


def test_reader_may_view_but_not_download_or_change(world):
    app, recs, u = world
    r = recs[("内部", "CWK")]
    assert get_record(app, u["reader"], r["id"])["title"] == "CWK内部文件"
    with pytest.raises(PermissionDenied) as ei:  # the original needs a grant to copy (services/viewer.py)
        open_file(app, u["reader"], r["files"][0]["id"])
    assert ei.value.code == "NO_GRANT"
    with pytest.raises(NotFound):
        update_record(app, u["reader"], r["id"], {"title": "改"}, reason="x")
    with pytest.raises(PermissionDenied):
        create_record(app, u["reader"], RecordInput("Z109", "WS", {**BASE, "title": "x"}, department="BGS"))


def test_clerk_works_only_in_own_department_before_filing(world):
    app, recs, u = world
    clerk = u["clerk_bgs"]
    mine = create_record(app, clerk, RecordInput("Z109", "WS", {**BASE, "title": "办公室预归档"}, department="BGS"))
    assert transition(app, clerk, mine["id"], "pending")["state"] == "pending"
    with pytest.raises(NotFound):
        transition(app, clerk, mine["id"], "filed")       # acceptance is the archivist's
    with pytest.raises(PermissionDenied):
        create_record(app, clerk, RecordInput("Z109", "WS", {**BASE, "title": "财务科的"}, department="CWK"))
    with pytest.raises(PermissionDenied):
        create_record(app, clerk, RecordInput("Z109", "WS", {**BASE, "title": "直接归档"}, department="BGS", state="filed"))
    filed_own = recs[("公开", "BGS")]
    assert get_record(app, clerk, filed_own["id"])["id"] == filed_own["id"]   # may read own department's
    with pytest.raises(NotFound):
        add_files(app, clerk, filed_own["id"], [NewFile("x.pdf", io.BytesIO(b"x"))], reason="补充")
    archivist = u["archivist_secret"]
    assert transition(app, archivist, mine["id"], "filed")["archival_code"]


def test_no_record_above_clearance_or_ceiling(world):
    app, recs, u = world
    with pytest.raises(ValidationFailed) as ei:
        create_record(app, u["archivist_secret"], RecordInput("Z109", "WS", {**BASE, "title": "x", "security_level": "机密",
                                                                           "secrecy_period": "10年"}, department="BGS"))
    assert ei.value.problems[0].code == "ABOVE_CLEARANCE"
    head = make_user(app, "head", ["records_head"], "机密")
    with pytest.raises(ValidationFailed) as ei:
        create_record(app, head, RecordInput("Z109", "WS", {**BASE, "title": "x", "security_level": "绝密",
                                                           "secrecy_period": "30年"}, department="BGS"))
    assert ei.value.problems[0].code == "ABOVE_CEILING"


def test_token_scope(world):
    app, recs, u = world
    make_user(app, "oa", ["clerk"], "内部", depts=["BGS", "CWK"])
    raw = idn.create_token(app, Actor.system(), "OA", "oa", actions=["record.create", "file.add"], categories=["WS"],
                           departments=["BGS"])["token"]
    oa = idn.authenticate_token(app, raw)
    ok = create_record(app, oa, RecordInput("Z109", "WS", {**BASE, "title": "OA 推送"}, department="BGS", sender_ref="OA-1"))
    assert ok["state"] == "pre_filing"
    with pytest.raises(PermissionDenied):
        create_record(app, oa, RecordInput("Z109", "WS", {**BASE, "title": "别的部门"}, department="CWK"))
    with pytest.raises(PermissionDenied):
        create_record(app, oa, RecordInput("Z109", "LX", {**BASE, "title": "别的门类"}, department="BGS"))
    assert total(app, oa) == 0     # the token may submit but not read


def test_classified_series_leaves_no_gap_in_what_others_see(any_app):
    """With the 涉密件单独编号 rule, ordinary 件号 stay gapless for users who cannot see classified records."""
    from dangan.services.categories import create_category
    from dangan.services.fonds import create_fonds

    app, sysop = any_app, Actor.system()
    create_fonds(app, sysop, "Z110", "示范市档案馆")
    from dangan.services.fonds import create_department

    create_department(app, sysop, "Z110", "BGS", "办公室")
    cat = create_category(app, sysop, "Z110", "WS", code_preset="DA/T 22-2015 文书（涉密件单独编号）")
    assert "item@classified" in cat["code_patterns"]
    codes = []
    for i, level in enumerate(["公开", "秘密", "公开", "机密", "内部"]):
        meta = {**BASE, "title": f"第{i}件", "security_level": level}
        if level in ("秘密", "机密"):
            meta["secrecy_period"] = "10年"
        codes.append(create_record(app, sysop, RecordInput("Z110", "WS", meta, department="BGS", state="filed"))["archival_code"])
    assert codes == ["Z110-WS·2024-D30-BGS-0001", "Z110-WS·2024-D30-BGS·M-0001", "Z110-WS·2024-D30-BGS-0002",
                     "Z110-WS·2024-D30-BGS·M-0002", "Z110-WS·2024-D30-BGS-0003"]


def test_bulk_ingest_uses_the_classified_series_too(any_app):
    from dangan.services.categories import create_category
    from dangan.services.fonds import create_department, create_fonds
    from dangan.services.ingest import ingest_batch

    app, sysop = any_app, Actor.system()
    create_fonds(app, sysop, "Z111", "示范市档案馆")
    create_department(app, sysop, "Z111", "BGS", "办公室")
    create_category(app, sysop, "Z111", "WS", code_preset="DA/T 22-2015 文书（涉密件单独编号）")
    items = [(RecordInput("Z111", "WS", {**BASE, "title": f"第{i}件", "security_level": lv,
                                         **({"secrecy_period": "10年"} if lv == "秘密" else {})},
                          department="BGS", state="filed"), []) for i, lv in enumerate(["公开", "秘密", "公开"])]
    ingest_batch(app, sysop, items)
    page = list_records(app, sysop, RecordFilter(fonds="Z111"), audit=False)
    assert sorted(r["archival_code"] for r in page["items"]) == [
        "Z111-WS·2024-D30-BGS-0001", "Z111-WS·2024-D30-BGS-0002", "Z111-WS·2024-D30-BGS·M-0001"]
