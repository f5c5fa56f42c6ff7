"""Records through the services: registration, filing and numbering, and bad input that changes nothing."""

import io

import pytest
from sqlalchemy import func, select

from dangan.db.models import AuditEvent, File, Record
from dangan.demo.documents import make_pdf
from dangan.errors import Conflict, NotFound, StateError, UploadIncomplete, ValidationFailed
from dangan.services.audit import verify_chain
from dangan.services.files import NewFile, add_files, remove_file
from dangan.services.records import (
    RecordFilter,
    RecordInput,
    create_record,
    facets,
    get_record,
    list_records,
    transition,
    update_record,
)


@pytest.fixture
def app(any_app):
    """Every test here runs on SQLite and on PostgreSQL."""
    return any_app


GOOD = {"title": "关于做好2024年度档案归档工作的通知", "year": 2024, "retention_period": "Y", "responsible": "办公室",
        "date": "2024-03-05", "doc_number": "示政办发〔2024〕1号"}


def ws(meta=None, **kw):
    return RecordInput("Z109", "WS", {**GOOD, **(meta or {})}, department=kw.pop("department", "BGS"), **kw)


def counts(app):
    with app.read_sessions() as s:
        return (s.scalar(select(func.count()).select_from(Record)), s.scalar(select(func.count()).select_from(File)))


def blobs(app):
    return sorted(o.key for o in app.store.iter_objects())


def test_register_submit_file_assigns_gapless_codes(app, admin):
    ids = [create_record(app, admin, ws())["id"] for _ in range(3)]
    assert all(get_record(app, admin, i)["archival_code"] is None for i in ids)
    transition(app, admin, ids[0], "pending")
    codes = [transition(app, admin, i, "filed")["archival_code"] for i in ids]
    assert codes == ["Z109-WS·2024-Y-BGS-0001", "Z109-WS·2024-Y-BGS-0002", "Z109-WS·2024-Y-BGS-0003"]
    other = create_record(app, admin, ws({"retention_period": "D10"}, state="filed"))
    assert other["archival_code"] == "Z109-WS·2024-D10-BGS-0001"  # numbering restarts in each lowest class
    r = get_record(app, admin, ids[0])
    assert r["state_label"] == "已归档" and r["expiry_date"] is None
    assert create_record(app, admin, ws({"retention_period": "D10"}))["expiry_date"] == "2034-12-31"


def test_failed_filing_gives_its_number_back(app, admin):
    a = create_record(app, admin, ws())
    # a filing that fails after allocation (record not in a fileable state) rolls the counter back
    transition(app, admin, a["id"], "filed")
    with pytest.raises(StateError):
        transition(app, admin, a["id"], "filed")
    b = create_record(app, admin, ws(), )
    assert transition(app, admin, b["id"], "filed")["archival_code"].endswith("-0002")


@pytest.mark.parametrize("inp,field,code", [
    (RecordInput("Z109", "XX", GOOD, department="BGS"), None, "CATEGORY_NOT_FOUND"),
    (RecordInput("Z999", "WS", GOOD, department="BGS"), None, "FONDS_NOT_FOUND"),
    (ws({"pages": "三"}), "pages", "WRONG_TYPE"),
    (ws({"title": "长" * 20_000_00}), "title", "TOO_LONG"),
    (ws({"security_level": "普通"}), "security_level", "NOT_IN_DOMAIN"),
    (ws({"responsible": ""}), "responsible", "REQUIRED"),
    (ws({"year": 2023}), "year", "YEAR_DATE_MISMATCH"),
    (ws({"colour": "红"}), "colour", "UNKNOWN_FIELD"),
    (ws(department=None), "department", "REQUIRED"),
    (ws(department="XYZ"), "department", "NOT_FOUND"),
    (ws(level="volume"), "level", "NOT_IN_DOMAIN"),
])
def test_bad_input_changes_nothing(app, admin, inp, field, code):
    before_counts, before_blobs = counts(app), blobs(app)
    with pytest.raises((ValidationFailed, NotFound)) as ei:
        create_record(app, admin, inp, [NewFile("正文.pdf", io.BytesIO(b"%PDF-1.4 x"))])
    e = ei.value
    if field is None:
        assert e.code == code
    else:
        assert (field, code) in {(p.field, p.code) for p in e.problems}
        assert all(p.message for p in e.problems)
    assert counts(app) == before_counts and blobs(app) == before_blobs


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b.pdf", "..\\x.pdf", "", "x" * 300 + ".pdf",
                                  "bad\udcffname.pdf", "tab\x07.pdf"])
