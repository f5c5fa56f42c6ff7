"""The application context (settings, database, blob store) and the unit of work every service runs in."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from dangan.config import Settings, load_settings
from dangan.db.engine import make_engine, upgrade
from dangan.errors import Conflict, DanganError, DatabaseUnavailable
from dangan.services import audit
from dangan.storage import BlobStore, open_store

BOOTSTRAP_ADMIN = "admin"


@dataclass(frozen=True)
class Actor:
    """Who is acting, from where, and what they may do: roles, merged grants (action -> scope), clearance,
    departments, and for API tokens the token's scope. `superuser` is only for the system itself
    (init, demo data, migrations, scheduled jobs), never for a person logged in through a face."""

    username: str
    display_name: str = ""
    roles: frozenset[str] = frozenset()
    client_addr: str = ""
    user_id: int | None = None
    clearance: str = "公开"
    department_ids: frozenset[int] = frozenset()
    grants: tuple[tuple[str, str], ...] = ()
    token_scope: tuple[tuple[str, tuple[str, ...]], ...] | None = None
    superuser: bool = False
    must_change_password: bool = False

    @classmethod
    def system(cls, client_addr: str = "local") -> Actor:
        return cls("system", "系统", frozenset({"system"}), client_addr, superuser=True, clearance="绝密")

    @classmethod
    def admin(cls, client_addr: str = "") -> Actor:
        """The bootstrap operator acting with full rights (CLI on the server, tests of the core)."""
        return cls(BOOTSTRAP_ADMIN, "系统管理员", frozenset({"admin"}), client_addr, superuser=True, clearance="绝密")

    def scope_for(self, action: str) -> str | None:
        """The scope this actor holds for an action ('all', 'department', 'department_prefiling') or None."""
        if self.superuser:
            return "all"
        if self.token_scope is not None:
            allowed = dict(self.token_scope).get("actions", ())
            if action not in allowed:
                return None
        return dict(self.grants).get(action)

    def token_limits(self, key: str) -> tuple[str, ...] | None:
        """Category or department codes an API token is limited to (None: not limited)."""
        if self.token_scope is None:
            return None
        v = dict(self.token_scope).get(key)
        return tuple(v) if v else None


class Dangan:
    """One per process: opens the database and the blob store named by the settings."""

    def __init__(self, settings: Settings, *, engine: Engine | None = None, store: BlobStore | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.effective_database_url)
        self.store = store or open_store(settings.effective_storage_url, settings)
        # called before a record is filed (services.records.run_filing_checks): the 四性检测 engine registers here
        self.filing_checks: list[Callable[..., dict[str, Any]]] = []
        if settings.filing_checks:
            from dangan.services.checks import filing_check

            self.filing_checks.append(filing_check)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # plain BEGIN on SQLite: validation reads before a write must not take the write lock
        self.read_sessions = sessionmaker(self.engine.execution_options(dangan_readonly=True), expire_on_commit=False,
                                          class_=_ReadSession)

    @classmethod
    def open(cls, data: str | None = None, **overrides: Any) -> Dangan:
        return cls(load_settings(data, **overrides))

    def migrate(self) -> None:
        """Bring the schema up to date, then the builtin roles' grants (a new version may add actions)."""
        from dangan.services.identity import ensure_builtin_roles

        upgrade(self.engine)
        with self.sessions.begin() as s:
            ensure_builtin_roles(s)

    def uow(self, actor: Actor, action: str = "", object_type: str = "", object_id: str = "") -> UnitOfWork:
        return UnitOfWork(self, actor, action, object_type, object_id)

    def after_commit_index(self, events: list[Any]) -> None:
        """Hand the records a unit of work created or changed to the search indexer (never fails the work)."""
        if not self.settings.search_index or not events:
            return
        from dangan.services import search

        ids = search.after_commit_ids(events)
        if ids:
            self.indexer.submit(ids, extract=self.settings.search_extract_on_commit)

    @functools.cached_property
    def indexer(self) -> Any:
        from dangan.services.search import Indexer

        return Indexer(self)

    @functools.cached_property
    def tantivy(self) -> Any:
        """The embedded tantivy index of this deployment (search.tv), or None where the SQL engine answers."""
        from dangan.search import tv

        engine = self.settings.search_engine
        if engine == "sql" or not tv.available() or self.engine.dialect.name != "sqlite":
            return None
        return tv.TantivyIndex(self.settings.data_dir / "search-index")

    def close(self) -> None:
        if "indexer" in self.__dict__:  # let the text of the last changes reach the index first
            self.indexer.flush(timeout=30)
        if "tantivy" in self.__dict__ and self.tantivy is not None:
            self.tantivy.close()
        self.engine.dispose()


