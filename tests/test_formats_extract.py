"""Text extraction (dangan.formats.extract) on the real corpus and on hostile files."""

from __future__ import annotations

import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from conftest import (
    CORPUS,
    IN_CI,  # noqa: E402
)
from dangan.formats.extract import Extraction, extract_text, normalize, strip_doctype

pytestmark = pytest.mark.skipif(not CORPUS.is_dir() and not IN_CI, reason="the shared corpus is not available")  # under CI=true: must run

PDF = CORPUS / "pdf"
OFD = CORPUS / "ofd"
FMT = CORPUS / "formats"
TEXT = CORPUS / "text"


def ex(path: Path | str, **kw) -> Extraction:
    return extract_text(str(path), **kw)


def page(e: Extraction, n: int) -> str:
    found = [p.text for p in e.pages if p.page == n]
    assert found, f"no page {n} in {[p.page for p in e.pages]}"
    return found[0]


def flat(text: str) -> str:
    return text.replace("\n", "").replace(" ", "")


# -- PDF ------------------------------------------------------------------------------------------------------


def test_word_made_chinese_pdf_text_on_page_1():
    e = ex(PDF / "chinese-word-contract-simsun.pdf")
    assert e.status == "ok" and e.message == ""
    assert [p.page for p in e.pages] == [1]
    assert "甲方：中国饮料有限公司（盖章）" in page(e, 1)
    assert e.chars == len(page(e, 1))


def test_aspose_pdf_gives_its_latin_text():
    e = ex(PDF / "chinese-aspose-bad-tounicode.pdf")
    assert e.status == "ok"
    assert "ISSUE Date" in page(e, 1) and "2019-4-25" in page(e, 1)


def test_pages_keep_their_numbers(tmp_path):
    import pikepdf

    out = pikepdf.new()
    for src in ("chinese-word-contract-simsun.pdf", "ocr-sandwich-scanned-page.pdf", "pdfa-1b-verapdf-pass.pdf"):
        with pikepdf.open(PDF / src) as pdf:
            out.pages.append(pdf.pages[0])
    out.save(tmp_path / "three.pdf")
    e = ex(tmp_path / "three.pdf")
    assert e.status == "ok"
    assert [p.page for p in e.pages] == [1, 2, 3]
    assert "中国饮料有限公司" in page(e, 1)
    assert "LinnSequencer" in page(e, 2)
    assert page(e, 3) == "Hello World"


def test_ocr_sandwich_gives_its_text_layer():
    e = ex(PDF / "ocr-sandwich-scanned-page.pdf")
    assert e.status == "ok"
    assert "The LinnSequencer 32 Track MIDI Sequence Recorder" in page(e, 1)


def test_scanned_pdf_without_text_layer_needs_ocr(tmp_path):
    from PIL import Image

    with Image.open(CORPUS / "scans" / "paddleocr-exam-paper.jpg") as im:
        im.convert("RGB").save(tmp_path / "scan.pdf")
    e = ex(tmp_path / "scan.pdf")
    assert e.status == "empty" and e.pages == [] and e.chars == 0
    assert "OCR" in e.message and "扫描" in e.message


@pytest.mark.parametrize("name", ["encrypted-aes256-r6.pdf", "encrypted-userpw-user.pdf"])
def test_encrypted_pdf_is_unreadable(name):
    e = ex(PDF / name)
    assert e.status == "unreadable" and "加密" in e.message and e.pages == []


def test_owner_password_only_pdf_opens_and_page_2_is_page_2():
    e = ex(PDF / "signed-acrobat-sign-restricted.pdf")
    assert e.status == "ok"
    assert "Potato" in page(e, 1)
    assert "Final Audit Report" in page(e, 2)


def test_truncated_pdf_says_it_is_incomplete():
    e = ex(PDF / "truncated-chinese-word-contract.pdf")
    assert e.status == "unreadable" and "不完整" in e.message


def test_fuzzed_pdf_is_unreadable_with_a_reason():
    e = ex(PDF / "fuzz-malformed.pdf")
    assert e.status == "unreadable" and "损坏" in e.message


@pytest.mark.parametrize("name,expected,pages", [
    ("damaged-stream.pdf", "Potato", 1),
    ("content-stream-errors.pdf", "Potato", 4),
    ("jhove-one-byte-missing.pdf", "This is a test document.", 1),
    ("corrupted-zen-of-python.pdf", "Beautiful is better than ugly.", 1),
])
def test_damaged_pdfs_that_pdfium_recovers(name, expected, pages):
    e = ex(PDF / name)
    assert e.status == "ok"
    assert len(e.pages) == pages
    assert all(expected in p.text for p in e.pages)


