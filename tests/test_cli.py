"""The command line: --json on queries, exit status 0 only on success, Chinese errors without tracebacks."""

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from dangan.cli import app as cli
from dangan.db.models import AuditEvent
from dangan.demo.documents import make_pdf

runner = CliRunner()


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    r = runner.invoke(cli, ["--data", str(d), "init", "--demo", "--demo-size", "40"])
    assert r.exit_code == 0, r.output
    return str(d)


def run(data, *args, user="dangan", **env):
    """As the demo 专职档案员 unless told otherwise (user=None: no login)."""
    login = ["--user", user] if user else []
    return runner.invoke(cli, ["--data", data, *login, *args], env={"DANGAN_PASSWORD": "Dangan@2026", **env})


def js(data, *args, user="dangan"):
    r = run(data, *args, "--json", user=user)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_init_demo_and_queries(data):
    assert js(data, "fonds", "list")[0]["code"] == "Z109"
    cats = {c["code"] for c in js(data, "category", "list", "--fonds", "Z109")}
    assert cats == {"WS", "KU", "KJ", "ZP", "LX"}
    page = js(data, "record", "list", "--fonds", "Z109", "--category", "WS", "--limit", "5")
    assert page["total"] == 40 and len(page["items"]) == 5 and page["next_cursor"]
    filed = [r for r in page["items"] if r["archival_code"]]
    shown = js(data, "record", "show", filed[0]["archival_code"])
    assert shown["files"] and shown["files"][0]["sm3"]
    assert js(data, "category", "show", "KU")["levels"] == ["volume", "item"]
    assert js(data, "storage", "info", user=None)["schema_revision"] == "0008"


def test_init_is_idempotent(data):
    r = run(data, "init", "--demo", user=None)
    assert r.exit_code == 0 and "已存在" in r.output


def test_create_file_and_export(data, tmp_path):
    src = tmp_path / "关于召开档案工作会议的通知.txt"
    src.write_text("会议通知正文", encoding="utf-8")
    r = js(data, "record", "create", "--fonds", "Z109", "--category", "WS", "--dept", "CWK", "--set", "title=关于召开档案工作会议的通知",
           "--set", "year=2024", "--set", "date=2024年4月1日", "--set", "retention_period=D10", "--set", "responsible=财务科",
           "--set", "keywords=会议", "--set", "keywords=档案", "--file", str(src))
    assert r["metadata"]["keywords"] == ["会议", "档案"] and r["state"] == "pre_filing"
    assert js(data, "record", "submit", str(r["id"]))["state"] == "pending"
    filed = js(data, "record", "file", str(r["id"]))
    assert filed["archival_code"].startswith("Z109-WS·2024-D10-CWK-")
    out = tmp_path / "导出.txt"
    e = run(data, "file", "get", str(r["files"][0]["id"]), "-o", str(out))
    assert e.exit_code == 0 and out.read_text(encoding="utf-8") == "会议通知正文"


