"""四性检测 (DA/T 70) over stored records: break a record on purpose — a blob on disk, a row in the database,
an audit event — and the run names the failing item by its code, with the evidence a person acts on.

Records are made through the services as a user would; the damage is then done behind the system's back
(chmod + write on the local store, SQL updates), the way a disk fault or a hand in the database would."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from conftest import CORPUS, make_app
from dangan.config import load_settings
from dangan.db.models import AuditEvent, CheckRun, CheckScheme, File, Record
from dangan.demo.documents import make_pdf
from dangan.errors import DanganError, NotFound, PermissionDenied, ValidationFailed
from dangan.services import checks as cs
from dangan.services.context import Actor, Dangan
from dangan.services.files import NewFile
from dangan.services.records import RecordInput, create_record, get_record, transition
from test_identity import make_user

FAIL, PASS, WARN, NA = "不通过", "通过", "警告", "不适用"

GOOD = {"year": 2024, "retention_period": "Y", "responsible": "办公室", "date": "2024-03-05"}


# ---------------------------------------------------------------- a fresh archive per test, fast


@pytest.fixture(scope="session")
def archive_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialised archive (fonds Z109, departments, preset categories and check schemes), copied per test:
    a copy of a closed SQLite archive takes milliseconds where `init` takes most of a second."""
    data = tmp_path_factory.mktemp("archive") / "data"
    a = make_app(data)
    cs.ensure_schemes(a)
    a.close()
    return data


@pytest.fixture
def app(archive_template: Path, tmp_path: Path):
    """Like conftest's `app` (a new archive on SQLite with fonds Z109 …), from the template."""
    data = tmp_path / "data"
    shutil.copytree(archive_template, data)
    a = Dangan(load_settings(data))
    yield a
    a.close()


# ---------------------------------------------------------------- helpers


def pdf(n: int, title: str) -> bytes:
    return make_pdf(title, [f"第 {n} 号文件正文。", "请各单位认真贯彻执行。"])


def new_record(app: Dangan, actor: Actor, n: int, *, state: str = "filed", content: bytes | None = None,
               name: str = "正文.pdf", dept: str = "BGS", **meta: Any) -> dict[str, Any]:
    """A 文书 record with a real PDF of its own (blobs are content-addressed: each record gets distinct bytes)."""
    title = meta.pop("title", f"关于做好第{n}项重点工作的通知")
    md = {**GOOD, "title": title, "doc_number": f"示政办发〔2024〕{n}号", **meta}
    body = pdf(n, title) if content is None else content
    return create_record(app, actor, RecordInput("Z109", "WS", md, department=dept, state=state),
                         [NewFile(name, io.BytesIO(body))])


def batch(app: Dangan, actor: Actor, k: int = 3, start: int = 1) -> list[int]:
    return [new_record(app, actor, n)["id"] for n in range(start, start + k)]


def item(run: dict[str, Any], code: str) -> dict[str, Any]:
    found = [i for i in run["items"] if i["code"] == code]
    assert found, f"{code} not in the run: {[i['code'] for i in run['items']]}"
    return found[0]


def failing(run: dict[str, Any]) -> set[str]:
    return {i["code"] for i in run["items"] if i["outcome"] == FAIL}


def evidence(run: dict[str, Any], code: str) -> list[dict[str, Any]]:
    it = item(run, code)
    assert it["outcome"] == FAIL, (code, it["outcome"], it["evidence"], it["note"])
    return it["evidence"]


def no_crash(run: dict[str, Any]) -> None:
    crashed = [(i["code"], e["message"]) for i in run["items"] for e in i["evidence"] if "检测项执行出错" in e["message"]]
    assert crashed == []


def blob(app: Dangan, record_id: int) -> tuple[Path, File]:
    """The blob file of the record's (only) current file on the local store, made writable."""
    with app.read_sessions() as s:
        f = s.scalars(select(File).where(File.record_id == record_id)).one()
    path = app.store.root / f.storage_key
    if path.exists():
        os.chmod(path, 0o644)  # blobs are stored read-only
    return path, f


