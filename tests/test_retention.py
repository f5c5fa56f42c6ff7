import datetime as dt

import pytest

from dangan.domain.retention import parse_retention


@pytest.mark.parametrize("raw,code,label", [("Y", "Y", "永久"), ("永久", "Y", "永久"), ("D30", "D30", "定期30年"),
                                            ("d10", "D10", "定期10年"), ("定期10年", "D10", "定期10年"), ("D5", "D5", "定期5年")])
def test_parse(raw, code, label):
    p = parse_retention(raw)
    assert (p.code, p.label) == (code, label)


def test_expiry_counts_from_the_year_after_formation():
    assert parse_retention("D10").expiry_date(2014) == dt.date(2024, 12, 31)
    assert parse_retention("D30").expiry_date(2020) == dt.date(2050, 12, 31)
    assert parse_retention("Y").expiry_date(2020) is None


@pytest.mark.parametrize("raw", ["", "长期", "D0", "X30", "D", "30"])
def test_bad(raw):
    with pytest.raises(ValueError, match="保管期限|年数"):
        parse_retention(raw)
