"""What format identification and validation report about one file (plain values, shared by every format module)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Identification:
    """PRONOM-style identification of one file."""

    mime: str
    format_name: str                      # readable, Chinese where it helps: "PDF 1.7", "OFD（GB/T 33190）"
    puid: str | None = None               # PRONOM id (fmt/276 ...); None when PRONOM has none (OFD) or unknown
    version: str | None = None
    basis: str = "magic"                  # magic | container | fido | ofd | extension | none
    extension_matches: bool = True        # does the name's extension agree with the content
    pdfa: str | None = None               # PDF/A claim read from XMP, e.g. "2B"
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d


@dataclass
class SignatureCheck:
    """One electronic signature or seal found in a file, and what could be verified of it."""

    kind: str                              # pdf | ofd | eep
    signer: str = ""
    algorithm: str = ""                    # e.g. "SM2/SM3", "RSA/SHA-256"
    covers_document: bool | None = None    # the signed range/references cover the whole document
    digest_valid: bool | None = None       # the digests it lists match the content (None: not checkable)
    signature_valid: bool | None = None    # the cryptographic signature verifies (None: algorithm not available)
    message: str = ""                      # Chinese, what was checked and what failed

    @property
    def ok(self) -> bool:
        return self.digest_valid is not False and self.signature_valid is not False and self.covers_document is not False

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass
class Validation:
    """Whether the content opens and is what it claims to be, with reasons a person can act on."""

    status: str = "unchecked"              # valid | invalid | unchecked (no validator for this format)
    problems: list[str] = field(default_factory=list)   # Chinese
    warnings: list[str] = field(default_factory=list)
    encrypted: bool = False
    nonpublic_compression: bool = False    # RAR, 7z, proprietary codecs ...
    page_count: int | None = None
    signatures: list[SignatureCheck] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["signatures"] = [s.as_dict() for s in self.signatures]
        return d
