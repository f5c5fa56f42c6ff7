"""Identity: accounts, roles (三员分立), clearance, passwords, login sessions and API tokens.

Passwords are argon2id hashes; session cookies and API tokens are random secrets of which only the SHA-256 is
stored. Every login, lockout, role or clearance change and token operation is audited.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dangan.db.models import (
    ApiToken,
    Category,
    Department,
    LoginSession,
    PasswordHistory,
    Role,
    SystemSetting,
    User,
    UserDepartment,
    UserRole,
    utcnow,
)
from dangan.domain.access import (
    ACTION_LABELS,
    DEFAULT_MATRIX,
    ROLE_LABELS,
    THREE_ADMINS,
    PasswordPolicy,
    check_role_combination,
    merge_grants,
    within_ceiling,
)
from dangan.errors import Conflict, DanganError, NotFound, PermissionDenied, Problems, ValidationFailed
from dangan.services.access import SECURITY_KEY, require, security_settings
from dangan.services.context import Actor, Dangan, audited

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
POLICY_KEY = "password_policy"
USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{1,63}")
TOKEN_PREFIX = "dgn_"


class AuthFailed(DanganError):
    code = "LOGIN_FAILED"
    status = 401


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(v: dt.datetime | None) -> dt.datetime | None:
    # SQLite returns naive datetimes for timezone-aware columns: they are UTC
    if v is not None and v.tzinfo is None:
        return v.replace(tzinfo=dt.UTC)
    return v


def sha256_hex(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def policy(session: Session) -> PasswordPolicy:
    row = session.get(SystemSetting, POLICY_KEY)
    return PasswordPolicy(**(row.value if row else {}))


# ---------------------------------------------------------------- bootstrap


def ensure_builtin_roles(session: Session) -> None:
    """Builtin roles exist with the current default grants (custom roles are left alone)."""
    for code, label in ROLE_LABELS.items():
        row = session.get(Role, code)
        if row is None:
            session.add(Role(code=code, name=label, builtin=True, grants=dict(DEFAULT_MATRIX.get(code, {}))))
        elif row.builtin:
            row.grants = dict(DEFAULT_MATRIX.get(code, {}))
            row.name = label
    if session.get(SystemSetting, SECURITY_KEY) is None:
        session.add(SystemSetting(key=SECURITY_KEY, value={"levels": ["公开", "内部", "秘密", "机密", "绝密"], "ceiling": "机密"}))


# ---------------------------------------------------------------- loading an actor


def actor_for(session: Session, user: User, client_addr: str = "", token: ApiToken | None = None) -> Actor:
    roles = set(session.scalars(select(UserRole.role_code).where(UserRole.user_id == user.id)))
    grants: dict[str, str] = {}
    order = {"department_prefiling": 0, "department": 1, "all": 2}
    for role in session.scalars(select(Role).where(Role.code.in_(roles))):
        for action, scope in (role.grants or {}).items():
            if action not in grants or order[scope] > order[grants[action]]:
                grants[action] = scope
    depts = frozenset(session.scalars(select(UserDepartment.department_id).where(UserDepartment.user_id == user.id)))
    token_scope = None
    if token is not None:
        sc = token.scope or {}
        token_scope = tuple((k, tuple(sc.get(k) or ())) for k in ("actions", "categories", "departments"))
    return Actor(username=user.username, display_name=user.display_name, roles=frozenset(roles), client_addr=client_addr,
                 user_id=user.id, clearance=user.clearance, department_ids=depts, grants=tuple(sorted(grants.items())),
                 token_scope=token_scope, must_change_password=user.must_change_password)


def _user(session: Session, username: str) -> User:
    u = session.scalar(select(User).where(User.username == username))
    if u is None:
        raise NotFound(f"用户“{username}”不存在", code="USER_NOT_FOUND")
    return u


def user_view(session: Session, u: User) -> dict[str, Any]:
    roles = sorted(session.scalars(select(UserRole.role_code).where(UserRole.user_id == u.id)))
    depts = session.execute(select(Department.code, Department.name).join(UserDepartment, UserDepartment.department_id == Department.id)
                            .where(UserDepartment.user_id == u.id).order_by(Department.code)).all()
    return {"id": u.id, "username": u.username, "display_name": u.display_name, "is_active": u.is_active,
            "clearance": u.clearance, "roles": roles, "role_labels": [ROLE_LABELS.get(r, r) for r in roles],
            "departments": [{"code": c, "name": n} for c, n in depts], "must_change_password": u.must_change_password,
            "locked": bool(u.locked_until and _aware(u.locked_until) > _now()),
            "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
            "is_system_account": u.is_system_account}


# ---------------------------------------------------------------- accounts


def _check_password(session: Session, u: User | None, password: str, username: str) -> None:
    pol = policy(session)
    issues = pol.problems(password, username)
    if u is not None and not issues:
        recent = session.scalars(select(PasswordHistory.password_hash).where(PasswordHistory.user_id == u.id)
                                 .order_by(PasswordHistory.id.desc()).limit(pol.history)).all()
        for h in recent:
            try:
                if _hasher.verify(h, password):
                    issues.append(f"不能与最近 {pol.history} 次使用过的密码相同")
                    break
            except (VerificationError, InvalidHashError):
                continue
    if issues:
        raise ValidationFailed("密码不符合安全策略：" + "；".join(issues), code="WEAK_PASSWORD",
                               problems=[_problem("password", "WEAK_PASSWORD", m, "密码") for m in issues])


def _problem(field: str, code: str, message: str, label: str) -> Any:
    from dangan.errors import FieldProblem

    return FieldProblem(field, code, message, label)


def _set_password(session: Session, u: User, password: str, *, must_change: bool) -> None:
    u.password_hash = _hasher.hash(password)
    u.password_changed_at = utcnow()
    u.must_change_password = must_change
    session.add(PasswordHistory(user_id=u.id, password_hash=u.password_hash))


@audited("user.create", "user")
def create_user(app: Dangan, actor: Actor, username: str, display_name: str, password: str, *,
                departments: list[str] | None = None, fonds: str | None = None, system_account: bool = False) -> dict[str, Any]:
    """系统管理员 creates an account with an initial password that must be changed at first login.

    Roles and clearance are given by the 安全保密管理员 (assign_roles, set_clearance)."""
    p = Problems()
    if not USERNAME.fullmatch(username or ""):
        p.add("username", "PATTERN_MISMATCH", "用户名为 2–64 位字母、数字、点、下划线或连字符，以字母开头", "用户名")
    if not (display_name or "").strip() or len(display_name) > 100:
        p.add("display_name", "REQUIRED", "姓名不能为空，且不超过 100 个字符", "姓名")
    p.raise_if_any()
    with app.uow(actor, "user.create", "user", username) as uow:
        require(actor, "user.manage")
        s = uow.session
        if s.scalar(select(User.id).where(User.username == username)):
            raise Conflict(f"用户名“{username}”已存在", code="USER_EXISTS")
        _check_password(s, None, password, username)
        u = User(username=username, display_name=display_name.strip(), is_system_account=system_account, clearance="公开")
        s.add(u)
        s.flush()
        _set_password(s, u, password, must_change=not system_account)
        for code in departments or []:
            q = select(Department).where((Department.code == code.upper()) | (Department.name == code))
            if fonds:
                from dangan.services.fonds import get_fonds

                q = q.where(Department.fonds_id == get_fonds(s, fonds).id)
            d = s.scalars(q).first()
            if d is None:
                raise NotFound(f"机构“{code}”不存在", code="DEPARTMENT_NOT_FOUND")
            s.add(UserDepartment(user_id=u.id, department_id=d.id))
        s.flush()
        uow.audit("user.create", "user", u.id, username=username, departments=departments or [])
        return user_view(s, u)


@audited("user.update", "user")
def set_departments(app: Dangan, actor: Actor, username: str, departments: list[str]) -> dict[str, Any]:
    with app.uow(actor, "user.update", "user", username) as uow:
        require(actor, "user.manage")
        s = uow.session
        u = _user(s, username)
        s.execute(delete(UserDepartment).where(UserDepartment.user_id == u.id))
        for code in departments:
            d = s.scalars(select(Department).where((Department.code == code.upper()) | (Department.name == code))).first()
            if d is None:
                raise NotFound(f"机构“{code}”不存在", code="DEPARTMENT_NOT_FOUND")
            s.add(UserDepartment(user_id=u.id, department_id=d.id))
        s.flush()
        uow.audit("user.update", "user", u.id, departments=departments)
        return user_view(s, u)


@audited("role.assign", "user")
def assign_roles(app: Dangan, actor: Actor, username: str, roles: list[str]) -> dict[str, Any]:
    """安全保密管理员 sets a user's roles. 三员 exclusivity is enforced; nobody changes their own roles."""
    with app.uow(actor, "role.assign", "user", username) as uow:
        require(actor, "role.assign")
        s = uow.session
        u = _user(s, username)
        if actor.user_id is not None and u.id == actor.user_id:
            raise PermissionDenied("不能修改自己的角色", code="SELF_ASSIGNMENT")
        wanted = set(roles)
        msg = check_role_combination(wanted)
        if msg:
            raise ValidationFailed(msg, code="ROLE_CONFLICT")
        missing = [r for r in wanted if s.get(Role, r) is None]
        if missing:
            raise ValidationFailed("未知角色：" + "、".join(missing), code="ROLE_CONFLICT")
        before = sorted(s.scalars(select(UserRole.role_code).where(UserRole.user_id == u.id)))
        s.execute(delete(UserRole).where(UserRole.user_id == u.id))
        for r in sorted(wanted):
            s.add(UserRole(user_id=u.id, role_code=r, granted_by=actor.username))
        s.flush()
        uow.audit("role.assign", "user", u.id, username=username, before=before, after=sorted(wanted))
        return user_view(s, u)


