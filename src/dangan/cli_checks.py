"""CLI of the 四性检测 and packages: `dangan check`, `dangan package export|import`."""

from __future__ import annotations
