"""Gapless 档号 sequence allocation inside the lowest class, safe with concurrent writers.

The counter row is incremented inside the same transaction that stores the record, so a rolled-back
transaction gives its number back: no gaps. PostgreSQL's row lock (taken by the upsert and held until
commit) and SQLite's single writer (BEGIN IMMEDIATE) serialise writers of the same class: no duplicates.
A unique constraint on (category, level, class_key, seq) backs both up.

`allocate_many` reserves a block of numbers in several classes with one statement (an upsert per chunk of
`CHUNK` classes): ``INSERT ... VALUES (...), (...) ON CONFLICT DO UPDATE SET last_value = last_value + n
RETURNING``. The classes are sorted first and PostgreSQL processes the VALUES rows in order, so every
transaction locks counter rows in the same order: two batches touching the same classes wait for each other,
they cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import bindparam, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dangan.db.models import NumberCounter

ClassKey = tuple[int, str, str]  # (category_id, level, class_key)

# classes per statement: 4 parameters each, far below SQLite's 32,766 and PostgreSQL's 65,535
CHUNK = 1000


def allocate(session: Session, category_id: int, level: str, class_key: str) -> int:
    """The next number of one class (the 1-count case of `allocate_many`)."""
    key = (category_id, level, class_key)
    return allocate_many(session, {key: 1})[key]


def allocate_many(session: Session, requests: Mapping[ClassKey, int]) -> dict[ClassKey, int]:
    """Reserve `count` consecutive numbers in each class; return the first number of each block.

    The block of class k is ``first[k] .. first[k] + requests[k] - 1``. The counters are created when missing
    and updated in the caller's transaction: a rollback gives every number back, and the rows stay locked
    (PostgreSQL) until the caller commits.
    """
    for key, n in requests.items():
        if n < 1:
            raise ValueError(f"allocate_many: count for {key} must be at least 1, got {n}")
    keys = sorted(requests)  # deterministic lock order: concurrent batches cannot deadlock
    if not keys:
        return {}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    out: dict[ClassKey, int] = {}
    for i in range(0, len(keys), CHUNK):
        chunk = keys[i : i + CHUNK]
        ins = insert(NumberCounter).values(
            [{"category_id": c, "level": lv, "class_key": k, "last_value": requests[(c, lv, k)]} for c, lv, k in chunk]
        )
        stmt = ins.on_conflict_do_update(
            index_elements=["category_id", "level", "class_key"],
            set_={"last_value": NumberCounter.last_value + ins.excluded.last_value},
        ).returning(NumberCounter.category_id, NumberCounter.level, NumberCounter.class_key, NumberCounter.last_value)
        for c, lv, k, last in session.execute(stmt):
            out[(c, lv, k)] = last - requests[(c, lv, k)] + 1
    if len(out) != len(keys):  # cannot happen: every row is inserted or updated
        raise RuntimeError("allocate_many: a counter did not answer")
    return out


def give_back(session: Session, unused: Mapping[ClassKey, int]) -> None:
    """Return the last `n` numbers of blocks that `allocate_many` reserved in this same transaction.

    Only for numbers this transaction took and did not use (e.g. the class ran out of digits): the counter rows
    are still locked by this transaction, so no one else numbered after them and the sequence stays gapless.
    """
    steps = [{"b_category": c, "b_level": lv, "b_key": k, "b_n": n} for (c, lv, k), n in sorted(unused.items()) if n]
    if not steps:
        return
    t = NumberCounter.__table__
    session.connection().execute(
        update(t)
        .where(t.c.category_id == bindparam("b_category"), t.c.level == bindparam("b_level"),
               t.c.class_key == bindparam("b_key"))
        .values(last_value=t.c.last_value - bindparam("b_n")),
        steps,
    )
