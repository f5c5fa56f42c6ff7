"""完整性 (dimension 2): totals, mandatory metadata, process records, consecutive numbers, filing scope, content."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from dangan.checks.engine import CheckContext, CheckItem, Findings, register
from dangan.checks.items.common import SCHEMA_CODES, file_kw, rec_kw, schema_problems
from dangan.checks.model import Dimension


@register
class DataTotals(CheckItem):
    key = "data_totals"
    number = 1
    dimension = Dimension.INTEGRITY
    title = "电子文件数据总量检测"
    purpose = "实际的档案件数、文件数和字节数与发送方登记（清单、Payload-Oxum、移交登记）的数量一致"

    def check(self, ctx: CheckContext, out: Findings) -> None:
        pkg = ctx.target.package
        if pkg is not None and pkg.declared_counts:
            declared = pkg.declared_counts
            payload = [e for e in pkg.entries if e.path not in set(pkg.allowed_extra)]
            found = {"records": len(ctx.records), "files": len(payload) if pkg.kind != "bagit" else
                     sum(1 for e in payload if e.path.startswith("data/")),
                     "bytes": sum(e.size for e in payload if pkg.kind != "bagit" or e.path.startswith("data/"))}
            labels = {"records": "档案件数", "files": "文件数", "bytes": "字节数"}
            for k, want in declared.items():
                if k not in found:
                    continue
                out.checked += 1
                if found[k] != want:
                    out.fail(f"{labels[k]}与登记不符：登记 {want}，实际 {found[k]}", subject=pkg.label,
                             field=k, expected=want, found=found[k])
        for r in ctx.records:
            if r.declared_file_count is None:
                continue
            out.checked += 1
            if r.declared_file_count != len(r.files):
                out.fail(f"该件登记有 {r.declared_file_count} 个电子文件，实际 {len(r.files)} 个",
                         expected=r.declared_file_count, found=len(r.files), **rec_kw(r))
        if not out.checked and ctx.records:
            out.checked = len(ctx.records)
            out.note = f"共 {len(ctx.records)} 件、{sum(len(r.files) for r in ctx.records)} 个电子文件（没有登记数量可比对）"


@register
class MandatoryMetadata(CheckItem):
    key = "mandatory_metadata"
    number = 3
    dimension = Dimension.INTEGRITY
    title = "元数据项完整性检测"
    purpose = "元数据方案规定的必选项（以及条件满足时的条件选项）都已著录"
    defaults = {"fields_without_schema": ["title", "year", "retention_period", "responsible"]}
    param_labels = {"fields_without_schema": "没有元数据方案时必须著录的字段"}

    def check(self, ctx: CheckContext, out: Findings) -> None:
        for r in ctx.records:
            out.checked += 1
            problems = schema_problems(ctx, r)
            if problems is not None:
                for p in problems.items:
                    if p.code in SCHEMA_CODES["required"]:
                        out.fail(f"{p.label or p.field}：{p.message}", field=p.field, **rec_kw(r))
                continue
            for fld in ctx.params["fields_without_schema"]:
                v = r.title if fld == "title" else r.metadata.get(fld)
                if v in (None, "", []):
                    out.fail(f"必选项“{fld}”未著录", field=fld, **rec_kw(r))


@register
class ProcessRecords(CheckItem):
    key = "process_records"
    number = 5
    dimension = Dimension.INTEGRITY
    title = "过程信息完整性检测"
    purpose = "档案有形成与处理过程的记录（著录、提交、归档的审计记录）；保管期限表要求的处理单、定稿等组件齐全"
    defaults = {"required_roles": {}, "require_history": True}
    param_labels = {"required_roles": "各保管期限必须具备的组件，如 {\"Y\": [\"processing_sheet\"]}",
                    "require_history": "已入库档案必须有著录与处理的审计记录"}

    def check(self, ctx: CheckContext, out: Findings) -> None:
        from dangan.services.views import ROLE_LABELS

        required: dict[str, list[str]] = ctx.params["required_roles"] or {}
        for r in ctx.records:
            out.checked += 1
            need = required.get(str(r.metadata.get("retention_period") or ""), [])
            roles = {f.role for f in r.files}
            for role in need:
                if role not in roles:
                    out.fail(f"缺少“{ROLE_LABELS.get(role, role)}”（保管期限 {r.metadata.get('retention_period')} 的档案要求具备）",
                             field="files", expected=ROLE_LABELS.get(role, role), found="无", **rec_kw(r))
            if ctx.params["require_history"] and r.record_id is not None:
                hist = ctx.env.audit_history(r)
                if hist is not None and not hist.get("events"):
                    out.fail("审计日志中没有该档案的著录与处理记录（过程信息缺失）", expected="著录、提交、归档记录",
                             found="无", **rec_kw(r))
                elif hist is not None and r.state == "filed" and not hist.get("filed"):
                    out.warn("该档案为已归档，但审计日志中没有归档（接收）记录", **rec_kw(r))


@register
class ConsecutiveNumbers(CheckItem):
    key = "consecutive_numbers"
    number = 6
    dimension = Dimension.INTEGRITY
    title = "连续性元数据项检测"
    purpose = "同一最低一级类目内的件号（案卷号）从 1 开始连续编号，没有缺号和重号"

    def check(self, ctx: CheckContext, out: Findings) -> None:
        classes: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
        for r in ctx.records:
            if r.seq is not None and r.class_key:
                classes[(r.category_code, r.level, r.class_key)].append(r)
        for (_, _, class_key), recs in classes.items():
            out.checked += 1
            known = ctx.env.class_numbers(recs[0])
            numbers = known if known is not None else [r.seq for r in recs]
            seen = sorted(n for n in numbers if n is not None)
            dups = sorted({n for n in seen if seen.count(n) > 1})
            start = 1 if known is not None else seen[0]
            missing = sorted(set(range(start, seen[-1] + 1)) - set(seen)) if seen else []
            first = min(recs, key=lambda r: r.seq)
            if missing:
                shown = "、".join(f"{n:04d}" for n in missing[:20]) + (f" 等 {len(missing)} 个" if len(missing) > 20 else "")
                out.fail(f"类目 {class_key} 的顺序号不连续：缺少 {shown}", field="seq",
                         expected=f"{start}–{seen[-1]} 连续", found=f"缺 {len(missing)} 个", subject=class_key,
                         record_ref=first.ref)
            if dups:
                out.fail(f"类目 {class_key} 的顺序号重复：{'、'.join(str(n) for n in dups[:20])}", field="seq",
                         subject=class_key, record_ref=first.ref)


@register
class FilingScope(CheckItem):
    key = "filing_scope"
    number = 9
    dimension = Dimension.INTEGRITY
    title = "归档范围检测"
    purpose = "档案属于归档范围和保管期限表的条目，著录的保管期限不短于保管期限表的规定"
    defaults = {"unmatched": "warn"}
    param_labels = {"unmatched": "未匹配任何条目时：warn 警告 / fail 不通过 / ignore 忽略"}

    def check(self, ctx: CheckContext, out: Findings) -> None:
        from dangan.domain.retention import parse_retention
        from dangan.domain.schedule import suggest

        for r in ctx.records:
            rules = ctx.env.schedule_rules_for(r)
            if not rules:
                continue
            out.checked += 1
            meta = {"title": r.title, **r.metadata}
            s = suggest(rules, meta, ctx.env.department_of(r))
            if s is None:
                mode = ctx.params["unmatched"]
                if mode != "ignore":
                    (out.fail if mode == "fail" else out.warn)(
                        "未匹配归档范围和保管期限表的任何条目，请核对是否属于归档范围", **rec_kw(r))
                continue
            have = r.metadata.get("retention_period")
            if not have:
                continue
            try:
                have_years, want_years = parse_retention(str(have)).years, parse_retention(s.retention_period).years
            except ValueError:
                continue
            if want_years is None and have_years is not None or (
                    have_years is not None and want_years is not None and have_years < want_years):
                out.fail(f"保管期限短于保管期限表的规定：{s.rule.item}" + (f"（{s.rule.basis}）" if s.rule.basis else ""),
                         field="retention_period", expected=s.label, found=parse_retention(str(have)).label, **rec_kw(r))


@register
class ContentComplete(CheckItem):
    key = "content_complete"
    number = 11
    dimension = Dimension.INTEGRITY
    title = "内容数据完整性检测"
    purpose = "目录（清单）中登记的每个电子文件都实际存在、不为空、未被截短"
    needs_content = True

    def check(self, ctx: CheckContext, out: Findings) -> None:
        for r, f in ctx.files():
            out.checked += 1
            prof = ctx.profile(f)
            kw = file_kw(r, f)
            if not prof.present:
                out.fail("电子文件缺失：登记了但实际不存在", expected=f.location or f.name, found="不存在", **kw)
            elif prof.read_error:
                out.fail(f"电子文件无法读取：{prof.read_error}", **kw)
            elif prof.size == 0:
                out.fail("电子文件为空（0 字节）", expected=f.size if f.size else "> 0 字节", found=0, **kw)
            elif f.size is not None and prof.size is not None and prof.size < f.size:
                out.fail("电子文件不完整（被截短）", field="size", expected=f.size, found=prof.size, **kw)
        pkg = ctx.target.package
        if pkg is not None:
            present = {e.path for e in pkg.entries}
            linked = {f.location for _, f in ctx.files()}
            for m in pkg.manifest:
                if m.path not in present and m.path not in linked:
                    out.checked += 1
                    out.fail("清单中登记的文件在信息包中不存在", subject=m.path, file_ref=m.path, expected=m.path,
                             found="不存在")
