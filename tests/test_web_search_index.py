"""检索索引 page: how complete the index is, the files whose text could not be read (listed, never skipped), and a
reindex started from the page whose progress the page follows; only for those who may reindex."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from conftest import CORPUS, IN_CI
from dangan.services.context import Actor, Dangan
from dangan.services.files import NewFile
from dangan.services.records import RecordInput, create_record
from test_web_capture import client, form, users, web  # noqa: F401,F811 - fixtures

ENCRYPTED = CORPUS / "pdf" / "encrypted-userpw-user.pdf"


def _record_with(app: Dangan, title: str, name: str, data: bytes) -> int:
    meta = {"title": title, "date": "2024-03-05", "year": 2024, "retention_period": "D30", "responsible": "办公室"}
    return create_record(app, Actor.system(), RecordInput("Z109", "WS", meta, department="BGS", state="filed"),
                         [NewFile(name, io.BytesIO(data))])["id"]


def test_index_page_lists_unreadable_files_and_runs_a_reindex(
        web: Any, app: Dangan, users: dict[str, Any]) -> None:  # noqa: F811
    if not ENCRYPTED.exists():
        if IN_CI:
            pytest.fail(f"corpus file missing under CI=true: {ENCRYPTED}")
        pytest.skip("corpus not present")
    rid = _record_with(app, "加密的会议纪要", "加密.pdf", ENCRYPTED.read_bytes())
    _record_with(app, "截断的请示", "截断.pdf", b"%PDF-1.7\n1 0 obj\n<<")
    app.indexer.flush()
    head = users["head"]
    r = head.get("/search/index")
    assert r.status_code == 200 and "检索索引" in r.text
    assert "加密的会议纪要" in r.text and "截断的请示" in r.text and "无法读取" in r.text
    assert f'href="/records/{rid}"' in r.text
    # a reindex from the page: a job whose page shows the outcome
    r = head.post("/search/index/reindex", data=form(head))
    assert r.status_code == 303
    m = re.fullmatch(r"/search/index/jobs/([0-9a-f]+)", r.headers["location"])
    assert m
    web.state.jobs.capture.join(60)
    page = head.get(r.headers["location"])
    assert page.status_code == 200 and "已提取" in page.text and "更新索引" in page.text
    assert head.get("/api/v1/jobs/" + m.group(1)).json()["status"] == "done"
    # a reader may not come in at all
    reader = users["reader"]
    assert reader.get("/search/index").status_code in (303, 403)
    assert reader.post("/search/index/reindex", data=form(reader)).status_code in (303, 403)


def test_index_page_for_the_system_administrator_shows_counts_not_records(web: Any, app: Dangan) -> None:  # noqa: F811
    from test_api import add_user

    add_user(app, "ops", ["sysadmin"], "公开")
    _record_with(app, "截断的请示", "截断.pdf", b"%PDF-1.7\n1 0 obj\n<<")
    app.indexer.flush()
    ops = client(web, app, "ops")
    r = ops.get("/search/index")
    assert r.status_code == 200
    assert "截断的请示" not in r.text          # 三员 never see record content
    assert re.search(r"无法读取</span><span class=\"stat-value bad-num\">1<", r.text)
