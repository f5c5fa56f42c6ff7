"""PDF validation: opens with qpdf (pikepdf), full syntax check, Flate checksums, PDF/A claim, risky content, signatures.

What is decided here, per kind of damage:

- cannot be opened (no usable page tree, broken beyond qpdf's repair) -> invalid;
- encrypted (a user password, or owner restrictions only) -> invalid, encrypted=True: 加密 is not allowed in
  an archive, even when the file opens without a password;
- truncated (no %%EOF at the end) -> invalid: whatever qpdf recovers, the end of the file is missing;
- a stream that cannot be decoded, a compressed stream whose checksum does not match (qpdf ignores the
  Adler-32, so it is checked here), page content with syntax errors -> invalid: content is lost or altered;
- a damaged cross-reference table that qpdf rebuilds with every object intact -> valid, with a warning;
- embedded files and JavaScript -> warnings (PDF/A-1/2 forbid them).

Signatures are verified with pyhanko: digest over the signed byte range (digest_valid), the cryptographic
signature (signature_valid) and what the byte range covers. Trust in the certificate chain needs roots and
revocation data that are not available offline; the message says so instead of failing the signature.
"""

from __future__ import annotations

import logging
import os
import re
import time
import zlib

from dangan.formats.results import Identification, SignatureCheck, Validation

TIME_BUDGET_S = 60.0
STREAM_RAW_LIMIT = 256 * 1024 * 1024   # streams larger than this (raw) are not checksum-checked
DEEP_CHECK_BYTES = 16 * 2**20  # PDFs up to this size have every data stream decoded and checked
MAX_PROBLEMS = 20



def _plain(msg: str, path: str) -> str:
    msg = msg.replace(path, "").replace(os.path.basename(path), "")
    return re.sub(r"^(?:WARNING|ERROR):\s*:?\s*", "", msg).strip(" :")


_LINEARIZATION = ("lineariz", "hint table", "shared object", "shared identifier", "object count mismatch for page")


def _classify(msg: str) -> tuple[str, str]:
    """(problem | warning | skip, Chinese text) for one qpdf message."""
    m = msg.lower()
    if "re-processed without filtering" in m:
        return "skip", ""
    if any(k in m for k in _LINEARIZATION):
        return "warning", "线性化（快速网页查看）提示表与文件内容不一致；不影响内容，阅读器会忽略"
    if "xref not found" in m or "reconstruct" in m or "file is damaged" in m or "xref" in m:
        return "warning", "交叉引用表损坏，qpdf 已自动重建，未见内容丢失；建议修复后重新归档"
    if "repairing" in m or "repaired" in m:
        return "warning", f"文件结构有缺陷，qpdf 已自动修复（{msg}）"
    if "inline image" in m or ("content" in m and "parse error" in m):
        return "problem", f"页面内容流有语法错误，页面可能显示不全（{msg}）"
    if "decod" in m or "bad code" in m:
        return "problem", f"压缩流无法解码，其中的内容已丢失（{msg}）"
    return "problem", msg


def _flate_checks(pdf, deadline: float) -> tuple[list[str], bool]:
    """Inflate every Flate-only stream (output discarded); return problems and whether the budget ran out."""
    import pikepdf

    problems: list[str] = []
    for obj in pdf.objects:
        if time.monotonic() > deadline:
            return problems, True
        if not isinstance(obj, pikepdf.Stream):
            continue
        try:
            filt = obj.get("/Filter")
            if filt is None:
                continue
            names = [str(f) for f in filt] if isinstance(filt, pikepdf.Array) else [str(filt)]
            if names != ["/FlateDecode"]:
                continue
            length = obj.get("/Length")
            if isinstance(length, int) and int(length) > STREAM_RAW_LIMIT:
                continue
            raw = obj.read_raw_bytes()
        except Exception:  # noqa: BLE001 - qpdf's own check reports unreadable objects
            continue
        d = zlib.decompressobj()
        try:
            pos = 0
            while pos < len(raw):
                d.decompress(raw[pos:pos + (1 << 20)], 1 << 22)
                while d.unconsumed_tail:
                    d.decompress(d.unconsumed_tail, 1 << 22)
                pos += 1 << 20
        except zlib.error as e:
            og = obj.objgen
            what = "校验和（Adler-32）不符，数据已被改动或损坏" if "incorrect data check" in str(e) else f"无法解压（{e}）"
            problems.append(f"对象 {og[0]} {og[1]} 的 Flate 压缩流{what}")
            if len(problems) >= MAX_PROBLEMS:
                break
    return problems, False


