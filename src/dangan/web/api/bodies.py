"""Request bodies of the API: unknown fields are refused and no text may carry a NUL character.

A NUL cuts C strings short and PostgreSQL refuses it in text columns: refused here with a field-level 422
instead of reaching the database."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def has_nul(v: Any) -> bool:
    if isinstance(v, str):
        return "\x00" in v
    if isinstance(v, list | tuple):
        return any(has_nul(x) for x in v)
    if isinstance(v, dict):
        return any(has_nul(k) or has_nul(x) for k, x in v.items())
    return False


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, v: Any, info: ValidationInfo) -> Any:
        # 著录项 (metadata) are checked by the record service, which names each field in Chinese
        if info.field_name != "metadata" and has_nul(v):
            raise ValueError("不能包含控制字符（NUL）")
        return v
