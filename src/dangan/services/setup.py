"""`dangan init`: create the data folder, migrate the database, add the bootstrap administrator and presets."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select

from dangan.config import Settings, write_config_file
from dangan.db.models import User
from dangan.domain.presets import CATEGORY_PRESETS
from dangan.services.categories import create_category
from dangan.services.context import BOOTSTRAP_ADMIN, Actor, Dangan
from dangan.services.fonds import create_fonds
from dangan.services.identity import ensure_builtin_roles


def init(settings: Settings, *, fonds_code: str | None = None, fonds_name: str | None = None,
         presets: list[str] | None = None, demo: bool = False, demo_size: int = 300,
         admin_accounts: bool = True) -> dict[str, Any]:
    """Idempotent: running it again on an existing folder migrates and changes nothing else."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not settings.config_file.exists():
        write_config_file(settings)
    app = Dangan(settings)
    try:
        app.migrate()
        actor = Actor.system()
        created_admin = False
        with app.uow(actor) as uow:
            ensure_builtin_roles(uow.session)
            if uow.session.scalar(select(User.id).where(User.username == BOOTSTRAP_ADMIN)) is None:
                uow.session.add(User(username=BOOTSTRAP_ADMIN, display_name="系统管理员", is_bootstrap_admin=True))
                created_admin = True
                uow.audit("system.init", "system", settings.data_dir.name, database=_redact(settings.effective_database_url),
                          storage=_redact(settings.effective_storage_url))
        result: dict[str, Any] = {"data": str(settings.data_dir), "database": _redact(settings.effective_database_url),
                                  "storage": _redact(settings.effective_storage_url), "created_admin": created_admin}
        if admin_accounts and not demo:
            result["admins"] = create_three_admins(app)
        if fonds_code:
            create_fonds(app, actor, fonds_code, fonds_name or fonds_code)
            for code in presets or list(CATEGORY_PRESETS):
                create_category(app, actor, fonds_code, code)
            result["fonds"] = fonds_code
        if demo:
            from dangan.demo.build import build_demo

            result["demo"] = build_demo(app, actor, size=demo_size)
        return result
    finally:
        app.close()


def _redact(url: str) -> str:
    """Never print a password that a URL may carry."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':')[0]}:***@{host}" if ":" in cred else url
    return url


def initial_password() -> str:
    """A random initial password that meets the default policy (four character classes, 16+ characters)."""
    return secrets.token_urlsafe(12) + "Aa1!"


def create_three_admins(app: Dangan) -> list[dict[str, str]]:
    """The 三员 accounts of a new installation, each with a one-time initial password (printed once)."""
    from dangan.domain.access import ROLE_LABELS, THREE_ADMINS
    from dangan.services.identity import assign_roles, create_user

    out = []
    with app.read_sessions() as s:
        existing = set(s.scalars(select(User.username).where(User.username.in_(THREE_ADMINS))))
    for code in THREE_ADMINS:
        if code in existing:
            continue
        pw = initial_password()
        create_user(app, Actor.system(), code, ROLE_LABELS[code], pw)
        assign_roles(app, Actor.system(), code, [code])
        out.append({"username": code, "role": ROLE_LABELS[code], "initial_password": pw})
    return out
