"""The audit trail: every service call appends an event chained by SM3; `verify` names any tampered entry."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from dangan.db.models import AuditEvent, AuditHead
from dangan.storage.hashing import sm3_hex

GENESIS = "0" * 64

OUTCOME_LABELS = {"success": "成功", "failure": "失败", "denied": "拒绝", "locked": "已锁定", "ok": "正常", "drift": "发现偏差",
                  "repaired": "已修复", "error": "出错"}

ACTION_LABELS = {
    "system.init": "初始化系统",
    "fonds.create": "新建全宗",
    "fonds.view": "查看全宗",
    "department.create": "新建机构",
    "category.create": "新建门类",
    "category.view": "查看门类",
    "record.create": "著录（新建）",
    "record.update": "修改著录",
    "record.view": "查看档案",
    "record.list": "浏览档案",
    "record.submit": "提交归档",
    "record.return": "退回",
    "record.file": "归档",
    "file.add": "添加电子文件",
    "file.remove": "删除电子文件",
    "file.download": "下载电子文件",
    "file.view_page": "在线阅览（一页，带水印）",
    "fixity.check": "固化信息检测",
    "fixity.audit": "定期固化信息巡检",
    "fixity.repair": "从副本修复电子文件",
    "fixity.replicate": "复制到副本存储",
    "check.run": "四性检测",
    "check.filing": "归档环节四性检测",
    "check.scheme": "修改四性检测方案",
    "package.export": "导出封装包",
    "record.search": "检索",
    "search.reindex": "重建检索索引",
    "package.import": "导入数据包",
    "storage.sweep": "清理无引用内容",
    "audit.view": "查看审计日志",
    "audit.verify": "校验审计日志",
    "audit.checkpoint": "审计日志外部存证",
    "login": "登录",
    "login.lockout": "账号锁定",
    "logout": "退出登录",
    "user.create": "新建用户",
    "user.update": "修改用户",
    "user.list": "查看用户列表",
    "user.reset_password": "重置密码",
    "user.change_password": "修改密码",
    "role.assign": "分配角色",
    "clearance.set": "设置密级",
    "token.create": "签发接口令牌",
    "token.revoke": "吊销接口令牌",
    "token.list": "查看接口令牌",
    "token.use": "使用接口令牌",
    "audit.export": "导出审计日志",
    "security.ceiling": "设置系统最高密级",
    "security.password_policy": "修改密码策略",
    "request.create": "提出利用申请",
    "request.grant": "准予利用",
    "request.approve": "审批同意利用申请",
    "request.refuse": "审批拒绝利用申请",
    "request.withdraw": "撤回利用申请",
    "request.expire": "利用期限届满",
    "request.use": "凭准予利用档案",
    "request.effect": "登记利用效果",
    "request.rules": "修改利用审批规则",
    "request.register": "查看利用登记",
    "request.export": "导出利用登记",
    "loan.lend": "借出纸质档案",
    "loan.return": "归还纸质档案",
}


@dataclass
class PendingEvent:
    action: str
    object_type: str = ""
    object_id: str = ""
    outcome: str = "success"
    detail: dict[str, Any] = field(default_factory=dict)


def canonical(detail: dict[str, Any]) -> str:
    return json.dumps(detail, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def entry_hash(
    prev_hash: str, seq: int, occurred_at: str, actor: str, action: str, object_type: str, object_id: str,
    outcome: str, client_addr: str, detail: str,
) -> str:
    # unit separator between fields: no field value can forge a boundary
    payload = "\x1f".join(
        [prev_hash, str(seq), occurred_at, actor, action, object_type, object_id, outcome, client_addr, detail]
    )
    return sm3_hex(payload.encode("utf-8"))


def append(session: Session, actor: str, client_addr: str, events: list[PendingEvent]) -> None:
    """Append events at the end of the caller's transaction. Locks the chain head until commit."""
    if not events:
        return
    head = session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(last_seq=AuditHead.last_seq)
        .returning(AuditHead.last_seq, AuditHead.last_hash)
    ).one()  # UPDATE takes the row lock on PostgreSQL; SQLite already holds the write lock
    seq, prev = head.last_seq, head.last_hash
    actor, client_addr = actor[:64], client_addr[:64]  # column widths: PostgreSQL enforces them
    rows: list[dict[str, Any]] = []
    for ev in events:
        ev.object_type, ev.object_id, ev.action = ev.object_type[:32], ev.object_id[:64], ev.action[:64]
        seq += 1
        occurred_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        detail = canonical(ev.detail)
        h = entry_hash(prev, seq, occurred_at, actor, ev.action, ev.object_type, ev.object_id, ev.outcome,
                       client_addr, detail)
        rows.append({"seq": seq, "occurred_at": occurred_at, "actor": actor, "action": ev.action,
                     "object_type": ev.object_type, "object_id": ev.object_id, "outcome": ev.outcome,
                     "client_addr": client_addr, "detail": detail, "prev_hash": prev, "hash": h})
        prev = h
    # one executemany of plain rows, in chain order (ids rise with seq); no ORM objects, no ids fetched back
    session.execute(insert(AuditEvent), rows)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_seq=seq, last_hash=prev))


