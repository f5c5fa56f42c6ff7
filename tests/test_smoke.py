import io

from dangan.services.files import NewFile
from dangan.services.records import RecordInput, create_record


def test_create_and_file_on_both_engines(any_app, admin):
    meta = {"title": "关于做好2024年度档案归档工作的通知", "year": 2024, "retention_period": "Y", "responsible": "办公室",
            "date": "2024-03-05"}
    r = create_record(any_app, admin, RecordInput("Z109", "WS", meta, department="BGS", state="filed"),
                      [NewFile("正文.pdf", io.BytesIO(b"%PDF-1.4 test"))])
    assert r["archival_code"] == "Z109-WS·2024-Y-BGS-0001"
    assert r["files"][0]["sm3"] and r["files"][0]["sha256"]
