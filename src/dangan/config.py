"""One settings object, read from `<data>/dangan.toml` and `DANGAN_*` environment variables."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA = "./dangan-data"


class Settings(BaseSettings):
    """Where dangan keeps its data and how it reaches its database and blob store.

    Precedence: explicit arguments > DANGAN_* environment > `<data>/dangan.toml` > defaults.
    """

    model_config = SettingsConfigDict(env_prefix="DANGAN_", extra="ignore")

    data: Path = Field(default=Path(DEFAULT_DATA))
    database_url: str = ""
    storage_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    # how many seconds an unreferenced blob must be old before `storage sweep` may delete it
    sweep_grace_seconds: int = 3600
    # the name shown in the web UI
    site_name: str = "dangan 电子档案管理系统"
    s3_endpoint_url: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_region: str = "us-east-1"
    # the DA/T 48-2009 EEP schema (XSD) that submitted packages are validated against; without it dangan checks
    # the package's structure itself (the XSD is not shipped: it is the deployment's copy of the standard's schema)
    eep_xsd: Path | None = None
    # a submitted package larger than this (bytes) is accepted as a background job whose status is polled
    async_threshold: int = 50 * 2**20
    # 长期保存: a second copy of every blob (any storage URL); fixity audits repair drift from it when set
    replica_storage_url: str = ""
    # every stored file is re-verified within this many days by the scheduled fixity audit
    fixity_cycle_days: int = 30
    # how often (minutes) `dangan serve` runs one bounded batch of the fixity audit; 0 turns it off
    fixity_audit_interval_minutes: int = 60
    # run the 归档环节四性检测 before a record is accepted (filed); a failing veto item refuses the filing
    filing_checks: bool = True
    # 检索: keep the search index in step after every change (metadata at once; files' text in a background thread)
    search_index: bool = True
    search_extract_on_commit: bool = True
    # how often (minutes) `dangan serve` brings the index up to date (text of bulk loads); 0 turns it off
    search_reindex_interval_minutes: int = 5
    # the engine that answers searches: "auto" (the embedded tantivy index on SQLite, PostgreSQL full text on
    # PostgreSQL), or "sql" (SQLite FTS5 / PostgreSQL full text only)
    search_engine: Literal["auto", "sql"] = "auto"
    # ClamAV daemon for 病毒检测: "unix:/run/clamav/clamd.ctl" or "tcp:127.0.0.1:3310"; empty: not configured
    clamd_address: str = ""
    # SM2 private key (PEM or hex file) that signs exported DA/T 48 packages; empty: a key is made in the data folder
    signing_key: Path | None = None
    # 数字化: the OCR job also makes a searchable OFD (GB/T 33190) access copy beside the PDF/A, and 挂接 adds it to
    # the record as a second 版式文件
    scan_ofd: bool = False

    @property
    def data_dir(self) -> Path:
        return self.data.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'dangan.sqlite3'}"

    @property
    def effective_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return (self.data_dir / "blobs").as_uri()

    @property
    def config_file(self) -> Path:
        return self.data_dir / "dangan.toml"


def load_settings(data: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings for a data folder: the file in the folder first, then the environment on top."""
    data_path = Path(data or os.environ.get("DANGAN_DATA") or DEFAULT_DATA)
    file_values: dict[str, Any] = {}
    cfg = data_path.expanduser() / "dangan.toml"
    if cfg.is_file():
        with cfg.open("rb") as fh:
            file_values = tomllib.load(fh).get("dangan", {})
    env_values = Settings().model_dump(exclude_unset=True)  # only what DANGAN_* actually set
    merged = {**file_values, **env_values, **{k: v for k, v in overrides.items() if v is not None}}
    merged["data"] = data_path
    return Settings(**merged)


def write_config_file(settings: Settings) -> None:
    """Record the chosen URLs in the data folder so later commands find the same database and store."""
    lines = ["# dangan 配置文件；环境变量 DANGAN_* 优先于此文件", "[dangan]"]
    if settings.database_url:
        lines.append(f'database_url = "{settings.database_url}"')
    if settings.storage_url:
        lines.append(f'storage_url = "{settings.storage_url}"')
    settings.config_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
