"""Gapless 档号 sequence allocation inside the lowest class, safe with concurrent writers.

The counter row is incremented inside the same transaction that stores the record, so a rolled-back
transaction gives its number back: no gaps. PostgreSQL's row lock (UPDATE ... RETURNING) and SQLite's
single writer (BEGIN IMMEDIATE) serialise writers of the same class: no duplicates. A unique constraint
on (category, level, class_key, seq) backs both up.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dangan.db.models import NumberCounter


def allocate(session: Session, category_id: int, level: str, class_key: str) -> int:
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(NumberCounter)
    session.execute(
        ins.values(category_id=category_id, level=level, class_key=class_key, last_value=0).on_conflict_do_nothing(
            index_elements=["category_id", "level", "class_key"]
        )
    )
    return session.execute(
        update(NumberCounter)
        .where(NumberCounter.category_id == category_id, NumberCounter.level == level, NumberCounter.class_key == class_key)
        .values(last_value=NumberCounter.last_value + 1)
        .returning(NumberCounter.last_value)
    ).scalar_one()
