"""安全性 (dimension 4): viruses, files that do not belong to the package, the process trail intact."""

from __future__ import annotations

from dangan.checks.engine import CheckContext, CheckItem, Findings, register
from dangan.checks.items.common import file_kw, rec_kw
from dangan.checks.model import Dimension, Stage


@register
class VirusScan(CheckItem):
    key = "virus_scan"
    number = 1
    dimension = Dimension.SECURITY
    title = "病毒检测"
    purpose = "电子文件和信息包中没有计算机病毒等恶意代码（通过 ClamAV 病毒扫描服务）"
    needs_content = True

    def check(self, ctx: CheckContext, out: Findings) -> None:
        if ctx.env.virus_scanner() is None:
            out.note = "未配置病毒扫描服务（ClamAV，设置 DANGAN_CLAMD_ADDRESS），本项未执行"
            return
        for r, f in ctx.files():
            prof = ctx.profile(f)
            if not prof.present or prof.read_error:
                continue
            out.checked += 1
            res = prof.virus
            if res is None:
                out.warn("未能扫描该文件", **file_kw(r, f))
            elif res.clean is False:
                out.fail(f"发现病毒或恶意代码：{res.signature}", expected="无病毒", found=res.signature, **file_kw(r, f))
            elif res.clean is None:
                out.warn(f"病毒扫描未完成：{res.message}", **file_kw(r, f))


@register
class ExtraFiles(CheckItem):
    key = "extra_files"
    number = 3
    dimension = Dimension.SECURITY
    title = "载体（信息包）中多余文件检测"
    purpose = "信息包（载体）中除清单登记的文件和封装格式自身的说明文件外，没有其他文件"
    stages = frozenset({Stage.FILING, Stage.TRANSFER})
    needs_package = True

    def check(self, ctx: CheckContext, out: Findings) -> None:
        pkg = ctx.target.package
        assert pkg is not None
        declared = {m.path for m in pkg.manifest} | {m.path for m in pkg.tag_manifest} | set(pkg.allowed_extra)
        declared |= set(pkg.metadata_files) | {f.location for _, f in ctx.files() if f.location}
        for e in pkg.entries:
            out.checked += 1
            if e.path not in declared:
                out.fail("信息包中有清单未登记的多余文件", subject=e.path, file_ref=e.path, expected="不存在",
                         found=f"{e.path}（{e.size} 字节）")


@register
class ProcessSecurity(CheckItem):
    key = "process_security"
    number = 4
    dimension = Dimension.SECURITY
    title = "归档与保存过程安全性检测"
    purpose = "档案在归档和保存过程中处于受控状态：审计日志中与该档案有关的记录完整，哈希链未被篡改"
    stages = frozenset({Stage.FILING, Stage.PRESERVATION})

    def check(self, ctx: CheckContext, out: Findings) -> None:
        for r in ctx.records:
            if r.record_id is None:
                continue
            hist = ctx.env.audit_history(r)
            if hist is None:
                continue
            out.checked += 1
            for bad in hist.get("broken", []):
                out.fail(f"审计日志第 {bad.get('seq')} 条（{bad.get('action')}）被篡改：{bad.get('problem')}",
                         expected=bad.get("expected"), found=bad.get("found"), **rec_kw(r))
