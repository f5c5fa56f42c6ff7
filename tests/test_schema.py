"""Metadata validation: every problem reported with a stable code, the field and a Chinese message."""

import pytest

from dangan.domain.presets import CATEGORY_PRESETS, category_preset
from dangan.domain.schema import FieldSpec, MetadataSchema, parse_date

WS = MetadataSchema.from_dict(category_preset("WS")["schemas"]["item"])
GOOD = {"title": "关于做好档案工作的通知", "year": 2024, "retention_period": "D30", "responsible": "办公室", "date": "2024-03-05"}


def codes(meta):
    _, p = WS.validate(meta)
    return {(x.field, x.code) for x in p.items}


def test_good_and_normalised():
    out, p = WS.validate({**GOOD, "date": "2024年3月5日", "retention_period": "定期30年", "year": "2024"})
    assert not p
    assert out["date"] == "2024-03-05" and out["retention_period"] == "D30" and out["year"] == 2024
    assert out["security_level"] == "公开"  # default


@pytest.mark.parametrize("raw", ["2024-03-05", "20240305", "2024.3.5", "2024/3/5", "2024年3月5日"])
def test_date_forms(raw):
    assert parse_date(raw).isoformat() == "2024-03-05"


def test_every_problem_at_once():
    got = codes({"title": "x" * 501, "year": "二〇二四", "date": "2024-02-30", "retention_period": "D30",
                 "responsible": "办公室", "security_level": "普通", "bogus": 1})
    assert got == {("title", "TOO_LONG"), ("year", "WRONG_TYPE"), ("date", "WRONG_TYPE"),
                   ("security_level", "NOT_IN_DOMAIN"), ("bogus", "UNKNOWN_FIELD")}


def test_missing_mandatory_fields():
    assert codes({}) >= {("title", "REQUIRED"), ("year", "REQUIRED"), ("retention_period", "REQUIRED"),
                         ("responsible", "REQUIRED"), ("date", "REQUIRED")}


def test_year_contradicting_date():
    assert codes({**GOOD, "year": 2023}) == {("year", "YEAR_DATE_MISMATCH")}


def test_conditional_secrecy_period():
    assert codes({**GOOD, "security_level": "机密"}) == {("secrecy_period", "REQUIRED")}
    assert codes({**GOOD, "security_level": "机密", "secrecy_period": "20年"}) == set()
    assert codes({**GOOD, "security_level": "机密", "secrecy_period": "很久"}) == {("secrecy_period", "PATTERN_MISMATCH")}


def test_wrong_types_and_control_characters():
    assert codes({**GOOD, "pages": "十"}) == {("pages", "WRONG_TYPE")}
    assert codes({**GOOD, "pages": True}) == {("pages", "WRONG_TYPE")}
    assert codes({**GOOD, "title": {"a": 1}}) == {("title", "WRONG_TYPE")}
    assert codes({**GOOD, "title": "abc\x00def"}) == {("title", "INVALID_CHARACTERS")}


def test_repeatable_and_not():
    assert codes({**GOOD, "keywords": ["档案", "归档"]}) == set()
    assert codes({**GOOD, "title": ["a", "b"]}) == {("title", "NOT_REPEATABLE")}


def test_messages_are_chinese_and_name_the_field():
    _, p = WS.validate({**GOOD, "title": "x" * 600})
    assert p.items[0].label == "题名" and "超过上限 500" in p.items[0].message


@pytest.mark.parametrize("code", list(CATEGORY_PRESETS))
def test_presets_are_valid(code):
    for schema in category_preset(code)["schemas"].values():
        MetadataSchema.from_dict(schema)


@pytest.mark.parametrize("bad", [
    {"code": "Title", "label": "题名"}, {"code": "t", "label": "t", "type": "blob"},
    {"code": "t", "label": "t", "obligation": "must"}, {"code": "t", "label": "t", "type": "enum"},
    {"code": "t", "label": "t", "obligation": "conditional"}, {"code": "t", "label": "t", "pattern": "("},
])
def test_bad_field_definitions(bad):
    with pytest.raises(ValueError):
        FieldSpec.from_dict(bad)
