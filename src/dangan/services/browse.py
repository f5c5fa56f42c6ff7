"""Read-only aggregates for the web pages: dashboard counts, a record's history, fixity runs.

Plain queries returning plain data; no business rules. Counts and record lookups are trimmed with
access.visible (a user never sees a count above their clearance or outside their scope); the audit trail
and fixity runs need their permissions. Callers that show records themselves (list_records, get_record)
are audited there; these helpers only summarise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import and_, func, or_, select

from dangan.db.models import (
    AuditEvent,
    Category,
    File,
    FixityResult,
    FixityRun,
    Fonds,
    Record,
    SystemSetting,
    User,
    UserRole,
)
from dangan.domain.access import ROLE_LABELS, PasswordPolicy
from dangan.domain.states import IN_HOLDINGS, RecordState
from dangan.services import audit
from dangan.services.access import require, security_settings, visible
from dangan.services.audit import event_view
from dangan.services.context import Actor, Dangan
from dangan.services.fixity import OUTCOME_LABELS as FIXITY_LABELS
from dangan.services.identity import policy as identity_policy
from dangan.services.views import iso, level_label

# actions that only read: left out of the dashboard's "recent activity" so that it shows what changed
READ_ACTIONS = ("record.view", "record.list", "audit.view", "fonds.view", "category.view")


def dashboard(app: Dangan, actor: Actor, *, recent: int = 8) -> dict[str, Any]:
    """Counts per category and state, records filed per year, totals, recent changes, latest fixity run."""
    with app.read_sessions() as s:
        cats = s.execute(select(Category.id, Category.code, Category.name, Fonds.code)
                         .join(Fonds, Fonds.id == Category.fonds_id).order_by(Fonds.code, Category.id)).all()
        by_cat: dict[int, dict[str, int]] = {}
        seen = visible(s, actor)
        for cat_id, state, n in s.execute(select(Record.category_id, Record.state, func.count()).where(seen)
                                          .group_by(Record.category_id, Record.state)).all():
            by_cat.setdefault(cat_id, {})[state] = n
        categories = [{"id": cid, "code": code, "name": name, "fonds_code": fcode, "states": by_cat.get(cid, {}),
                       "total": sum(by_cat.get(cid, {}).values())} for cid, code, name, fcode in cats]
        states = {st.value: 0 for st in RecordState}
        for c in categories:
            for st, n in c["states"].items():
                states[st] = states.get(st, 0) + n
        filed_by_year = [{"year": y, "count": n} for y, n in s.execute(
            select(Record.year, func.count()).where(seen, Record.state.in_([st.value for st in IN_HOLDINGS]), Record.year.is_not(None))
            .group_by(Record.year).order_by(Record.year)).all()]
        files, size = s.execute(select(func.count(File.id), func.coalesce(func.sum(File.size), 0))
                                .join(Record, Record.id == File.record_id).where(seen)).one()
        events = []
        if actor.scope_for("audit.read"):
            events = [event_view(e) for e in s.scalars(
                select(AuditEvent).where(AuditEvent.action.not_in(READ_ACTIONS)).order_by(AuditEvent.seq.desc())
                .limit(recent))]
        fonds_count = s.scalar(select(func.count(Fonds.id)))
    return {
        "fonds": fonds_count, "categories": categories, "states": states,
        "records": sum(states.values()), "files": files, "bytes": int(size),
        "filed_by_year": filed_by_year, "recent_events": events, "can_read_audit": bool(actor.scope_for("audit.read")),
        "fixity": latest_fixity_run(app),
    }


def record_history(app: Dangan, actor: Actor, record_id: int, *, limit: int = 200) -> list[dict[str, Any]]:
    """Audit events about one record and its files, newest first. The audit trail is the 安全审计员's alone
    (audit.read); nobody learns from it who else viewed a record."""
    audit._guard(app, actor, "audit.read", require)
    with app.read_sessions() as s:
        file_ids = [str(i) for i in s.scalars(select(File.id).where(File.record_id == record_id))]
        cond = and_(AuditEvent.object_type == "record", AuditEvent.object_id == str(record_id))
        if file_ids:
            cond = or_(cond, and_(AuditEvent.object_type == "file", AuditEvent.object_id.in_(file_ids)))
        return [event_view(e) for e in s.scalars(select(AuditEvent).where(cond).order_by(AuditEvent.seq.desc()).limit(limit))]


def _run_view(r: FixityRun) -> dict[str, Any]:
    return {"id": r.id, "started_at": iso(r.started_at), "finished_at": iso(r.finished_at), "actor": r.actor,
            "checked": r.checked, "failed": r.failed, "bytes_read": r.bytes_read,
            "finished": r.finished_at is not None, "ok": r.finished_at is not None and r.failed == 0}


def fixity_runs(app: Dangan, actor: Actor, *, limit: int = 20) -> list[dict[str, Any]]:
    require(actor, "fixity.run")
    with app.read_sessions() as s:
        return [_run_view(r) for r in s.scalars(select(FixityRun).order_by(FixityRun.id.desc()).limit(limit))]


def latest_fixity_run(app: Dangan) -> dict[str, Any] | None:
    with app.read_sessions() as s:
        r = s.scalar(select(FixityRun).where(FixityRun.finished_at.is_not(None)).order_by(FixityRun.id.desc()).limit(1))
        return _run_view(r) if r else None


def fixity_failures(app: Dangan, actor: Actor, run_id: int, *, limit: int = 500) -> list[dict[str, Any]]:
    """The failed files of one run, with their record and 档号 (titles only of records the actor may read)."""
    require(actor, "fixity.run")
    with app.read_sessions() as s:
        readable = set(s.scalars(select(Record.id).join(File, File.record_id == Record.id)
                                 .join(FixityResult, FixityResult.file_id == File.id)
                                 .where(FixityResult.run_id == run_id, visible(s, actor))))
        rows = s.execute(select(FixityResult, File.name, File.record_id, Record.archival_code, Record.title)
                         .join(File, File.id == FixityResult.file_id).join(Record, Record.id == File.record_id)
                         .where(FixityResult.run_id == run_id).order_by(FixityResult.id).limit(limit)).all()
        return [{"file_id": fr.file_id, "name": name if rid in readable else "（无权查看）", "record_id": rid,
                 "archival_code": code, "title": title if rid in readable else "（无权查看）",
                 "outcome": fr.outcome, "outcome_label": FIXITY_LABELS.get(fr.outcome, fr.outcome),
                 "expected": _stored_dict(fr.expected), "found": _stored_dict(fr.found)}
                for fr, name, rid, code, title in rows]


def _stored_dict(text: str) -> dict[str, Any]:
    try:
        v = json.loads(text)
    except ValueError:
        return {"raw": text}
    return v if isinstance(v, dict) else {"raw": text}


def record_brief(app: Dangan, actor: Actor, record_id: int) -> dict[str, Any] | None:
    """档号, 题名 and level of one record, for links and breadcrumbs (no files, not audited as a view)."""
    with app.read_sessions() as s:
        r = s.scalar(select(Record).where(Record.id == record_id, visible(s, actor)))
        if r is None:
            return None
        return {"id": r.id, "archival_code": r.archival_code, "title": r.title, "level": r.level,
                "level_label": level_label(r.category.arrangement, r.level), "parent_id": r.parent_id}


def list_audit_events(app: Dangan, actor: Actor, *, object_type: str | None = None, object_id: str | None = None,
                      actor_name: str | None = None, action: str | None = None, before_seq: int | None = None,
                      limit: int = 100) -> list[dict[str, Any]]:
    """audit.list_events (which checks the right and records the reading of the trail)."""
    return audit.list_events(app, actor, object_type=object_type, object_id=object_id, actor_name=actor_name,
                             action=action, before_seq=before_seq, limit=limit)


# ---------------------------------------------------------------- identity faces: small reads


def demo_login_hint(app: Dangan) -> dict[str, Any] | None:
    """In a demo archive only: the demo accounts (active ones) and their shared password, for the login page."""
    with app.read_sessions() as s:
        row = s.get(SystemSetting, "demo")
        if row is None or not isinstance(row.value, dict):
            return None
        names = [a.get("username") for a in row.value.get("accounts", []) if isinstance(a, dict)]
        users = {u.username: u for u in s.scalars(select(User).where(User.username.in_(names), User.is_active.is_(True)))}
        roles: dict[int, list[str]] = {}
        for uid, code in s.execute(select(UserRole.user_id, UserRole.role_code)
                                   .where(UserRole.user_id.in_([u.id for u in users.values()]))):
            roles.setdefault(uid, []).append(code)
        order = list(ROLE_LABELS)
        accounts = []
        for a in row.value.get("accounts", []):
            u = users.get(a.get("username"))
            if u is None:
                continue
            codes = sorted(roles.get(u.id, []), key=lambda c: order.index(c) if c in order else len(order))
            accounts.append({"username": u.username, "name": u.display_name, "clearance": u.clearance,
                             "roles": [ROLE_LABELS.get(c, c) for c in codes]})
        return {"password": row.value.get("password", ""), "accounts": accounts}


def password_policy(app: Dangan) -> PasswordPolicy:
    with app.read_sessions() as s:
        return identity_policy(s)


def security_levels(app: Dangan) -> dict[str, Any]:
    """The configured 密级 list (lowest first), the deployment ceiling, and the levels that may be granted."""
    with app.read_sessions() as s:
        sec = security_settings(s)
    levels = list(sec["levels"])
    ceiling = sec.get("ceiling") or levels[-1]
    grantable = levels[: levels.index(ceiling) + 1] if ceiling in levels else levels
    return {"levels": levels, "ceiling": ceiling, "grantable": grantable}


def record_rights(app: Dangan, actor: Actor, record_id: int, actions: tuple[str, ...]) -> dict[str, bool]:
    """Which of these actions the actor may take on this record (the same trimming the services apply)."""
    with app.read_sessions() as s:
        return {a: s.scalar(select(Record.id).where(Record.id == record_id, visible(s, actor, a))) is not None
                for a in actions}


AUDIT_EXPORT_BATCH = 1000


def export_audit_events(app: Dangan, actor: Actor, *, object_type: str | None = None, object_id: str | None = None,
                        actor_name: str | None = None, action: str | None = None, fmt: str = "csv") -> Iterator[dict[str, Any]]:
    """Every event matching the filters, oldest first, read in bounded batches (for CSV or JSON export).

    Needs 审计日志的查看与导出 (audit.read; a refusal is audited as denied). The export itself is audited
    (audit.export, with its filters and format) before the first event is read."""
    audit._guard(app, actor, "audit.read", require)
    filters = {"object_type": object_type or "", "object_id": object_id or "", "actor": actor_name or "",
               "action": action or ""}
    with app.uow(actor) as uow:
        uow.audit("audit.export", "audit", "", format=fmt, **{f"filter_{k}": v for k, v in filters.items()})

    def rows() -> Iterator[dict[str, Any]]:
        last = 0
        while True:
            with app.read_sessions() as s:
                q = select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(AUDIT_EXPORT_BATCH)
                if object_type:
                    q = q.where(AuditEvent.object_type == object_type)
                if object_id:
                    q = q.where(AuditEvent.object_id == str(object_id))
                if actor_name:
                    q = q.where(AuditEvent.actor == actor_name)
                if action:
                    q = q.where(AuditEvent.action == action)
                batch = [{**event_view(e), "prev_hash": e.prev_hash} for e in s.scalars(q)]
            if not batch:
                return
            yield from batch
            last = batch[-1]["seq"]

    return rows()