def test_bad_file_names(app, admin, name):
    with pytest.raises(ValidationFailed) as ei:
        create_record(app, admin, ws(), [NewFile(name, io.BytesIO(b"data"))])
    assert ei.value.problems[0].code == "INVALID_FILE_NAME"
    assert counts(app) == (0, 0) and blobs(app) == []


class Breaks(io.RawIOBase):
    """A client stream that dies after some bytes, like a dropped connection."""

    def __init__(self, n):
        self.left = n

    def readable(self):
        return True

    def readinto(self, b):
        if self.left <= 0:
            raise ConnectionResetError("client went away")
        k = min(len(b), self.left, 1000)
        b[:k] = b"x" * k
        self.left -= k
        return k


def test_file_that_disappears_mid_upload(app, admin):
    with pytest.raises(UploadIncomplete) as ei:
        create_record(app, admin, ws(), [NewFile("正文.pdf", Breaks(5000))])
    assert "中断" in ei.value.message
    assert counts(app) == (0, 0) and blobs(app) == []
    assert not list((app.store.root / "tmp").iterdir())


def test_short_upload_against_declared_size(app, admin):
    with pytest.raises(UploadIncomplete):
        create_record(app, admin, ws(), [NewFile("正文.pdf", io.BytesIO(b"12345"), expected_size=10)])
    assert counts(app) == (0, 0)


def test_duplicate_upload_refused_but_content_shared_between_records(app, admin):
    r = create_record(app, admin, ws(), [NewFile("正文.pdf", io.BytesIO(b"same"))])
    with pytest.raises(Conflict) as ei:
        add_files(app, admin, r["id"], [NewFile("副本.pdf", io.BytesIO(b"same"))])
    assert ei.value.code == "DUPLICATE_FILE"
    r2 = create_record(app, admin, ws(), [NewFile("正文.pdf", io.BytesIO(b"same"))])
    assert r2["files"][0]["storage_key"] == r["files"][0]["storage_key"]
    assert len(blobs(app)) == 1


def test_filed_content_is_write_once(app, admin):
    # real PDFs: filing runs the 归档环节四性检测, which refuses content that does not open
    r = create_record(app, admin, ws(), [NewFile("正文.pdf", io.BytesIO(make_pdf("通知", ["v1"])))])
    transition(app, admin, r["id"], "filed")
    with pytest.raises(StateError) as ei:
        remove_file(app, admin, r["files"][0]["id"])
    assert ei.value.code == "FILE_WRITE_ONCE"
    with pytest.raises(ValidationFailed) as ei:
        add_files(app, admin, r["id"], [NewFile("更正.pdf", io.BytesIO(b"v2"))])
    assert ei.value.code == "REASON_REQUIRED"
    added = add_files(app, admin, r["id"], [NewFile("更正.pdf", io.BytesIO(b"v2"))], reason="原件扫描不清，补充清晰版")
    assert added[0]["reason"] and len(get_record(app, admin, r["id"])["files"]) == 2
    store_file = app.store.root / r["files"][0]["storage_key"]
    assert not (store_file.stat().st_mode & 0o222)  # blobs are read-only on disk


def test_update_before_and_after_filing(app, admin):
    r = create_record(app, admin, ws())
    assert update_record(app, admin, r["id"], {"title": "新题名"})["title"] == "新题名"
    transition(app, admin, r["id"], "filed")
    with pytest.raises(ValidationFailed) as ei:
        update_record(app, admin, r["id"], {"year": 2023, "date": "2023-01-01"})
    got = {(p.field, p.code) for p in ei.value.problems}
    assert ("reason", "REQUIRED") in got and ("year", "ARCHIVAL_CODE_FIELD_LOCKED") in got
    u = update_record(app, admin, r["id"], {"doc_number": "示政办发〔2024〕2号"}, reason="文号著录错误")
    assert u["doc_number"] == "示政办发〔2024〕2号" and u["row_version"] == 4
    with app.read_sessions() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.action == "record.update").order_by(AuditEvent.seq.desc())).first()
    assert "文号著录错误" in ev.detail and "〔2024〕1号" in ev.detail
    with pytest.raises(StateError):
        update_record(app, admin, r["id"], {"title": "x"}, reason="r", expected_version=1)