def edit_meta(app: Dangan, record_id: int, **changes: Any) -> None:
    """Change a record's metadata in the database directly (None removes the field)."""
    with app.sessions.begin() as s:
        rec = s.get(Record, record_id)
        meta = dict(rec.meta)
        for k, v in changes.items():
            if v is None:
                meta.pop(k, None)
            else:
                meta[k] = v
        s.execute(update(Record).where(Record.id == record_id).values(meta=meta))


def run(app: Dangan, actor: Actor, ids: list[int], stage: str = "长期保存", **kw: Any) -> dict[str, Any]:
    res = cs.run_records(app, actor, stage=stage, record_ids=ids, **kw)
    no_crash(res)
    assert res["status"] == "done"
    return res


def subject_of(app: Dangan, record_id: int, file_name: str | None = None) -> str:
    code = get_record(app, Actor.system(), record_id)["archival_code"]
    return f"{code} / {file_name}" if file_name else code


# ---------------------------------------------------------------- a clean batch


@pytest.mark.parametrize("stage,prefix", [("长期保存", "BC"), ("归档", "GD")])
def test_clean_batch_of_real_pdfs_passes(app, admin, stage, prefix):
    ids = batch(app, admin, 3)
    res = run(app, admin, ids, stage)
    assert res["verdict"] == PASS and res["target_kind"] == "batch" and res["stage_prefix"] == prefix
    assert res["summary"]["records"] == 3 and res["summary"]["files"] == 3 and res["summary"]["bytes_read"] > 0
    assert all(i["code"].startswith(prefix + "-") for i in res["items"])
    not_passing = {i["code"]: i["outcome"] for i in res["items"] if i["outcome"] != PASS}
    # the realistic warnings: the 正文 is plain PDF, not PDF/A; the titles match no entry of the 保管期限表
    allowed = {f"{prefix}-3-8": {WARN}, f"{prefix}-2-9": {WARN}, f"{prefix}-4-1": {NA, PASS},
               **{f"{prefix}-1-{n}": {NA} for n in (12, 13, 14)}, f"{prefix}-4-3": {NA}}
    assert all(o in allowed.get(c, set()) for c, o in not_passing.items()), not_passing
    w = item(res, f"{prefix}-3-8")["evidence"]
    assert len(w) == 3 and all(e["outcome"] == WARN and e["expected"] == "OFD 或 PDF/A" for e in w)
    assert item(res, f"{prefix}-1-10")["checked"] == 3 and item(res, f"{prefix}-1-10")["veto"] is True


# ---------------------------------------------------------------- content on disk


def test_altered_blob_fails_the_digest_comparison(app, admin):
    ids = batch(app, admin, 2)
    path, f = blob(app, ids[0])
    data = path.read_bytes()
    changed = data.replace("第 1 号".encode("utf-16-be").hex().upper().encode(),
                           "第 7 号".encode("utf-16-be").hex().upper().encode(), 1)
    assert changed != data and len(changed) == len(data)
    path.write_bytes(changed)
    res = run(app, admin, ids)
    assert res["verdict"] == FAIL
    ev = evidence(res, "BC-1-10")
    assert len(ev) == 2  # SHA-256 and SM3, of the one file changed
    sha = next(e for e in ev if e["field"] == "sha256")
    assert sha["subject"] == subject_of(app, ids[0], "正文.pdf") and sha["file_ref"] == str(f.id)
    assert sha["expected"] == f.sha256 and sha["found"] == hashlib.sha256(changed).hexdigest()
    assert "被改动" in sha["message"]
    sm3 = next(e for e in ev if e["field"] == "sm3")
    assert sm3["expected"] == f.sm3 and sm3["found"] == hashlib.new("sm3", changed).hexdigest()
    assert item(res, "BC-1-10")["checked"] == 2  # the other record's file was compared and is fine
    assert "BC-1-10" in res["summary"]["vetoed"]
    assert item(res, "BC-2-11")["outcome"] == PASS  # same size, nothing missing


def test_truncated_blob(app, admin):
    rid = batch(app, admin, 1)[0]
    path, f = blob(app, rid)
    path.write_bytes(path.read_bytes()[:500])
    res = run(app, admin, [rid])
    ev = evidence(res, "BC-2-11")
    assert ev[0]["message"] == "电子文件不完整（被截短）" and (ev[0]["expected"], ev[0]["found"]) == (f.size, 500)
    assert {e["field"] for e in evidence(res, "BC-1-10")} == {"sha256", "sm3"}
    assert any(e["field"] == "size" and e["found"] == 500 for e in evidence(res, "BC-1-9"))
    assert "BC-3-4" in failing(res)  # a truncated PDF does not open