@dataclass
class UnitOfWork:
    """One transaction: the work, then its audit events, then commit; after-commit hooks run only on success.

    If a DanganError escapes, the transaction is rolled back (nothing half-written) and, when an action was
    named, a failure event with the error code is written in its own transaction.
    """

    app: Dangan
    actor: Actor
    action: str = ""
    object_type: str = ""
    object_id: str = ""
    events: list[audit.PendingEvent] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    session: Session = field(init=False)

    def audit(self, action: str, object_type: str = "", object_id: Any = "", *, outcome: str = "success",
              **detail: Any) -> None:
        self.events.append(audit.PendingEvent(action, object_type, str(object_id), outcome, detail))

    def __enter__(self) -> UnitOfWork:
        self.session = self.app.sessions()
        self.session.begin()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        try:
            if exc is None:
                try:
                    audit.append(self.session, self.actor.username, self.actor.client_addr, self.events)
                    self.session.commit()
                except IntegrityError as e:
                    _safe_rollback(self.session)
                    raise Conflict("数据与已有记录冲突（可能被他人同时修改），本次操作未保存，请刷新后重试",
                                   code="CONCURRENT_CONFLICT") from e
                except (OperationalError, DBAPIError) as e:
                    _safe_rollback(self.session)
                    raise _db_error(e) from e
            else:
                _safe_rollback(self.session)
        finally:
            self.session.close()
        if exc is None:
            for hook in self.after_commit:
                hook()
            self.app.after_commit_index(self.events)
            return False
        if isinstance(exc, IntegrityError):
            err: DanganError = Conflict("数据与已有记录冲突（可能被他人同时修改），本次操作未保存，请刷新后重试",
                                        code="CONCURRENT_CONFLICT", message_en=str(exc.orig)[:200])
            self._record_failure(err)
            raise err from exc
        if isinstance(exc, OperationalError | DBAPIError):
            err = _db_error(exc)
            self._record_failure(err)
            raise err from exc
        if isinstance(exc, DanganError):
            self._record_failure(exc)
        return False

    def _record_failure(self, err: DanganError) -> None:
        if self.action:
            record_failure(self.app, self.actor, self.action, self.object_type, self.object_id, err)


def record_failure(app: Dangan, actor: Actor, action: str, object_type: str, object_id: str, err: DanganError) -> None:
    """Write a failure event in its own transaction (the work itself was rolled back). Once per error."""
    if getattr(err, "_audited", False) or isinstance(err, DatabaseUnavailable):
        return
    err._audited = True  # type: ignore[attr-defined]
    with contextlib.suppress(Exception), app.sessions() as s, s.begin():
        audit.append(s, actor.username, actor.client_addr, [
            audit.PendingEvent(action, object_type, object_id, getattr(err, "audit_outcome", "failure"),
                               {"code": err.code, "message": err.message[:500],
                                "problems": [p.as_dict() for p in err.problems[:50]]})
        ])


F = TypeVar("F", bound=Callable[..., Any])


def audited(action: str, object_type: str = "") -> Callable[[F], F]:
    """For services that validate before opening their unit of work: a refused call is audited too."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(app: Dangan, actor: Actor, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(app, actor, *args, **kwargs)
            except DanganError as e:
                record_failure(app, actor, action, object_type, "", e)
                raise

        return wrapper  # type: ignore[return-value]

    return deco


class _ReadSession(Session):
    """Reads outside a unit of work report a lost or unreachable database as DatabaseUnavailable too."""

    def __exit__(self, type_: Any, value: Any, traceback: Any) -> None:
        super().__exit__(type_, value, traceback)
        if isinstance(value, OperationalError):
            raise _db_error(value) from value


def _safe_rollback(session: Session) -> None:
    with contextlib.suppress(Exception):
        session.rollback()


def _db_error(e: Exception) -> DanganError:
    """A lost or refused connection is DATABASE_UNAVAILABLE; any other refusal by the database has its own code."""
    if isinstance(e, OperationalError | InterfaceError) or getattr(e, "connection_invalidated", False):
        return DatabaseUnavailable(
            "数据库连接中断，本次操作未保存，数据未被改动。请检查数据库服务后重试",
            message_en=f"database error: {type(e).__name__}",
        )
    err = DanganError("数据库拒绝了本次写入（数据可能超出长度或格式限制），本次操作未保存，数据未被改动",
                      code="DATABASE_ERROR", message_en=f"{type(e).__name__}: {str(getattr(e, 'orig', e))[:200]}")
    err.status = 500
    return err


@contextlib.contextmanager
def reading(app: Dangan) -> Iterator[Session]:
    """A plain read-only session for code that must not audit (e.g. the audit verifier itself)."""
    with app.read_sessions() as s:
        yield s