@audited("clearance.set", "user")
def set_clearance(app: Dangan, actor: Actor, username: str, level: str) -> dict[str, Any]:
    with app.uow(actor, "clearance.set", "user", username) as uow:
        require(actor, "role.assign")
        s = uow.session
        u = _user(s, username)
        if actor.user_id is not None and u.id == actor.user_id:
            raise PermissionDenied("不能修改自己的密级", code="SELF_ASSIGNMENT")
        sec = security_settings(s)
        if level not in sec["levels"]:
            raise ValidationFailed(f"密级“{level}”无效，可选：{'、'.join(sec['levels'])}", code="NOT_IN_DOMAIN")
        if not within_ceiling(level, sec["ceiling"], tuple(sec["levels"])):
            raise ValidationFailed(f"本系统的最高密级为“{sec['ceiling']}”，不能授予“{level}”", code="ABOVE_CEILING")
        before = u.clearance
        u.clearance = level
        uow.audit("clearance.set", "user", u.id, username=username, before=before, after=level)
        return user_view(s, u)


@audited("user.update", "user")
def set_active(app: Dangan, actor: Actor, username: str, active: bool) -> dict[str, Any]:
    with app.uow(actor, "user.update", "user", username) as uow:
        require(actor, "user.manage")
        u = _user(uow.session, username)
        u.is_active = active
        if not active:
            uow.session.execute(delete(LoginSession).where(LoginSession.user_id == u.id))
        uow.audit("user.update", "user", u.id, active=active)
        return user_view(uow.session, u)