def test_deleted_blob(app, admin):
    rid = batch(app, admin, 1)[0]
    path, f = blob(app, rid)
    path.unlink()
    res = run(app, admin, [rid])
    ev = evidence(res, "BC-2-11")
    assert "缺失" in ev[0]["message"] and ev[0]["expected"] == f.storage_key and ev[0]["found"] == "不存在"
    link = evidence(res, "BC-1-11")
    assert link[0]["field"] == "location" and link[0]["expected"] == f.storage_key and link[0]["found"] == "不存在"
    assert item(res, "BC-1-10")["outcome"] == NA and item(res, "BC-1-10")["checked"] == 0  # nothing to compare
    assert {"BC-2-11", "BC-1-11"} <= set(res["summary"]["vetoed"])


def test_zero_byte_file(app, admin):
    rid = new_record(app, admin, 1, content=b"")["id"]
    res = run(app, admin, [rid])
    ev = evidence(res, "BC-2-11")
    assert ev[0]["message"] == "电子文件为空（0 字节）" and ev[0]["found"] == 0
    assert "BC-3-4" in failing(res)


def test_extension_that_lies(app, admin):
    png = (CORPUS / "scans" / "rapidocr-transparent-black-text.png").read_bytes()
    rid = new_record(app, admin, 1, content=png)["id"]
    res = run(app, admin, [rid])
    ev = evidence(res, "BC-1-9")
    assert ev[0]["field"] == "name" and ev[0]["found"] == "正文.pdf" and "PNG" in ev[0]["expected"]
    assert "扩展名" in ev[0]["message"] and ev[0]["subject"] == subject_of(app, rid, "正文.pdf")
    assert item(res, "BC-1-10")["outcome"] == PASS  # the bytes are those captured: only the name lies


def test_encrypted_pdf(app, admin):
    rid = new_record(app, admin, 1, content=(CORPUS / "pdf" / "encrypted-userpw-user.pdf").read_bytes())["id"]
    res = run(app, admin, [rid])
    enc = evidence(res, "BC-3-5")
    assert (enc[0]["expected"], enc[0]["found"]) == ("未加密", "加密") and "加密" in enc[0]["message"]
    assert "加密" in evidence(res, "BC-3-4")[0]["message"]
    assert res["verdict"] == FAIL


# ---------------------------------------------------------------- metadata edited in the database


MOJIBAKE = "关于年度工作报告".encode().decode("gbk")  # UTF-8 read as GBK: 鍏充簬骞村害宸ヤ綔鎶ュ憡
FUTURE = dt.date.today() + dt.timedelta(days=40)


@pytest.mark.parametrize("changes,code,field,found", [
    ({"title": "长" * 600}, "BC-1-2", "title", "600 个字符"),
    ({"pages": "三页"}, "BC-1-3", "pages", "三页"),
    ({"date": "2024-02-30"}, "BC-1-3", "date", "2024-02-30"),
    ({"security_level": "普通"}, "BC-1-4", "security_level", "普通"),
    ({"urgency": "十万火急"}, "BC-1-4", "urgency", "十万火急"),
    ({"remarks": "备注\x07响铃"}, "BC-1-6", "remarks", "'备注\\x07响铃'"),
    ({"remarks": "附件\u200b一份"}, "BC-1-6", "remarks", "'附件\\u200b一份'"),
    ({"remarks": MOJIBAKE}, "BC-3-1", "remarks", MOJIBAKE),
    ({"year": 2023}, "BC-1-5", "year", "2023"),
    ({"date": FUTURE.isoformat(), "year": FUTURE.year}, "BC-1-5", "date", FUTURE.isoformat()),
    ({"responsible": None}, "BC-2-3", "responsible", None),
    ({"date": None}, "BC-2-3", "date", None),
], ids=["too-long", "wrong-type", "bad-date", "domain", "domain-urgency", "control-char", "zero-width", "mojibake",
        "year-vs-date", "future-date", "missing-responsible", "missing-date"])