@dataclass
class ChainProblem:
    seq: int | None
    event_id: int | None
    kind: str  # altered | deleted | inserted | reordered | truncated
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "event_id": self.event_id, "kind": self.kind, "message": self.message}


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[ChainProblem] = field(default_factory=list)
    head_seq: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "head_seq": self.head_seq,
                "problems": [p.as_dict() for p in self.problems]}


def iter_events(session: Session, batch: int = 5000) -> Iterator[AuditEvent]:
    """All events in chain order, in bounded batches (memory stays flat over millions of entries)."""
    last = -1
    while True:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def verify_chain(session: Session, anchors: dict[int, str] | None = None) -> VerifyReport:
    """Walk the chain in sequence order and recompute every hash.

    - altered: an entry's content no longer matches its own hash
    - deleted: a sequence number is missing
    - inserted: an entry whose link to the previous one does not fit (added or replaced)
    - reordered: an entry stored before its predecessor (its row id or time goes backwards)
    - truncated: the head says the chain is longer than what is stored
    - rewritten: an entry no longer has the hash recorded in a checkpoint kept outside the database
      (someone with database access recomputed the chain)
    """
    anchors = dict(anchors or {})
    rep = VerifyReport()
    head = session.get(AuditHead, 1)
    head_seq, head_hash = (head.last_seq, head.last_hash) if head else (0, GENESIS)
    prev_hash, prev_seq, prev_id, prev_time = GENESIS, 0, 0, ""
    for ev in iter_events(session):
        rep.checked += 1
        where = f"第 {ev.seq} 条（编号 {ev.id}，{ev.occurred_at}，{ev.actor}，{ev.action}）"
        own = entry_hash(ev.prev_hash, ev.seq, ev.occurred_at, ev.actor, ev.action, ev.object_type, ev.object_id,
                         ev.outcome, ev.client_addr, ev.detail)
        if own != ev.hash:
            rep.problems.append(ChainProblem(ev.seq, ev.id, "altered", f"{where}内容被修改：重新计算的 SM3 与记录的不符"))
        if ev.seq > prev_seq + 1:
            gap = f"{prev_seq + 1}" if ev.seq == prev_seq + 2 else f"{prev_seq + 1}–{ev.seq - 1}"
            rep.problems.append(ChainProblem(prev_seq + 1, None, "deleted", f"第 {gap} 条被删除（位于{where}之前）"))
        elif ev.prev_hash != prev_hash:
            rep.problems.append(ChainProblem(ev.seq, ev.id, "inserted",
                                             f"{where}与上一条不衔接：此条为插入或上一条被替换"))
        if ev.seq in anchors and anchors.pop(ev.seq) != ev.hash:
            rep.problems.append(ChainProblem(ev.seq, ev.id, "rewritten",
                                             f"{where}与外部存证记录的哈希不符：审计日志在该处之前被改写"))
        if ev.id < prev_id or ev.occurred_at < prev_time:
            rep.problems.append(ChainProblem(ev.seq, ev.id, "reordered", f"{where}顺序错乱：排在上一条之前写入"))
        prev_hash, prev_seq, prev_id, prev_time = ev.hash, ev.seq, ev.id, ev.occurred_at
    for seq in sorted(anchors):
        rep.problems.append(ChainProblem(seq, None, "deleted", f"外部存证记录的第 {seq} 条已不存在"))
    rep.head_seq = head_seq
    if head_seq > prev_seq:
        gap = f"{prev_seq + 1}" if head_seq == prev_seq + 1 else f"{prev_seq + 1}–{head_seq}"
        rep.problems.append(ChainProblem(prev_seq + 1, None, "truncated", f"审计日志末尾第 {gap} 条被删除"))
    elif head_seq < prev_seq:
        rep.problems.append(ChainProblem(head_seq + 1, None, "inserted", f"第 {head_seq + 1} 条之后的记录不在链头登记之内，疑为插入"))
    elif head_hash != prev_hash and rep.ok:
        rep.problems.append(ChainProblem(prev_seq, None, "altered", f"第 {prev_seq} 条与链头登记的哈希不符"))
    return rep


