"""Identification benchmark: identify_file (and identify_file + validate) on many small files of mixed types,
beside a baseline measured in the same run on the same files.

    .venv/bin/python bench/identify.py              # 5,000 files
    .venv/bin/python bench/identify.py --n 30       # the smoke test runs this
    .venv/bin/python bench/identify.py --check-targets

The files are generated first in a temporary folder (all different: PDF 1.4 with Chinese text, PNG, JPEG,
TIFF G4, GIF, UTF-8 and GB18030 text, XML, HTML, DOCX, XLSX, OFD, WAV, ZIP), so every phase reads the same
bytes from the page cache. Baseline: open + read of the first 64 KB of each file, the least any identifier
must do. Then identify_file over all files, then identify_file + validate. Each figure is printed with its
ratio to the baseline. Exit status: 0, or 3 with --check-targets when identification is under 1,000 files/s,
or 1 when a generated file was not identified as what it is.
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import struct
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

from dangan.demo.documents import make_pdf
from dangan.formats.identify import identify_file
from dangan.formats.validate import validate

TARGET_FILES_PER_S = 1000
TOPICS = ["档案归档", "安全生产", "政务公开", "财政预算", "防汛抗旱", "营商环境", "机关党建", "乡村振兴", "数字政府"]


def _image(kind: str, rnd: random.Random) -> bytes:
    from PIL import Image, ImageDraw

    w, h = rnd.randint(40, 160), rnd.randint(40, 160)
    im = Image.new("RGB", (w, h), (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    ImageDraw.Draw(im).rectangle((rnd.randrange(w // 2), rnd.randrange(h // 2), w - 5, h - 5), fill=(0, 0, 0))
    buf = io.BytesIO()
    if kind == "tif":
        im.convert("1").save(buf, "TIFF", compression="group4")
    elif kind == "gif":
        im.convert("P").save(buf, "GIF")
    else:
        im.save(buf, {"png": "PNG", "jpg": "JPEG"}[kind])
    return buf.getvalue()


def _zip(entries: dict[str, bytes | str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


CT = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
      '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
      '<Override PartName="/{part}" ContentType="application/vnd.openxmlformats-officedocument.{ct}.main+xml"/></Types>')
RELS = ('<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
        'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/officeDocument" Target="{part}"/></Relationships>')


def make_file(i: int, rnd: random.Random) -> tuple[str, bytes, str]:
    """(name, content, expected PUID or 'ofd')."""
    topic = rnd.choice(TOPICS)
    kind = i % 14
    if kind == 0:
        return f"{i}.pdf", make_pdf(f"关于{topic}的通知（{i}）", [f"第{i}号 {topic}" * 3]), "fmt/18"
    if kind in (1, 2, 3, 4):
        ext = ("png", "jpg", "tif", "gif")[kind - 1]
        return f"{i}.{ext}", _image(ext, rnd), {"png": "fmt/11", "jpg": "fmt/43", "tif": "fmt/353", "gif": "fmt/3"}[ext]
    if kind == 5:
        return f"{i}.txt", f"{topic}工作要点（{i}）\n".encode() * rnd.randint(2, 40), "x-fmt/111"
    if kind == 6:
        return f"{i}.txt", f"{topic}情况报告（{i}）\n".encode("gb18030") * rnd.randint(2, 40), "x-fmt/111"
    if kind == 7:
        return (f"{i}.xml", f'<?xml version="1.0" encoding="UTF-8"?><档案 编号="{i}"><题名>{topic}</题名></档案>'.encode(),
                "fmt/101")
    if kind == 8:
        return (f"{i}.html", f"<!DOCTYPE html><html lang=\"zh-CN\"><body><h1>{topic}{i}</h1></body></html>".encode(),
                "fmt/471")
    if kind == 9:
        part = "word/document.xml"
        return f"{i}.docx", _zip({"[Content_Types].xml": CT.format(part=part, ct="wordprocessingml.document"),
                                  "_rels/.rels": RELS.format(part=part),
                                  part: f'<w:document xmlns:w="w"><w:t>{topic}{i}</w:t></w:document>'}), "fmt/412"
    if kind == 10:
        part = "xl/workbook.xml"
        return f"{i}.xlsx", _zip({"[Content_Types].xml": CT.format(part=part, ct="spreadsheetml.sheet"),
                                  "_rels/.rels": RELS.format(part=part), part: f"<workbook n='{i}'/>"}), "fmt/214"
    if kind == 11:
        ns = 'xmlns:ofd="http://www.ofdspec.org/2016"'
        return f"{i}.ofd", _zip({
            "OFD.xml": f'<?xml version="1.0" encoding="UTF-8"?><ofd:OFD {ns} Version="1.0" DocType="OFD"><ofd:DocBody>'
                       f'<ofd:DocInfo><ofd:DocID>{i:032x}</ofd:DocID><ofd:Title>{topic}</ofd:Title></ofd:DocInfo>'
                       '<ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>',
            "Doc_0/Document.xml": f'<?xml version="1.0" encoding="UTF-8"?><ofd:Document {ns}><ofd:CommonData>'
                                  '<ofd:MaxUnitID>3</ofd:MaxUnitID><ofd:PageArea><ofd:PhysicalBox>0 0 210 297'
                                  '</ofd:PhysicalBox></ofd:PageArea></ofd:CommonData><ofd:Pages><ofd:Page ID="1" '
                                  'BaseLoc="Pages/Page_0/Content.xml"/></ofd:Pages></ofd:Document>',
            "Doc_0/Pages/Page_0/Content.xml": f'<?xml version="1.0" encoding="UTF-8"?><ofd:Page {ns}><ofd:Content>'
                                              '<ofd:Layer ID="2"/></ofd:Content></ofd:Page>'}), "ofd"
    if kind == 12:
        n = rnd.randint(200, 4000)
        pcm = bytes(rnd.randrange(256) for _ in range(n * 2))
        fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
        body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
        return f"{i}.wav", b"RIFF" + struct.pack("<I", len(body)) + body, "fmt/141"
    return f"{i}.zip", _zip({f"附件{i}.txt": f"{topic}\n" * 20}), "x-fmt/263"


def baseline(paths: list[str]) -> float:
    t = time.perf_counter()
    for p in paths:
        with open(p, "rb") as fh:
            fh.read(65536)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="number of files (default 5,000)")
    ap.add_argument("--data", type=Path, default=None, help="work folder (default: a temporary folder, removed)")
    ap.add_argument("--check-targets", action="store_true", help="exit 3 when identification < 1,000 files/s")
    args = ap.parse_args(argv)
    work = args.data or Path(tempfile.mkdtemp(prefix="dangan-identify-"))
    work.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(20240601)
    try:
        t0 = time.perf_counter()
        expected: dict[str, str] = {}
        total = 0
        for i in range(args.n):
            name, data, puid = make_file(i, rnd)
            p = work / name
            p.write_bytes(data)
            expected[str(p)] = puid
            total += len(data)
        paths = list(expected)
        print(f"generated {len(paths):,} files ({total / 1e6:.1f} MB, {Counter(Path(p).suffix for p in paths).most_common()})"
              f" in {time.perf_counter() - t0:.1f} s")
        for p in paths[:14]:  # one file of each kind: signatures and modules loaded, as in a long-running process
            validate(p, identify_file(p))
        base_s = baseline(paths)
        t = time.perf_counter()
        results = [identify_file(p) for p in paths]
        ident_s = time.perf_counter() - t
        t = time.perf_counter()
        statuses = Counter()
        for p in paths:
            statuses[validate(p, identify_file(p)).status] += 1
        both_s = time.perf_counter() - t
        base2_s = baseline(paths)
        base_rate = len(paths) / min(base_s, base2_s)
        ident_rate = len(paths) / ident_s
        both_rate = len(paths) / both_s
        print(f"baseline open+read 64 KB files/s: {base_rate:,.0f}")
        print(f"identify_file files/s: {ident_rate:,.0f} ({ident_rate / base_rate:.2f} × baseline)")
        print(f"identify_file+validate files/s: {both_rate:,.0f} ({both_rate / base_rate:.3f} × baseline)")
        print(f"validation outcomes: {dict(statuses)}")
        wrong = [(p, r.puid, r.basis) for p, r in zip(paths, results, strict=True)
                 if (r.basis != "ofd" if expected[p] == "ofd" else r.puid != expected[p])]
        if wrong:
            print(f"check FAIL: {len(wrong)} files identified wrongly, e.g. {wrong[:3]}")
            return 1
        bad = statuses.get("invalid", 0)
        if bad:
            print(f"check FAIL: {bad} generated files judged invalid")
            return 1
        print(f"check OK: every file identified as generated (target {TARGET_FILES_PER_S:,} files/s: "
              f"{'met' if ident_rate >= TARGET_FILES_PER_S else 'MISSED'})")
        if args.check_targets and ident_rate < TARGET_FILES_PER_S:
            return 3
        return 0
    finally:
        if args.data is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())