def test_metadata_edited_in_the_database(app, admin, changes, code, field, found):
    ids = batch(app, admin, 2)
    edit_meta(app, ids[0], **changes)
    res = run(app, admin, ids)
    assert res["verdict"] == FAIL
    ev = [e for e in evidence(res, code) if e["field"] == field]
    assert len(ev) == 1, evidence(res, code)
    e = ev[0]
    assert e["record_ref"] == str(ids[0]) and e["subject"] == subject_of(app, ids[0]) and e["outcome"] == FAIL
    if found is not None:
        assert e["found"] == found
    # only the damaged record is reported
    assert all(x["record_ref"] == str(ids[0]) for i in res["items"] if i["outcome"] == FAIL for x in i["evidence"])


def test_metadata_findings_carry_the_reason(app, admin):
    rid = batch(app, admin, 1)[0]
    edit_meta(app, rid, title="长" * 600, year=2023, remarks=MOJIBAKE)
    res = run(app, admin, [rid])
    assert "500" in evidence(res, "BC-1-2")[0]["message"]
    year = next(e for e in evidence(res, "BC-1-5") if e["field"] == "year")
    assert "2023" in year["message"] and "2024" in year["message"]
    assert "乱码" in evidence(res, "BC-3-1")[0]["message"]
    assert "BC-1-6" not in failing(res)  # mojibake is text, not special characters
    # the 档号 carries the year: it no longer agrees with the metadata
    code = evidence(res, "BC-1-7")[0]
    assert code["found"] == subject_of(app, rid) and code["expected"] == "Z109-WS·2023-Y-BGS-0001"


def test_future_date_names_today(app, admin):
    rid = batch(app, admin, 1)[0]
    edit_meta(app, rid, date=FUTURE.isoformat(), year=FUTURE.year)
    e = next(e for e in evidence(run(app, admin, [rid]), "BC-1-5") if e["field"] == "date")
    assert e["expected"] == f"不晚于 {dt.date.today().isoformat()}" and "晚于检测之日" in e["message"]


# ---------------------------------------------------------------- 档号, duplicates, numbering


def test_archival_code_that_breaks_the_rule(app, admin):
    ids = batch(app, admin, 2)
    with app.sessions.begin() as s:
        s.execute(update(Record).where(Record.id == ids[0]).values(archival_code="Z109-WS-2024-BAD"))
    res = run(app, admin, ids)
    ev = evidence(res, "BC-1-7")
    assert len(ev) == 1 and ev[0]["found"] == "Z109-WS-2024-BAD" and ev[0]["field"] == "archival_code"
    assert "不符合档号规则" in ev[0]["message"] and "件号" in ev[0]["expected"]


def test_archival_code_that_contradicts_the_metadata(app, admin):
    ids = batch(app, admin, 2)
    with app.sessions.begin() as s:  # well formed, but says D10 where the record says Y
        s.execute(update(Record).where(Record.id == ids[1]).values(archival_code="Z109-WS·2024-D10-BGS-0002"))
    ev = evidence(run(app, admin, ids), "BC-1-7")
    assert len(ev) == 1 and "不一致" in ev[0]["message"]
    assert (ev[0]["expected"], ev[0]["found"]) == ("Z109-WS·2024-Y-BGS-0002", "Z109-WS·2024-D10-BGS-0002")


def test_duplicate_doc_number_warns(app, admin):
    a = new_record(app, admin, 1, doc_number="示政办发〔2024〕8号")
    b = new_record(app, admin, 2, doc_number="示政办发〔2024〕8号")
    res = run(app, admin, [a["id"]])  # the other one is in the archive, not in this run
    dup = item(res, "BC-1-8")
    assert dup["outcome"] == WARN and res["verdict"] == PASS
    e = dup["evidence"][0]
    assert e["field"] == "doc_number" and e["found"] == "示政办发〔2024〕8号" and b["archival_code"] in e["message"]
    both = run(app, admin, [a["id"], b["id"]])  # both in the batch
    assert item(both, "BC-1-8")["outcome"] == WARN and b["archival_code"] in item(both, "BC-1-8")["evidence"][0]["message"]