def test_pdf_extraction_from_several_threads():
    path = PDF / "chinese-word-contract-simsun.pdf"
    results: list[str] = []

    def run():
        for _ in range(5):
            results.append(ex(path).text)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["甲方：中国饮料有限公司（盖章）"] * 20


# -- OFD ------------------------------------------------------------------------------------------------------

OFD_EXPECTED = {
    "ofdrw-helloworld.ofd": {1: ["你好呀，OFD Reader&Writer！"]},
    "ofdrw-chinese-dir-names.ofd": {1: ["你好呀，OFD Reader&Writer！"]},
    "ofdrw-digital-sign.ofd": {1: ["你好呀，OFD Reader&Writer！"]},
    "ofdrw-ses-v4-seal.ofd": {1: ["你好呀，OFD Reader&Writer！"]},
    "ofdrw-attachment.ofd": {1: ["这是一个带有附件的OFD文件"]},
    "ofdrw-integrity-protected.ofd": {1: ["拿来主义", "鲁迅", "闭关主义"], 2: ["“拿来主义”者是全不这样的"]},
    "wps-text-small.ofd": {1: ["打发打发打发打发打发哈哈打发"]},
    "iofd-seal-esl.ofd": {1: ["路卫发〔2011〕76号", "关于同意张阿三同志辞职的批复"], 2: ["2011年3月10日印发"]},
    "suwell-convertor-vector.ofd": {1: ["关于加快南货场铁路涵洞下穿建设的函", "根据我市2023年房地产用地供应计划"]},
    "surread-nonstandard-paths.ofd": {1: ["立案决定书", "中华人民共和国刑事诉讼法"], 2: ["（存根）", "案件名称"]},
    # e-invoices: the template's labels come out beside the page's values
    "einvoice-suwell-2024.ofd": {1: ["电子发票（增值税专用发票）", "发票号码：24112000000048542163",
                                     "名称：海南麒麟云服科技有限公司", "名称：北京互联三六五科技有限公司",
                                     "价税合计（大写） 肆仟肆佰肆拾玖圆整", "开票人：于俪"]},
    "einvoice-suwellformsdk-2020-signed.ofd": {1: ["浙江增值税电子普通发票", "江苏京利华新材料有限公司",
                                                   "91320115MA202UKD7X", "发票号码：83089647"]},
    "einvoice-nuonuo-signed.ofd": {1: ["浙江增值税电子普通发票", "发票代码：033002200211",
                                       "江苏中电创新环境科技有限公司", "（小写）¥11.20"]},
    "einvoice-huhuang-5pages-signed.ofd": {
        1: ["重庆增值税电子普通发票", "发票号码：12235358", "销售方名称：财天下科技有限公司", "壹万零陆佰圆整"],
        2: ["销售货物或者提供应税劳务、服务清单", "共 4 页 第 1 页", "1 *餐饮服务*餐费 100.00 6% 6.00"],
        5: ["共 4 页 第 4 页", "79 *餐饮服务*餐费"],
    },
}


@pytest.mark.parametrize("name", sorted(OFD_EXPECTED))
def test_ofd_text_by_page(name):
    e = ex(OFD / name)
    assert e.status == "ok", e.message
    for number, strings in OFD_EXPECTED[name].items():
        text = page(e, number)
        for s in strings:
            assert s in text, (number, s, text[:500])


def test_every_ofd_in_the_corpus_is_covered():
    assert sorted(p.name for p in OFD.glob("*.ofd")) == sorted([*OFD_EXPECTED, "wps-jpeg-case-mismatch.ofd"])


def test_ofd_page_count_follows_document_xml():
    assert [p.page for p in ex(OFD / "einvoice-huhuang-5pages-signed.ofd").pages] == [1, 2, 3, 4, 5]
    assert [p.page for p in ex(OFD / "iofd-seal-esl.ofd").pages] == [1, 2]


def test_ofd_of_images_only_needs_ocr():
    e = ex(OFD / "wps-jpeg-case-mismatch.ofd")
    assert e.status == "empty" and "OCR" in e.message


