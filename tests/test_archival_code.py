"""档号 templates reproduce the standards' examples exactly, and refuse bad templates and values."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dangan.domain.archival_code import PRESETS, CodePart, CodeTemplate


def test_dat22_2015_example():
    t = PRESETS["DA/T 22-2015 文书"]["item"]
    v = {"fonds_code": "Z109", "category_code": "WS", "year": 2011, "retention_period": "Y", "department_code": "BGS"}
    assert t.format(v, 1) == "Z109-WS·2011-Y-BGS-0001"
    assert t.class_key(v) == "Z109-WS·2011-Y-BGS"


def test_dat13_2022_examples():
    ws = PRESETS["DA/T 13-2022 文书（机构名称）"]["item"]
    assert ws.format({"fonds_code": "Z109", "category_code": "WS", "year": 2011, "retention_period": "Y",
                      "department_name": "办公室"}, 1) == "Z109-WS·2011·Y·办公室-0001"
    ku = PRESETS["DA/T 13-2022 会计"]
    vol = ku["volume"].format({"fonds_code": "J019", "category_code": "KU", "class_code": "01", "year": 2017}, 1)
    assert ku["item"].format({"parent_code": vol}, 1) == "J019-KU·01·2017-001-001"
    kj = PRESETS["DA/T 13-2022 科技·基建"]
    proj = kj["project"].format({"fonds_code": "X032", "category_code": "KJ", "class_code": "JJ"}, 2)
    vol = kj["volume"].format({"parent_code": proj}, 5)
    assert kj["item"].format({"parent_code": vol}, 54) == "X032-KJ·JJ·02-005-054"
    zp = PRESETS["DA/T 13-2022 照片"]
    grp = zp["group"].format({"fonds_code": "K021", "category_code": "ZP", "year": 2019, "retention_period": "D30"}, 25)
    assert zp["item"].format({"parent_code": grp}, 5) == "K021-ZP·2019·D30-025-005"


def test_regex_matches_what_format_makes():
    t = PRESETS["DA/T 22-2015 文书"]["item"]
    assert t.regex().match("Z109-WS·2011-Y-BGS-0001")
    assert not t.regex().match("Z109-WS-2011-Y-BGS-0001")
    assert not t.regex().match("Z109-WS·2011-Y-BGS-001")


def test_missing_part_is_named():
    t = PRESETS["DA/T 22-2015 文书"]["item"]
    with pytest.raises(ValueError, match="机构"):
        t.format({"fonds_code": "Z109", "category_code": "WS", "year": 2011, "retention_period": "Y"}, 1)


def test_value_with_separator_refused():
    t = PRESETS["DA/T 22-2015 文书"]["item"]
    with pytest.raises(ValueError, match="分隔符"):
        t.format({"fonds_code": "Z109", "category_code": "WS", "year": 2011, "retention_period": "Y",
                  "department_code": "B-GS"}, 1)


def test_sequence_overflow_refused():
    t = PRESETS["DA/T 22-2015 文书"]["item"]
    v = {"fonds_code": "Z109", "category_code": "WS", "year": 2011, "retention_period": "Y", "department_code": "BGS"}
    with pytest.raises(ValueError, match="4 位"):
        t.format(v, 10000)


@pytest.mark.parametrize("parts,msg", [
    ([], "不能为空"),
    ([CodePart("fonds_code")], "最后一项"),
    ([CodePart("fonds_code"), CodePart("seq", "/", 4)], "分隔符"),
    ([CodePart("fonds_code"), CodePart("seq", "", 4)], "缺少分隔符"),
    ([CodePart("seq", "-", 4)], "第一项前"),
    ([CodePart("fonds_code"), CodePart("parent_code", "-"), CodePart("seq", "-")], "上级档号"),
])
def test_bad_templates(parts, msg):
    with pytest.raises(ValueError, match=msg):
        CodeTemplate(tuple(parts))


@given(st.integers(min_value=1, max_value=9999), st.integers(min_value=1900, max_value=2999))
def test_codes_sort_like_numbers_within_a_class(n, year):
    t = PRESETS["DA/T 22-2015 文书"]["item"]
    v = {"fonds_code": "Z109", "category_code": "WS", "year": year, "retention_period": "D30", "department_code": "BGS"}
    a, b = t.format(v, n), t.format(v, min(n + 1, 9999))
    assert (a <= b) and t.regex().match(a)