def test_gap_in_the_numbering(app, admin):
    ids = batch(app, admin, 4)
    gone = ids[1]
    with app.sessions.begin() as s:  # a filed record removed behind the system's back
        s.execute(delete(File).where(File.record_id == gone))
        s.execute(delete(Record).where(Record.id == gone))
    left = [i for i in ids if i != gone]
    res = run(app, admin, left)
    ev = evidence(res, "BC-2-6")
    assert len(ev) == 1 and "缺少 0002" in ev[0]["message"] and ev[0]["subject"] == "Z109-WS·2024-Y-BGS"
    assert ev[0]["expected"] == "1–4 连续" and ev[0]["found"] == "缺 1 个"
    # the gap is seen from the archive's numbering even when the run covers one record of the class
    assert "缺少 0002" in evidence(run(app, admin, [ids[3]]), "BC-2-6")[0]["message"]


def test_changed_sequence_number(app, admin):
    ids = batch(app, admin, 3)
    with app.sessions.begin() as s:  # (a duplicate number is impossible: the database keeps it unique)
        s.execute(update(Record).where(Record.id == ids[2]).values(seq=5))  # 1, 2, 5
    res = run(app, admin, ids)
    ev = evidence(res, "BC-2-6")
    assert len(ev) == 1 and "缺少 0003、0004" in ev[0]["message"] and ev[0]["expected"] == "1–5 连续"
    assert ev[0]["found"] == "缺 2 个"
    code = evidence(res, "BC-1-7")[0]  # and the 档号 no longer carries the record's number
    assert (code["expected"], code["found"]) == ("Z109-WS·2024-Y-BGS-0005", "Z109-WS·2024-Y-BGS-0003")


# ---------------------------------------------------------------- the audit trail


def test_audit_event_edited_in_the_database(app, admin):
    ids = batch(app, admin, 2)
    with app.sessions.begin() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.object_type == "record", AuditEvent.object_id == str(ids[0]))
                       .order_by(AuditEvent.seq)).first()
        assert ev is not None and "关于" in ev.detail
        seq, stored_hash = ev.seq, ev.hash
        s.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(detail=ev.detail.replace("关于", "关与", 1)))
    res = run(app, admin, ids)
    found = evidence(res, "BC-4-4")
    assert len(found) == 1 and found[0]["record_ref"] == str(ids[0])
    assert f"第 {seq} 条" in found[0]["message"] and "篡改" in found[0]["message"]
    assert found[0]["expected"] == stored_hash and found[0]["found"] != stored_hash
    assert "BC-4-4" in res["summary"]["vetoed"]


def test_audit_history_missing(app, admin):
    rid = batch(app, admin, 1)[0]
    with app.sessions.begin() as s:
        s.execute(delete(AuditEvent).where(AuditEvent.object_type == "record", AuditEvent.object_id == str(rid)))
    ev = evidence(run(app, admin, [rid]), "BC-2-5")
    assert "过程信息缺失" in ev[0]["message"] and ev[0]["found"] == "无"


# ---------------------------------------------------------------- reruns


