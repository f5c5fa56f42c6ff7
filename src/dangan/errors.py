"""Typed errors: every failure a user can cause has a stable code and a Chinese message saying what to fix."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldProblem:
    """One problem with one field: which field, a stable code, and what to fix (zh-CN)."""

    field: str
    code: str
    message: str
    label: str = ""
    value: Any = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"field": self.field, "code": self.code, "message": self.message}
        if self.label:
            d["label"] = self.label
        return d


class DanganError(Exception):
    """Base of all errors meant for users. `code` is stable; `message` is Chinese; `status` maps to HTTP."""

    code = "ERROR"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        message_en: str = "",
        problems: list[FieldProblem] | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        if code:
            self.code = code
        self.message = message
        self.message_en = message_en
        self.problems = list(problems or [])
        self.detail = dict(detail or {})

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.message_en:
            d["message_en"] = self.message_en
        if self.problems:
            d["problems"] = [p.as_dict() for p in self.problems]
        if self.detail:
            d["detail"] = self.detail
        return d

    def __str__(self) -> str:
        lines = [f"[{self.code}] {self.message}"]
        lines += [f"  - {p.label or p.field}: {p.message} [{p.code}]" for p in self.problems]
        return "\n".join(lines)


class ValidationFailed(DanganError):
    code = "VALIDATION_FAILED"
    status = 422


class NotFound(DanganError):
    code = "NOT_FOUND"
    status = 404


class Conflict(DanganError):
    code = "CONFLICT"
    status = 409


class PermissionDenied(DanganError):
    code = "PERMISSION_DENIED"
    status = 403


class StateError(DanganError):
    code = "INVALID_STATE"
    status = 409


class StorageError(DanganError):
    code = "STORAGE_ERROR"
    status = 500


class UploadIncomplete(DanganError):
    code = "UPLOAD_INCOMPLETE"
    status = 400


class DatabaseUnavailable(DanganError):
    code = "DATABASE_UNAVAILABLE"
    status = 503


class ConfigError(DanganError):
    code = "CONFIG_ERROR"
    status = 500


@dataclass
class Problems:
    """Collects field problems so that validation reports every problem at once, not the first."""

    items: list[FieldProblem] = field(default_factory=list)

    def add(self, field_: str, code: str, message: str, label: str = "", value: Any = None) -> None:
        self.items.append(FieldProblem(field_, code, message, label, value))

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self, message: str = "提交的数据有误，请按提示逐项修改后重试") -> None:
        if self.items:
            raise ValidationFailed(message, message_en="validation failed", problems=self.items)
