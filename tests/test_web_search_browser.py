"""检索 page in Debian's chromium: results as you type, a facet filter, the page of a full-text hit, trimming."""

from __future__ import annotations

import re

import pytest

import test_web_browser as wb

served, server, browser, as_user, shot = wb.served, wb.server, wb.browser, wb.as_user, wb.shot
pytestmark = pytest.mark.browser


def test_search_as_you_type_with_facets_and_page_of_hit(as_user, served) -> None:  # type: ignore[no-untyped-def]
    served[1].indexer.flush()
    pg = as_user("dangan")
    pg.goto("/search")
    assert pg.locator("h1").inner_text() == "检索"
    pg.fill("#search-q", "安全生产")  # no submit: the results come after a short pause
    pg.wait_for_selector("#search-total")
    total = int(re.sub(r"\D", "", pg.locator("#search-total b").inner_text()))
    assert total > 0 and "q=" in pg.url
    first = pg.locator(".hit").first
    assert "安全生产" in first.locator("mark").first.inner_text()
    assert re.search(r"第 \d+ 页", first.locator(".hit-page").inner_text())
    shot(pg, "search-01-results")
    # a facet narrows the hits; the total is the facet's count
    link = pg.locator(".search-facets .facet").filter(has_text="年度").locator("a").first
    want = int(link.locator("xpath=following-sibling::span").inner_text().replace(",", ""))
    link.click()
    pg.wait_for_load_state()
    assert int(re.sub(r"\D", "", pg.locator("#search-total b").inner_text())) == want
    shot(pg, "search-02-facet")
    # hostile input answers calmly
    pg.fill("#search-q", '"((( 档案 OR')
    pg.wait_for_selector(".alert.warn")
    assert pg.locator("#search-results").count() == 1


def test_reader_never_sees_hidden_records_in_search(as_user, served) -> None:  # type: ignore[no-untyped-def]
    served[1].indexer.flush()
    head, reader = as_user("head"), as_user("reader")
    for pg in (head, reader):
        pg.goto("/search?q=" + "通知")
    t_head = int(re.sub(r"\D", "", head.locator("#search-total b").inner_text()))
    t_reader = int(re.sub(r"\D", "", reader.locator("#search-total b").inner_text()))
    assert t_reader <= t_head
    levels = reader.locator(".search-facets .facet").filter(has_text="密级").inner_text()
    assert "秘密" not in levels and "机密" not in levels


def test_index_page_reindex_with_live_status(as_user, served) -> None:  # type: ignore[no-untyped-def]
    served[1].indexer.flush()
    pg = as_user("dangan")
    pg.goto("/search/index")
    assert pg.locator("h1").inner_text() == "检索索引"
    assert "当前检索引擎" in pg.locator(".lead").inner_text()
    shot(pg, "search-03-index")
    pg.click("#run-reindex")
    pg.wait_for_selector("#capture-job .alert.ok", timeout=60_000)  # the page follows the job to its end
    assert "更新索引" in pg.locator("#capture-job h2").inner_text()
    shot(pg, "search-04-reindexed")
