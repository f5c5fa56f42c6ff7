"""Build the demo fonds Z109 with records across departments, years, retention periods and categories."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from dangan.db.models import Fonds
from dangan.demo.documents import make_pdf, make_png
from dangan.domain.presets import CATEGORY_PRESETS
from dangan.services import records as records_svc
from dangan.services.categories import create_category
from dangan.services.context import Actor, Dangan
from dangan.services.files import NewFile
from dangan.services.fonds import create_department, create_fonds
from dangan.services.records import RecordInput, create_record, transition

FONDS = ("Z109", "示范市人民政府办公室")
DEPARTMENTS = [("BGS", "办公室"), ("CWK", "财务科"), ("JJK", "基建科")]
TOPICS = ["档案归档", "安全生产", "政务公开", "财政预算", "防汛抗旱", "营商环境", "机关党建", "乡村振兴", "数字政府",
          "保密管理", "疫情防控", "节能减排", "信访维稳", "招商引资", "城市更新"]
KINDS = [("通知", "关于做好{y}年度{t}工作的通知", "Y"), ("报告", "关于{y}年{t}工作情况的报告", "D30"),
         ("请示", "关于申请{t}专项经费的请示", "D30"), ("批复", "关于{t}有关事项的批复", "D30"),
         ("函", "关于商请协助开展{t}调研的函", "D10"), ("纪要", "{t}专题会议纪要", "Y"),
         ("意见", "关于进一步加强{t}的实施意见", "Y"), ("通报", "关于{y}年{t}检查情况的通报", "D10")]
ABBR = {"BGS": "示政办", "CWK": "示财", "JJK": "示建"}


def build_demo(app: Dangan, actor: Actor, *, size: int = 300, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    rnd = random.Random(109)
    with app.read_sessions() as s:
        if s.scalar(select(Fonds.id).where(Fonds.code == FONDS[0])):
            return {"skipped": "示例全宗 Z109 已存在"}
    create_fonds(app, actor, FONDS[0], FONDS[1], unit=FONDS[1], description="演示用全宗：包含文书、会计、基建、照片档案")
    for i, (code, name) in enumerate(DEPARTMENTS):
        create_department(app, actor, FONDS[0], code, name, sort_order=i)
    for code in CATEGORY_PRESETS:
        create_category(app, actor, FONDS[0], code)
    counts = {"WS": 0, "KU": 0, "KJ": 0, "ZP": 0}
    years = [2019, 2020, 2021, 2022, 2023, 2024]
    docno: dict[tuple[str, int], int] = {}
    n_ws = max(1, size - 40) if size > 60 else size

    for i in range(n_ws):
        y = years[i % len(years)] if i < n_ws - 12 else 2025
        dept = DEPARTMENTS[i % 3][0]
        kind, pattern, ret = KINDS[rnd.randrange(len(KINDS))]
        topic = TOPICS[rnd.randrange(len(TOPICS))]
        title = pattern.format(y=y, t=topic)
        docno[(dept, y)] = docno.get((dept, y), 0) + 1
        number = f"{ABBR[dept]}〔{y}〕{docno[(dept, y)]}号"
        date = f"{y}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"
        secret = rnd.random() < 0.05
        meta = {"title": title, "year": y, "retention_period": ret, "responsible": FONDS[1] + dict(DEPARTMENTS)[dept],
                "date": date, "doc_number": number, "doc_type": kind, "pages": rnd.randint(1, 12),
                "security_level": "秘密" if secret else rnd.choice(["公开", "公开", "内部"]),
                "keywords": [topic, kind]}
        if secret:
            meta["secrecy_period"] = "10年"
        body = ["各科室、各直属单位：", f"为做好{y}年度{topic}相关工作，现将有关事项{kind}如下。",
                "一、提高认识，加强组织领导，明确责任分工。", "二、突出重点，完善工作机制，确保各项任务落实到位。",
                "三、强化督查，及时报送进展情况。", f"{FONDS[1]}", date]
        files = [NewFile(f"{number}{title}.pdf", io.BytesIO(make_pdf(title, body, author=FONDS[1],
                                                                      created=date.replace("-", "") + "090000")))]
        if rnd.random() < 0.3:
            files.append(NewFile(f"附件：{topic}工作安排表.pdf", io.BytesIO(make_pdf(f"{topic}工作安排表", [f"附件 {i}"])),
                                 role="attachment"))
        if rnd.random() < 0.2:
            files.append(NewFile("文件处理单.pdf", io.BytesIO(make_pdf("文件处理单", [f"来文：{number}", f"拟办：请{dict(DEPARTMENTS)[dept]}阅处"])),
                                 role="processing_sheet"))
        state = "filed" if y < 2025 else ("pending" if i % 2 else "pre_filing")
        create_record(app, actor, RecordInput(FONDS[0], "WS", meta, department=dept, state=state), files)
        counts["WS"] += 1
        if progress:
            progress(counts["WS"], size)
    if size > 60:
        # 会计: 2 volumes per year for 2022-2023 with vouchers inside
        for y in (2022, 2023):
            for cls, title in (("01", f"{y}年1月记账凭证"), ("02", f"{y}年度总账")):
                vol = create_record(app, actor, RecordInput(FONDS[0], "KU", {"title": title, "year": y, "retention_period": "D30",
                                    "class_code": cls, "start_date": f"{y}-01-01", "end_date": f"{y}-12-31"},
                                    level="volume", state="filed"))
                for k in range(1, 4):
                    t = f"{title}第{k}号"
                    create_record(app, actor, RecordInput(FONDS[0], "KU", {"title": t, "responsible": "财务科", "date": f"{y}-01-{k * 5:02d}",
                                  "voucher_no": f"记-{k:03d}", "amount": f"{rnd.randint(100, 99999)}.00"},
                                  level="item", parent_id=vol["id"], state="filed"),
                                  [NewFile(f"{t}.pdf", io.BytesIO(make_pdf(t, ["记账凭证", f"金额：{k * 1000} 元"])))])
                    counts["KU"] += 1
        # 基建: one project, two volumes
        proj = create_record(app, actor, RecordInput(FONDS[0], "KJ", {"title": "示范市政务服务中心新建工程", "class_code": "JJ",
                             "project_code": "ZWFW-2021", "builder": FONDS[1], "start_date": "2021-03-01",
                             "end_date": "2023-06-30", "year": 2023, "retention_period": "Y"}, level="project", state="filed"))
        for _v, stage in enumerate(["立项", "施工"], start=1):
            vol = create_record(app, actor, RecordInput(FONDS[0], "KJ", {"title": f"政务服务中心新建工程{stage}文件", "year": 2023,
                                "retention_period": "Y", "stage": stage}, level="volume", parent_id=proj["id"], state="filed"))
            for k in range(1, 4):
                t = f"政务服务中心{stage}阶段文件（{k}）"
                create_record(app, actor, RecordInput(FONDS[0], "KJ", {"title": t, "responsible": "基建科", "date": f"2022-0{k}-15"},
                              level="item", parent_id=vol["id"], state="filed"),
                              [NewFile(f"{t}.pdf", io.BytesIO(make_pdf(t, [f"{stage}阶段"])))])
                counts["KJ"] += 1
        # 照片: one group with photos
        grp = create_record(app, actor, RecordInput(FONDS[0], "ZP", {"title": "2024年防汛应急演练", "year": 2024,
                            "retention_period": "D30", "date": "2024-06-18", "photographer": "办公室 王明"}, level="group",
                            state="filed"))
        for k in range(1, 7):
            create_record(app, actor, RecordInput(FONDS[0], "ZP", {"title": f"防汛应急演练现场（{k}）",
                          "caption": f"2024年6月18日，防汛应急演练现场第{k}组画面", "date": "2024-06-18"},
                          level="item", parent_id=grp["id"], state="filed"),
                          [NewFile(f"防汛演练{k:02d}.png", io.BytesIO(make_png(96, 64, k)))])
            counts["ZP"] += 1
    users = create_demo_users(app)
    _demo_prefiling(app, actor)
    return {"fonds": FONDS[0], "records": counts, "users": users, "password": DEMO_PASSWORD}


def _demo_prefiling(app: Dangan, actor: Actor) -> None:
    """Annual filing plans (one due soon, one overdue) and a record returned to its department with a reason."""
    import datetime as dt

    from dangan.services import prefiling

    today = dt.date.today()
    for dept, days, expected in (("BGS", 20, 8), ("CWK", -5, 6), ("JJK", 90, 4)):
        prefiling.create_plan(app, actor, FONDS[0], dept, "WS", 2025, today + dt.timedelta(days=days), expected,
                              "文书档案年度归档（演示）")
    pending = records_svc.list_records(app, actor, records_svc.RecordFilter(fonds=FONDS[0], category="WS",
                                                                            state="pending"), limit=1, audit=False)
    if pending["items"]:
        prefiling.return_record(app, actor, pending["items"][0]["id"], "缺少发文处理单，请补充后重新提交")


DEMO_PASSWORD = "Dangan@2026"
# username, name, roles, clearance, departments
DEMO_USERS = [
    ("sysadmin", "系统管理员（演示）", ["sysadmin"], "公开", []),
    ("secadmin", "安全保密管理员（演示）", ["secadmin"], "公开", []),
    ("auditor", "安全审计员（演示）", ["auditor"], "公开", []),
    ("head", "档案部门负责人 刘芳", ["records_head"], "机密", ["BGS"]),
    ("dangan", "专职档案员 陈静", ["archivist"], "机密", ["BGS"]),
    ("bgs", "兼职档案员 王明（办公室）", ["clerk"], "内部", ["BGS"]),
    ("cwk", "兼职档案员 李娜（财务科）", ["clerk"], "内部", ["CWK"]),
    ("leader", "分管领导 赵强", ["leader"], "机密", []),
    ("reader", "利用者 孙磊", ["reader"], "公开", []),
]


def create_demo_users(app: Dangan) -> list[dict[str, Any]]:
    """One account per role, all with the demo password (shown on the login page of a demo archive only)."""
    from dangan.db.models import (
        Department,
        PasswordHistory,
        Role,
        SystemSetting,
        User,
        UserDepartment,
        UserRole,
        utcnow,
    )
    from dangan.services.identity import _hasher, ensure_builtin_roles

    hashed = _hasher.hash(DEMO_PASSWORD)  # one hash for all: the same demo password, hashed once
    out = []
    with app.uow(Actor.system()) as uow:
        s = uow.session
        ensure_builtin_roles(s)
        s.flush()
        for username, name, roles, clearance, depts in DEMO_USERS:
            if s.scalar(select(User.id).where(User.username == username)):
                continue
            u = User(username=username, display_name=name, password_hash=hashed, password_changed_at=utcnow(),
                     must_change_password=False, clearance=clearance)
            s.add(u)
            s.flush()
            s.add(PasswordHistory(user_id=u.id, password_hash=hashed))
            for r in roles:
                assert s.get(Role, r) is not None
                s.add(UserRole(user_id=u.id, role_code=r, granted_by="system"))
            for d in depts:
                dept = s.scalar(select(Department).where(Department.code == d))
                s.add(UserDepartment(user_id=u.id, department_id=dept.id))
            uow.audit("user.create", "user", u.id, username=username, roles=roles, clearance=clearance, demo=True)
            out.append({"username": username, "name": name, "roles": roles, "clearance": clearance})
        s.merge(SystemSetting(key="demo", value={"password": DEMO_PASSWORD,
                                                 "accounts": [{"username": u[0], "name": u[1]} for u in DEMO_USERS]}))
    return out


__all__ = ["build_demo", "transition"]