def _write_ofd(path: Path, content: str, doctype: str = "") -> None:
    ns = 'xmlns:ofd="http://www.ofdspec.org/2016"'
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("OFD.xml", f'<?xml version="1.0" encoding="UTF-8"?><ofd:OFD {ns} Version="1.0" DocType="OFD">'
                              "<ofd:DocBody><ofd:DocInfo><ofd:DocID>x</ofd:DocID></ofd:DocInfo>"
                              "<ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>")
        z.writestr("Doc_0/Document.xml", f'<ofd:Document {ns}><ofd:CommonData><ofd:MaxUnitID>9</ofd:MaxUnitID>'
                                         "</ofd:CommonData><ofd:Pages>"
                                         '<ofd:Page ID="1" BaseLoc="Pages/Page_0/Content.xml"/></ofd:Pages>'
                                         "</ofd:Document>")
        z.writestr("Doc_0/Pages/Page_0/Content.xml",
                   f'<?xml version="1.0"?>{doctype}<ofd:Page {ns}><ofd:Content><ofd:Layer ID="2">{content}'
                   "</ofd:Layer></ofd:Content></ofd:Page>")


def _text_object(x: float, y: float, text: str, oid: int) -> str:
    return (f'<ofd:TextObject ID="{oid}" Boundary="{x} {y} 100 10" Font="1" Size="5">'
            f'<ofd:TextCode X="0" Y="4">{text}</ofd:TextCode></ofd:TextObject>')


def test_ofd_reading_order_is_by_position(tmp_path):
    # written out of order: the second line first, the end of a line before its start
    content = (_text_object(10, 30, "第二行", 3) + _text_object(20, 10, "同志：", 2)
               + _text_object(10, 10, "张三", 1))
    _write_ofd(tmp_path / "order.ofd", content)
    e = ex(tmp_path / "order.ofd")
    assert e.status == "ok" and page(e, 1) == "张三同志：\n第二行"


def test_ofd_page_with_doctype_is_not_parsed(tmp_path):
    doctype = '<!DOCTYPE p [<!ENTITY x "EXPANDED">]>'
    _write_ofd(tmp_path / "dtd.ofd", _text_object(10, 10, "&x;", 1), doctype)
    e = ex(tmp_path / "dtd.ofd")
    assert e.status == "unreadable" and "EXPANDED" not in e.text


# -- office documents -----------------------------------------------------------------------------------------


def test_docx_with_tables():
    e = ex(FMT / "docx-with-tables.docx")
    assert e.status == "ok"
    text = page(e, 1)
    assert "Simple uniform table" in text
    assert "Header Col 1 Header Col 2" in text.split("\n")   # a table row is one line
    for word in ("Lorem ipsum", "A link example", "Nested Table", "g&t", "Table with merged cells"):
        assert word in text


def test_docx_named_doc_is_read_by_content():
    e = ex(FMT / "docx-misnamed-as.doc")
    assert e.status == "ok" and "All human beings are born free and equal" in e.text


def test_xlsx_one_page_per_sheet():
    e = ex(FMT / "xlsx-stanley-cups.xlsx")
    assert e.status == "ok"
    assert [p.page for p in e.pages] == [1, 2]
    assert page(e, 1).startswith("Stanley Cups\n")
    assert "Maple Leafs TOR 13" in page(e, 1).split("\n")
    assert page(e, 2).startswith("Stanley Cups Since 67\n")
    assert "Maple Leafs TOR 0" in page(e, 2).split("\n")


def test_odt():
    e = ex(FMT / "odt-simple.odt")
    assert e.status == "ok"
    for s in ("These are a few of my favorite things:", "Parrots", "Hockey", "This is my first thought."):
        assert s in page(e, 1)


def test_malformed_pptx():
    e = ex(FMT / "pptx-malformed.pptx")
    assert e.status == "ok"
    assert page(e, 1).split("\n")[:2] == ["Problem Date Placeholder", "Test Slide"]


def test_ooxml_samples_from_the_zip(tmp_path):
    with zipfile.ZipFile(FMT / "ooxml-samples-docx-xlsx-pptx.zip") as z:
        z.extractall(tmp_path)
    docx = ex(tmp_path / "sampledocx.docx")
    assert docx.status == "ok" and "Lorem ipsum dolor sit amet" in docx.text
    xlsx = ex(tmp_path / "samplexlsx.xlsx")
    assert xlsx.status == "ok" and "Lorem 111" in page(xlsx, 1).split("\n")
    assert [p.page for p in xlsx.pages] == [1]          # the two empty sheets give no page
    pptx = ex(tmp_path / "samplepptx.pptx")
    assert pptx.status == "ok" and [p.page for p in pptx.pages][:2] == [1, 2]
    assert "Nunc at risus vel erat tempus posuere." in page(pptx, 1)


