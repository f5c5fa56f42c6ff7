"""Batch import of an Excel 归档文件目录 with a folder or ZIP of files: dry run, real import, resume, bad input."""

import zipfile
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from dangan.db.models import File, Record
from dangan.errors import PermissionDenied, ValidationFailed
from dangan.services.imports import ImportSpec, run_import
from test_identity import make_user

HEAD = ["序号", "档号", "文号", "责任者", "题名", "日期", "密级", "页数", "备注", "年度", "保管期限", "文件名"]


def rows(n=3, start=1):
    out = []
    for i in range(start, start + n):
        out.append([i, None, f"示政办发〔2024〕{i}号", "示范市人民政府办公室", f"关于第{i}项工作的通知",
                    ["2024.3.5", "2024年3月6日", "20240307"][i % 3], "公开", 2, None, 2024, "D30", f"通知{i}.pdf"])
    return out


def catalogue(path: Path, data, head=HEAD, title=True, merge=None):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "归档文件目录"
    if title:
        ws.append(["归档文件目录"])
    ws.append(head)
    for r in data:
        ws.append(r)
    if merge:
        ws.merge_cells(merge)
    wb.save(path)
    return path


def folder(tmp: Path, names, content=b"%PDF-1.4\n"):
    d = tmp / "files"
    d.mkdir(exist_ok=True)
    for n in names:
        (d / n).write_bytes(content + n.encode())
    return d


class GbkName(zipfile.ZipInfo):
    """An entry name written as Windows Chinese zip tools write it: GBK bytes, no UTF-8 flag."""

    def _encodeFilenameFlags(self):
        return self.filename.encode("gbk"), self.flag_bits


def counts(app):
    with app.read_sessions() as s:
        return s.scalar(select(func.count()).select_from(Record)), s.scalar(select(func.count()).select_from(File))


def spec(cat, files, **kw):
    return ImportSpec("Z109", "WS", cat, files, department=kw.pop("department", "BGS"), **kw)


def test_dry_run_reports_every_problem_and_stores_nothing(app, admin, tmp_path):
    data = rows(4)
    data[1][5] = "2024.13.5"          # bad date
    data[2][11] = "不存在.pdf"          # missing file
    data[3][4] = None                 # no title
    cat = catalogue(tmp_path / "目录.xlsx", data)
    files = folder(tmp_path, ["通知1.pdf", "通知2.pdf", "通知4.pdf", "多余.pdf"])
    report = tmp_path / "report.xlsx"
    res = run_import(app, admin, spec(cat, files), dry_run=True, report=report)
    assert (res.rows, res.passed, res.failed) == (4, 1, 3)
    assert res.unlinked_files == 1 and res.unlinked_examples == ["多余.pdf"]
    assert counts(app) == (0, 0)
    wb = openpyxl.load_workbook(report)
    ws = wb["校验结果"]
    got = [[c.value for c in r] for r in ws.iter_rows(min_row=2)]
    assert got[0][-1] == "通过"
    assert "2024.13.5" in got[1][-1] and "不存在.pdf" in got[2][-1] and "题名" in got[3][-1]
    assert ws.cell(1, ws.max_column).value == "校验结果"


def test_import_links_files_assigns_nothing_twice_and_resumes(app, admin, tmp_path):
    cat = catalogue(tmp_path / "目录.xlsx", rows(5))
    files = folder(tmp_path, [f"通知{i}.pdf" for i in range(1, 6)])
    res = run_import(app, admin, spec(cat, files))
    assert (res.created, res.failed, res.files) == (5, 0, 5)
    assert counts(app) == (5, 5)
    again = run_import(app, admin, spec(cat, files))  # a rerun (e.g. after a crash) stores nothing twice
    assert (again.created, again.existing) == (0, 5)
    assert counts(app) == (5, 5)
    with app.read_sessions() as s:
        rec = s.scalar(select(Record).where(Record.title == "关于第2项工作的通知"))
        assert rec.date.isoformat() == "2024-03-07" and rec.state == "pre_filing" and rec.department.code == "BGS"
        assert [f.name for f in rec.files] == ["通知2.pdf"]


