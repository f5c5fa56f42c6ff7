"""检索 over the index kept in step with the archive, on SQLite and PostgreSQL: words, phrases, fields, exact 档号
and 文号, full text with the page of the hit, filters, facets, keyset pages, trimming (totals and facets do not move
with records the reader may not see), hostile queries, and reindex."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import delete, func, select

from conftest import make_app
from dangan.db.models import FileText, SearchDoc
from dangan.demo.documents import make_pdf
from dangan.errors import PermissionDenied, ValidationFailed
from dangan.services import search
from dangan.services.context import Actor
from dangan.services.files import NewFile
from dangan.services.records import RecordInput, create_record, update_record
from test_identity import make_user

BASE = {"retention_period": "D30", "responsible": "示范市人民政府办公室"}
DOCS = [
    # title, date, security level, department, 文号, text of page 1, text of page 2
    ("关于做好2024年度档案归档工作的通知", "2024-03-05", "公开", "BGS", "示政办〔2024〕12号", "各部门：", "请按时移交电子档案"),
    ("关于加强保密管理的通知", "2024-04-01", "公开", "BGS", "示政办〔2024〕13号", "涉密文件不得上网", ""),
    ("财务报销制度", "2023-05-06", "公开", "CWK", "示财〔2023〕2号", "差旅费报销标准", ""),
    ("关于秘密档案移交的通知", "2024-05-01", "秘密", "BGS", "示政办〔2024〕14号", "秘密档案移交清单", ""),
]


def _pdf(title: str, pages: list[str]) -> bytes:
    import pikepdf

    out = pikepdf.new()
    for text in pages:
        if not text:
            continue
        one = pikepdf.open(io.BytesIO(make_pdf(title, [text])))
        out.pages.append(one.pages[0])
    buf = io.BytesIO()
    out.save(buf)
    return buf.getvalue()


@pytest.fixture(params=["sqlite-tantivy", "sqlite-fts5", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine_app(request, tmp_path):
    """Each test on the three engines: SQLite with the embedded tantivy index (the default), SQLite FTS5 alone,
    and PostgreSQL full text."""
    app = make_app(tmp_path / "data", request.getfixturevalue("pg_url") if request.param == "postgres" else None)
    if request.param == "sqlite-fts5":
        app.settings.search_engine = "sql"
    yield app
    app.close()


@pytest.fixture
def world(engine_app):
    app = engine_app
    sysop = Actor.system()
    ids = []
    for title, date, level, dept, number, p1, p2 in DOCS:
        meta = {**BASE, "title": title, "date": date, "year": int(date[:4]), "security_level": level,
                "doc_number": number}
        if level == "秘密":
            meta["secrecy_period"] = "10年"
        r = create_record(app, sysop, RecordInput("Z109", "WS", meta, department=dept, state="filed"),
                          [NewFile(f"{title}.pdf", io.BytesIO(_pdf(title, [p1, p2])))])
        ids.append(r["id"])
    app.indexer.flush()
    users = {"archivist": make_user(app, "zhuanzhi", ["archivist"], "秘密"),
             "reader": make_user(app, "reader", ["reader"], "内部"),
             "auditor": make_user(app, "aud", ["auditor"], "机密")}
    return app, ids, users


def titles(res: dict) -> list[str]:
    return [i["title"] for i in res["items"]]


def test_words_phrases_fields_and_exact_codes(world):
    app, ids, u = world
    a = u["archivist"]
    assert sorted(titles(search.search(app, a, "通知", audit=False))) == sorted(
        [DOCS[0][0], DOCS[1][0], DOCS[3][0]])
    assert titles(search.search(app, a, "档案 归档", audit=False)) == [DOCS[0][0]]
    assert titles(search.search(app, a, "题名:保密", audit=False)) == [DOCS[1][0]]
    assert sorted(titles(search.search(app, a, "报销 OR 保密", audit=False))) == sorted([DOCS[1][0], DOCS[2][0]])
    assert DOCS[1][0] not in titles(search.search(app, a, "通知 -保密", audit=False))
    # 文号 written with other brackets finds the record written with 〔〕; a 档号 is an exact lookup
    assert titles(search.search(app, a, "示政办[2024]13号", audit=False)) == [DOCS[1][0]]
    code = search.search(app, a, "保密", audit=False)["items"][0]["archival_code"]
    res = search.search(app, a, code, audit=False)
    assert res["exact"] == ids[1] and titles(res)[0] == DOCS[1][0]


def test_full_text_hit_names_the_page_and_marks_the_terms(world):
    app, ids, u = world
    res = search.search(app, u["archivist"], '"电子档案"', audit=False)
    assert titles(res) == [DOCS[0][0]]
    snip = res["items"][0]["snippet"]
    assert snip["page"] == 2 and "电子" in snip["html"] and "<mark>" in snip["html"]
    assert "<mark>" in search.search(app, u["archivist"], "归档", audit=False)["items"][0]["title_html"]


def test_trimming_totals_and_facets_do_not_show_hidden_records(world):
    app, ids, u = world
    arch = search.search(app, u["archivist"], "移交", audit=False)
    read = search.search(app, u["reader"], "移交", audit=False)
    assert arch["total"] == 2 and read["total"] == 1  # the 秘密 one exists only for the archivist
    assert DOCS[3][0] not in titles(read)
    assert sum(f["count"] for f in read["facets"]["security_level"]) == 1
    assert {f["value"] for f in read["facets"]["security_level"]} == {"公开"}
    # adding more hidden records moves nothing the reader sees
    for i in range(3):
        create_record(app, Actor.system(), RecordInput("Z109", "WS", {
            **BASE, "title": f"秘密移交计划{i}", "date": "2024-06-01", "year": 2024, "security_level": "机密",
            "secrecy_period": "10年"}, department="BGS", state="filed"))
    again = search.search(app, u["reader"], "移交", audit=False)
    assert again["total"] == read["total"] and again["facets"] == read["facets"]
    with pytest.raises(PermissionDenied):
        search.search(app, u["auditor"], "移交", audit=False)  # the 三员 do not read records


def test_filters_sort_and_keyset_pages(world):
    app, ids, u = world
    a = u["archivist"]
    assert titles(search.search(app, a, "通知", search.SearchFilter(department="CWK"), audit=False)) == []
    assert titles(search.search(app, a, "报销", search.SearchFilter(year=2023), audit=False)) == [DOCS[2][0]]
    assert search.search(app, a, "通知", search.SearchFilter(date_from="2024-04-01"), audit=False)["total"] == 2
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        page = search.search(app, a, "通知", sort="date", limit=1, cursor=cursor, audit=False)
        seen += titles(page)
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [DOCS[3][0], DOCS[1][0], DOCS[0][0]]  # newest first, each once
    rel = search.search(app, a, "通知", limit=2, audit=False)
    rest = search.search(app, a, "通知", limit=2, cursor=rel["next_cursor"], audit=False)
    assert len(set(titles(rel)) | set(titles(rest))) == 3
    with pytest.raises(ValidationFailed) as ei:
        search.search(app, a, "通知", cursor="not-a-cursor", audit=False)
    assert ei.value.code == "BAD_CURSOR"
    with pytest.raises(ValidationFailed):
        search.search(app, a, "通知", sort="random", audit=False)


@pytest.mark.parametrize("q", ['"', "(((", "*", "通知 AND", "NOT", "'; DROP TABLE records; --", "题名:", "a" * 10_000,
                               "通知\x00", "{title}: x", "NEAR(通知 档案)", "档案 ^ 通知", "''", "\\"])
def test_hostile_queries_answer_without_error_and_never_widen(world, q):
    app, ids, u = world
    res = search.search(app, u["reader"], q, audit=False)
    assert res["total"] <= 3 and all(i["security_level"] != "秘密" for i in res["items"])


def test_index_follows_changes_and_reindex_rebuilds_what_is_missing(world):
    app, ids, u = world
    a = u["archivist"]
    update_record(app, Actor.system(), ids[2], {"title": "差旅费管理办法"}, reason="更正题名")
    assert titles(search.search(app, a, "差旅费", audit=False)) == ["差旅费管理办法"]
    assert search.search(app, a, "题名:报销", audit=False)["total"] == 0  # the old title is gone (its PDF still says it)
    with app.sessions.begin() as s:  # the index lost (e.g. restored from an old backup): reindex rebuilds it
        s.execute(delete(SearchDoc))
        s.execute(delete(FileText).where(FileText.record_id == ids[0]))
    assert search.search(app, a, "通知", audit=False)["total"] == 0
    with pytest.raises(PermissionDenied):
        search.reindex(app, u["reader"])
    res = search.reindex(app, Actor.system())
    assert res["records_indexed"] >= 4 and res["files_extracted"] == 1
    assert search.search(app, a, '"电子档案"', audit=False)["total"] == 1
    again = search.reindex(app, Actor.system())  # nothing left to do: resumable, never doubled
    assert again["records_indexed"] == 0 and again["files_extracted"] == 0
    st = search.index_status(app, a)
    assert st["indexed"] == st["records"] and st["files_pending"] == 0
    with app.read_sessions() as s:
        assert s.scalar(select(func.count()).select_from(SearchDoc)) == st["records"]


def test_unreadable_file_is_recorded_not_skipped(any_app):
    app = any_app
    r = create_record(app, Actor.system(), RecordInput("Z109", "WS", {**BASE, "title": "加密的附件", "date": "2024-01-02",
                                                                      "year": 2024}, department="BGS"),
                      [NewFile("坏.pdf", io.BytesIO(b"%PDF-1.4\nnot really a pdf"))])
    app.indexer.flush()
    with app.read_sessions() as s:
        ft = s.scalar(select(FileText).where(FileText.record_id == r["id"]))
    assert ft is not None and ft.status == "unreadable" and ft.message
