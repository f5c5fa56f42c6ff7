"""SQLAlchemy 2 models. Every schema change goes through an Alembic migration in db/migrations/versions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    """A person or a business system acting in dangan, with its clearance (密级) and login state."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_bootstrap_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    clearance: Mapped[str] = mapped_column(String(16), default="公开")
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    is_system_account: Mapped[bool] = mapped_column(Boolean, default=False)  # a business system (API tokens only)


class UserDepartment(Base):
    """A user belongs to one or more departments (内设机构)."""

    __tablename__ = "user_departments"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), primary_key=True)


class Role(Base):
    """A role and its grants (action -> scope), stored as data so the matrix can be read and adjusted."""

    __tablename__ = "roles"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    grants: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")


class UserRole(Base):
    __tablename__ = "user_roles"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role_code: Mapped[str] = mapped_column(ForeignKey("roles.code"), primary_key=True)
    granted_by: Mapped[str] = mapped_column(String(64), default="")
    granted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PasswordHistory(Base):
    __tablename__ = "password_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LoginSession(Base):
    """A web session. Only the SHA-256 of the cookie value is stored."""

    __tablename__ = "login_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    client_addr: Mapped[str] = mapped_column(String(64), default="")
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiToken(Base):
    """A token for a business system: shown once, stored hashed, scoped, expiring and revocable."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"actions": [...], "categories": [...], "departments": [...]}
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SystemSetting(Base):
    """Deployment-wide settings kept in the database (security ceiling, 密级 list, password policy)."""

    __tablename__ = "system_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)


class Fonds(Base):
    """全宗."""

    __tablename__ = "fonds"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(200), default="")  # 立档单位名称
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    departments: Mapped[list[Department]] = relationship(back_populates="fonds", order_by="Department.sort_order")
    categories: Mapped[list[Category]] = relationship(back_populates="fonds", order_by="Category.id")


class Department(Base):
    """机构（问题）: an internal department of the fonds-forming unit."""

    __tablename__ = "departments"
    __table_args__ = (UniqueConstraint("fonds_id", "code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fonds_id: Mapped[int] = mapped_column(ForeignKey("fonds.id"))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), nullable=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    fonds: Mapped[Fonds] = relationship(back_populates="departments")


class Category(Base):
    """门类 with its arrangement mode, metadata schema per level and 档号 template per level, all as data."""

    __tablename__ = "categories"
    __table_args__ = (UniqueConstraint("fonds_id", "code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fonds_id: Mapped[int] = mapped_column(ForeignKey("fonds.id"))
    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    arrangement: Mapped[str] = mapped_column(String(16))  # item | volume | project | group
    schemas: Mapped[dict[str, Any]] = mapped_column(JSON)  # level -> {"fields": [...], "rules": [...]}
    code_templates: Mapped[dict[str, Any]] = mapped_column(JSON)  # level -> [part, ...]
    code_preset: Mapped[str] = mapped_column(String(64), default="")
    retention_table: Mapped[list[Any]] = mapped_column(JSON, default=list)
    basis: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    fonds: Mapped[Fonds] = relationship(back_populates="categories")


class Record(Base):
    """An archival unit at one level: 件, 案卷, 项目 or 组. Key metadata is promoted to columns for browsing."""

    __tablename__ = "records"
    __table_args__ = (
        UniqueConstraint("category_id", "level", "class_key", "seq", name="uq_records_class_seq"),
        Index("ix_records_browse", "fonds_id", "category_id", "year", "retention_period", "department_id"),
        Index("ix_records_state", "state"),
        Index("ix_records_parent", "parent_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fonds_id: Mapped[int] = mapped_column(ForeignKey("fonds.id"))
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    level: Mapped[str] = mapped_column(String(16), default="item")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("records.id"), nullable=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    archival_code: Mapped[str | None] = mapped_column(String(120), unique=True, nullable=True)
    class_key: Mapped[str | None] = mapped_column(String(120), nullable=True)
    seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    title: Mapped[str] = mapped_column(Text)
    year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    retention_period: Mapped[str | None] = mapped_column(String(8), nullable=True)
    expiry_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    security_level: Mapped[str] = mapped_column(String(16), default="公开")
    doc_number: Mapped[str | None] = mapped_column(String(100), nullable=True)
    responsible: Mapped[str | None] = mapped_column(String(200), nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    sender_ref: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    filed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    filed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    # pre-filing (预归档): who submitted, why it was last returned, and the order within its class before filing
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    submitted_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    return_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    position: Mapped[int | None] = mapped_column(Integer, nullable=True)

    category: Mapped[Category] = relationship()
    fonds: Mapped[Fonds] = relationship()
    department: Mapped[Department | None] = relationship()
    files: Mapped[list[File]] = relationship(back_populates="record", order_by="File.sequence")


class File(Base):
    """电子文件 / component of a record: 正文, 附件, 处理单, 版式文件, 原始格式 ... Content is write-once."""

    __tablename__ = "files"
    __table_args__ = (Index("ix_files_record", "record_id"), Index("ix_files_sha256", "sha256"),
                      Index("ix_files_fixity_due", "last_fixity_at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"))
    role: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")
    format_name: Mapped[str] = mapped_column(String(100), default="")
    sha256: Mapped[str] = mapped_column(String(64))
    sm3: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(300))
    sequence: Mapped[int] = mapped_column(Integer, default=1)
    version: Mapped[int] = mapped_column(Integer, default=1)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("files.id"), nullable=True)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    source_created_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    last_fixity_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_fixity_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # format identification and validation, recorded at capture and refreshed by the checks
    puid: Mapped[str | None] = mapped_column(String(32), nullable=True)
    format_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    identification: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    validation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    record: Mapped[Record] = relationship(back_populates="files")


class NumberCounter(Base):
    """The last sequence number used inside one class (档号 prefix): gapless because it commits with the row."""

    __tablename__ = "number_counters"
    __table_args__ = (UniqueConstraint("category_id", "level", "class_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    level: Mapped[str] = mapped_column(String(16))
    class_key: Mapped[str] = mapped_column(String(120))
    last_value: Mapped[int] = mapped_column(Integer, default=0)


class AuditEvent(Base):
    """One audited action, chained by SM3 over the previous entry's hash."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_object", "object_type", "object_id"), Index("ix_audit_actor", "actor"))
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    occurred_at: Mapped[str] = mapped_column(String(32))  # ISO 8601 UTC, exactly as hashed
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32), default="")
    object_id: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[str] = mapped_column(String(16))
    client_addr: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(Text, default="{}")  # canonical JSON, exactly as hashed
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's head: locked by every appender so that the chain never forks."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class FixityRun(Base):
    """One `fixity check` over the store: how many files, how many failed."""

    __tablename__ = "fixity_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    actor: Mapped[str] = mapped_column(String(64))
    checked: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    bytes_read: Mapped[int] = mapped_column(BigInteger, default=0)
    kind: Mapped[str] = mapped_column(String(16), default="check")  # check (all files) | audit (scheduled batch)
    repaired: Mapped[int] = mapped_column(Integer, default=0)