def test_import_as_filed_assigns_codes_in_catalogue_order(app, admin, tmp_path):
    cat = catalogue(tmp_path / "目录.xlsx", rows(3))
    files = folder(tmp_path, [f"通知{i}.pdf" for i in range(1, 4)])
    run_import(app, admin, spec(cat, files, state="filed"))
    with app.read_sessions() as s:
        got = s.execute(select(Record.title, Record.archival_code).order_by(Record.archival_code)).all()
    assert [c for _, c in got] == [f"Z109-WS·2024-D30-BGS-000{i}" for i in (1, 2, 3)]
    assert [t for t, _ in got] == [f"关于第{i}项工作的通知" for i in (1, 2, 3)]


def test_zip_with_gbk_names_and_link_by_archival_code(app, admin, tmp_path):
    data = rows(2)
    for r in data:
        r[11] = None
    data[0][1], data[1][1] = "OLD-0001", "OLD-0002"
    cat = catalogue(tmp_path / "目录.xlsx", data)
    z = tmp_path / "files.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name in ("OLD-0001.pdf", "OLD-0002/正文.pdf", "OLD-0002/附件一.pdf"):
            zf.writestr(GbkName(name), b"%PDF-1.4\n" + name.encode())
    res = run_import(app, admin, spec(cat, z))
    assert (res.created, res.failed, res.files) == (2, 0, 3)
    with app.read_sessions() as s:
        rec = s.scalar(select(Record).where(Record.title == "关于第2项工作的通知"))
        assert sorted(f.name for f in rec.files) == ["正文.pdf", "附件一.pdf"]


def test_merged_cells_fill_the_rows_they_cover(app, admin, tmp_path):
    data = rows(3)
    data[1][3] = data[2][3] = None
    cat = catalogue(tmp_path / "目录.xlsx", data, merge="D3:D5")  # 责任者 merged over the three rows
    files = folder(tmp_path, [f"通知{i}.pdf" for i in range(1, 4)])
    res = run_import(app, admin, spec(cat, files))
    assert res.created == 3
    with app.read_sessions() as s:
        assert set(s.scalars(select(Record.responsible))) == {"示范市人民政府办公室"}


def test_bad_workbooks_are_refused_before_anything(app, admin, tmp_path):
    files = folder(tmp_path, ["通知1.pdf"])
    enc = tmp_path / "加密.xlsx"
    enc.write_bytes(bytes.fromhex("D0CF11E0A1B11AE1") + b"\0" * 600)
    with pytest.raises(ValidationFailed) as ei:
        run_import(app, admin, spec(enc, files), dry_run=True)
    assert ei.value.code == "XLSX_ENCRYPTED"
    bad = tmp_path / "坏.xlsx"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ValidationFailed) as ei:
        run_import(app, admin, spec(bad, files))
    assert ei.value.code == "XLSX_MALFORMED"
    nohead = catalogue(tmp_path / "无表头.xlsx", [[1, 2, 3]], head=["甲", "乙", "丙"])
    with pytest.raises(ValidationFailed) as ei:
        run_import(app, admin, spec(nohead, files))
    assert ei.value.code == "CATALOGUE_NO_HEADER"
    assert counts(app) == (0, 0)


def test_zip_slip_refuses_the_whole_package(app, admin, tmp_path):
    cat = catalogue(tmp_path / "目录.xlsx", rows(1))
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("通知1.pdf", b"%PDF-1.4\n")
        zf.writestr("../../etc/cron.d/x", b"boom")
    with pytest.raises(ValidationFailed) as ei:
        run_import(app, admin, spec(cat, z))
    assert ei.value.code == "ZIP_UNSAFE_PATH"
    assert counts(app) == (0, 0)