def test_zip_archive_itself_is_not_extracted():
    e = ex(FMT / "ooxml-samples-docx-xlsx-pptx.zip")
    assert e.status == "unsupported" and "解包" in e.message


def test_password_protected_xlsx_is_unreadable():
    e = ex(FMT / "xlsx-password-protected.xlsx")
    assert e.status == "unreadable" and "加密" in e.message


def test_legacy_word_is_unsupported_with_advice():
    e = ex(FMT / "word97-club-report.doc")
    assert e.status == "unsupported" and "DOCX" in e.message


ODF_NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
          'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
          'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"')


def _write_odf(path: Path, mimetype: str, body: str) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", mimetype, compress_type=zipfile.ZIP_STORED)
        z.writestr("META-INF/manifest.xml", '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:'
                                            'xmlns:manifest:1.0" manifest:version="1.2"/>')
        z.writestr("content.xml", f'<office:document-content {ODF_NS} office:version="1.2"><office:body>{body}'
                                  "</office:body></office:document-content>", compress_type=zipfile.ZIP_DEFLATED)


def test_ods_one_page_per_sheet_and_odt_tables_are_not_pages(tmp_path):
    def sheet(name: str, cells: list[str]) -> str:
        row = "".join(f"<table:table-cell><text:p>{c}</text:p></table:table-cell>" for c in cells)
        return f'<table:table table:name="{name}"><table:table-row>{row}</table:table-row></table:table>'

    _write_odf(tmp_path / "a.ods", "application/vnd.oasis.opendocument.spreadsheet",
               "<office:spreadsheet>" + sheet("收文登记", ["文号", "标题"]) + sheet("空表", [])
               + sheet("发文登记", ["示政办发〔2024〕1号", "关于档案工作的通知"]) + "</office:spreadsheet>")
    e = ex(tmp_path / "a.ods")
    assert e.status == "ok"
    assert [(p.page, p.text) for p in e.pages] == [(1, "收文登记\n文号 标题"),
                                                   (3, "发文登记\n示政办发〔2024〕1号 关于档案工作的通知")]
    _write_odf(tmp_path / "a.odt", "application/vnd.oasis.opendocument.text",
               "<office:text><text:h>标题</text:h>" + sheet("表1", ["甲", "乙"])
               + "<text:p>正文<text:s/>第二段</text:p></office:text>")
    e = ex(tmp_path / "a.odt")
    assert [(p.page, p.text) for p in e.pages] == [(1, "标题\n甲 乙\n正文 第二段")]


def test_odp_one_page_per_slide(tmp_path):
    _write_odf(tmp_path / "a.odp", "application/vnd.oasis.opendocument.presentation",
               "<office:presentation><draw:page><draw:frame><draw:text-box><text:p>第一张</text:p>"
               "</draw:text-box></draw:frame></draw:page><draw:page><draw:frame><draw:text-box>"
               "<text:p>第二张</text:p></draw:text-box></draw:frame></draw:page></office:presentation>")
    e = ex(tmp_path / "a.odp")
    assert [(p.page, p.text) for p in e.pages] == [(1, "第一张"), (2, "第二张")]


def _docx(path: Path, document: bytes | None = None, *, bomb: int = 0) -> None:
    ct = ('<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
          '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
          'wordprocessingml.document.main+xml"/></Types>')
    rels = ('<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'officeDocument" Target="word/document.xml"/></Relationships>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", ct)
        z.writestr("_rels/.rels", rels)
        if bomb:
            with z.open("word/document.xml", "w", force_zip64=True) as fh:
                fh.write(b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
                         b"<w:body><w:p><w:r><w:t>")
                chunk = b" " * (1 << 20)
                for _ in range(bomb):
                    fh.write(chunk)
                fh.write(b"</w:t></w:r></w:p></w:body></w:document>")
        else:
            z.writestr("word/document.xml", document or b"")


W = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def test_zip_bomb_disguised_as_docx_is_refused_in_bounded_memory(tmp_path):
    _docx(tmp_path / "bomb.docx", bomb=100)   # 100 MB of spaces, about 100 KB compressed
    assert (tmp_path / "bomb.docx").stat().st_size < 1024 * 1024
    tracemalloc.start()
    t = time.monotonic()
    e = ex(tmp_path / "bomb.docx")
    elapsed = time.monotonic() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert e.status == "unreadable" and "ZIP 炸弹" in e.message
    assert peak < 32 * 1024 * 1024 and elapsed < 5


