"""Authorisation: permission checks and security trimming as SQL, so hidden records never reach a count.

A record is visible to an actor for an action when
  - its 密级 is at or below the actor's clearance (and the deployment ceiling), and
  - the actor's grant for the action covers it: all records, the actor's departments' records, or those
    records while still before filing (预归档/待归档), and
  - an API token's category and department limits, if any, include it.
Everything else is indistinguishable from a record that does not exist.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, false, select, true
from sqlalchemy.orm import Session

from dangan.db.models import Category, Department, Record, SystemSetting
from dangan.domain.access import ACTION_LABELS, DEFAULT_LEVELS, visible_levels
from dangan.domain.states import EDITABLE
from dangan.errors import NotFound, PermissionDenied
from dangan.services.context import Actor

SECURITY_KEY = "security"
DEFAULT_SECURITY = {"levels": list(DEFAULT_LEVELS), "ceiling": "机密"}


def security_settings(session: Session) -> dict[str, Any]:
    row = session.get(SystemSetting, SECURITY_KEY)
    return {**DEFAULT_SECURITY, **(row.value if row else {})}


def require(actor: Actor, action: str) -> str:
    """Raise PermissionDenied unless the actor holds `action`; returns the scope.

    The error carries audit_outcome="denied": the caller's unit of work or @audited wrapper records it
    after rolling back (never from inside an open write transaction, which SQLite would deadlock on).
    """
    scope = actor.scope_for(action)
    if scope is None:
        err = PermissionDenied(f"没有“{ACTION_LABELS.get(action, action)}”的权限，请联系安全保密管理员",
                               code="PERMISSION_DENIED")
        err.audit_outcome = "denied"  # type: ignore[attr-defined]
        raise err
    return scope


def visible(session: Session, actor: Actor, action: str = "record.read") -> ColumnElement[bool]:
    """The WHERE fragment that trims records for this actor and action."""
    if actor.superuser:
        return true()
    scope = actor.scope_for(action)
    if scope is None:
        return false()
    sec = security_settings(session)
    levels = visible_levels(actor.clearance, tuple(sec["levels"]), sec.get("ceiling"))
    if not levels:
        return false()
    clauses: list[ColumnElement[bool]] = [Record.security_level.in_(levels)]
    if scope in ("department", "department_prefiling"):
        if not actor.department_ids:
            return false()
        clauses.append(Record.department_id.in_(sorted(actor.department_ids)))
    if scope == "department_prefiling":
        clauses.append(Record.state.in_([s.value for s in EDITABLE]))
    cats = actor.token_limits("categories")
    if cats is not None:
        clauses.append(Record.category_id.in_(select(Category.id).where(Category.code.in_(cats))))
    depts = actor.token_limits("departments")
    if depts is not None:
        clauses.append(Record.department_id.in_(select(Department.id).where(Department.code.in_(depts))))
    return and_(*clauses)


def get_visible_record(session: Session, actor: Actor, record_id: int, action: str = "record.read", *,
                       lock: bool = False) -> Record:
    """The record if the actor may act on it; otherwise exactly the error a missing record gives.

    lock=True for read-then-write: on PostgreSQL two writers would otherwise both see the old state."""
    q = select(Record).where(Record.id == record_id, visible(session, actor, action))
    rec = session.scalar(q.with_for_update() if lock else q)
    if rec is None:
        err = NotFound(f"档案 {record_id} 不存在", code="RECORD_NOT_FOUND")
        if session.scalar(select(Record.id).where(Record.id == record_id)) is not None:
            # the 安全审计员 sees a denial; the caller gets the same answer as for a missing record
            err.audit_outcome = "denied"  # type: ignore[attr-defined]
        raise err
    return rec
