"""身份与权限: who am I, accounts, roles and clearance, the permission matrix, security settings, API tokens.

Each call goes through the identity service, which checks the right (三员分立) and audits the change.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from dangan.domain.access import ACTION_LABELS, ROLE_LABELS, SCOPE_LABELS
from dangan.errors import NotFound, PermissionDenied
from dangan.services import fonds, identity
from dangan.services.browse import security_levels
from dangan.services.context import Actor, Dangan
from dangan.web.api.bodies import Body
from dangan.web.deps import Identity, current_actor, current_identity, get_dangan, pending_actor, require_any

router = APIRouter(tags=["身份与权限"])


class PasswordChange(Body):
    old_password: str = Field(max_length=256)
    new_password: str = Field(max_length=256)


class UserCreate(Body):
    username: str = Field(max_length=64, description="用户名：字母开头，2–64 位字母、数字、点、下划线或连字符")
    display_name: str = Field(max_length=100, description="姓名")
    password: str = Field(max_length=128, description="初始密码（首次登录须修改；业务系统账号不能登录）")
    departments: list[str] = Field(default_factory=list, description="所属机构代码，如 [\"BGS\"]")
    fonds: str | None = Field(None, max_length=16, description="机构所在的全宗（机构代码在多个全宗重复时）")
    system_account: bool = Field(False, description="业务系统账号：只用接口令牌，不能登录页面")


class PasswordReset(Body):
    password: str = Field(max_length=128, description="临时密码（用户下次登录须修改）")


class ActiveBody(Body):
    active: bool


class DepartmentsBody(Body):
    departments: list[str] = Field(description="所属机构代码（整体替换）")


class RolesBody(Body):
    roles: list[str] = Field(description="角色代码（整体替换）：" + "、".join(f"{k} {v}" for k, v in ROLE_LABELS.items()))


class ClearanceBody(Body):
    clearance: str = Field(max_length=16, description="密级，如 内部、秘密、机密（不高于系统最高密级）")


class TokenCreate(Body):
    name: str = Field(max_length=100, description="令牌名称，如 OA 系统推送")
    username: str = Field(max_length=64, description="令牌所属账号（令牌不会超出此账号的角色权限与密级）")
    actions: list[str] = Field(description="允许的操作，如 [\"record.create\", \"file.add\"]")
    categories: list[str] = Field(default_factory=list, description="限定门类代码（空为不限）")
    departments: list[str] = Field(default_factory=list, description="限定机构代码（空为不限）")
    expires_days: int | None = Field(365, description="有效期（天，1–3650；null 为长期有效）")


class CeilingBody(Body):
    level: str = Field(max_length=16, description="系统最高密级，如 机密（不能低于已有档案和用户的密级）")


def _limit(key: str, text: str) -> str:
    lo, hi = identity.POLICY_LIMITS[key]
    return f"{text}，{lo}–{hi}"


class PolicyBody(Body):
    """Only the items given change; each is checked against its allowed range (field-by-field 422 OUT_OF_RANGE)."""

    min_length: int | None = Field(None, description=_limit("min_length", "密码最短长度"))
    min_classes: int | None = Field(None, description=_limit("min_classes", "字符类别至少（大写、小写、数字、符号）"))
    expiry_days: int | None = Field(None, description=_limit("expiry_days", "密码有效期（天，0 为不过期）"))
    history: int | None = Field(None, description=_limit("history", "不得重复最近几次密码"))
    max_failures: int | None = Field(None, description=_limit("max_failures", "连续失败几次锁定"))
    lockout_minutes: int | None = Field(None, description=_limit("lockout_minutes", "锁定时长（分钟）"))
    idle_timeout_minutes: int | None = Field(None, description=_limit("idle_timeout_minutes", "无操作自动退出（分钟）"))


def _me(dangan: Dangan, ident: Identity) -> dict[str, Any]:
    a = ident.actor
    assert a is not None
    depts = [{"code": d["code"], "name": d["name"], "fonds": f["code"]}
             for f in fonds.list_fonds(dangan, a) for d in fonds.list_departments(dangan, a, f["code"])
             if d["id"] in a.department_ids]
    grants = {act: {"scope": sc, "scope_label": SCOPE_LABELS.get(sc, sc), "label": ACTION_LABELS.get(act, act)}
              for act in ACTION_LABELS if (sc := a.scope_for(act)) is not None}
    out: dict[str, Any] = {
        "username": a.username, "display_name": a.display_name, "roles": sorted(a.roles),
        "role_labels": [ROLE_LABELS.get(r, r) for r in sorted(a.roles)], "clearance": a.clearance,
        "departments": depts, "grants": grants, "must_change_password": a.must_change_password, "auth": ident.via,
    }
    if ident.via == "token":
        out["token_scope"] = {k: list(v) for k, v in (a.token_scope or ())}
    if ident.via == "session":
        out["csrf_token"] = ident.csrf  # for scripts in the page: unsafe API calls repeat it in X-CSRF-Token
    return out


@router.get("/me", summary="当前用户：角色、密级、所属机构与权限（会话登录时含 csrf_token）")
def me(request: Request, dangan: Dangan = Depends(get_dangan), _: Actor = Depends(pending_actor)) -> dict[str, Any]:
    return _me(dangan, current_identity(request))


@router.post("/me/password", status_code=204, summary="修改本人密码（登录会话；接口令牌不能修改密码）")
def change_password(request: Request, body: PasswordChange, dangan: Dangan = Depends(get_dangan),
                    actor: Actor = Depends(pending_actor)) -> None:
    if current_identity(request).via != "session":
        raise PermissionDenied("接口令牌不能修改账号密码，请登录后在“修改密码”页面修改", code="PERMISSION_DENIED")
    identity.change_password(dangan, actor, body.old_password, body.new_password)


@router.get("/users", summary="用户列表（系统管理员、安全保密管理员）")
def list_users(dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return identity.list_users(dangan, actor)


@router.get("/users/{username}", summary="一个用户")
def show_user(username: str, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    found = next((u for u in identity.list_users(dangan, actor) if u["username"] == username), None)
    if found is None:
        raise NotFound(f"用户“{username}”不存在", code="USER_NOT_FOUND")
    return found


@router.post("/users", status_code=201, summary="新建用户（系统管理员；角色与密级由安全保密管理员分配）")
def create_user(body: UserCreate, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return identity.create_user(dangan, actor, body.username, body.display_name, body.password,
                                departments=body.departments, fonds=body.fonds, system_account=body.system_account)


@router.post("/users/{username}/password", summary="重置密码（系统管理员；解除锁定，结束其会话，下次登录须修改）")
def reset_password(username: str, body: PasswordReset, dangan: Dangan = Depends(get_dangan),
                   actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return identity.reset_password(dangan, actor, username, body.password)


@router.put("/users/{username}/active", summary="启用或停用账号（系统管理员）")
def set_active(username: str, body: ActiveBody, dangan: Dangan = Depends(get_dangan),
               actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return identity.set_active(dangan, actor, username, body.active)


@router.put("/users/{username}/departments", summary="设置所属机构（系统管理员）")
def set_departments(username: str, body: DepartmentsBody, dangan: Dangan = Depends(get_dangan),
                    actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return identity.set_departments(dangan, actor, username, body.departments)


@router.put("/users/{username}/roles", summary="分配角色（安全保密管理员；三员互斥，不能改自己）")
def assign_roles(username: str, body: RolesBody, dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return identity.assign_roles(dangan, actor, username, body.roles)


@router.put("/users/{username}/clearance", summary="设置密级（安全保密管理员；不高于系统最高密级）")
def set_clearance(username: str, body: ClearanceBody, dangan: Dangan = Depends(get_dangan),
                  actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return identity.set_clearance(dangan, actor, username, body.clearance)


@router.get("/permission-matrix", summary="权限矩阵：角色 × 操作 × 范围（三员）")
def permission_matrix(request: Request, dangan: Dangan = Depends(get_dangan),
                      actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    require_any(request, actor, "user.manage", "role.assign", "audit.read")
    m = identity.permission_matrix(dangan, actor)
    return {**m, "scopes": SCOPE_LABELS, "security": security_levels(dangan)}


def _security(dangan: Dangan, actor: Actor) -> dict[str, Any]:
    info = identity.security_overview(dangan, actor)
    return {**info, "policy_limits": {k: {"min": lo, "max": hi} for k, (lo, hi) in identity.POLICY_LIMITS.items()}}


@router.get("/security", summary="安全设置：密级列表（由低到高）、系统最高密级、密码与会话策略及允许范围（三员）")
def security(request: Request, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    require_any(request, actor, "user.manage", "role.assign", "audit.read")
    return _security(dangan, actor)


@router.put("/security/ceiling", summary="设置系统最高密级（安全保密管理员；不能低于已有档案和用户的密级）")
def set_ceiling(body: CeilingBody, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    identity.set_ceiling(dangan, actor, body.level)
    return _security(dangan, actor)


@router.put("/security/password-policy", summary="修改密码与会话策略（安全保密管理员；只改给出的项，各项有允许范围）")
def set_password_policy(body: PolicyBody, dangan: Dangan = Depends(get_dangan),
                        actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    identity.set_password_policy(dangan, actor, **body.model_dump(exclude_unset=True))
    return _security(dangan, actor)


@router.get("/tokens", summary="接口令牌列表（不含令牌本身）")
def list_tokens(dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return identity.list_tokens(dangan, actor)


@router.post("/tokens", status_code=201, summary="签发接口令牌（返回的 token 只出现这一次）")
def create_token(body: TokenCreate, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return identity.create_token(dangan, actor, body.name, body.username, actions=body.actions, categories=body.categories,
                                 departments=body.departments, expires_days=body.expires_days)


@router.post("/tokens/{token_id}/revoke", summary="吊销接口令牌（立即失效）")
def revoke_token(token_id: int, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return identity.revoke_token(dangan, actor, token_id)
