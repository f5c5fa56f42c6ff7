"""The audit chain detects an edited, deleted, inserted or reordered entry, and names it."""

import io

import pytest
from sqlalchemy import delete, select, text, update

from dangan.db.models import AuditEvent, AuditHead
from dangan.services import audit
from dangan.services.files import NewFile
from dangan.services.records import RecordInput, create_record, get_record

META = {"title": "关于开展档案安全检查的通知", "year": 2024, "retention_period": "D30", "responsible": "办公室", "date": "2024-05-06"}


@pytest.fixture
def trail(any_app, admin):
    for i in range(4):
        r = create_record(any_app, admin, RecordInput("Z109", "WS", META, department="BGS"), [NewFile(f"{i}.pdf", io.BytesIO(b"%d" % i))])
        get_record(any_app, admin, r["id"])
    return any_app


def verify(app):
    with app.read_sessions() as s:
        return audit.verify_chain(s)


def tamper(app, stmt):
    with app.engine.begin() as c:
        c.execute(stmt)


def test_intact_chain(trail):
    rep = verify(trail)
    assert rep.ok and rep.checked >= 18 and rep.head_seq == rep.checked


def test_edited_entry_is_named(trail):
    tamper(trail, update(AuditEvent).where(AuditEvent.seq == 12).values(actor="someone_else"))
    rep = verify(trail)
    assert [(p.kind, p.seq) for p in rep.problems] == [("altered", 12)]
    assert "第 12 条" in rep.problems[0].message and "被修改" in rep.problems[0].message


def test_edited_detail_is_detected(trail):
    tamper(trail, update(AuditEvent).where(AuditEvent.seq == 13).values(detail='{"title":"改过的"}'))
    assert [(p.kind, p.seq) for p in verify(trail).problems] == [("altered", 13)]


def test_deleted_entry_is_named(trail):
    tamper(trail, delete(AuditEvent).where(AuditEvent.seq == 14))
    rep = verify(trail)
    assert [(p.kind, p.seq) for p in rep.problems] == [("deleted", 14)]
    assert "第 14 条被删除" in rep.problems[0].message


def test_deleted_tail_is_detected(trail):
    last = verify(trail).head_seq
    tamper(trail, delete(AuditEvent).where(AuditEvent.seq >= last - 1))
    assert [p.kind for p in verify(trail).problems] == ["truncated"]


def test_inserted_entry_is_named(trail):
    # an inserted entry with a consistent own hash still breaks the link of the entry after it
    with trail.sessions() as s, s.begin():
        ev = s.scalar(select(AuditEvent).where(AuditEvent.seq == 15))
        s.execute(update(AuditEvent).where(AuditEvent.seq >= 15).values(seq=AuditEvent.seq + 1000))
        s.flush()
        fake_seq = 15
        h = audit.entry_hash(ev.prev_hash, fake_seq, ev.occurred_at, "intruder", "record.view", "record", "1", "success", "", "{}")
        s.add(AuditEvent(seq=fake_seq, occurred_at=ev.occurred_at, actor="intruder", action="record.view", object_type="record",
                         object_id="1", outcome="success", client_addr="", detail="{}", prev_hash=ev.prev_hash, hash=h))
        s.flush()
        s.execute(update(AuditEvent).where(AuditEvent.seq >= 1015).values(seq=AuditEvent.seq - 999))
    rep = verify(trail)
    kinds = {(p.kind, p.seq) for p in rep.problems}
    assert ("inserted", 16) in kinds


def test_reordered_entries_are_detected(trail):
    # swap the contents of two entries (rows keep their ids): their seq/links no longer fit
    with trail.sessions() as s, s.begin():
        a = s.scalar(select(AuditEvent).where(AuditEvent.seq == 10))
        b = s.scalar(select(AuditEvent).where(AuditEvent.seq == 11))
        s.execute(update(AuditEvent).where(AuditEvent.id == a.id).values(seq=-1))
        s.flush()
        s.execute(update(AuditEvent).where(AuditEvent.id == b.id).values(seq=10))
        s.execute(update(AuditEvent).where(AuditEvent.id == a.id).values(seq=11))
    rep = verify(trail)
    assert not rep.ok
    assert {p.seq for p in rep.problems} >= {10, 11}
    assert "reordered" in {p.kind for p in rep.problems}


def test_head_tampering_detected(trail):
    tamper(trail, update(AuditHead).values(last_hash="f" * 64))
    assert [p.kind for p in verify(trail).problems] == ["altered"]


def test_verify_service_records_its_own_run(trail, admin):
    rep = audit.verify(trail, admin)
    assert rep.ok
    events = audit.list_events(trail, admin, action="audit.verify", audit_the_view=False)
    assert events[0]["detail"]["ok"] is True


def test_sql_metacharacters_in_filters_are_plain_values(trail, admin):
    assert audit.list_events(trail, admin, actor_name="admin' OR '1'='1", audit_the_view=False) == []
    with trail.engine.connect() as c:
        assert c.execute(text("select count(*) from audit_events")).scalar() > 0


def test_checkpoint_detects_a_recomputed_chain(trail, admin):
    cp = audit.checkpoint(trail, admin)
    anchors = audit.parse_checkpoints("其他行\n" + cp["line"] + "\n")
    assert anchors == {cp["seq"]: cp["sm3"]}
    assert audit.verify(trail, admin, anchors).ok
    # an insider edits entry 5 and recomputes every later hash and the head: the chain alone looks intact
    with trail.sessions() as s, s.begin():
        events = s.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        prev = events[3].hash
        for ev in events[4:]:
            if ev.seq == 5:
                ev.actor = "someone_else"
            ev.prev_hash = prev
            ev.hash = audit.entry_hash(prev, ev.seq, ev.occurred_at, ev.actor, ev.action, ev.object_type, ev.object_id,
                                       ev.outcome, ev.client_addr, ev.detail)
            prev = ev.hash
        s.execute(update(AuditHead).values(last_hash=prev))
    with trail.read_sessions() as s:
        assert audit.verify_chain(s).ok
        rep = audit.verify_chain(s, anchors)
    assert [p.kind for p in rep.problems] == ["rewritten"] and rep.problems[0].seq == cp["seq"]
