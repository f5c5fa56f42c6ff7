"""Record states and the transitions the core allows."""

from __future__ import annotations

from enum import StrEnum


class RecordState(StrEnum):
    PRE_FILING = "pre_filing"  # 预归档: the department is still collecting
    PENDING = "pending"  # 待归档: submitted, waiting for the archivist
    FILED = "filed"  # 已归档
    ON_LOAN = "on_loan"  # 借出 (reserved: access issue)
    TRANSFERRED = "transferred"  # 已移交 (reserved: transfer)
    DESTROYED = "destroyed"  # 已销毁 (reserved: disposition)
    FROZEN = "frozen"  # 冻结 (reserved: legal hold)

    @property
    def label(self) -> str:
        return STATE_LABELS[self]


STATE_LABELS = {
    RecordState.PRE_FILING: "预归档",
    RecordState.PENDING: "待归档",
    RecordState.FILED: "已归档",
    RecordState.ON_LOAN: "借出",
    RecordState.TRANSFERRED: "已移交",
    RecordState.DESTROYED: "已销毁",
    RecordState.FROZEN: "冻结",
}

# (from, to) -> the action that performs it
TRANSITIONS: dict[tuple[RecordState, RecordState], str] = {
    (RecordState.PRE_FILING, RecordState.PENDING): "submit",
    (RecordState.PENDING, RecordState.PRE_FILING): "return",
    (RecordState.PENDING, RecordState.FILED): "file",
    (RecordState.PRE_FILING, RecordState.FILED): "file",
}

# 借出 and 归还 of the paper original, performed only by services.requests.lend / return_loan. Kept apart from
# TRANSITIONS on purpose: records.transition() must never move a record out on loan without a loan, nor "file"
# a record on loan again (which would assign it a second 档号).
LOAN_TRANSITIONS: dict[tuple[RecordState, RecordState], str] = {
    (RecordState.FILED, RecordState.ON_LOAN): "lend",
    (RecordState.ON_LOAN, RecordState.FILED): "return_loan",
}

# states in which metadata and components may still change freely
EDITABLE = {RecordState.PRE_FILING, RecordState.PENDING}
# 已归档 records in the holdings: a record whose paper original is out on loan (借出) is still filed — it stays in
# the 归档文件目录 and the counts, and its metadata may be corrected as a filed record's may
IN_HOLDINGS = {RecordState.FILED, RecordState.ON_LOAN}


def parse_state(value: str) -> RecordState:
    for s in RecordState:
        if value in (s.value, s.label):
            return s
    raise ValueError(f"状态“{value}”无法识别，应为：" + "、".join(STATE_LABELS.values()))
