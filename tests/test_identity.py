"""Identity: accounts, 三员分立, clearance ceiling, password policy, lockout, sessions, API tokens."""

import datetime as dt

import pytest
from sqlalchemy import select, update

from dangan.db.models import ApiToken, LoginSession, User
from dangan.errors import NotFound, PermissionDenied, ValidationFailed
from dangan.services import identity as idn
from dangan.services.audit import list_events
from dangan.services.context import Actor

PW = "Archive#2026x"


def make_user(app, username, roles=(), clearance="公开", depts=(), password=PW):
    sysop = Actor.system()
    idn.create_user(app, sysop, username, username.upper(), password, departments=list(depts))
    if roles:
        idn.assign_roles(app, sysop, username, list(roles))
    if clearance != "公开":
        idn.set_clearance(app, sysop, username, clearance)
    with app.sessions() as s, s.begin():
        s.execute(update(User).where(User.username == username).values(must_change_password=False))
    return idn.login(app, username, password).actor


@pytest.fixture
def admins(app):
    return {r: make_user(app, r, [r]) for r in ("sysadmin", "secadmin", "auditor")}


def test_three_admins_are_mutually_exclusive(app, admins):
    make_user(app, "alice")
    with pytest.raises(ValidationFailed) as ei:
        idn.assign_roles(app, admins["secadmin"], "alice", ["sysadmin", "auditor"])
    assert ei.value.code == "ROLE_CONFLICT" and "三员分立" in ei.value.message
    with pytest.raises(ValidationFailed):
        idn.assign_roles(app, admins["secadmin"], "alice", ["secadmin", "sysadmin"])
    assert idn.assign_roles(app, admins["secadmin"], "alice", ["archivist", "reader"])["roles"] == ["archivist", "reader"]


def test_duties_are_separated(app, admins):
    # the system administrator creates accounts but cannot grant roles or clearance
    idn.create_user(app, admins["sysadmin"], "bob", "张三", PW)
    with pytest.raises(PermissionDenied):
        idn.assign_roles(app, admins["sysadmin"], "bob", ["archivist"])
    with pytest.raises(PermissionDenied):
        idn.set_clearance(app, admins["sysadmin"], "bob", "秘密")
    # the security officer grants roles but cannot create accounts, nor change their own roles
    with pytest.raises(PermissionDenied):
        idn.create_user(app, admins["secadmin"], "carol", "李四", PW)
    with pytest.raises(PermissionDenied) as ei:
        idn.assign_roles(app, admins["secadmin"], "secadmin", ["secadmin", "archivist"])
    assert ei.value.code == "SELF_ASSIGNMENT"
    # none of the three reads record content by virtue of the role
    for a in admins.values():
        assert a.scope_for("record.read") is None and a.scope_for("file.download") is None
    # denials are audited
    events = list_events(app, Actor.system(), action="role.assign", audit_the_view=False)
    assert any(e["outcome"] == "denied" and e["actor"] == "sysadmin" for e in events)


def test_clearance_ceiling(app, admins):
    make_user(app, "dave")
    assert idn.set_clearance(app, admins["secadmin"], "dave", "机密")["clearance"] == "机密"
    with pytest.raises(ValidationFailed) as ei:
        idn.set_clearance(app, admins["secadmin"], "dave", "绝密")  # above the default ceiling 机密
    assert ei.value.code == "ABOVE_CEILING"
    with pytest.raises(ValidationFailed):
        idn.set_clearance(app, admins["secadmin"], "dave", "顶级")


@pytest.mark.parametrize("pw,msg", [("short1A!", "长度"), ("alllowercase", "至少 3 类"), ("Eve#2026eve_x", "用户名")])
def test_password_policy(app, admins, pw, msg):
    with pytest.raises(ValidationFailed) as ei:
        idn.create_user(app, admins["sysadmin"], "eve", "王五", pw)
    assert msg in ei.value.message


def test_password_history_and_forced_change(app, admins):
    idn.create_user(app, admins["sysadmin"], "frank", "赵六", PW)
    res = idn.login(app, "frank", PW)
    assert res.actor.must_change_password
    with pytest.raises(ValidationFailed):
        idn.change_password(app, res.actor, "wrong", "Another#2026y")
    idn.change_password(app, res.actor, PW, "Another#2026y")
    with pytest.raises(ValidationFailed) as ei:
        idn.change_password(app, res.actor, "Another#2026y", PW)  # reused
    assert "最近" in ei.value.message
    assert not idn.login(app, "frank", "Another#2026y").actor.must_change_password


