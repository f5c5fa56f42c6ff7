"""Segmentation for full-text search: normal forms, whole codes, and what the engines' tokenizers make of it."""

from __future__ import annotations

import sqlite3
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import pytest
import rjieba
from hypothesis import given, settings
from hypothesis import strategies as st

from dangan.search.segment import (
    _NON_WORD,
    MAX_TOKEN_CHARS,
    SEGMENTATION_VERSION,
    analyse,
    code_key,
    index_text,
    normalize,
    normalize_archival_code,
    normalize_doc_number,
    segment,
)

CORPUS_TEXT = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "text"

PIECES = ["档案", "归档", "国办发", "〔", "〕", "[", "]", "(", ")", "（", "）", "2024", "12", "号", "第", "Z109", "-",
          "·", "WS", "Y", "BGS", "0001", "中华人民共和国", "，", " ", "\n", "\x00", "ＡＢＣ", "１２", "é", "İ", "ß",
          "\u200b", "\ud800", "𠀀", "〇", "ǅ", "Ⅳ"]
TEXTS = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(PIECES), max_size=20).map("".join),
)


def test_sentence_is_cut_like_jieba_search_mode() -> None:
    assert segment("关于做好2024年度档案归档工作的通知") == [
        "关于", "做好", "2024", "年度", "档案", "归档", "工作", "的", "通知"]


def test_punctuation_and_space_dropped_full_width_folded_lower_case_numbers_kept() -> None:
    toks = segment("ＡＢＣ１２３，电子档案！  Word 3.5%\u3000“引号”")
    assert toks[:3] == ["abc123", "电子", "档案"]
    assert "word" in toks and "3" in toks and "5" in toks and "引号" in toks
    assert all(t.isalnum() for t in toks)
    assert index_text("档案，归档。") == "档案 归档"


def test_compound_words_are_tiled_by_their_sub_words_and_kept_whole_as_extras() -> None:
    a = analyse("中华人民共和国档案法")
    assert a.main == ("中华", "人民", "共和国", "档案法")
    assert set(a.extra) == {"中华人民共和国", "华人", "共和", "档案"}


def test_main_and_extra_are_exactly_cut_for_search() -> None:
    lines = ["中华人民共和国档案法实施条例", "关于印发电子文件归档与电子档案管理规范的通知"]
    if CORPUS_TEXT.is_dir():
        for f in sorted(CORPUS_TEXT.glob("*.md")):
            lines += f.read_text(encoding="utf-8").splitlines()[:200]
    for line in lines:
        a = analyse(line)
        ref = [w for w in rjieba.cut_for_search(_NON_WORD.sub(" ", normalize(line))) if w.isalnum()]
        assert Counter(a.main + a.extra) == Counter(ref), line


def test_archival_code_whole_and_parts() -> None:
    toks = segment("见档号Z109-WS·2024-Y-BGS-0001。")
    for part in ("z109", "ws", "2024", "y", "bgs", "0001"):
        assert part in toks
    assert "z109ws2024ybgs0001" in toks
    # dash and dot variants are the same code
    assert "z109ws2024ybgs0001" in segment("Z109－WS・2024—Y-BGS-0001")
    assert normalize_archival_code("z109-ws・2024-y-bgs-0001") == "Z109-WS·2024-Y-BGS-0001"
    assert code_key("Z109-WS·2024-Y-BGS-0001") == "z109ws2024ybgs0001"
    # a date or a two-part code is not a 档号
    assert normalize_archival_code("2024-06-01") is None
    assert normalize_archival_code("COVID-19") is None
    assert not analyse("2024-06-01").codes


@pytest.mark.parametrize("written", [
    "国办发〔2024〕12号", "国办发[2024]12号", "国办发(2024)12号", "国办发（2024）12号", "国办发【2024】12号",
    "国办发［2024］第12号", "国办发 〔2024〕 012 号", "国办发〔2024〕12",
])
def test_doc_number_bracket_variants_share_normal_form_and_whole_token(written: str) -> None:
    assert normalize_doc_number(written) == "国办发〔2024〕12号"
    toks = segment(written)
    assert "国办发202412号" in toks
    assert {"国办发", "2024"} <= set(toks)
    assert ("号" in toks) == ("号" in written)
    assert "12" in toks  # 012 is also written as 12


def test_doc_number_in_running_text_gets_a_token_per_possible_issuer_code() -> None:
    codes = analyse("根据国办发〔2024〕12号文件").codes
    assert "国办发202412号" in codes and "根据国办发202412号" in codes and "办发202412号" in codes
    # the query for the code alone needs a subset of the document's tokens
    assert set(analyse("国办发[2024]12号").codes) <= set(codes)
    assert normalize_doc_number("国办发") is None and normalize_doc_number("〔2024〕12号") is None


def test_version_constant_names_the_installed_rjieba() -> None:
    assert SEGMENTATION_VERSION.endswith("rjieba-" + version("rjieba"))


@given(TEXTS)
@settings(max_examples=300, deadline=None)
def test_tokens_are_alphanumeric_normalised_and_bounded(text: str) -> None:
    toks = segment(text)
    for t in toks:
        assert t.isalnum() and len(t) <= MAX_TOKEN_CHARS
        assert normalize(t) == t
    assert normalize(normalize(text)) == normalize(text)
    assert segment(text) == toks  # deterministic


_DB = sqlite3.connect(":memory:")
_DB.execute("CREATE VIRTUAL TABLE t USING fts5(c, tokenize='ascii')")
_DB.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")


@given(TEXTS)
@settings(max_examples=300, deadline=None)
def test_fts5_ascii_tokenizer_sees_exactly_our_tokens(text: str) -> None:
    with _DB:
        _DB.execute("DELETE FROM t")
        _DB.execute("INSERT INTO t(rowid, c) VALUES (1, ?)", (index_text(text),))
        got = [r[0] for r in _DB.execute("SELECT term FROM v ORDER BY offset")]
    assert got == segment(text)