def test_user_mistakes_exit_1_with_chinese_message(data, tmp_path):
    r = run(data, "record", "create", "--fonds", "Z109", "--category", "WS", "--set", "title=x", "--set", "year=abcd")
    assert r.exit_code == 1
    assert "年度" in r.output and "VALIDATION_FAILED" in r.output and "Traceback" not in r.output
    r = run(data, "record", "show", "999999")
    assert r.exit_code == 1 and "不存在" in r.output
    r = run(data, "record", "create", "--fonds", "Z109", "--category", "WS", "--set", "novalue")
    assert r.exit_code == 1 and "字段=值" in r.output
    r = runner.invoke(cli, ["--data", str(tmp_path / "nothing"), "record", "list"])
    assert r.exit_code == 1 and "dangan init" in r.output
    r = run(data, "record", "show", "999999", "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["error"]["code"] == "RECORD_NOT_FOUND"


def test_fixity_and_audit_verify_fail_loudly(data):
    assert run(data, "fixity", "check", user=None).exit_code == 0
    assert run(data, "audit", "verify", user="auditor").exit_code == 0
    rec = js(data, "record", "list", "--fonds", "Z109", "--category", "WS", "--state", "已归档", "--limit", "1")["items"][0]
    f = js(data, "record", "show", str(rec["id"]))["files"][0]
    p = os.path.join(data, "blobs", f["storage_key"])
    os.chmod(p, 0o644)
    with open(p, "ab") as fh:
        fh.write(b"tampered")
    r = run(data, "fixity", "check", "--json", user=None)
    assert r.exit_code == 1
    rep = json.loads(r.stdout)
    assert rep["findings"][0]["file_id"] == f["id"] and rep["findings"][0]["outcome"] == "altered"
    from dangan.services.context import Dangan

    a = Dangan.open(data)
    with a.engine.begin() as c:
        c.execute(update(AuditEvent).where(AuditEvent.seq == 5).values(action="record.view"))
    a.close()
    r = run(data, "audit", "verify", user="auditor")
    assert r.exit_code == 1 and "第 5 条" in r.output


def test_real_process_no_traceback(tmp_path):
    env = {**os.environ, "DANGAN_DATA": str(tmp_path / "d"), "DANGAN_USER": "x", "DANGAN_PASSWORD": "y"}
    p = subprocess.run([sys.executable, "-m", "dangan.cli", "record", "list"], capture_output=True, text=True, env=env)
    assert p.returncode == 1 and "Traceback" not in p.stderr and "dangan init" in p.stderr


def test_no_back_door(data):
    r = run(data, "record", "list", user=None)
    assert r.exit_code == 1 and "--user" in r.output
    r = run(data, "record", "list", user="dangan", DANGAN_PASSWORD="wrong")
    assert r.exit_code == 1 and "用户名或密码错误" in r.output
    # the 系统管理员 runs the system but reads no records; the 审计员 reads the trail, nobody else
    assert js(data, "record", "list", user="sysadmin")["total"] == 0
    assert run(data, "audit", "list", user="dangan").exit_code == 1
    assert run(data, "audit", "list", user="auditor").exit_code == 0


def test_reader_sees_fewer_records_than_archivist(data):
    total = {u: js(data, "record", "list", user=u)["total"] for u in ("dangan", "reader", "bgs")}
    assert total["dangan"] > total["reader"] and total["bgs"] < total["dangan"]


def test_identity_commands(data):
    r = run(data, "user", "create", "zhangsan", "张三", "--dept", "BGS", user="sysadmin", DANGAN_NEW_PASSWORD="Zhang#2026pw")
    assert r.exit_code == 0, r.output
    r = run(data, "role", "assign", "zhangsan", "sysadmin", "auditor", user="secadmin")
    assert r.exit_code == 1 and "三员分立" in r.output
    assert run(data, "role", "assign", "zhangsan", "archivist", user="secadmin").exit_code == 0
    assert run(data, "role", "clearance", "zhangsan", "秘密", user="secadmin").exit_code == 0
    assert run(data, "role", "assign", "zhangsan", "reader", user="sysadmin").exit_code == 1   # not the sysadmin's duty
    users = {u["username"]: u for u in js(data, "user", "list", user="sysadmin")}
    assert users["zhangsan"]["roles"] == ["archivist"] and users["zhangsan"]["clearance"] == "秘密"
    r = run(data, "record", "list", user="zhangsan", DANGAN_PASSWORD="Zhang#2026pw")
    assert r.exit_code == 0
    t = js(data, "token", "create", "OA 系统", "--for", "bgs", "--allow", "record.create", "--category", "WS", user="sysadmin")
    assert t["token"].startswith("dgn_")
    listed = js(data, "token", "list", user="sysadmin")
    assert "token" not in listed[0] and listed[0]["state"] == "active"
    assert run(data, "token", "revoke", str(t["id"]), user="sysadmin").exit_code == 0
    r = runner.invoke(cli, ["--data", data, "--token", t["token"], "record", "list"])
    assert r.exit_code == 1 and "令牌" in r.output
    assert js(data, "role", "matrix", user="secadmin")["three_admins"] == ["sysadmin", "secadmin", "auditor"]


def test_audit_checkpoint_roundtrip(data, tmp_path):
    r = run(data, "audit", "checkpoint", user="auditor")
    assert r.exit_code == 0 and r.stdout.startswith("dangan-audit-checkpoint seq=")
    f = tmp_path / "anchors.txt"
    f.write_text(r.stdout, encoding="utf-8")
    assert run(data, "audit", "verify", "--checkpoints", str(f), user="auditor").exit_code == 0
    bad = tmp_path / "empty.txt"
    bad.write_text("nothing here", encoding="utf-8")
    r = run(data, "audit", "verify", "--checkpoints", str(bad), user="auditor")
    assert r.exit_code == 1 and "BAD_CHECKPOINT_FILE" in r.output


def test_import_submit_accept_catalogue(data, tmp_path):
    import openpyxl

    cat = tmp_path / "目录.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["序号", "文号", "责任者", "题名", "日期", "年度", "保管期限", "密级", "页数", "文件名"])
    ws.append([1, "示政发〔2025〕1号", "办公室", "命令行导入的通知", "2025.3.5", 2025, "定期30年", "公开", 2, "a.pdf"])
    ws.append([2, "示政发〔2025〕2号", "办公室", "日期有误的通知", "2025.13.5", 2025, "D30", "公开", 2, "b.pdf"])
    wb.save(cat)
    files = tmp_path / "files"
    files.mkdir()
    (files / "a.pdf").write_bytes(make_pdf("命令行导入的通知", ["a"]))
    (files / "b.pdf").write_bytes(make_pdf("日期有误的通知", ["b"]))
    args = ["import", str(cat), "--files", str(files), "--fonds", "Z109", "--category", "WS", "--department", "BGS"]
    before = js(data, "record", "list", "--fonds", "Z109", "--category", "WS")["total"]
    r = run(data, *args, "--dry-run")
    assert r.exit_code == 1 and "校验 2 行" in r.output and (tmp_path / "目录-校验报告.xlsx").is_file()
    assert js(data, "record", "list", "--fonds", "Z109", "--category", "WS")["total"] == before
    r = run(data, *args, "--state", "pending", "--json")
    res = json.loads(r.stdout)
    assert r.exit_code == 1 and (res["created"], res["failed"]) == (1, 1)
    r = run(data, *args, "--state", "pending", "--json")  # a rerun stores nothing twice
    assert json.loads(r.stdout)["existing"] == 1
    mine = js(data, "record", "list", "--fonds", "Z109", "--category", "WS", "--query", "命令行导入")["items"][0]
    acc = js(data, "accept", str(mine["id"]))
    assert acc["refused"] == [] and acc["accepted"][0]["archival_code"].startswith("Z109-WS·2025-D30-BGS-")
    r = run(data, "catalogue", "--fonds", "Z109", "--category", "WS", "--year", "2025", "-o", str(tmp_path / "目录.pdf"))
    assert r.exit_code == 0 and (tmp_path / "目录.pdf").read_bytes()[:5] == b"%PDF-"
    r = run(data, "accept", "999999")
    assert r.exit_code == 1 and "RECORD_NOT_FOUND" in r.output
    r = run(data, "import", str(tmp_path / "没有.xlsx"))
    assert r.exit_code == 1 and "不存在" in r.output and "Traceback" not in r.output


def test_check_export_and_receive_a_package(data, tmp_path):
    """dangan check (records and a package), check-report --compare, package export | import."""
    ids = [r["id"] for r in js(data, "record", "list", "--fonds", "Z109", "--category", "WS", "--state", "filed",
                              "--limit", "2")["items"]]
    r = run(data, "check", "--record", str(ids[0]), "--stage", "长期保存", "--report", str(tmp_path / "r.pdf"))
    assert r.exit_code == 0, r.output
    assert "检测结论：通过" in r.output and (tmp_path / "r.pdf").read_bytes()[:5] == b"%PDF-"
    run_id = int(r.output.split("#", 1)[1].split()[0])
    # a BagIt export, checked as the receiving side would: the same 档号 are already here (YJ-1-8 fails)
    res = js(data, "package", "export", "--record", str(ids[0]), "--record", str(ids[1]), "--format", "bagit",
             "-o", str(tmp_path / "bag"))
    bag = tmp_path / "bag.zip"
    assert res["path"] == str(bag) and res["records"] == 2 and len(res["sm3"]) == 64
    r = run(data, "check", str(bag), "--stage", "移交", "--fonds", "Z109", "--category", "WS", "--sm3", res["sm3"])
    assert r.exit_code == 1 and "YJ-1-8" in r.output and "检测结论：不通过" in r.output
    out = json.loads(run(data, "check", str(bag), "--stage", "移交", "--sm3", "0" * 64, "--json").stdout)
    assert out["verdict"] == "不通过"
    assert any(i["code"] == "YJ-1-14" and i["outcome"] == "不通过" for i in out["items"])  # the announced digest
    # receiving it into this archive is refused whole (duplicate 档号), nothing stored
    before = js(data, "record", "list", "--limit", "1")["total"]
    r = run(data, "package", "import", str(bag), "--fonds", "Z109", "--category", "WS")
    assert r.exit_code == 1 and "PACKAGE_CHECK_FAILED" in r.output
    assert js(data, "record", "list", "--limit", "1")["total"] == before
    # a rerun of the first check can be compared with it; a lone run cannot
    r = run(data, "check", "--record", str(ids[0]), "--stage", "长期保存")
    again = int(r.output.split("#", 1)[1].split()[0])
    diff = js(data, "check-report", str(again), "--compare")
    assert diff["other_id"] == run_id and diff["changes"] == []
    r = run(data, "check-report", str(run_id), "--compare")
    assert r.exit_code == 1 and "NO_PREVIOUS_RUN" in r.output
    r = run(data, "check", "--stage", "不存在的环节", "--record", str(ids[0]))
    assert r.exit_code == 1 and "UNKNOWN_STAGE" in r.output and "Traceback" not in r.output
    r = run(data, "check", str(tmp_path / "missing.zip"))
    assert r.exit_code == 1 and "FILE_MISSING" in r.output


def test_search_and_reindex(data):
    res = js(data, "search", "通知", "--limit", "3")
    assert res["total"] > 3 and len(res["items"]) == 3 and res["next_cursor"]
    page2 = js(data, "search", "通知", "--limit", "3", "--cursor", res["next_cursor"])
    assert not {i["id"] for i in page2["items"]} & {i["id"] for i in res["items"]}
    r = run(data, "search", '"(((', "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["notices"]
    out = js(data, "reindex", user=None)
    assert out["records_indexed"] == 0  # the index followed every change of the demo build
    full = js(data, "reindex", "--full", user=None)
    assert full["records_indexed"] == 40 and full["files_extracted"] > 40
    r = run(data, "search", "通知", "--cursor", "garbage")
    assert r.exit_code == 1 and "BAD_CURSOR" in r.output