@audited("user.reset_password", "user")
def reset_password(app: Dangan, actor: Actor, username: str, new_password: str) -> dict[str, Any]:
    """系统管理员 sets a temporary password; the user must change it at next login; lockout is lifted."""
    with app.uow(actor, "user.reset_password", "user", username) as uow:
        require(actor, "user.manage")
        s = uow.session
        u = _user(s, username)
        _check_password(s, u, new_password, username)
        _set_password(s, u, new_password, must_change=True)
        u.failed_logins, u.locked_until = 0, None
        s.execute(delete(LoginSession).where(LoginSession.user_id == u.id))
        uow.audit("user.reset_password", "user", u.id, username=username)
        return user_view(s, u)


@audited("user.change_password", "user")
def change_password(app: Dangan, actor: Actor, old_password: str, new_password: str) -> None:
    with app.uow(actor, "user.change_password", "user", actor.username) as uow:
        s = uow.session
        u = _user(s, actor.username)
        if not _verify(u, old_password):
            raise ValidationFailed("原密码不正确", code="WRONG_PASSWORD",
                                   problems=[_problem("old_password", "WRONG_PASSWORD", "原密码不正确", "原密码")])
        if old_password == new_password:
            raise ValidationFailed("新密码不能与原密码相同", code="WEAK_PASSWORD")
        _check_password(s, u, new_password, u.username)
        _set_password(s, u, new_password, must_change=False)
        uow.audit("user.change_password", "user", u.id)


def list_users(app: Dangan, actor: Actor) -> list[dict[str, Any]]:
    with app.uow(actor, "user.list", "user") as uow:
        if actor.scope_for("user.manage") is None:
            require(actor, "role.assign")
        users = uow.session.scalars(select(User).order_by(User.username)).all()
        return [user_view(uow.session, u) for u in users]