class FixityResult(Base):
    """A failed verification of one stored file (missing, truncated, altered)."""

    __tablename__ = "fixity_results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("fixity_runs.id"))
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"))
    outcome: Mapped[str] = mapped_column(String(16))  # missing | truncated | altered | unreadable
    expected: Mapped[str] = mapped_column(Text, default="")
    found: Mapped[str] = mapped_column(Text, default="")
    repaired: Mapped[bool] = mapped_column(Boolean, default=False)
    repair_note: Mapped[str] = mapped_column(Text, default="")


class FilingPlan(Base):
    """年度归档计划: what a department must hand in for a year and category, and by when."""

    __tablename__ = "filing_plans"
    __table_args__ = (UniqueConstraint("fonds_id", "department_id", "category_id", "year", name="uq_filing_plan"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fonds_id: Mapped[int] = mapped_column(ForeignKey("fonds.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    year: Mapped[int] = mapped_column(Integer)
    deadline: Mapped[dt.date] = mapped_column(Date)
    expected_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    department: Mapped[Department] = relationship()
    category: Mapped[Category] = relationship()
    fonds: Mapped[Fonds] = relationship()


class CaptureJob(Base):
    """A batch import or a large submission, run in the background: its progress, outcome and report.

    Rows are imported idempotently (each carries a sender_ref derived from the job's source and row), so a job
    interrupted by a crash is resumed by running it again: rows already imported are skipped, never doubled.
    """

    __tablename__ = "capture_jobs"
    __table_args__ = (Index("ix_capture_jobs_actor", "actor", "created_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # import | dry_run | submit_zip | submit_eep
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|done|failed|interrupted
    actor: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    total: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    existing: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CheckScheme(Base):
    """检测方案: for one stage (and optionally one category), which items run, with their parameters and veto flag."""

    __tablename__ = "check_schemes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    stage: Mapped[str] = mapped_column(String(16))
    category_code: Mapped[str | None] = mapped_column(String(16), nullable=True)  # None: every category
    items: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # item key -> {enabled, veto, params}
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64), default="")


class CheckRun(Base):
    """One run of a scheme over a target (records, a batch, a package): its verdict and summary per dimension."""

    __tablename__ = "check_runs"
    __table_args__ = (Index("ix_check_runs_started", "started_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stage: Mapped[str] = mapped_column(String(16))
    scheme_id: Mapped[int | None] = mapped_column(ForeignKey("check_schemes.id"), nullable=True)
    scheme: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the scheme as it was when the run started
    target_kind: Mapped[str] = mapped_column(String(16))  # record | batch | package
    target_label: Mapped[str] = mapped_column(String(300))
    target_key: Mapped[str] = mapped_column(String(200), default="")  # same key = same target, for comparing reruns
    actor: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done | failed
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)  # 通过 | 不通过
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class CheckRunRecord(Base):
    """Which records a run concerned (a record page lists its checks)."""

    __tablename__ = "check_run_records"
    run_id: Mapped[int] = mapped_column(ForeignKey("check_runs.id", ondelete="CASCADE"), primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"), primary_key=True, index=True)


class CheckResult(Base):
    """The result of one item in one run, with its evidence (expected vs found, per record and file)."""

    __tablename__ = "check_results"
    __table_args__ = (Index("ix_check_results_run", "run_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("check_runs.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(16))
    item_key: Mapped[str] = mapped_column(String(48))
    dimension: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(8))
    veto: Mapped[bool] = mapped_column(Boolean, default=False)
    checked: Mapped[int] = mapped_column(Integer, default=0)
    evidence: Mapped[list[Any]] = mapped_column(JSON, default=list)
    evidence_count: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str] = mapped_column(Text, default="")


class FileText(Base):
    """What text extraction found in one file (全文): status, and its pages in FileTextPage."""

    __tablename__ = "file_texts"
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), primary_key=True)
    record_id: Mapped[int] = mapped_column(Integer, index=True)
    status: Mapped[str] = mapped_column(String(16))  # ok | empty | unreadable | unsupported
    encoding: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    chars: Mapped[int] = mapped_column(Integer, default=0)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    extracted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FileTextPage(Base):
    """The text of one page of a file, kept for snippets with the page number of a hit."""

    __tablename__ = "file_text_pages"
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), primary_key=True)
    page: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)