def test_return_requires_reason_and_invalid_transitions(app, admin):
    r = create_record(app, admin, ws())
    with pytest.raises(StateError):
        transition(app, admin, r["id"], "pre_filing")
    transition(app, admin, r["id"], "待归档")
    with pytest.raises(ValidationFailed):
        transition(app, admin, r["id"], "预归档")
    assert transition(app, admin, r["id"], "预归档", reason="缺少处理单")["state"] == "pre_filing"


def test_volume_hierarchy(app, admin):
    vol = create_record(app, admin, RecordInput("Z109", "KU", {"title": "2017年1月记账凭证", "year": 2017, "retention_period": "D30",
                                                               "class_code": "01"}, level="volume"))
    item = RecordInput("Z109", "KU", {"title": "凭证1", "responsible": "财务科", "date": "2017-01-05"}, level="item",
                       parent_id=vol["id"], state="filed")
    with pytest.raises(StateError) as ei:
        create_record(app, admin, item)
    assert ei.value.code == "PARENT_NOT_FILED"
    assert counts(app)[0] == 1
    transition(app, admin, vol["id"], "filed")
    assert create_record(app, admin, item)["archival_code"] == "Z109-KU·01·2017-001-001"
    with pytest.raises(ValidationFailed):
        create_record(app, admin, RecordInput("Z109", "KU", {"title": "x", "responsible": "y", "date": "2017-01-01"}))


def test_sender_ref_makes_submission_idempotent(app, admin):
    a = create_record(app, admin, ws(sender_ref="OA-2024-0001"), [NewFile("正文.pdf", io.BytesIO(b"x"))])
    b = create_record(app, admin, ws(sender_ref="OA-2024-0001"), [NewFile("正文.pdf", io.BytesIO(b"x"))])
    assert a["id"] == b["id"] and counts(app) == (1, 1)


def test_list_filters_paging_and_facets(app, admin):
    for y in (2022, 2023, 2024):
        for dept in ("BGS", "CWK"):
            create_record(app, admin, ws({"year": y, "date": f"{y}-05-01"}, department=dept, state="filed"))
    page = list_records(app, admin, RecordFilter(fonds="Z109", category="WS", year=2023), limit=1)
    assert page["total"] == 2 and len(page["items"]) == 1 and page["next_cursor"]
    page2 = list_records(app, admin, RecordFilter(fonds="Z109", category="WS", year=2023), limit=1, cursor=page["next_cursor"])
    assert page2["items"][0]["id"] != page["items"][0]["id"] and page2["next_cursor"] is None
    assert list_records(app, admin, RecordFilter(q="%' OR 1=1 --"))["total"] == 0
    assert list_records(app, admin, RecordFilter(q="2024年度"))["total"] == 6
    f = facets(app, admin, RecordFilter(fonds="Z109"))
    assert {x["value"]: x["count"] for x in f["year"]} == {2022: 2, 2023: 2, 2024: 2}
    with pytest.raises(ValidationFailed):
        list_records(app, admin, RecordFilter(), cursor="not-a-cursor")
    with pytest.raises(ValidationFailed):
        list_records(app, admin, RecordFilter(state="遗失"))


def test_every_call_is_audited_and_chain_verifies(app, admin):
    r = create_record(app, admin, ws(), [NewFile("正文.pdf", io.BytesIO(b"x"))])
    get_record(app, admin, r["id"])
    with pytest.raises(ValidationFailed):
        create_record(app, admin, ws({"year": "abc"}))
    with app.read_sessions() as s:
        actions = [(e.action, e.outcome) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.seq))][-3:]
        assert actions == [("record.create", "success"), ("record.view", "success"), ("record.create", "failure")]
        assert verify_chain(s).ok


def test_full_class_gives_a_clear_error_and_uses_no_number(app, admin):
    from sqlalchemy import update as sa_update

    from dangan.db.models import NumberCounter

    create_record(app, admin, ws(state="filed"))
    with app.sessions() as s, s.begin():
        s.execute(sa_update(NumberCounter).values(last_value=9999))
    r = create_record(app, admin, ws())
    with pytest.raises(ValidationFailed) as ei:
        transition(app, admin, r["id"], "filed")
    assert ei.value.code == "ARCHIVAL_CODE_FULL" and "4 位" in ei.value.message
    with app.read_sessions() as s:
        assert s.scalar(select(NumberCounter.last_value)) == 9999