def permission_matrix(app: Dangan, actor: Actor) -> dict[str, Any]:
    """The role × action × scope matrix as stored, for the one-page view (the 三员 read it)."""
    if not any(actor.scope_for(a) for a in ("user.manage", "role.assign", "audit.read")):
        require(actor, "role.assign")
    with app.read_sessions() as s:
        roles = s.scalars(select(Role).order_by(Role.builtin.desc(), Role.code)).all()
        return {"actions": ACTION_LABELS, "three_admins": list(THREE_ADMINS),
                "roles": [{"code": r.code, "name": r.name, "builtin": r.builtin, "grants": r.grants} for r in roles]}


# ---------------------------------------------------------------- login sessions


def _verify(u: User, password: str) -> bool:
    if not u.password_hash:
        return False
    try:
        return _hasher.verify(u.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass
class LoginResult:
    session_token: str
    csrf_token: str
    actor: Actor


def login(app: Dangan, username: str, password: str, client_addr: str = "", *, start_session: bool = True) -> LoginResult:
    """Check the password; count failures and lock the account after too many; start a session.

    start_session=False authenticates one command (the CLI) without leaving a session behind."""
    username = (username or "").replace("\x00", "")[:64]  # PostgreSQL refuses NUL in text
    password = (password or "").replace("\x00", "")
    anon = Actor(username or "-", client_addr=client_addr)
    with app.uow(anon) as uow:
        s = uow.session
        pol = policy(s)
        u = s.scalar(select(User).where(User.username == username))
        now = _now()
        if u is None or not u.is_active or u.is_system_account:
            uow.audit("login", "user", username[:64], outcome="failure", reason="unknown_or_inactive")
            fail: DanganError | None = AuthFailed("用户名或密码错误")
        elif u.locked_until and _aware(u.locked_until) > now:
            minutes = int((_aware(u.locked_until) - now).total_seconds() // 60) + 1
            uow.audit("login", "user", u.id, outcome="locked")
            fail = AuthFailed(f"账号已因多次登录失败被锁定，请 {minutes} 分钟后再试或联系系统管理员", code="ACCOUNT_LOCKED")
        elif not _verify(u, password):
            u.failed_logins += 1
            fail = AuthFailed("用户名或密码错误")
            if u.failed_logins >= pol.max_failures:
                u.locked_until = now + dt.timedelta(minutes=pol.lockout_minutes)
                u.failed_logins = 0
                uow.audit("login.lockout", "user", u.id, minutes=pol.lockout_minutes)
            uow.audit("login", "user", u.id, outcome="failure", reason="wrong_password")
        else:
            fail = None
            u.failed_logins, u.locked_until, u.last_login_at = 0, None, now
            expired = pol.expiry_days and u.password_changed_at and _aware(u.password_changed_at) < now - dt.timedelta(days=pol.expiry_days)
            if expired:
                u.must_change_password = True
            raw, csrf = (secrets.token_urlsafe(32), secrets.token_urlsafe(24)) if start_session else ("", "")
            if start_session:
                s.add(LoginSession(id=sha256_hex(raw), user_id=u.id, csrf_token=csrf, client_addr=client_addr[:64]))
            uow.audit("login", "user", u.id, outcome="success")
            actor = actor_for(s, u, client_addr)
    # failures are committed (counter, lockout, audit) before the error is raised
    if fail is not None:
        raise fail
    return LoginResult(raw, csrf, actor)


def resolve_session(app: Dangan, raw: str, client_addr: str = "") -> tuple[Actor, str] | None:
    """The actor and CSRF token of a live session, or None (unknown, revoked, idle too long, user disabled)."""
    if not raw or len(raw) > 200:
        return None
    with app.uow(Actor("system", client_addr=client_addr)) as uow:
        s = uow.session
        ls = s.get(LoginSession, sha256_hex(raw))
        if ls is None or ls.revoked:
            return None
        u = s.get(User, ls.user_id)
        now = _now()
        idle = dt.timedelta(minutes=policy(s).idle_timeout_minutes)
        if u is None or not u.is_active or _aware(ls.last_seen_at) < now - idle:
            s.delete(ls)
            return None
        if (now - _aware(ls.last_seen_at)).total_seconds() > 30:
            ls.last_seen_at = now  # throttled: one write per half minute per session
        return actor_for(s, u, client_addr), ls.csrf_token


def logout(app: Dangan, raw: str, actor: Actor) -> None:
    with app.uow(actor) as uow:
        ls = uow.session.get(LoginSession, sha256_hex(raw or ""))
        if ls is not None:
            uow.session.delete(ls)
            uow.audit("logout", "user", ls.user_id)


# ---------------------------------------------------------------- API tokens


@audited("token.create", "token")
def create_token(app: Dangan, actor: Actor, name: str, username: str, *, actions: list[str],
                 categories: list[str] | None = None, departments: list[str] | None = None,
                 expires_days: int | None = 365) -> dict[str, Any]:
    """A token for a business system, limited to actions, categories and departments. Shown once."""
    p = Problems()
    if not (name or "").strip() or len(name) > 100:
        p.add("name", "REQUIRED", "令牌名称不能为空，且不超过 100 个字符", "名称")
    bad = [a for a in actions if a not in ACTION_LABELS]
    if not actions or bad:
        p.add("actions", "NOT_IN_DOMAIN", "请至少选择一项允许的操作" + (f"；无效：{'、'.join(bad)}" if bad else ""), "允许的操作")
    if expires_days is not None and not 1 <= expires_days <= 3650:
        p.add("expires_days", "OUT_OF_RANGE", "有效期为 1–3650 天", "有效期")
    p.raise_if_any()
    with app.uow(actor, "token.create", "token", name) as uow:
        require(actor, "token.manage")
        s = uow.session
        u = _user(s, username)
        for c in categories or []:
            if s.scalar(select(Category.id).where(Category.code == c.upper())) is None:
                raise NotFound(f"门类“{c}”不存在", code="CATEGORY_NOT_FOUND")
        for d in departments or []:
            if s.scalar(select(Department.id).where(Department.code == d.upper())) is None:
                raise NotFound(f"机构“{d}”不存在", code="DEPARTMENT_NOT_FOUND")
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        scope = {"actions": sorted(set(actions)), "categories": [c.upper() for c in categories or []],
                 "departments": [d.upper() for d in departments or []]}
        t = ApiToken(name=name.strip(), token_hash=sha256_hex(raw), prefix=raw[:10], user_id=u.id, scope=scope,
                     created_by=actor.username,
                     expires_at=_now() + dt.timedelta(days=expires_days) if expires_days else None)
        s.add(t)
        s.flush()
        uow.audit("token.create", "token", t.id, name=t.name, user=username, scope=scope, expires_at=str(t.expires_at))
        return {**token_view(t, username), "token": raw}


def token_view(t: ApiToken, username: str = "") -> dict[str, Any]:
    now = _now()
    state = "revoked" if t.revoked_at else ("expired" if t.expires_at and _aware(t.expires_at) < now else "active")
    return {"id": t.id, "name": t.name, "prefix": t.prefix, "username": username, "scope": t.scope,
            "created_at": t.created_at.isoformat() if t.created_at else None, "created_by": t.created_by,
            "expires_at": t.expires_at.isoformat() if t.expires_at else None,
            "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
            "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None, "state": state,
            "state_label": {"revoked": "已吊销", "expired": "已过期", "active": "有效"}[state]}


@audited("token.revoke", "token")
def revoke_token(app: Dangan, actor: Actor, token_id: int) -> dict[str, Any]:
    with app.uow(actor, "token.revoke", "token", str(token_id)) as uow:
        require(actor, "token.manage")
        t = uow.session.get(ApiToken, token_id)
        if t is None:
            raise NotFound(f"令牌 {token_id} 不存在", code="TOKEN_NOT_FOUND")
        t.revoked_at = t.revoked_at or _now()
        uow.audit("token.revoke", "token", t.id, name=t.name)
        return token_view(t)


def list_tokens(app: Dangan, actor: Actor) -> list[dict[str, Any]]:
    with app.uow(actor, "token.list", "token") as uow:
        require(actor, "token.manage")
        rows = uow.session.execute(select(ApiToken, User.username).join(User, User.id == ApiToken.user_id)
                                   .order_by(ApiToken.id.desc())).all()
        return [token_view(t, un) for t, un in rows]


def authenticate_token(app: Dangan, raw: str, client_addr: str = "") -> Actor:
    """The actor for a bearer token; unknown, expired and revoked tokens all fail the same way (audited)."""
    with app.uow(Actor("token", client_addr=client_addr)) as uow:
        s = uow.session
        t = s.scalar(select(ApiToken).where(ApiToken.token_hash == sha256_hex(raw or "")))
        now = _now()
        reason = None
        if t is None:
            reason = "unknown"
        elif t.revoked_at is not None:
            reason = "revoked"
        elif t.expires_at is not None and _aware(t.expires_at) < now:
            reason = "expired"
        u = s.get(User, t.user_id) if t is not None else None
        if reason is None and (u is None or not u.is_active):
            reason = "user_inactive"
        if reason is not None:
            uow.audit("token.use", "token", t.id if t else (raw or "")[:10], outcome="failure", reason=reason)
            actor = None
        else:
            t.last_used_at = now
            actor = actor_for(s, u, client_addr, token=t)
    if actor is None:
        raise AuthFailed("接口令牌无效、已过期或已被吊销", code="TOKEN_INVALID")
    return actor


__all__ = ["AuthFailed", "LoginResult", "actor_for", "assign_roles", "authenticate_token", "change_password",
           "create_token", "create_user", "ensure_builtin_roles", "list_tokens", "list_users", "login", "logout",
           "merge_grants", "permission_matrix", "reset_password", "resolve_session", "revoke_token", "set_active",
           "set_clearance", "set_departments", "token_view", "user_view"]


# ---------------------------------------------------------------- deployment security settings (安全保密管理员)


def security_overview(app: Dangan, actor: Actor) -> dict[str, Any]:
    """The 密级 list, the ceiling and the password policy in force."""
    with app.read_sessions() as s:
        if not any(actor.scope_for(a) for a in ("user.manage", "role.assign", "audit.read")):
            require(actor, "role.assign")
        pol = policy(s)
        return {**security_settings(s), "password_policy": {k: getattr(pol, k) for k in (
            "min_length", "min_classes", "expiry_days", "history", "max_failures", "lockout_minutes",
            "idle_timeout_minutes")}}


@audited("security.ceiling", "system")
def set_ceiling(app: Dangan, actor: Actor, level: str) -> dict[str, Any]:
    """The highest 密级 this deployment stores. Lowering it below records already held is refused."""
    from sqlalchemy import func

    from dangan.db.models import Record

    with app.uow(actor, "security.ceiling", "system") as uow:
        require(actor, "role.assign")
        s = uow.session
        sec = security_settings(s)
        levels = sec["levels"]
        if level not in levels:
            raise ValidationFailed(f"密级“{level}”无效，可选：{'、'.join(levels)}", code="NOT_IN_DOMAIN")
        above = levels[levels.index(level) + 1:]
        held = s.scalar(select(func.count()).select_from(Record).where(Record.security_level.in_(above))) if above else 0
        if held:
            raise ValidationFailed(f"系统中已有 {held} 件高于“{level}”的档案，不能把最高密级降到“{level}”",
                                   code="CEILING_BELOW_HOLDINGS")
        users = s.scalar(select(func.count()).select_from(User).where(User.clearance.in_(above))) if above else 0
        if users:
            raise ValidationFailed(f"有 {users} 个用户的密级高于“{level}”，请先调整其密级", code="CEILING_BELOW_USERS")
        before = sec["ceiling"]
        s.merge(SystemSetting(key=SECURITY_KEY, value={**sec, "ceiling": level}))
        uow.audit("security.ceiling", "system", "security", before=before, after=level)
        return {**sec, "ceiling": level}


POLICY_LIMITS = {"min_length": (8, 64), "min_classes": (1, 4), "expiry_days": (0, 3650), "history": (0, 24),
                 "max_failures": (3, 20), "lockout_minutes": (1, 1440), "idle_timeout_minutes": (5, 480)}


@audited("security.password_policy", "system")
def set_password_policy(app: Dangan, actor: Actor, **changes: int) -> dict[str, Any]:
    """Adjust the password and session policy within sane bounds (defaults meet 等保 2.0 level 3)."""
    p = Problems()
    for k, v in changes.items():
        if k not in POLICY_LIMITS:
            p.add(k, "UNKNOWN_FIELD", f"没有策略项“{k}”，可选：{'、'.join(POLICY_LIMITS)}", k)
        elif isinstance(v, bool) or not isinstance(v, int) or not POLICY_LIMITS[k][0] <= v <= POLICY_LIMITS[k][1]:
            lo, hi = POLICY_LIMITS[k]
            p.add(k, "OUT_OF_RANGE", f"应为 {lo}–{hi} 之间的整数", k, v)
    p.raise_if_any("密码策略有误，未保存")
    with app.uow(actor, "security.password_policy", "system") as uow:
        require(actor, "role.assign")
        s = uow.session
        row = s.get(SystemSetting, POLICY_KEY)
        before = dict(row.value) if row else {}
        after = {**before, **changes}
        s.merge(SystemSetting(key=POLICY_KEY, value=after))
        uow.audit("security.password_policy", "system", "password_policy", before=before, after=after)
    return security_overview(app, actor)