def test_rerun_compares_with_the_previous_run(app, admin):
    rid = batch(app, admin, 1)[0]
    first = run(app, admin, [rid])
    assert first["verdict"] == PASS and first["previous_run_id"] is None
    path, f = blob(app, rid)
    good = path.read_bytes()
    path.write_bytes(good + b"% appended\n")
    second = run(app, admin, [rid])
    assert second["previous_run_id"] == first["id"] and second["verdict"] == FAIL
    cmp = cs.compare_runs(app, admin, second["id"])
    assert cmp["other_id"] == first["id"] and cmp["same_target"] is True
    assert cmp["verdict"] == {"before": PASS, "after": FAIL}
    by_code = {c["code"]: c for c in cmp["changes"]}
    dig = by_code["BC-1-10"]
    assert (dig["before"], dig["after"]) == (PASS, FAIL) and dig["resolved_findings"] == []
    assert {(x["subject"], x["message"]) for x in dig["new_findings"]} == {
        (subject_of(app, rid, "正文.pdf"), "SHA-256 数字摘要不一致：内容已被改动或损坏"),
        (subject_of(app, rid, "正文.pdf"), "SM3 数字摘要不一致：内容已被改动或损坏")}
    assert "BC-1-11" not in by_code and "BC-2-3" not in by_code  # unchanged items are not listed
    # repaired: the next run resolves what the previous one found
    path.write_bytes(good)
    third = run(app, admin, [rid])
    back = {c["code"]: c for c in cs.compare_runs(app, admin, third["id"])["changes"]}
    assert (back["BC-1-10"]["before"], back["BC-1-10"]["after"]) == (FAIL, PASS)
    assert len(back["BC-1-10"]["resolved_findings"]) == 2 and back["BC-1-10"]["new_findings"] == []
    # explicit comparison with any earlier run of the target: repaired is as it was
    same = cs.compare_runs(app, admin, third["id"], first["id"])
    assert same["other_id"] == first["id"] and same["changes"] == [] and same["verdict"] == {"before": PASS,
                                                                                             "after": PASS}
    listed = cs.list_runs(app, admin, record_id=rid)
    assert [r["id"] for r in listed["runs"]] == [third["id"], second["id"], first["id"]]
    assert cs.list_runs(app, admin, record_id=rid, verdict=FAIL)["total"] == 1


def test_first_run_has_nothing_to_compare(app, admin):
    res = run(app, admin, batch(app, admin, 1))
    with pytest.raises(DanganError) as ei:
        cs.compare_runs(app, admin, res["id"])
    assert ei.value.code == "NO_PREVIOUS_RUN" and "没有更早的检测记录" in ei.value.message


# ---------------------------------------------------------------- the filing hook


def test_broken_content_cannot_be_filed(app, admin):
    enc = (CORPUS / "pdf" / "encrypted-userpw-user.pdf").read_bytes()
    rid = new_record(app, admin, 1, state="pending", content=enc)["id"]
    with pytest.raises(ValidationFailed) as ei:
        transition(app, admin, rid, "filed")
    e = ei.value
    assert e.code == "FILING_CHECK_FAILED" and "四性检测" in e.message
    msgs = [p.message for p in e.problems]
    assert any(m.startswith("GD-3-5 ") for m in msgs) and any(m.startswith("GD-3-4 ") for m in msgs)
    assert all(m.split(" ", 1)[0].startswith("GD-") for m in msgs)
    assert {p.code for p in e.problems} >= {"CHECK_NO_ENCRYPTION", "CHECK_CONTENT_OPENS"}
    r = get_record(app, admin, rid)
    assert r["state"] == "pending" and r["archival_code"] is None and r["seq"] is None
    # the refused filing is itself a kept 归档 run
    runs = cs.list_runs(app, admin, record_id=rid, stage="归档")
    assert runs["total"] == 1 and runs["runs"][0]["verdict"] == FAIL


def test_altered_blob_cannot_be_filed_and_a_clean_record_is(app, admin):
    bad = new_record(app, admin, 1, state="pre_filing")["id"]
    good = new_record(app, admin, 2, state="pending")["id"]
    path, _ = blob(app, bad)
    path.write_bytes(path.read_bytes().replace(b"/Count 1", b"/Count 2", 1))
    with pytest.raises(ValidationFailed) as ei:
        transition(app, admin, bad, "filed")
    assert ei.value.code == "FILING_CHECK_FAILED"
    assert any(p.message.startswith("GD-1-10 内容数据数字摘要比对检测") for p in ei.value.problems)
    r = get_record(app, admin, bad)
    assert r["state"] == "pre_filing" and r["archival_code"] is None
    filed = transition(app, admin, good, "filed")
    assert filed["state"] == "filed" and filed["archival_code"] == "Z109-WS·2024-Y-BGS-0001"  # the number was not used
    assert cs.list_runs(app, admin, record_id=good, stage="归档")["runs"][0]["verdict"] == PASS


# ---------------------------------------------------------------- permissions