def _has_javascript(pdf) -> bool:
    import pikepdf

    try:
        names = pdf.Root.get("/Names")
        if names is not None and "/JavaScript" in names:
            return True
        oa = pdf.Root.get("/OpenAction")
        if isinstance(oa, pikepdf.Dictionary) and str(oa.get("/S", "")) == "/JavaScript":
            return True
        for obj in pdf.objects:
            if isinstance(obj, pikepdf.Dictionary) and ("/JS" in obj or str(obj.get("/S", "")) == "/JavaScript"):
                return True
    except Exception:  # noqa: BLE001
        return False
    return False


def _signature_fields(pdf) -> int:
    try:
        form = pdf.Root.get("/AcroForm")
        if form is None:
            return 0
        n = 0
        stack = list(form.get("/Fields", []))
        seen = 0
        while stack and seen < 10000:
            seen += 1
            f = stack.pop()
            if str(f.get("/FT", "")) == "/Sig" and f.get("/V") is not None:
                n += 1
            stack.extend(f.get("/Kids", []))
        return n
    except Exception:  # noqa: BLE001
        return 0


class _DropPathBuilding(logging.Filter):
    """pyhanko logs a traceback whenever no trust path is found, which offline is always; the result says so."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to build path")


_filter_installed = False


def check_signatures(path: str) -> list[SignatureCheck]:
    """Verify every signed signature field of a PDF with pyhanko (offline: no trust roots, no fetching)."""
    global _filter_installed
    try:
        from pyhanko.pdf_utils.reader import PdfFileReader
        from pyhanko.sign.validation import validate_pdf_signature
        from pyhanko_certvalidator import ValidationContext
    except ImportError:
        return [SignatureCheck(kind="pdf", message="未安装 pyhanko，无法校验签名")]
    if not _filter_installed:
        logging.getLogger("pyhanko.sign.validation.generic_cms").addFilter(_DropPathBuilding())
        _filter_installed = True
    out: list[SignatureCheck] = []
    try:
        with open(path, "rb") as fh:
            r = PdfFileReader(fh, strict=False)
            if r.encrypted:
                r.decrypt("")
            sigs = list(r.embedded_signatures)
            size = os.fstat(fh.fileno()).st_size
            for s in sigs:
                chk = SignatureCheck(kind="pdf")
                try:
                    vc = ValidationContext(trust_roots=[], allow_fetching=False)
                    st = validate_pdf_signature(s, signer_validation_context=vc)
                    try:
                        chk.signer = st.signing_cert.subject.human_friendly
                    except Exception:  # noqa: BLE001
                        chk.signer = ""
                    mech = (st.pkcs7_signature_mechanism or "").upper().replace("_", "/")
                    chk.algorithm = f"{mech} (摘要 {str(st.md_algorithm).upper()})" if mech else str(st.md_algorithm)
                    chk.digest_valid = bool(st.intact)
                    chk.signature_valid = bool(st.valid)
                    cov = getattr(st.coverage, "name", str(st.coverage))
                    chk.covers_document = cov in ("ENTIRE_FILE", "ENTIRE_REVISION")
                    parts = []
                    parts.append("签名范围的摘要一致" if st.intact else "签名范围内的内容已被改动（摘要不一致）")
                    parts.append("签名值验证通过" if st.valid else "签名值验证失败")
                    if cov == "ENTIRE_FILE":
                        parts.append("签名覆盖整个文件")
                    elif cov == "ENTIRE_REVISION":
                        parts.append("签名覆盖其所签版本，之后另有增量更新")
                    else:
                        br = s.sig_object.get("/ByteRange")
                        parts.append(f"签名范围未覆盖整个文件（ByteRange {list(br) if br else '?'}，文件 {size} 字节）")
                    parts.append("证书链的可信性需要根证书和吊销信息，离线无法确认，未作判断")
                    chk.message = "；".join(parts)
                except Exception as e:  # noqa: BLE001 - one broken signature does not hide the others
                    chk.message = f"签名无法校验：{type(e).__name__}: {e}"
                out.append(chk)
    except Exception as e:  # noqa: BLE001
        out.append(SignatureCheck(kind="pdf", message=f"无法读取签名：{type(e).__name__}: {e}"))
    return out


def validate_pdf(path: str, ident: Identification | None = None) -> Validation:
    try:
        import pikepdf
    except ImportError:
        return Validation(status="unchecked", warnings=["未安装 pikepdf，无法校验 PDF"])
    v = Validation(status="valid")
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(1024)
            fh.seek(max(0, size - 1024))
            tail = fh.read(1024)
    except OSError as e:
        return Validation(status="invalid", problems=[f"无法读取文件：{e.strerror or e}"])
    if b"%PDF-" not in head:
        return Validation(status="invalid", problems=["不是 PDF 文件：开头没有 %PDF 文件头"])
    if b"%%EOF" not in tail:
        v.problems.append("文件末尾没有 %%EOF 标记：文件被截断或不完整")
    deadline = time.monotonic() + TIME_BUDGET_S
    try:
        pdf = pikepdf.open(path)
    except pikepdf.PasswordError:
        v.encrypted = True
        v.status = "invalid"
        v.problems.append("PDF 已加密，需要口令才能打开；加密文件不符合归档要求")
        v.signatures = []
        return v
    except pikepdf.PdfError as e:
        v.status = "invalid"
        v.problems.append(f"PDF 结构损坏，无法打开：{_plain(str(e), path)}")
        return v
    except Exception as e:  # noqa: BLE001
        v.status = "invalid"
        v.problems.append(f"PDF 无法打开：{type(e).__name__}: {e}")
        return v
    with pdf:
        v.details["pdf_version"] = pdf.pdf_version
        if pdf.is_encrypted:
            v.encrypted = True
            v.problems.append("PDF 已加密（虽可不输入口令打开，但设置了所有者口令和权限限制）；加密文件不符合归档要求")
        try:
            v.page_count = len(pdf.pages)
        except Exception as e:  # noqa: BLE001
            v.problems.append(f"页面树损坏，无法统计页数：{_plain(str(e), path)}")
        if v.page_count == 0:
            v.problems.append("PDF 没有页面")
        try:
            if pdf.Root.get("/Metadata") is not None:  # no XMP stream: nothing to parse (most office PDFs)
                meta = pdf.open_metadata()
                part = meta.get("pdfaid:part")
                if part:
                    v.details["pdfa"] = f"{part}{(meta.get('pdfaid:conformance') or '').upper()}"
        except Exception as e:  # noqa: BLE001
            v.warnings.append(f"XMP 元数据无法解析：{type(e).__name__}")
        messages = [str(w) for w in pdf.get_warnings()]
        deep = os.path.getsize(path) <= DEEP_CHECK_BYTES
        try:
            # decoding every stream of a large scan costs several times its hashing; its structure, page tree
            # and XMP are still checked, and the fixity items verify its bytes
            report = pdf.check_pdf_syntax() if deep else []
        except Exception as e:  # noqa: BLE001
            report = [f"ERROR: {e}"]
        if not deep:
            v.warnings.append(f"文件大于 {DEEP_CHECK_BYTES // 2**20} MB，只检查了文件结构与页面树，未逐一解码数据流")
        for line in [*messages, *(str(r) for r in report)]:
            kind, text = _classify(_plain(line, path))
            if kind == "warning":
                v.warnings.append(text)
            elif kind == "problem":
                v.problems.append(text)
            if len(v.problems) >= MAX_PROBLEMS:
                break
        flate, out_of_time = _flate_checks(pdf, deadline) if deep else ([], False)
        v.problems.extend(flate)
        if out_of_time:
            v.warnings.append(f"校验超过 {int(TIME_BUDGET_S)} 秒，未检查全部压缩流")
        try:
            n_att = len(pdf.attachments)
        except Exception:  # noqa: BLE001
            n_att = 0
        if n_att:
            v.warnings.append(f"包含 {n_att} 个嵌入文件（PDF/A-1、PDF/A-2 不允许嵌入任意文件）")
            v.details["embedded_files"] = n_att
        if _has_javascript(pdf):
            v.warnings.append("包含 JavaScript 脚本（PDF/A 不允许）")
            v.details["javascript"] = True
        n_sig = _signature_fields(pdf)
    if n_sig:
        v.signatures = check_signatures(path)
        bad = [s for s in v.signatures if not s.ok]
        if bad:
            v.problems.append(f"{len(bad)} 个电子签名校验未通过：{bad[0].message}")
    v.problems = list(dict.fromkeys(v.problems))
    v.warnings = list(dict.fromkeys(v.warnings))
    if v.problems:
        v.status = "invalid"
    return v

