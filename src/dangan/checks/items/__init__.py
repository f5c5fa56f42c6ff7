"""The DA/T 70 check items, one small class each, grouped by dimension (真实性, 完整性, 可用性, 安全性)."""

from dangan.checks.items import authenticity, integrity, security, usability  # noqa: F401