def test_without_check_run_is_refused(app, admin):
    rid = batch(app, admin, 1)[0]
    done = run(app, admin, [rid])
    nobody = Actor("reader1", grants=(("record.read", "all"),), clearance="机密")
    for call in (lambda: cs.run_records(app, nobody, record_ids=[rid]), lambda: cs.get_run(app, nobody, done["id"]),
                 lambda: cs.list_runs(app, nobody), lambda: cs.list_schemes(app, nobody)):
        with pytest.raises(PermissionDenied) as ei:
            call()
        assert ei.value.code == "PERMISSION_DENIED"
    with app.read_sessions() as s:
        assert s.scalar(select(func.count()).select_from(CheckRun)) == 1


def test_run_over_a_record_above_clearance_does_not_exist_for_the_reader(app, admin):
    secret = new_record(app, admin, 1, security_level="机密", secrecy_period="10年")["id"]
    public = new_record(app, admin, 2)["id"]
    hidden_run = run(app, admin, [secret])
    open_run = run(app, admin, [public])
    low = make_user(app, "zhuanzhi", ["archivist"], "内部")
    with pytest.raises(NotFound) as a:
        cs.get_run(app, low, hidden_run["id"])
    with pytest.raises(NotFound) as b:
        cs.get_run(app, low, 999_999)
    assert a.value.code == b.value.code == "CHECK_RUN_NOT_FOUND"
    with pytest.raises(NotFound) as ei:
        cs.run_records(app, low, record_ids=[secret])
    assert ei.value.code == "NOTHING_TO_CHECK"
    with pytest.raises(NotFound):
        cs.compare_runs(app, low, hidden_run["id"])
    assert [r["id"] for r in cs.list_runs(app, low)["runs"]] == [open_run["id"]]
    assert cs.get_run(app, low, open_run["id"])["verdict"] == PASS
    # a batch run over both only checks what the reader may see
    mine = cs.run_records(app, low, record_ids=[secret, public])
    assert mine["record_ids"] == [public] and mine["summary"]["records"] == 1


# ---------------------------------------------------------------- schemes


def default_scheme(app: Dangan, admin: Actor, stage: str = "长期保存") -> dict[str, Any]:
    return next(s for s in cs.list_schemes(app, admin) if s["stage"] == stage and s["is_default"])


def test_disabled_item_is_not_run(app, admin):
    ids = batch(app, admin, 2)
    sch = default_scheme(app, admin)
    cs.save_scheme(app, admin, stage="长期保存", scheme_id=sch["id"],
                   items={"format_allowed": {"enabled": False}, "duplicates": {"enabled": False}})
    res = run(app, admin, ids)
    codes = [i["code"] for i in res["items"]]
    assert "BC-3-8" not in codes and "BC-1-8" not in codes and "BC-1-10" in codes
    assert len(codes) == len(sch["items"]) - 2


def test_advisory_item_failure_does_not_change_the_verdict(app, admin):
    ids = batch(app, admin, 2)
    sch = default_scheme(app, admin)
    # not PDF/A becomes a failure of 3-8 …
    cs.save_scheme(app, admin, stage="长期保存", scheme_id=sch["id"],
                   items={"format_allowed": {"params": {"layout_severity": "fail"}}})
    strict = run(app, admin, ids)
    assert item(strict, "BC-3-8")["outcome"] == FAIL and strict["verdict"] == FAIL
    # … which only warns the archivist once the item is advisory (a partial setting keeps the params saved)
    view = cs.save_scheme(app, admin, stage="长期保存", scheme_id=sch["id"], items={"format_allowed": {"advisory": True}})
    fa = next(i for i in view["items"] if i["key"] == "format_allowed")
    assert fa["advisory"] is True and fa["params"]["layout_severity"] == "fail"
    # and setting a param of a veto item keeps it a veto item
    view = cs.save_scheme(app, admin, stage="长期保存", scheme_id=sch["id"],
                          items={"fixity_info": {"params": {"warn_unverifiable": False}}})
    fi = next(i for i in view["items"] if i["key"] == "fixity_info")
    assert fi["veto"] is True and fi["enabled"] is True and fi["params"]["warn_unverifiable"] is False
    lenient = run(app, admin, ids)
    assert item(lenient, "BC-3-8")["outcome"] == FAIL and "建议项" in item(lenient, "BC-3-8")["note"]
    assert lenient["verdict"] == PASS and lenient["summary"]["advisory_failed"] == ["BC-3-8"]
    assert lenient["summary"]["dimensions"]["3"]["outcome"] == WARN
    # a veto item cannot be made advisory by the same flag: it still fails the run
    cs.save_scheme(app, admin, stage="长期保存", scheme_id=sch["id"], items={"content_digest": {"advisory": True}})
    path, _ = blob(app, ids[0])
    path.write_bytes(path.read_bytes() + b"\n")
    assert run(app, admin, ids)["verdict"] == FAIL