def event_view(ev: AuditEvent) -> dict[str, Any]:
    return {
        "id": ev.id, "seq": ev.seq, "occurred_at": ev.occurred_at, "actor": ev.actor, "action": ev.action,
        "action_label": ACTION_LABELS.get(ev.action, ev.action), "object_type": ev.object_type,
        "object_id": ev.object_id, "outcome": ev.outcome, "outcome_label": OUTCOME_LABELS.get(ev.outcome, ev.outcome),
        "client_addr": ev.client_addr, "detail": json.loads(ev.detail or "{}"), "hash": ev.hash,
    }


def list_events(app: Any, actor: Any, *, object_type: str | None = None, object_id: str | None = None,
                actor_name: str | None = None, action: str | None = None, before_seq: int | None = None,
                limit: int = 100, audit_the_view: bool = True) -> list[dict[str, Any]]:
    """Newest first, filtered; reading the trail is itself audited (the identity issue restricts who may)."""
    from dangan.services.access import require

    if audit_the_view:
        _guard(app, actor, "audit.read", require)
    limit = max(1, min(int(limit), 1000))
    with app.read_sessions() as s:
        q = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
        if object_type:
            q = q.where(AuditEvent.object_type == object_type)
        if object_id:
            q = q.where(AuditEvent.object_id == str(object_id))
        if actor_name:
            q = q.where(AuditEvent.actor == actor_name)
        if action:
            q = q.where(AuditEvent.action == action)
        if before_seq:
            q = q.where(AuditEvent.seq < before_seq)
        rows = [event_view(e) for e in s.scalars(q)]
    if audit_the_view:
        with app.uow(actor) as uow:
            uow.audit("audit.view", "audit", "", filter_object_type=object_type or "", filter_object_id=object_id or "",
                      filter_actor=actor_name or "", filter_action=action or "", returned=len(rows))
    return rows


def verify(app: Any, actor: Any, anchors: dict[int, str] | None = None) -> VerifyReport:
    """Verify the whole chain (and any external checkpoints), then record the verification as a new entry."""
    from dangan.services.access import require

    _guard(app, actor, "audit.verify", require)
    with app.read_sessions() as s:
        rep = verify_chain(s, anchors)
    with app.uow(actor) as uow:
        uow.audit("audit.verify", "audit", "", ok=rep.ok, checked=rep.checked, problems=len(rep.problems))
    return rep


CHECKPOINT = re.compile(r"dangan-audit-checkpoint seq=(\d+) sm3=([0-9a-f]{64})")


def checkpoint(app: Any, actor: Any) -> dict[str, Any]:
    """A line naming the chain head (seq and SM3) to keep outside the database: printed, mailed, or stored on
    another system. `verify` with these lines detects even a chain rewritten with recomputed hashes."""
    from dangan.services.access import require

    _guard(app, actor, "audit.verify", require)
    with app.read_sessions() as s:
        head = s.get(AuditHead, 1)
        seq, h = (head.last_seq, head.last_hash) if head else (0, GENESIS)
    at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with app.uow(actor) as uow:
        uow.audit("audit.checkpoint", "audit", str(seq), sm3=h)
    return {"seq": seq, "sm3": h, "at": at, "line": f"dangan-audit-checkpoint seq={seq} sm3={h} at={at}"}


def parse_checkpoints(text: str) -> dict[int, str]:
    """Read checkpoint lines (other lines are ignored)."""
    return {int(m.group(1)): m.group(2) for m in CHECKPOINT.finditer(text)}


def _guard(app: Any, actor: Any, action: str, require: Any) -> None:
    """Check the right; a refusal is itself audited (denied), then raised."""
    from dangan.errors import DanganError
    from dangan.services.context import record_failure

    try:
        require(actor, action)
    except DanganError as e:
        record_failure(app, actor, action, "audit", "", e)
        raise
