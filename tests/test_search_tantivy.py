"""The embedded tantivy index answers searches on the SQLite default and stays exactly in step with the
database: a change made any way at all (the service, a bulk SQL statement, another process) is what the next
search sees, trimming included; when it cannot catch up, FTS5 answers with the same results."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

from sqlalchemy import text

from dangan.demo.documents import make_pdf
from dangan.services import search
from dangan.services.context import Actor
from dangan.services.files import NewFile
from dangan.services.records import RecordInput, create_record
from test_identity import make_user

BASE = {"retention_period": "D30", "responsible": "示范市人民政府办公室"}


def _add(app, title: str, date: str, level: str = "公开", dept: str = "BGS", body: str = "") -> int:
    meta = {**BASE, "title": title, "date": date, "year": int(date[:4]), "security_level": level}
    if level != "公开":
        meta["secrecy_period"] = "10年"
    files = [NewFile(f"{title}.pdf", io.BytesIO(make_pdf(title, [body])))] if body else []
    return create_record(app, Actor.system(), RecordInput("Z109", "WS", meta, department=dept, state="filed"),
                         files)["id"]


def both(app, actor, q: str, **kw) -> tuple[dict, dict]:
    """The same search from tantivy and from FTS5."""
    a = search.search(app, actor, q, audit=False, **kw)
    app.settings.search_engine = "sql"
    saved = app.__dict__.pop("tantivy", None)
    try:
        b = search.search(app, actor, q, audit=False, **kw)
    finally:
        app.settings.search_engine = "auto"
        if saved is not None:
            app.__dict__["tantivy"] = saved
    return a, b


def test_tantivy_answers_with_the_same_totals_facets_and_trimming_as_fts5(app):
    for i in range(30):
        _add(app, f"关于第{i}批档案归档工作的通知", f"2024-03-{i % 28 + 1:02d}", "秘密" if i % 3 == 0 else "公开",
             "BGS" if i % 2 else "CWK")
    app.indexer.flush()
    reader = make_user(app, "reader", ["reader"], "内部")
    archivist = make_user(app, "zz", ["archivist"], "秘密")
    for actor in (reader, archivist):
        a, b = both(app, actor, "归档 通知")
        assert a["engine"] == "tantivy" and b["engine"] == "fts5"
        assert a["total"] == b["total"] > 0
        assert a["facets"] == b["facets"]
        assert {i["id"] for i in a["items"]} == {i["id"] for i in b["items"]} or a["total"] > 20
        for sort in ("date", "date_asc"):
            a, b = both(app, actor, "通知", sort=sort)
            assert [i["id"] for i in a["items"]] == [i["id"] for i in b["items"]]
    assert search.search(app, reader, "归档", audit=False)["total"] == 20  # the 10 秘密 records are trimmed
    # filters agree too
    a, b = both(app, archivist, "通知", flt=search.SearchFilter(department="BGS", security_level="秘密"))
    assert a["total"] == b["total"] == 5


def test_a_change_made_by_plain_sql_is_seen_by_the_next_search(app):
    rid = _add(app, "关于财务检查的通知", "2024-05-01")
    app.indexer.flush()
    reader = make_user(app, "reader", ["reader"], "内部")
    assert search.search(app, reader, "财务检查", audit=False)["total"] == 1
    with app.engine.begin() as c:  # bypasses the services: the trigger still logs it
        c.execute(text("UPDATE records SET security_level='秘密' WHERE id=:i"), {"i": rid})
    res = search.search(app, reader, "财务检查", audit=False)
    assert res["engine"] == "tantivy" and res["total"] == 0 and res["facets"]["security_level"] == []
    with app.engine.begin() as c:
        c.execute(text("DELETE FROM search_docs WHERE record_id=:i"), {"i": rid})
    archivist = make_user(app, "zz", ["archivist"], "秘密")
    assert search.search(app, archivist, "财务检查", audit=False)["total"] == 0


def test_pages_of_either_sort_are_complete_and_never_repeat(app):
    for i in range(45):
        _add(app, f"会议纪要第{i}号", f"20{10 + i % 5}-01-{i % 3 + 1:02d}")
    app.indexer.flush()
    a = make_user(app, "zz", ["archivist"], "秘密")
    for sort in ("relevance", "date", "date_asc"):
        seen: list[int] = []
        cursor = None
        while True:
            res = search.search(app, a, "会议纪要", sort=sort, cursor=cursor, limit=10, audit=False)
            assert res["engine"] == "tantivy" and res["total"] == 45
            seen += [i["id"] for i in res["items"]]
            cursor = res["next_cursor"]
            if not cursor:
                break
        assert len(seen) == 45 == len(set(seen)), sort
        if sort != "relevance":
            dates = [search.search(app, a, "会议纪要", sort=sort, limit=100, audit=False)["items"][k]["date"]
                     for k in range(45)]
            assert dates == sorted(dates, reverse=(sort == "date"))


def test_a_missing_or_damaged_index_is_rebuilt_and_a_busy_one_falls_back_to_fts5(app):
    _add(app, "关于档案移交的函", "2024-06-01")
    app.indexer.flush()
    a = make_user(app, "zz", ["archivist"], "秘密")
    assert search.search(app, a, "移交", audit=False)["engine"] == "tantivy"
    idx_dir = app.settings.data_dir / "search-index"
    app.tantivy.close()
    for p in idx_dir.iterdir():
        p.unlink()
    res = search.search(app, a, "移交", audit=False)
    assert res["engine"] == "tantivy" and res["total"] == 1
    # another process holds the index's writer: a change cannot be applied, so FTS5 answers (exactly)
    app.tantivy.close()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time, tantivy
        i = tantivy.Index.open({str(idx_dir)!r})
        w = i.writer(15_000_000, 1)
        print("held", flush=True)
        sys.stdin.readline()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        _add(app, "关于档案移交清单的说明", "2024-06-02")
        app.indexer.flush()
        res = search.search(app, a, "移交", audit=False)
        assert res["engine"] == "fts5" and res["total"] == 2
    finally:
        holder.communicate("\n", timeout=20)
    app.tantivy._writer_refused_at = 0.0
    res = search.search(app, a, "移交", audit=False)
    assert res["engine"] == "tantivy" and res["total"] == 2


def test_reindex_full_rebuilds_and_status_reports_the_engine(app):
    _add(app, "关于档案数字化的通知", "2024-07-01")
    app.indexer.flush()
    op = Actor.system()
    res = search.reindex(app, op, full=True)
    assert res["tantivy_docs"] == 1
    st = search.index_status(app, op)
    assert st["engine"]["name"] == "tantivy" and st["engine"]["behind"] == 0
    with app.engine.connect() as c:  # the log is pruned once applied
        assert c.execute(text("SELECT count(*) FROM search_log")).scalar() == 0


def test_hostile_cursors_are_refused_with_a_clear_code(app):
    import base64
    import json

    import pytest

    from dangan.errors import ValidationFailed

    _add(app, "关于档案的通知", "2024-07-01")
    app.indexer.flush()
    a = make_user(app, "zz", ["archivist"], "秘密")
    for bad in (["@", 10**9], ["@", -1], ["k", "x"], ["@", True], "zzz"):
        cur = base64.urlsafe_b64encode(json.dumps(bad).encode()).decode()
        with pytest.raises(ValidationFailed) as e:
            search.search(app, a, "档案", cursor=cur, audit=False)
        assert e.value.code in ("BAD_CURSOR", "PAGE_TOO_DEEP")


def test_a_record_without_a_year_is_outside_every_year_condition_on_both_engines(app):
    from sqlalchemy import text as sql

    _add(app, "关于财务检查的通知", "2024-05-01")
    undated = _add(app, "关于财务检查的补充通知", "2023-05-01")
    app.indexer.flush()
    with app.engine.begin() as c:  # 年度 is nullable: a record whose year is not known
        c.execute(sql("UPDATE records SET year=NULL WHERE id=:i"), {"i": undated})
    a = make_user(app, "zz", ["archivist"], "秘密")
    for flt in (search.SearchFilter(year_to=2030), search.SearchFilter(year_from=1900),
                search.SearchFilter(year_from=2000, year_to=2030)):
        t, f = both(app, a, "财务检查", flt=flt)
        assert (t["engine"], f["engine"]) == ("tantivy", "fts5")
        assert t["total"] == f["total"] == len(t["items"]) == 1, flt
    t, f = both(app, a, "财务检查")
    assert t["total"] == f["total"] == 2 and t["facets"]["year"] == f["facets"]["year"]


def test_index_status_counts_only_what_the_reader_may_see(app):
    _add(app, "公开的通知", "2024-01-01")
    for i in range(3):
        _add(app, f"机密的报告{i}", "2024-01-02", "机密")
    app.indexer.flush()
    reader = make_user(app, "reader", ["reader"], "公开")
    st = search.index_status(app, reader)
    assert st["records"] == st["indexed"] == 1 and st["files"] == 0
    op = Actor.system()
    assert search.index_status(app, op)["records"] == 4