def test_scheme_params_change_what_is_found(app, admin):
    rid = new_record(app, admin, 1, remarks="内容<见附件>")["id"]
    sch = default_scheme(app, admin)
    assert item(run(app, admin, [rid]), "BC-1-6")["outcome"] == PASS
    cs.save_scheme(app, admin, stage="长期保存", scheme_id=sch["id"], items={"special_characters": {"params": {"forbidden": "<>"}}})
    ev = evidence(run(app, admin, [rid]), "BC-1-6")
    assert ev[0]["field"] == "remarks" and "不允许的字符“<”" in ev[0]["message"]


def test_save_scheme_rejects_bad_settings_and_changes_nothing(app, admin):
    sch = default_scheme(app, admin)
    with app.read_sessions() as s:
        n_before = s.scalar(select(func.count()).select_from(CheckScheme))
    bad = {"no_such_item": {"enabled": False},
           "format_allowed": {"enabled": False, "params": {"layout_severity": 3}},
           "duplicates": {"enabled": "yes"},
           "content_digest": {"params": {"nonexistent": 1}},
           "package_naming": {"enabled": False}}  # an item of the other stages only
    with pytest.raises(ValidationFailed) as ei:
        cs.save_scheme(app, admin, stage="长期保存", scheme_id=sch["id"], items=bad)
    got = {(p.field, p.code) for p in ei.value.problems}
    assert got == {("items.no_such_item", "UNKNOWN_ITEM"),
                   ("items.format_allowed.params.layout_severity", "WRONG_TYPE"),
                   ("items.duplicates.enabled", "WRONG_TYPE"),
                   ("items.content_digest.params.nonexistent", "UNKNOWN_PARAM"),
                   ("items.package_naming", "UNKNOWN_ITEM")}
    assert all(p.message for p in ei.value.problems)
    assert "文本" in next(p.message for p in ei.value.problems if p.field.endswith("layout_severity"))
    # nothing was saved: not the valid part (format_allowed disabled) either
    assert cs.get_scheme(app, admin, sch["id"]) == sch
    with app.read_sessions() as s:
        assert s.scalar(select(func.count()).select_from(CheckScheme)) == n_before
    with pytest.raises(ValidationFailed) as ei:
        cs.save_scheme(app, admin, stage="长期保存", items={}, name="")  # a new scheme needs a name
    assert ei.value.code == "REQUIRED"
    with pytest.raises(ValidationFailed) as ei:
        cs.save_scheme(app, admin, stage="某环节", items={})
    assert ei.value.code == "UNKNOWN_STAGE"


def test_a_category_scheme_is_used_for_its_records(app, admin):
    ids = batch(app, admin, 1)
    cs.save_scheme(app, admin, stage="长期保存", name="文书长期保存", category_code="WS",
                   items={"format_allowed": {"enabled": False}})
    res = run(app, admin, ids)
    assert res["scheme_name"] == "文书长期保存" and "BC-3-8" not in [i["code"] for i in res["items"]]


# ---------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_altered_blob_on_postgresql(pg_app, admin):
    ids = batch(pg_app, admin, 2)
    path, f = blob(pg_app, ids[1])
    path.write_bytes(path.read_bytes().replace(b"/Count 1", b"/Count 3", 1))
    res = run(pg_app, admin, ids)
    assert res["verdict"] == FAIL
    ev = evidence(res, "BC-1-10")
    sha = next(e for e in ev if e["field"] == "sha256")
    assert sha["expected"] == f.sha256 and sha["found"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sha["subject"] == subject_of(pg_app, ids[1], "正文.pdf")
    assert failing(res) <= {"BC-1-10", "BC-3-4"}
    assert cs.list_runs(pg_app, admin, record_id=ids[1], verdict=FAIL)["total"] == 1