def test_clerk_imports_only_into_own_department(app, tmp_path):
    clerk = make_user(app, "bgsclerk", ["clerk"], depts=["BGS"])
    reader = make_user(app, "reader", ["reader"])
    cat = catalogue(tmp_path / "目录.xlsx", rows(2))
    files = folder(tmp_path, ["通知1.pdf", "通知2.pdf"])
    with pytest.raises(PermissionDenied):
        run_import(app, reader, spec(cat, files))
    res = run_import(app, clerk, spec(cat, files, department="CWK"))
    assert res.created == 0 and res.failed == 2
    res = run_import(app, clerk, spec(cat, files))
    assert res.created == 2


def test_over_long_title_is_a_row_problem(app, admin, tmp_path):
    data = rows(2)
    data[0][4] = "长" * 600
    cat = catalogue(tmp_path / "目录.xlsx", data)
    files = folder(tmp_path, ["通知1.pdf", "通知2.pdf"])
    res = run_import(app, admin, spec(cat, files))
    assert (res.created, res.failed) == (1, 1)
    assert "题名" in res.failures[0]["problems"][0]


def test_many_files_read_from_one_zip_by_concurrent_writers(app, admin, tmp_path):
    """The blob writers read several entries of the same ZIP at once: every file arrives intact."""
    import hashlib
    import os as _os

    n = 120
    data = rows(n)
    cat = catalogue(tmp_path / "目录.xlsx", data)
    z = tmp_path / "files.zip"
    sums = {}
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(1, n + 1):
            body = b"%PDF-1.4\n" + _os.urandom(40_000)
            sums[f"通知{i}.pdf"] = hashlib.sha256(body).hexdigest()
            zf.writestr(f"通知{i}.pdf", body)
    res = run_import(app, admin, spec(cat, z))
    assert (res.created, res.failed) == (n, 0), res.failures[:3]
    with app.read_sessions() as s:
        assert {f.name: f.sha256 for f in s.scalars(select(File))} == sums


def test_progress_counts_add_up_while_running(app, admin, tmp_path):
    n = 60
    data = rows(n)
    for r in data[::7]:
        r[5] = "2024.13.1"  # some rows refused before ingest
    cat = catalogue(tmp_path / "目录.xlsx", data)
    files = folder(tmp_path, [f"通知{i}.pdf" for i in range(1, n + 1)])
    seen = []
    res = run_import(app, admin, spec(cat, files), batch_size=10, progress=seen.append)
    assert len(seen) > 3
    for v in seen:
        assert v["created"] + v["existing"] + v["failed"] == v["processed"] <= v["total"] == n, v
    assert seen[-1]["processed"] == n and seen[-1]["failed"] == res.failed == len(data[::7])


def test_an_import_job_is_checked_as_one_batch(app, admin, tmp_path):
    """`dangan check --batch JOB`: the records of one import, and only those, are checked (归档 stage)."""
    from dangan.demo.documents import make_pdf
    from dangan.services import checks, jobs

    cat = catalogue(tmp_path / "目录.xlsx", rows(3))
    d = tmp_path / "files"
    d.mkdir()
    for i in range(1, 4):
        (d / f"通知{i}.pdf").write_bytes(make_pdf(f"关于第{i}项工作的通知", ["正文"]))
    (tmp_path / "x").mkdir()
    others = folder(tmp_path / "x", ["通知10.pdf", "通知11.pdf"])
    other = run_import(app, admin, spec(catalogue(tmp_path / "另一批.xlsx", rows(2, start=10)), others))
    assert other.created == 2  # another batch: not part of the check below
    jid = jobs.create_job(app, admin, "import", {})
    view = jobs.run(app, jid, lambda p: run_import(app, admin, spec(cat, d)).as_dict())
    assert view["status"] == "done" and view["result"]["created"] == 3
    run = checks.run_records(app, admin, stage="归档", job_id=jid)
    assert run["summary"]["records"] == 3 and run["target_kind"] == "batch" and f"批次 {jid}" in run["target_label"]
    assert run["verdict"] == "通过", [(i["code"], i["evidence"][:1]) for i in run["items"] if i["outcome"] == "不通过"]
    with pytest.raises(Exception) as ei:
        checks.run_records(app, admin, stage="归档", job_id="nosuchjob")
    assert getattr(ei.value, "code", "") == "BATCH_NOT_FOUND"
