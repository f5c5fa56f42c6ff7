"""Authorisation: permission checks and security trimming as SQL, so hidden records never reach a count.

A record is visible to an actor for an action when
  - its 密级 is at or below the actor's clearance (and the deployment ceiling), and
  - the actor's grant for the action covers it: all records, the actor's departments' records, or those
    records while still before filing (预归档/待归档), and
  - an API token's category and department limits, if any, include it.
Everything else is indistinguishable from a record that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Trim:
    """What an actor may see for an action, as data: `visible()` turns it into SQL, the search engine into its
    own filters, so that both trim by the same rule. None means "no limit"; nothing=True means no record."""

    nothing: bool = False
    everything: bool = False
    levels: tuple[str, ...] | None = None
    department_ids: tuple[int, ...] | None = None
    states: tuple[str, ...] | None = None
    category_ids: tuple[int, ...] | None = None


def trim_for(session: Session, actor: Actor, action: str = "record.read") -> Trim:
    if actor.superuser:
        return Trim(everything=True)
    scope = actor.scope_for(action)
    if scope is None:
        return Trim(nothing=True)
    sec = security_settings(session)
    levels = visible_levels(actor.clearance, tuple(sec["levels"]), sec.get("ceiling"))
    if not levels:
        return Trim(nothing=True)
    depts: set[int] | None = None
    states = None
    if scope in ("department", "department_prefiling"):
        if not actor.department_ids:
            return Trim(nothing=True)
        depts = set(actor.department_ids)
    if scope == "department_prefiling":
        states = tuple(sorted(s.value for s in EDITABLE))
    cat_ids = None
    cats = actor.token_limits("categories")
    if cats is not None:
        cat_ids = tuple(sorted(session.scalars(select(Category.id).where(Category.code.in_(cats)))))
    token_depts = actor.token_limits("departments")
    if token_depts is not None:
        allowed = set(session.scalars(select(Department.id).where(Department.code.in_(token_depts))))
        depts = allowed if depts is None else depts & allowed
    return Trim(levels=tuple(levels), department_ids=None if depts is None else tuple(sorted(depts)),
                states=states, category_ids=cat_ids)


def trim_clause(t: Trim) -> ColumnElement[bool]:
    if t.everything:
        return true()
    if t.nothing:
        return false()
    clauses: list[ColumnElement[bool]] = []
    if t.levels is not None:
        clauses.append(Record.security_level.in_(t.levels))
    if t.department_ids is not None:
        clauses.append(Record.department_id.in_(t.department_ids) if t.department_ids else false())
    if t.states is not None:
        clauses.append(Record.state.in_(t.states))
    if t.category_ids is not None:
        clauses.append(Record.category_id.in_(t.category_ids) if t.category_ids else false())
    return and_(*clauses) if clauses else true()


def visible(session: Session, actor: Actor, action: str = "record.read") -> ColumnElement[bool]:
    """The WHERE fragment that trims records for this actor and action."""
    return trim_clause(trim_for(session, actor, action))


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