class SearchDoc(Base):
    """One record as the search index sees it: each field segmented (search.segment.index_text).

    SQLite keeps an FTS5 table `search_fts` over these columns (external content, synchronised by triggers);
    PostgreSQL a generated, weighted `tsv` column with a GIN index. Both are made by migration 0005, not here.
    """

    __tablename__ = "search_docs"
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"), primary_key=True)
    title: Mapped[str] = mapped_column(Text, default="")
    doc_number: Mapped[str] = mapped_column(Text, default="")
    responsible: Mapped[str] = mapped_column(Text, default="")
    archival_code: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[str] = mapped_column(Text, default="")
    content: Mapped[str] = mapped_column(Text, default="")
    seg_version: Mapped[str] = mapped_column(String(40))
    content_files: Mapped[int] = mapped_column(Integer, default=0)  # files whose text is in `content`
    indexed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SearchLog(Base):
    """Records whose index row or trimming columns changed, in commit order (SQLite triggers of migration 0008);
    the embedded tantivy index applies them before it answers (search.tv)."""

    __tablename__ = "search_log"
    __table_args__ = {"sqlite_autoincrement": True}
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(Integer)


class AccessRequest(Base):
    """利用申请: a request to view, borrow, copy or certify one record, its approval route and its outcome.

    status: pending 待审批 | approved 已准予 | refused 未准予 | withdrawn 已撤回 | expired 已过期 | lent 已借出
    | returned 已归还. `route` is the list of approving roles fixed when the request was made; `current_step`
    indexes it while pending."""

    __tablename__ = "access_requests"
    __table_args__ = (Index("ix_access_requests_requester", "requester", "created_at"),
                      Index("ix_access_requests_status", "status"),
                      Index("ix_access_requests_record", "record_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    requester: Mapped[str] = mapped_column(String(64))
    requester_name: Mapped[str] = mapped_column(String(100), default="")
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"))
    kind: Mapped[str] = mapped_column(String(16))  # view | borrow | copy | certify
    purpose: Mapped[str] = mapped_column(String(16))
    purpose_note: Mapped[str] = mapped_column(Text, default="")
    period_from: Mapped[dt.date] = mapped_column(Date)
    period_to: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    route: Mapped[list[Any]] = mapped_column(JSON, default=list)
    current_step: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    effect: Mapped[str | None] = mapped_column(String(8), nullable=True)  # 有效 | 一般 | 无效
    effect_note: Mapped[str] = mapped_column(Text, default="")
    effect_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    effect_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    record: Mapped[Record] = relationship()
    steps: Mapped[list[ApprovalStep]] = relationship(order_by="ApprovalStep.step")
    loan: Mapped[Loan | None] = relationship(viewonly=True)


class ApprovalStep(Base):
    """One decision on a request: which step, for which role, by whom, approve or refuse, and why."""

    __tablename__ = "approval_steps"
    __table_args__ = (UniqueConstraint("request_id", "step", name="uq_approval_steps_step"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(32))
    decided_by: Mapped[str] = mapped_column(String(64))
    decided_by_name: Mapped[str] = mapped_column(String(100), default="")
    decision: Mapped[str] = mapped_column(String(16))  # approve | refuse
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Loan(Base):
    """借出 of a paper record on an approved borrow request: when lent, when due, when returned, by whom."""

    __tablename__ = "loans"
    __table_args__ = (Index("ix_loans_due", "returned_at", "due_at"), Index("ix_loans_record", "record_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id"), unique=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"))
    lent_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    due_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    returned_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lent_by: Mapped[str] = mapped_column(String(64))
    received_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")


class ScanBatch(Base):
    """数字化批次 (DA/T 31): page images of paper records, their quality control, 抽检, OCR and 挂接 to the records.

    status: importing 导入中 | open 待验收 | accepted 已挂接 | failed 导入失败. `settings` holds the QC thresholds, the
    sampling rate and pass mark; `inspection` the outcome of the last 抽检; `overrides` the problems the archivist
    explicitly accepted with a reason when the batch was accepted."""

    __tablename__ = "scan_batches"
    __table_args__ = (Index("ix_scan_batches_created", "created_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    fonds_id: Mapped[int] = mapped_column(ForeignKey("fonds.id"))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"), nullable=True)
    year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="importing")
    device: Mapped[str] = mapped_column(String(200), default="")
    software: Mapped[str] = mapped_column(String(200), default="")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    inspection: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    overrides: Mapped[list[Any]] = mapped_column(JSON, default=list)
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    qc_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ocr_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    accepted_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    accept_note: Mapped[str] = mapped_column(Text, default="")
    fonds: Mapped[Fonds] = relationship()
    category: Mapped[Category | None] = relationship()


class ScanFile(Base):
    """One scan file as received (a page image, a multi-page TIFF or a scanned PDF): the write-once master."""

    __tablename__ = "scan_files"
    __table_args__ = (Index("ix_scan_files_batch", "batch_id"), Index("ix_scan_files_key", "storage_key"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("scan_batches.id"))
    name: Mapped[str] = mapped_column(String(500))  # relative path as received, decoded
    name_encoding: Mapped[str] = mapped_column(String(16), default="utf-8")
    archival_code: Mapped[str | None] = mapped_column(String(120), nullable=True)
    first_page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    layout: Mapped[str] = mapped_column(String(16), default="page")  # page | multi | folder
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    sm3: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(300))
    media_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")
    format_name: Mapped[str] = mapped_column(String(100), default="")
    page_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ScanPage(Base):
    """One page of a scan file: its 挂接 (档号, 页号, record), DA/T 46 数字化属性, QC, 抽检 mark and OCR.

    A rescanned page is a new row; the old one stays (is_current false, superseded_by_id set), never deleted."""

    __tablename__ = "scan_pages"
    __table_args__ = (Index("ix_scan_pages_batch", "batch_id", "archival_code", "page_no"),
                      Index("ix_scan_pages_record", "record_id"), Index("ix_scan_pages_file", "file_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("scan_batches.id"))
    file_id: Mapped[int] = mapped_column(ForeignKey("scan_files.id"))
    index: Mapped[int] = mapped_column(Integer, default=0)  # 0-based page within the file
    archival_code: Mapped[str | None] = mapped_column(String(120), nullable=True)
    page_no: Mapped[int | None] = mapped_column(Integer, nullable=True)
    record_id: Mapped[int | None] = mapped_column(ForeignKey("records.id"), nullable=True)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("scan_pages.id"), nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dpi: Mapped[int | None] = mapped_column(Integer, nullable=True)
    colour: Mapped[str] = mapped_column(String(8), default="")
    compression: Mapped[str] = mapped_column(String(32), default="")
    device: Mapped[str] = mapped_column(String(200), default="")
    software: Mapped[str] = mapped_column(String(200), default="")
    scanned_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    qc: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    flags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    qc_status: Mapped[str] = mapped_column(String(8), default="pending")  # pending | ok | warn | fail
    declared_blank: Mapped[bool] = mapped_column(Boolean, default=False)
    sampled: Mapped[bool] = mapped_column(Boolean, default=False)
    sample_verdict: Mapped[str | None] = mapped_column(String(8), nullable=True)  # 合格 | 不合格
    sample_note: Mapped[str] = mapped_column(Text, default="")
    sample_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sample_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ocr_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    ocr: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # lines with boxes, size, dpi, engine
    ocr_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    file_row_id: Mapped[int | None] = mapped_column(ForeignKey("files.id"), nullable=True)  # after 挂接
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    scan_file: Mapped[ScanFile] = relationship()


class ScanOutput(Base):
    """A searchable PDF/A access copy (利用副本) built from a record's access images and their OCR text."""

    __tablename__ = "scan_outputs"
    __table_args__ = (Index("ix_scan_outputs_batch", "batch_id", "record_id"), Index("ix_scan_outputs_key", "storage_key"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("scan_batches.id"))
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"))
    kind: Mapped[str] = mapped_column(String(16), default="pdfa")
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    sm3: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(300))
    pages: Mapped[int] = mapped_column(Integer, default=0)
    page_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)  # the current pages it was built from, in order
    file_row_id: Mapped[int | None] = mapped_column(ForeignKey("files.id"), nullable=True)  # after 挂接
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
