"""The search-box query language: AST, repairs and notices, and the compiled expressions run on real engines."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import IN_CI, PG_ADMIN_URL
from dangan.search.query import (
    DEFAULT_TS_WEIGHTS,
    FIELD_CODES,
    MAX_QUERY_CHARS,
    MAX_TERMS,
    And,
    ExactCode,
    Not,
    Or,
    Query,
    Term,
    highlight_terms,
    parse,
    to_fts5,
    to_tsquery,
)
from dangan.search.segment import index_text

RECORDS: dict[int, dict[str, str]] = {
    1: {"title": "关于做好2024年度档案归档工作的通知", "doc_number": "国办发〔2024〕12号", "responsible": "国务院办公厅",
        "archival_code": "Z109-WS·2024-Y-BGS-0001", "keywords": "档案 归档",
        "content": "根据国办发[2023]5号文件精神，各单位应当做好电子档案管理工作。"},
    2: {"title": "中华人民共和国档案法实施条例", "doc_number": "国令〔2024〕772号", "responsible": "国务院",
        "archival_code": "Z109-WS·2024-Y-BGS-0002", "keywords": "档案法",
        "content": "为了实施《中华人民共和国档案法》，制定本条例。"},
    3: {"title": "关于印发电子文件归档与电子档案管理规范的通知", "doc_number": "档发〔2023〕3号",
        "responsible": "国家档案局", "archival_code": "Z109-WS·2023-D30-BGS-0003", "keywords": "电子文件",
        "content": "草稿：请各单位研究执行。"},
    4: {"title": "关于2024年财务预算的报告", "doc_number": "财办〔2024〕1号", "responsible": "财务科",
        "archival_code": "Z109-WS·2024-D10-CWK-0001", "keywords": "预算",
        "content": "人民币资金安排，共和国财政。"},
}

# query → ids found (the same on FTS5 and PostgreSQL)
HITS: list[tuple[str, set[int]]] = [
    ("档案 归档", {1, 3}),
    ('"档案归档"', {1}),
    ("“档案归档”", {1}),
    ("题名:通知", {1, 3}),
    ("题名：通知 -草稿", {1}),
    ("通知 NOT 草稿", {1}),
    ("通知 OR 报告", {1, 3, 4}),
    ("通知 或 报告", {1, 3, 4}),
    ("(通知 OR 报告) 2024", {1, 4}),
    ("（通知 OR 报告） -(财务 OR 草稿)", {1}),
    ("国办发[2024]12号", {1}),
    ("国办发〔2023〕5号", {1}),
    ("国办发(2023)第5号", {1}),
    ("全文:国办发", {1}),
    ("文号:国办发", {1}),
    ("文号:档发", {3}),
    ("12号", {1}),
    ("Z109-WS·2024-Y-BGS-0002", {2}),
    ("z109－ws・2024-y-bgs-0002", {2}),
    ("BGS", {1, 2, 3}),
    ("档号:CWK", {4}),
    ("0001", {1, 4}),
    ("人民共和国", {2, 4}),  # AND of 人民 and 共和国: record 4 has 人民币 and 共和国
    ('"人民共和国"', {2}),  # the phrase needs them together: 中华人民共和国 only
    ("责任者:国务院", {1, 2}),
    ("主题词:预算", {4}),
    ('题名:"档案法" 全文:条例', {2}),
    ("ＡＮＤ 档案法", {2}),
]


def _fts5_db() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE VIRTUAL TABLE docs USING fts5({', '.join(FIELD_CODES)}, tokenize='ascii')")
    for rid, rec in RECORDS.items():
        db.execute(f"INSERT INTO docs(rowid, {', '.join(FIELD_CODES)}) VALUES (?{', ?' * len(FIELD_CODES)})",
                   (rid, *(index_text(rec[f]) for f in FIELD_CODES)))
    return db


FTS = _fts5_db()


def fts5_hits(q: str | Query) -> set[int]:
    query = parse(q) if isinstance(q, str) else q
    return {r[0] for r in FTS.execute("SELECT rowid FROM docs WHERE docs MATCH ?", (to_fts5(query),))}


# ---- the AST ---------------------------------------------------------------------------------------

def test_words_are_and_of_segments_and_phrases_keep_order() -> None:
    q = parse("档案管理 归档")
    assert q.root == And((Term("档案管理", ("档案", "管理"), False, None, ("档案", "管理")),
                          Term("归档", ("归档",), False, None, ("归档",))))
    p = parse('"电子档案管理"')
    assert isinstance(p.root, Term) and p.root.phrase and p.root.segments == ("电子", "档案", "管理")


def test_or_not_parentheses_and_fields() -> None:
    q = parse("题名:(通知 或 通报) NOT 全文:草稿")
    assert isinstance(q.root, And)
    ors, neg = q.root.children
    assert isinstance(ors, Or) and all(isinstance(t, Term) and t.field == "title" for t in ors.children)
    assert isinstance(neg, Not) and isinstance(neg.child, Term) and neg.child.field == "content"
    assert parse("title:通知").root == parse("题名:通知").root
    assert q.notices == ()


@pytest.mark.parametrize(("text", "field", "value"), [
    ("国办发[2024]12号", "doc_number", "国办发〔2024〕12号"),
    ("  文号：国办发（2024）第012号 ", "doc_number", "国办发〔2024〕12号"),
    ('"国办发〔2024〕12号"', "doc_number", "国办发〔2024〕12号"),
    ("Z109-WS·2024-Y-BGS-0001", "archival_code", "Z109-WS·2024-Y-BGS-0001"),
    ("档号:z109-ws・2024-y-bgs-0001", "archival_code", "Z109-WS·2024-Y-BGS-0001"),
])
def test_whole_code_query_is_an_exact_lookup_with_a_full_text_fallback(text: str, field: str, value: str) -> None:
    q = parse(text)
    assert q.exact is not None and q.exact.field == field and q.exact.value == value
    assert not q.empty and q.root is not None  # the service may fall back to full text
    assert fts5_hits(q) == {1}


@pytest.mark.parametrize("text", ["国办发[2024]12号 通知", "题名:国办发[2024]12号", "2024-06-01", "国办发", "文号:Z109-WS·2024-Y-BGS-0001"])
def test_not_an_exact_lookup(text: str) -> None:
    assert parse(text).exact is None


def test_empty_queries() -> None:
    for text in ["", "   ", "\x00", "***", "()", '""', "OR", "NOT", "-", "题名:"]:
        q = parse(text)
        assert q.empty, text
        with pytest.raises(ValueError):
            to_fts5(q)
        with pytest.raises(ValueError):
            to_tsquery(q)
    assert parse("").notices == ()
    assert "不含可检索的文字" in parse("***").notices[0]


def test_repairs_are_explained_in_chinese() -> None:
    assert fts5_hits("(通知 OR 报告") == {1, 3, 4}
    assert any("括号不成对" in n for n in parse("(通知 OR 报告").notices)
    assert any("右括号" in n for n in parse("通知) 报告").notices)
    q = parse('"档案归档')
    assert q.root is not None and q.root.phrase and any("引号不成对" in n for n in q.notices)  # type: ignore[union-attr]
    assert any("OR" in n for n in parse("OR 通知 OR OR").notices)
    assert parse("OR 通知 OR OR").root == parse("通知").root
    q = parse("-草稿")
    assert q.empty and any("排除条件" in n for n in q.notices)
    assert parse("通知 OR -草稿").root == parse("通知").root
    assert any("NOT" in n for n in parse("通知 NOT").notices)


def test_length_and_term_limits() -> None:
    q = parse("档案" * 10_000)
    assert any(str(MAX_QUERY_CHARS) in n for n in q.notices)
    assert len(q.text) == MAX_QUERY_CHARS
    words = [f"词{i}" for i in range(MAX_TERMS + 8)]
    q = parse(" ".join(words))
    assert isinstance(q.root, And) and len(q.root.children) == MAX_TERMS
    assert any("最多 32 个" in n and "词32" in n for n in q.notices)
    to_fts5(q)


def test_highlight_terms() -> None:
    assert highlight_terms(parse("档案管理 -草稿 OR 通知")) == ["档案", "管理", "通知"]
    terms = highlight_terms(parse("国办发[2024]12号"))
    assert terms[0] in ("国办发〔2024〕12号", "国办发[2024]12号") and "国办发〔2024〕12号" in terms
    assert highlight_terms(parse('"中华人民共和国"')) == ["共和国", "中华", "人民"]


# ---- FTS5 ------------------------------------------------------------------------------------------

def test_fts5_expression_quotes_every_term_and_uses_column_filters() -> None:
    assert to_fts5(parse('题名:"档案归档" -草稿')) == '({title} : ("档案" + "归档") NOT "草稿")'
    assert to_fts5(parse("通知 OR 报告"), columns={"title": "t_title"}) == '("通知" OR "报告")'
    assert to_fts5(parse("题名:通知"), columns={"title": "t_title"}) == '{t_title} : "通知"'
    with pytest.raises(ValueError):
        to_fts5(parse("题名:通知"), columns={"title": "x) OR (y"})


@pytest.mark.parametrize(("text", "ids"), HITS)
def test_fts5_hits(text: str, ids: set[int]) -> None:
    assert fts5_hits(text) == ids


def test_fts5_field_filter_is_exact_per_column() -> None:
    assert fts5_hits("题名:国办发") == set()  # 国办发 is in doc_number and content, not in the title
    assert fts5_hits("文号:CWK") == set()  # CWK is in archival_code only


QUERY_PIECES = ["档案", "归档", "通知", "国办发", "[2024]", "〔2024〕", "(2024)", "12号", "Z109-WS·2024-Y-BGS-0001",
                "OR", "或", "NOT", "AND", "-", "--", "(", ")", "（", "）", '"', "“", "”", "'", "题名:", "文号：", "全文:",
                "title:", ":", "*", "^", "{", "}", "[", "]", "&", "|", "!", "<", ">", "~", "<->", ";", "--", "/*",
                "\\", "\x00", "NEAR(", "a:*", " ", "  ", "ＯＲ", "drop table", "'; --", "%", "_", "中华人民共和国"]
QUERIES = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(QUERY_PIECES), max_size=25).map(" ".join),
    st.lists(st.sampled_from(QUERY_PIECES), max_size=25).map("".join),
)


@given(QUERIES)
@settings(max_examples=500, deadline=None)
def test_any_text_parses_and_fts5_accepts_the_expression(text: str) -> None:
    q = parse(text)
    assert isinstance(q, Query)
    assert all(isinstance(n, str) and n for n in q.notices)
    if q.empty:
        return
    expr = to_fts5(q)
    FTS.execute("SELECT rowid FROM docs WHERE docs MATCH ?", (expr,)).fetchall()  # must not raise
    highlight_terms(q)


# ---- tsquery ---------------------------------------------------------------------------------------

_TS_GRAMMAR = re.compile(r"(?:\s|[&|!()]|<->|'[0-9A-Za-z\w]*'(?::[ABCD]+)?)*")


def _ts_is_ours(ts: str) -> bool:
    """Only our operators outside quotes, only letters and digits inside them."""
    return bool(_TS_GRAMMAR.fullmatch(ts)) and all(s.isalnum() for s in re.findall(r"'([^']*)'", ts))


def test_tsquery_expression() -> None:
    assert to_tsquery(parse('题名:"档案归档" -草稿')) == "(('档案':A <-> '归档':A) & !'草稿')"
    assert to_tsquery(parse("通知 OR 报告 全文:x")) == "('通知' | ('报告' & 'x':D))"
    assert to_tsquery(parse("题名:通知"), weights={"title": "AB"}) == "'通知':AB"
    with pytest.raises(ValueError):
        to_tsquery(parse("题名:通知"), weights={"title": "A' | 'x"})


@given(QUERIES)
@settings(max_examples=500, deadline=None)
def test_tsquery_has_no_operator_from_user_text(text: str) -> None:
    q = parse(text)
    if not q.empty:
        ts = to_tsquery(q)
        assert _ts_is_ours(ts), ts


# ---- PostgreSQL ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    import psycopg

    dsn = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true but {dsn} is unreachable")
        pytest.skip("PostgreSQL not reachable (runs under CI=true)")
    weight = DEFAULT_TS_WEIGHTS
    vector = " || ".join(f"setweight(to_tsvector('simple', %s), '{weight[f]}')" for f in FIELD_CODES)
    conn.execute("CREATE TEMP TABLE search_docs (id int PRIMARY KEY, tsv tsvector NOT NULL)")
    for rid, rec in RECORDS.items():
        conn.execute(f"INSERT INTO search_docs VALUES (%s, {vector})", (rid, *(index_text(rec[f]) for f in FIELD_CODES)))
    yield conn
    conn.close()


def pg_hits(pg: Any, text: str) -> set[int]:
    rows = pg.execute("SELECT id FROM search_docs WHERE tsv @@ to_tsquery('simple', %s)", (to_tsquery(parse(text)),))
    return {r[0] for r in rows}


@pytest.mark.postgres
@pytest.mark.parametrize(("text", "ids"), HITS)
def test_postgres_hits_match_fts5(pg: Any, text: str, ids: set[int]) -> None:
    assert pg_hits(pg, text) == ids


@pytest.mark.postgres
def test_postgres_lexemes_are_our_tokens(pg: Any) -> None:
    for rec in RECORDS.values():
        for value in rec.values():
            seg = index_text(value)
            lexemes = pg.execute("SELECT array_agg(lexeme ORDER BY lexeme) FROM unnest(to_tsvector('simple', %s))",
                                 (seg,)).fetchone()[0] or []
            assert lexemes == sorted(set(seg.split())), value


@pytest.mark.postgres
def test_postgres_shared_weights_are_a_known_difference(pg: Any) -> None:
    # 文号 and 档号 share weight B, so 文号:CWK also finds the 档号 (FTS5 does not: see the test above)
    assert pg_hits(pg, "文号:CWK") == {4}
    assert pg_hits(pg, "题名:国办发") == set()


@pytest.mark.postgres
@given(text=QUERIES)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_postgres_accepts_every_compiled_tsquery(pg: Any, text: str) -> None:
    q = parse(text)
    if q.empty:
        return
    ts = to_tsquery(q)
    pg.execute("SELECT count(*) FROM search_docs WHERE tsv @@ to_tsquery('simple', %s)", (ts,)).fetchone()


def test_exact_code_type() -> None:
    q = parse("国办发[2024]12号")
    assert q.exact == ExactCode("doc_number", "国办发〔2024〕12号", "国办发202412号")
