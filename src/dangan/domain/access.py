"""Access rules as data: roles, the permission matrix (role × action × scope), 三员分立, 密级 clearance, password policy.

Pure: no database. The services turn these rules into SQL filters (security trimming in the query).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# ---------------------------------------------------------------- 密级

# ordered from lowest to highest; a deployment may configure its own list (first = lowest)
DEFAULT_LEVELS: tuple[str, ...] = ("公开", "内部", "秘密", "机密", "绝密")
STATE_SECRET_LEVELS = ("秘密", "机密", "绝密")


def visible_levels(clearance: str, levels: tuple[str, ...] = DEFAULT_LEVELS, ceiling: str | None = None) -> list[str]:
    """The 密级 values a user with `clearance` may see (never above the deployment ceiling)."""
    if clearance not in levels:
        return []
    top = levels.index(clearance)
    if ceiling is not None and ceiling in levels:
        top = min(top, levels.index(ceiling))
    return list(levels[: top + 1])


def within_ceiling(level: str, ceiling: str, levels: tuple[str, ...] = DEFAULT_LEVELS) -> bool:
    return level in levels and ceiling in levels and levels.index(level) <= levels.index(ceiling)


# ---------------------------------------------------------------- roles and actions

ROLE_LABELS: dict[str, str] = {
    "sysadmin": "系统管理员",
    "secadmin": "安全保密管理员",
    "auditor": "安全审计员",
    "records_head": "档案部门负责人",
    "archivist": "专职档案员",
    "clerk": "兼职档案员",
    "leader": "分管领导",
    "reader": "利用者",
}

# 三员: no person may hold two of these
THREE_ADMINS = ("sysadmin", "secadmin", "auditor")

ACTION_LABELS: dict[str, str] = {
    "record.read": "查看档案著录与电子文件",
    "record.create": "著录（新建档案）",
    "record.update": "修改著录",
    "record.submit": "提交归档",
    "record.file": "归档（分配档号）与退回",
    "file.add": "添加电子文件",
    "record.import": "批量导入（目录与电子文件挂接）",
    "plan.manage": "制定年度归档计划",
    "schedule.manage": "维护归档范围和保管期限表",
    "file.download": "下载电子文件原件",
    "fonds.manage": "管理全宗、门类与机构",
    "fixity.run": "发起固化信息检测",
    "check.run": "四性检测（发起与查看检测报告）",
    "check.manage": "维护四性检测方案",
    "package.export": "导出封装包（DA/T 48、BagIt）",
    "search.reindex": "重建检索索引（全文提取）",
    "storage.manage": "存储维护（清理）",
    "user.manage": "管理用户账号与机构",
    "role.assign": "分配角色与密级",
    "token.manage": "管理接口令牌",
    "audit.read": "查看与导出审计日志",
    "audit.verify": "校验审计日志",
    "request.create": "提出利用申请（查阅、借阅、复制、出证）",
    "request.approve": "审批利用申请（按审批规则中指定本人角色的步骤）",
    "request.rules": "维护利用审批规则",
    "request.register": "查看与导出利用登记",
    "loan.manage": "办理纸质档案借出与归还",
    "scan.import": "数字化：导入扫描件（建立数字化批次）",
    "scan.qc": "数字化：图像质量检查、返工与抽检",
    "ocr.run": "数字化：OCR 文字识别与生成可检索的 PDF/A 利用副本",
    "scan.accept": "数字化：验收挂接（把扫描件与 OCR 全文挂接到档案）",
}

SCOPE_LABELS: dict[str, str] = {
    "all": "全部",
    "department": "本部门",
    "department_prefiling": "本部门未归档",
}

# role -> action -> scope. Absent means denied. Record content is never granted to the 三员 roles.
DEFAULT_MATRIX: dict[str, dict[str, str]] = {
    "sysadmin": {"user.manage": "all", "fonds.manage": "all", "fixity.run": "all", "storage.manage": "all",
                 "token.manage": "all", "search.reindex": "all"},
    "secadmin": {"role.assign": "all"},
    "auditor": {"audit.read": "all", "audit.verify": "all"},
    "records_head": {"record.read": "all", "record.create": "all", "record.update": "all", "record.submit": "all",
                     "record.file": "all", "file.add": "all", "file.download": "all", "fonds.manage": "all",
                     "fixity.run": "all", "record.import": "all", "plan.manage": "all", "schedule.manage": "all",
                     "check.run": "all", "check.manage": "all", "package.export": "all",
                     "search.reindex": "all", "request.create": "all", "request.approve": "all",
                     "request.rules": "all", "request.register": "all", "loan.manage": "all",
                     "scan.import": "all", "scan.qc": "all", "ocr.run": "all", "scan.accept": "all"},
    "archivist": {"record.read": "all", "record.create": "all", "record.update": "all", "record.submit": "all",
                  "record.file": "all", "file.add": "all", "file.download": "all", "fixity.run": "all",
                  "record.import": "all", "plan.manage": "all", "schedule.manage": "all",
                  "check.run": "all", "check.manage": "all", "package.export": "all", "search.reindex": "all",
                  "request.create": "all", "request.approve": "all", "request.register": "all", "loan.manage": "all",
                  "scan.import": "all", "scan.qc": "all", "ocr.run": "all", "scan.accept": "all"},
    "clerk": {"record.read": "department", "record.create": "department_prefiling",
              "record.update": "department_prefiling", "record.submit": "department_prefiling",
              "file.add": "department_prefiling", "file.download": "department", "record.import": "department_prefiling",
              "request.create": "department"},
    "leader": {"record.read": "all", "file.download": "all", "request.create": "all", "request.approve": "all"},
    "reader": {"record.read": "all", "request.create": "all"},
}


def check_role_combination(roles: set[str]) -> str | None:
    """The 三员 are mutually exclusive. Returns a Chinese message when the combination is refused."""
    held = [r for r in THREE_ADMINS if r in roles]
    if len(held) > 1:
        return "三员分立：" + "、".join(ROLE_LABELS[r] for r in held) + " 不能由同一人兼任"
    unknown = sorted(r for r in roles if r not in ROLE_LABELS)
    if unknown:
        return "未知角色：" + "、".join(unknown)
    return None


@dataclass(frozen=True)
class Grant:
    action: str
    scope: str  # all | department | department_prefiling


def merge_grants(roles: set[str], matrix: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
    """Combine the grants of several roles: for each action, the widest scope wins."""
    order = {"department_prefiling": 0, "department": 1, "all": 2}
    out: dict[str, str] = {}
    for r in roles:
        for action, scope in (matrix or DEFAULT_MATRIX).get(r, {}).items():
            if action not in out or order[scope] > order[out[action]]:
                out[action] = scope
    return out


# ---------------------------------------------------------------- password policy


@dataclass(frozen=True)
class PasswordPolicy:
    """Defaults meet 等保 2.0 level 3 practice: length ≥ 10, three character classes, 90-day expiry, 5 remembered."""

    min_length: int = 10
    min_classes: int = 3
    expiry_days: int = 90
    history: int = 5
    max_failures: int = 5
    lockout_minutes: int = 15
    idle_timeout_minutes: int = 30
    extra: dict[str, Any] = field(default_factory=dict)

    def problems(self, password: str, username: str = "") -> list[str]:
        out = []
        if len(password) < self.min_length:
            out.append(f"密码长度至少 {self.min_length} 位")
        classes = sum(bool(re.search(p, password)) for p in (r"[a-z]", r"[A-Z]", r"\d", r"[^A-Za-z0-9]"))
        if classes < self.min_classes:
            out.append(f"密码须包含大写字母、小写字母、数字、符号中的至少 {self.min_classes} 类")
        if username and username.lower() in password.lower():
            out.append("密码不能包含用户名")
        if len(password) > 128:
            out.append("密码不能超过 128 位")
        return out