def test_large_docx_is_streamed_and_truncated(tmp_path):
    para = "<w:p><w:r><w:t>第{}段：电子文件归档与电子档案管理。</w:t></w:r></w:p>"
    body = "".join(para.format(i) for i in range(60_000))
    _docx(tmp_path / "big.docx", f'<w:document {W.decode()}><w:body>{body}</w:body></w:document>'.encode())
    e = ex(tmp_path / "big.docx", max_chars=50_000)
    assert e.status == "ok" and e.truncated and e.chars == 50_000
    assert page(e, 1).startswith("第0段：电子文件归档与电子档案管理。\n第1段")


def test_docx_part_with_doctype_is_refused(tmp_path):
    doc = (b'<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY x "EXPANDED">]><w:document ' + W
           + b"><w:body><w:p><w:r><w:t>&x;</w:t></w:r></w:p></w:body></w:document>")
    _docx(tmp_path / "dtd.docx", doc)
    e = ex(tmp_path / "dtd.docx")
    assert e.status == "unreadable" and "DOCTYPE" in e.message and "EXPANDED" not in e.text


def test_cut_short_docx_is_unreadable(tmp_path):
    data = (FMT / "docx-with-tables.docx").read_bytes()
    (tmp_path / "cut.docx").write_bytes(data[: len(data) // 2])
    e = ex(tmp_path / "cut.docx", name="cut.docx")
    assert e.status in ("unreadable", "unsupported") and e.message


# -- text, XML, HTML, e-mail ----------------------------------------------------------------------------------


def test_big5_text_decodes_to_readable_chinese():
    e = ex(TEXT / "big5-encoded-classical-chinese.txt")
    assert e.status == "ok" and e.encoding == "big5"
    assert "維基大典（Wikipedia）者，網路為礎" in page(e, 1)


def test_gb18030_text_decodes_like_its_utf8_original(tmp_path):
    src = TEXT / "archives-law-2020.md"
    (tmp_path / "law.txt").write_bytes(src.read_text("utf-8").encode("gb18030"))
    e = ex(tmp_path / "law.txt")
    assert e.status == "ok" and e.encoding == "gb18030"
    assert "中华人民共和国档案法" in e.text
    assert e.text == ex(src).text


def test_markdown_law_text():
    e = ex(TEXT / "archives-law-2020.md")
    assert e.status == "ok" and e.encoding == "utf-8"
    assert "第一条 为了加强档案管理" in e.text


def test_truncated_at_max_chars():
    e = ex(TEXT / "archives-law-2020.md", max_chars=100)
    assert e.status == "ok" and e.truncated and e.chars == 100 == len(e.text)
    assert e.message


def test_max_pages():
    e = ex(OFD / "einvoice-huhuang-5pages-signed.ofd", max_pages=2)
    assert [p.page for p in e.pages] == [1, 2] and e.truncated


def test_normalisation(tmp_path):
    (tmp_path / "t.txt").write_bytes("　　第一条\t档案\x7f工作\r\n\r\n\x85\r第二条  \u200b实行\u3000统一领导\n".encode())
    e = ex(tmp_path / "t.txt")
    assert page(e, 1) == "第一条 档案工作\n第二条 实行 统一领导"
    assert normalize("a\x00\ud800b\ufffe\x0cc\x07") == "ab\nc"


def test_zero_byte_file_is_empty():
    e = ex(FMT / "zero-byte-with-pdf-extension.pdf")
    assert e.status == "empty" and e.pages == [] and "0 字节" in e.message


@pytest.mark.parametrize("name", ["scans/paddleocr-exam-paper.jpg", "formats/tiff-g4-valid-jhove.tif",
                                  "formats/heic-page-photo.heic", "formats/wav-valid-pcm.wav",
                                  "formats/mp4-xray-video.mp4"])
def test_images_audio_video_are_unsupported(name):
    e = ex(CORPUS / name)
    assert e.status == "unsupported" and e.message and e.pages == []


def test_image_message_mentions_ocr():
    assert "OCR" in ex(CORPUS / "scans" / "paddleocr-exam-paper.jpg").message


def test_xml_entities_are_not_expanded(tmp_path):
    xml = ('<?xml version="1.0"?>\n<!DOCTYPE r [\n <!ENTITY a "EXPANDED">\n <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">\n'
           ' <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">\n <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">\n'
           ' <!ENTITY xxe SYSTEM "file:///etc/passwd">\n <!ENTITY q "a]>b">\n]>\n'
           "<r><题名>关于&d;档案&xxe;工作的通知</题名><责任者>示范市人民政府办公室</责任者></r>")
    (tmp_path / "e.xml").write_text(xml, "utf-8")
    t = time.monotonic()
    e = ex(tmp_path / "e.xml")
    assert time.monotonic() - t < 2
    assert e.status == "ok"
    assert "EXPANDED" not in e.text and "root:" not in e.text
    assert "关于" in e.text and "工作的通知" in e.text and "示范市人民政府办公室" in e.text
    assert "DOCTYPE" in e.message


def test_strip_doctype():
    assert strip_doctype('<!DOCTYPE r SYSTEM "x>y" [<!ENTITY q "]>"><!-- ]> -->]><r/>') == ("<r/>", True)
    assert strip_doctype("<r/>") == ("<r/>", False)


def test_xml_gb18030_declared_and_eep_example(tmp_path):
    (tmp_path / "g.xml").write_bytes('<?xml version="1.0" encoding="GB2312"?><r><a>档案</a><b>归档</b></r>'
                                     .encode("gb18030"))
    e = ex(tmp_path / "g.xml")
    assert e.status == "ok" and e.text == "档案\n归档" and e.encoding == "gb18030"
    eep = ex(CORPUS / "schemas" / "dat48-eep-example-no-namespace.xml")
    assert eep.status == "ok" and "基于XML的电子文件封装规范" in eep.text


def test_xml_embedded_base64_is_skipped(tmp_path):
    blob = "QUJD" * 500
    (tmp_path / "b.xml").write_text(f"<r><题名>会议纪要</题名><编码数据>{blob}</编码数据></r>", "utf-8")
    assert ex(tmp_path / "b.xml").text == "会议纪要"


def test_html_tags_scripts_and_charset(tmp_path):
    html = ('<!DOCTYPE html><html><head><meta charset="gb2312"><title>通知</title><style>p{color:red}</style>'
            "<script>var x = '不应出现';</script></head><body><h1>关于开展档案检查的通知</h1>"
            "<p>各科室：\n请于本月底前完成<b>归档</b>。</p><table><tr><td>科室</td><td>办公室</td></tr></table>"
            "<!-- 注释 --></body></html>")
    (tmp_path / "n.html").write_bytes(html.encode("gb18030"))
    e = ex(tmp_path / "n.html")
    assert e.status == "ok"
    assert page(e, 1) == "通知\n关于开展档案检查的通知\n各科室： 请于本月底前完成归档。\n科室 办公室"


def test_eml():
    e = ex(FMT / "email-with-attachment.eml")
    assert e.status == "ok"
    assert "主题：Fake email with attachment" in e.text and "Here's the attachments!" in e.text
    assert "附件：fake-attachment.txt" in e.text


def test_missing_file_is_unreadable(tmp_path):
    e = ex(tmp_path / "nothing.pdf")
    assert e.status == "unreadable" and "无法读取" in e.message


# -- every corpus file ----------------------------------------------------------------------------------------

ALL = sorted(p for p in CORPUS.rglob("*") if p.is_file()) if CORPUS.is_dir() else []


@pytest.mark.parametrize("path", ALL, ids=[str(p.relative_to(CORPUS)) for p in ALL])
def test_never_raises_on_the_corpus(path):
    e = extract_text(str(path))
    assert e.status in ("ok", "empty", "unreadable", "unsupported")
    assert e.chars == sum(len(p.text) for p in e.pages)
    assert (e.status == "ok") == bool(e.pages)
    if e.status != "ok":
        assert e.message
    pages = [p.page for p in e.pages]
    assert pages == sorted(set(pages)) and all(n >= 1 for n in pages)
    for p in e.pages:
        assert p.text and p.text == normalize(p.text)


def test_time_limit():
    e = ex(OFD / "einvoice-huhuang-5pages-signed.ofd", max_seconds=0)
    assert e.status == "unreadable" and "超时" in e.message and e.truncated


def test_xlsx_with_doctype_is_refused(tmp_path):
    src = FMT / "xlsx-stanley-cups.xlsx"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp_path / "dtd.xlsx", "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "xl/sharedStrings.xml":
                data = data.replace(b"?>", b'?><!DOCTYPE sst [<!ENTITY x "EXPANDED">]>', 1).replace(
                    b"<t>Blues</t>", b"<t>&x;</t>")
            zout.writestr(info, data)
    e = ex(tmp_path / "dtd.xlsx")
    assert e.status == "unreadable" and "DOCTYPE" in e.message