def test_lockout_after_failures_and_timed_unlock(app, admins):
    make_user(app, "gina")
    for _ in range(5):
        with pytest.raises(idn.AuthFailed) as ei:
            idn.login(app, "gina", "nope")
        assert ei.value.code == "LOGIN_FAILED"
    with pytest.raises(idn.AuthFailed) as ei:
        idn.login(app, "gina", PW)  # right password, but locked
    assert ei.value.code == "ACCOUNT_LOCKED"
    with app.sessions() as s, s.begin():
        s.execute(update(User).where(User.username == "gina").values(locked_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    assert idn.login(app, "gina", PW).actor.username == "gina"
    actions = [(e["action"], e["outcome"]) for e in list_events(app, Actor.system(), object_type="user", audit_the_view=False)]
    assert ("login.lockout", "success") in actions and ("login", "failure") in actions and ("login", "locked") in actions


def test_unknown_user_and_wrong_password_look_the_same(app):
    make_user(app, "hank")
    with pytest.raises(idn.AuthFailed) as a:
        idn.login(app, "nobody", PW)
    with pytest.raises(idn.AuthFailed) as b:
        idn.login(app, "hank", "wrong")
    assert a.value.message == b.value.message


def test_sessions_expire_when_idle_and_on_logout(app):
    make_user(app, "ivy")
    res = idn.login(app, "ivy", PW)
    actor, csrf = idn.resolve_session(app, res.session_token)
    assert actor.username == "ivy" and csrf == res.csrf_token
    with app.sessions() as s:
        assert s.get(LoginSession, res.session_token) is None  # only the hash is stored
    with app.sessions() as s, s.begin():
        s.execute(update(LoginSession).values(last_seen_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)))
    assert idn.resolve_session(app, res.session_token) is None
    res = idn.login(app, "ivy", PW)
    idn.logout(app, res.session_token, actor)
    assert idn.resolve_session(app, res.session_token) is None
    assert idn.resolve_session(app, "forged") is None


def test_tokens_shown_once_scoped_expiring_revocable(app, admins):
    make_user(app, "oa-system", ["clerk"], depts=["BGS"])
    t = idn.create_token(app, admins["sysadmin"], "OA 系统", "oa-system", actions=["record.create", "file.add"],
                         categories=["WS"], departments=["BGS"], expires_days=30)
    raw = t["token"]
    assert raw.startswith("dgn_") and t["state"] == "active"
    with app.read_sessions() as s:
        assert s.scalar(select(ApiToken.token_hash)) != raw and raw not in str(s.scalar(select(ApiToken.scope)))
    assert "token" not in idn.list_tokens(app, admins["sysadmin"])[0]
    a = idn.authenticate_token(app, raw)
    assert a.scope_for("record.create") == "department_prefiling" and a.scope_for("record.read") is None
    assert a.token_limits("categories") == ("WS",)
    with app.sessions() as s, s.begin():
        s.execute(update(ApiToken).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))
    with pytest.raises(idn.AuthFailed):
        idn.authenticate_token(app, raw)
    t2 = idn.create_token(app, admins["sysadmin"], "OA 系统 2", "oa-system", actions=["record.create"])
    idn.revoke_token(app, admins["sysadmin"], t2["id"])
    with pytest.raises(idn.AuthFailed) as ei:
        idn.authenticate_token(app, t2["token"])
    assert ei.value.code == "TOKEN_INVALID"
    with pytest.raises(idn.AuthFailed):
        idn.authenticate_token(app, "dgn_guess")
    with pytest.raises(PermissionDenied):
        idn.create_token(app, admins["secadmin"], "x", "oa-system", actions=["record.create"])


def test_unknown_department_and_user(app, admins):
    with pytest.raises(NotFound):
        idn.create_user(app, admins["sysadmin"], "jack", "某某", PW, departments=["NOPE"])
    with pytest.raises(NotFound):
        idn.assign_roles(app, admins["secadmin"], "nobody", ["reader"])


def test_ceiling_and_policy_are_the_security_officers(app, admins):
    from dangan.services.records import RecordInput, create_record

    with pytest.raises(PermissionDenied):
        idn.set_ceiling(app, admins["sysadmin"], "秘密")
    meta = {"title": "机密件", "year": 2024, "retention_period": "Y", "responsible": "办公室", "date": "2024-01-02",
            "security_level": "机密", "secrecy_period": "20年"}
    create_record(app, Actor.system(), RecordInput("Z109", "WS", meta, department="BGS"))
    with pytest.raises(ValidationFailed) as ei:
        idn.set_ceiling(app, admins["secadmin"], "秘密")
    assert ei.value.code == "CEILING_BELOW_HOLDINGS"
    assert idn.set_ceiling(app, admins["secadmin"], "绝密")["ceiling"] == "绝密"
    make_user(app, "kate")
    assert idn.set_clearance(app, admins["secadmin"], "kate", "绝密")["clearance"] == "绝密"
    with pytest.raises(ValidationFailed) as ei:
        idn.set_password_policy(app, admins["secadmin"], min_length=4, bogus=1)
    assert {p.code for p in ei.value.problems} == {"OUT_OF_RANGE", "UNKNOWN_FIELD"}
    idn.set_password_policy(app, admins["secadmin"], min_length=14, max_failures=3)
    with pytest.raises(ValidationFailed) as ei:
        idn.create_user(app, admins["sysadmin"], "leo", "某某", "Short#2026xy")
    assert "至少 14 位" in ei.value.message
    assert idn.security_overview(app, admins["auditor"])["password_policy"]["max_failures"] == 3
