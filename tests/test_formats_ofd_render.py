"""OFD page rendering (formats/ofd_render.py): every page of the real files from seven producers
(../shared/corpus/ofd), what lands where on hand-made pages, and files broken on purpose."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from conftest import CORPUS, IN_CI
from dangan.errors import ValidationFailed
from dangan.formats import ofd_render
from dangan.formats.ofd_render import ofd_page_count, render_ofd_page

OFD_DIR = CORPUS / "ofd"
PX_PER_MM = 4
DPI = 25.4 * PX_PER_MM  # 4 pixels per millimetre: boxes in mm are easy to check

# name: page sizes in mm (PhysicalBox of each page, as the files say)
A4, INVOICE = (210.0, 297.0), (210.0, 140.0)
CORPUS_PAGES: dict[str, list[tuple[float, float]]] = {
    "einvoice-huhuang-5pages-signed.ofd": [INVOICE, A4, A4, A4, A4],
    "einvoice-nuonuo-signed.ofd": [INVOICE],
    "einvoice-suwell-2024.ofd": [INVOICE],
    "einvoice-suwellformsdk-2020-signed.ofd": [INVOICE],
    "iofd-seal-esl.ofd": [A4, A4],
    "ofdrw-attachment.ofd": [A4],
    "ofdrw-chinese-dir-names.ofd": [A4],
    "ofdrw-digital-sign.ofd": [A4],
    "ofdrw-helloworld.ofd": [A4],
    "ofdrw-integrity-protected.ofd": [A4, A4],
    "ofdrw-ses-v4-seal.ofd": [A4],
    "surread-nonstandard-paths.ofd": [(209.956, 297.028), A4],
    "suwell-convertor-vector.ofd": [A4],
    "wps-jpeg-case-mismatch.ofd": [(209.962, 296.938), (209.962, 296.938)],
    "wps-text-small.ofd": [A4],
}


def corpus(name: str) -> str:
    path = OFD_DIR / name
    if not path.is_file():
        if IN_CI:
            pytest.fail(f"the shared corpus file {path} is missing (required under CI=true)")
        pytest.skip("the shared corpus is not available")
    return str(path)


# -- pixel helpers ----------------------------------------------------------------------------------------------


def region(img: Image.Image, box: tuple[float, float, float, float], px_per_mm: float = PX_PER_MM) -> Image.Image:
    x, y, w, h = box
    return img.crop((round(x * px_per_mm), round(y * px_per_mm), round((x + w) * px_per_mm),
                     round((y + h) * px_per_mm)))


def share(img: Image.Image, test: Callable[[tuple[int, int, int]], bool]) -> float:
    """The share of pixels of an RGB image that pass `test`."""
    counts = img.convert("RGB").getcolors(maxcolors=max(1, img.width * img.height)) or []
    total = sum(n for n, _ in counts)
    return sum(n for n, c in counts if test(c)) / max(1, total)


def inked(c: tuple[int, int, int]) -> bool:
    return min(c) < 200


def red(c: tuple[int, int, int]) -> bool:
    return c[0] > 180 and c[1] < 100 and c[2] < 100  # seal red, not the brown (156 82 35) of invoice forms


def blank(img: Image.Image) -> bool:
    return share(img, inked) == 0.0


# -- hand-made packages -----------------------------------------------------------------------------------------

NS = 'xmlns:ofd="http://www.ofdspec.org/2016"'
FONTS = f'<ofd:Res {NS} BaseLoc="Res"><ofd:Fonts><ofd:Font ID="3" FontName="宋体" FamilyName="SimSun"/>' \
        '<ofd:Font ID="4" FontName="黑体"/></ofd:Fonts></ofd:Res>'


def package(pages: list[str], *, page_area: str | None = "0 0 100 50", public_res: str = FONTS,
            document_res: str | None = None, templates: dict[str, tuple[str, str]] | None = None,
            annotations: dict[int, str] | None = None, files: dict[str, bytes | str] | None = None,
            heads: dict[int, str] | None = None) -> bytes:
    """An OFD package: `pages` are the objects of each page's single layer (or whole <ofd:Layer> elements)."""
    common = ""
    if page_area is not None:
        common += f"<ofd:PageArea><ofd:PhysicalBox>{page_area}</ofd:PhysicalBox></ofd:PageArea>"
    common += "<ofd:PublicRes>PublicRes.xml</ofd:PublicRes>"
    if document_res is not None:
        common += "<ofd:DocumentRes>DocumentRes.xml</ofd:DocumentRes>"
    parts: dict[str, bytes | str] = {}
    for tid, (zorder, body) in (templates or {}).items():
        common += f'<ofd:TemplatePage ID="{tid}" BaseLoc="Tpls/Tpl_{tid}/Content.xml" ZOrder="{zorder}"/>'
        parts[f"Doc_0/Tpls/Tpl_{tid}/Content.xml"] = \
            f'<ofd:Page {NS}><ofd:Content><ofd:Layer ID="90">{body}</ofd:Layer></ofd:Content></ofd:Page>'
    page_list = "".join(f'<ofd:Page ID="{10 + i}" BaseLoc="Pages/Page_{i}/Content.xml"/>' for i in range(len(pages)))
    annots = ""
    if annotations:
        annots = "<ofd:Annotations>Annots/Annotations.xml</ofd:Annotations>"
        entries = "".join(f'<ofd:Page PageID="{10 + i}"><ofd:FileLoc>Page_{i}/Annotation.xml</ofd:FileLoc></ofd:Page>'
                          for i in annotations)
        parts["Doc_0/Annots/Annotations.xml"] = f"<ofd:Annotations {NS}>{entries}</ofd:Annotations>"
        for i, body in annotations.items():
            parts[f"Doc_0/Annots/Page_{i}/Annotation.xml"] = f"<ofd:PageAnnot {NS}>{body}</ofd:PageAnnot>"
    parts["OFD.xml"] = (f'<?xml version="1.0" encoding="UTF-8"?><ofd:OFD {NS} Version="1.0" DocType="OFD"><ofd:DocBody>'
                        "<ofd:DocInfo><ofd:DocID>0123456789abcdef</ofd:DocID></ofd:DocInfo>"
                        "<ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>")
    parts["Doc_0/Document.xml"] = (f"<ofd:Document {NS}><ofd:CommonData>{common}<ofd:MaxUnitID>999</ofd:MaxUnitID>"
                                   f"</ofd:CommonData><ofd:Pages>{page_list}</ofd:Pages>{annots}</ofd:Document>")
    parts["Doc_0/PublicRes.xml"] = public_res
    if document_res is not None:
        parts["Doc_0/DocumentRes.xml"] = document_res
    for i, body in enumerate(pages):
        layers = body if body.lstrip().startswith("<ofd:Layer") else f'<ofd:Layer ID="2">{body}</ofd:Layer>'
        head = (heads or {}).get(i, "")
        parts[f"Doc_0/Pages/Page_{i}/Content.xml"] = \
            f'<?xml version="1.0" encoding="UTF-8"?><ofd:Page {NS}>{head}<ofd:Content>{layers}</ofd:Content></ofd:Page>'
    parts.update(files or {})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in parts.items():
            zf.writestr(name, data.encode("utf-8") if isinstance(data, str) else data)
    return buf.getvalue()


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., str]:
    counter = iter(range(1000))

    def write(*args: object, **kwargs: object) -> str:
        path = tmp_path / f"doc{next(counter)}.ofd"
        path.write_bytes(package(*args, **kwargs))  # type: ignore[arg-type]
        return str(path)

    return write


def rect(box: str, color: str, attrs: str = "", path: str = "M 0 0 L 1 0 L 1 1 L 0 1 C", cs: str = "",
         children: str = "") -> str:
    """A filled rectangle: `box` is its Boundary, the unit-square path is scaled to it by the CTM."""
    x, y, w, h = box.split()
    space = f' ColorSpace="{cs}"' if cs else ""
    return (f'<ofd:PathObject ID="1" Boundary="{box}" CTM="{w} 0 0 {h} 0 0" Fill="true" Stroke="false" {attrs}>'
            f'<ofd:FillColor Value="{color}"{space}/>{children}<ofd:AbbreviatedData>{path}</ofd:AbbreviatedData>'
            "</ofd:PathObject>")


def text(box: str, s: str, size: float = 8, color: str = "0 0 0", attrs: str = "", code: str = 'X="0" Y="7"') -> str:
    return (f'<ofd:TextObject ID="5" Boundary="{box}" Font="3" Size="{size}" {attrs}><ofd:FillColor Value="{color}"/>'
            f'<ofd:TextCode {code}>{s}</ofd:TextCode></ofd:TextObject>')


def png(color: tuple[int, int, int, int], size: tuple[int, int] = (8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", size, color).save(buf, "PNG")
    return buf.getvalue()


# -- the corpus: every page of every file -------------------------------------------------------------------------


def test_corpus_is_complete():
    corpus("ofdrw-helloworld.ofd")
    assert sorted(p.name for p in OFD_DIR.glob("*.ofd")) == sorted(CORPUS_PAGES)


@pytest.mark.parametrize("name", sorted(CORPUS_PAGES))
def test_corpus_every_page_renders(name: str):
    path = corpus(name)
    sizes = CORPUS_PAGES[name]
    assert ofd_page_count(path) == len(sizes)
    started = time.perf_counter()
    for index, (w_mm, h_mm) in enumerate(sizes):
        img = render_ofd_page(path, index, dpi=40)
        assert img.mode == "RGB"
        assert abs(img.width - w_mm * 40 / 25.4) <= 1 and abs(img.height - h_mm * 40 / 25.4) <= 1, img.size
        assert share(img, inked) * img.width * img.height > 60, f"page {index + 1} of {name} is blank"
    assert time.perf_counter() - started < 3.0


def test_corpus_invoice_text_seal_and_qr_code():
    """The 2020 invoice: template labels and page values in their boxes, the KingGrid seal (an OFD package
    inside the SES signature) in its StampAnnot box, and the JBIG2 QR code."""
    img = render_ofd_page(corpus("einvoice-suwellformsdk-2020-signed.ofd"), 0, dpi=DPI)
    assert img.size == (840, 560)
    seal = region(img, (90, 8, 30, 20))
    assert share(seal, red) > 0.08
    assert share(region(img, (130, 60, 40, 20)), red) == 0.0  # no stray red elsewhere
    qr = share(region(img, (9, 4, 19, 19)), lambda c: max(c) < 80)
    assert 0.3 < qr < 0.7, qr  # a QR code: about half of its modules are black
    # the amount "¥526.00" is a page value, right of 价税合计 (小写), in the box its TextObject declares
    assert share(region(img, (170, 98, 30, 6)), inked) > 0.05
    assert share(region(img, (150, 110, 40, 8)), inked) < 0.01  # nothing where nothing is printed


@pytest.mark.parametrize(("name", "page", "box"), [
    ("einvoice-nuonuo-signed.ofd", 0, (87, 4, 34, 26)),            # seal picture: an OFD package, scaled to fit
    ("einvoice-huhuang-5pages-signed.ofd", 0, (90, 8, 30, 20)),    # seal picture: an OFD package
    ("ofdrw-ses-v4-seal.ofd", 0, (50, 50, 40, 40)),                # seal picture: PNG (GB/T 38540 v4)
    ("iofd-seal-esl.ofd", 1, (122.94, 37, 33, 33)),                # seal picture: PNG (GM/T 0031 v1), page 2
    ("einvoice-suwell-2024.ofd", 0, (90, 8, 30, 20)),              # supervision seal as a watermark annotation
])
def test_corpus_seals_appear(name: str, page: int, box: tuple[float, float, float, float]):
    img = render_ofd_page(corpus(name), page, dpi=DPI)
    assert share(region(img, box), red) > 0.05


def test_corpus_seal_only_on_its_page():
    path = corpus("iofd-seal-esl.ofd")
    lower_half = (122.94, 55, 33, 15)  # the upper half overlaps the red letterhead on page 1
    assert share(region(render_ofd_page(path, 1, dpi=DPI), lower_half), red) > 0.03
    assert share(region(render_ofd_page(path, 0, dpi=DPI), lower_half), red) == 0.0


def test_corpus_images_embedded_fonts_and_layout():
    # WPS: a JPEG photo stored under DOC_0/Res (case mismatch), placed by its CTM
    photo = render_ofd_page(corpus("wps-jpeg-case-mismatch.ofd"), 0, dpi=DPI)
    inside = region(photo, (35, 30, 135, 100))
    assert share(inside, lambda c: max(c) - min(c) > 40) > 0.2  # colourful
    assert blank(region(photo, (35, 140, 135, 100)))              # below the picture: paper
    # Suwell convertor: the red 方正小标宋 title comes from the embedded TrueType font
    doc = render_ofd_page(corpus("suwell-convertor-vector.ofd"), 0, dpi=DPI)
    assert share(region(doc, (20, 22, 170, 18)), red) > 0.15
    # SurRead: the frame comes from a KingGridTPLS template page
    form = render_ofd_page(corpus("surread-nonstandard-paths.ofd"), 0, dpi=DPI)
    assert share(region(form, (23, 16, 2, 230)), inked) > 0.3


def test_corpus_text_is_legible_and_matches_extraction():
    """OCR of the rendered page finds the lines that text extraction reads from the same page."""
    from dangan.digitise import ocr
    from dangan.formats.extract import extract_text

    if not ocr.engine_available():
        if IN_CI:
            pytest.fail("the OCR engine is required under CI=true")
        pytest.skip("rapidocr is not available")
    path = corpus("iofd-seal-esl.ofd")
    img = render_ofd_page(path, 0, dpi=60)  # small on purpose: one short OCR call
    band = img.crop((0, int(img.height * 0.1), img.width, int(img.height * 0.48)))
    seen = "".join(line.text for line in ocr.ocr_image(band).lines).replace(" ", "")
    extracted = extract_text(path).pages[0].text.replace(" ", "")
    for phrase in ("测试符路桥区卫生局文件", "76号", "关于同意张阿三同志辞职的批复", "区中医院"):
        assert phrase in extracted
        assert phrase in seen, seen


# -- what lands where ---------------------------------------------------------------------------------------------


def test_text_position_colour_and_delta_x(make):
    # four characters 20 mm apart ("g 3 20"), 8 mm high, baseline 7 mm below the top of the box
    path = make([text("10 10 80 10", "国家档案", color="255 0 0", code='X="0" Y="7" DeltaX="g 3 20"')])
    img = render_ofd_page(path, 0, dpi=DPI)
    assert img.size == (400, 200)
    for i in range(4):
        assert share(region(img, (10 + 20 * i, 10, 8, 9)), red) > 0.03, i
        assert blank(region(img, (10 + 20 * i + 9, 9, 10, 10))), i  # the gap to the next character
    assert blank(region(img, (0, 0, 100, 9))) and blank(region(img, (0, 20, 100, 30)))


def test_text_ctm_rotation_and_hscale(make):
    upright = render_ofd_page(make([text("20 10 60 10", "档案管理")]), 0, dpi=DPI)
    # rotated a quarter turn: the line runs downwards from the box origin
    turned = render_ofd_page(make([text("60 2 10 46", "档案管理", size=6, attrs='CTM="0 1 -1 0 8 0"')]), 0, dpi=DPI)
    box_up, box_turned = upright.convert("L").point(lambda v: 255 - v).getbbox(), \
        turned.convert("L").point(lambda v: 255 - v).getbbox()
    assert box_up and box_turned
    assert box_up[2] - box_up[0] > 3 * (box_up[3] - box_up[1])           # wide
    assert box_turned[3] - box_turned[1] > 3 * (box_turned[2] - box_turned[0])  # tall
    narrow = render_ofd_page(make([text("20 10 60 10", "档案管理", attrs='HScale="0.5"')]), 0, dpi=DPI)
    box_narrow = narrow.convert("L").point(lambda v: 255 - v).getbbox()
    assert box_narrow and (box_narrow[2] - box_narrow[0]) < 0.65 * (box_up[2] - box_up[0])


def test_substituted_latin_letters_keep_to_their_positions(make):
    """SimSun's Latin letters are half-width; the installed serif's are wider. Where DeltaX fixes the positions,
    a wider letter is narrowed to its slot instead of running into the next one."""
    img = render_ofd_page(make([text("10 10 80 10", "MMMMMMMM", code='X="0" Y="7" DeltaX="g 7 4"')]), 0, dpi=DPI)
    box = img.convert("L").point(lambda v: 255 - v).getbbox()
    assert box is not None
    assert (box[2] - box[0]) / PX_PER_MM <= 7 * 4 + 5  # unsqueezed: about 35 mm


def test_page_resources_and_draw_parameters(make):
    page_res = (f'<ofd:Res {NS}><ofd:DrawParams><ofd:DrawParam ID="70" LineWidth="2"><ofd:FillColor Value="0 160 0"/>'
                '<ofd:StrokeColor Value="0 0 200"/></ofd:DrawParam><ofd:DrawParam ID="71" Relative="70"/>'
                "</ofd:DrawParams></ofd:Res>")
    body = ('<ofd:PathObject ID="72" Boundary="10 10 30 30" Fill="true" DrawParam="71">'
            "<ofd:AbbreviatedData>M 0 0 L 30 0 L 30 30 L 0 30 C</ofd:AbbreviatedData></ofd:PathObject>")
    path = make([body], heads={0: "<ofd:PageRes>PageRes.xml</ofd:PageRes>"},
                files={"Doc_0/Pages/Page_0/PageRes.xml": page_res})
    img = render_ofd_page(path, 0, dpi=DPI)
    assert img.getpixel((4 * 25, 4 * 25)) == (0, 160, 0)     # fill from the inherited draw parameter
    assert img.getpixel((4 * 10, 4 * 25)) == (0, 0, 200)     # 2 mm stroke over the edge


def test_invisible_text_layer_is_not_drawn(make):
    img = render_ofd_page(make([text("10 10 80 10", "扫描件的文字层", attrs='Fill="false"')]), 0, dpi=DPI)
    assert blank(img)


def test_paths_fill_rules_stroke_and_colour_spaces(make):
    ring = "M 0 0 L 1 0 L 1 1 L 0 1 C M 0.25 0.25 L 0.75 0.25 L 0.75 0.75 L 0.25 0.75 C"
    res = FONTS.replace("<ofd:Fonts>", '<ofd:ColorSpaces><ofd:ColorSpace ID="7" Type="CMYK"/>'
                                       '<ofd:ColorSpace ID="8" Type="GRAY"/></ofd:ColorSpaces><ofd:Fonts>')
    path = make(["".join([
        rect("5 5 20 20", "0 0 255", 'Rule="Even-Odd"', path=ring),
        rect("30 5 20 20", "0 255 255 0", cs="7"),
        '<ofd:PathObject ID="9" Boundary="55 5 40 20" LineWidth="1"><ofd:StrokeColor Value="#0 #80 #0"/>'
        "<ofd:AbbreviatedData>M 0 10 L 40 10 M 20 0 B 30 0 40 5 40 10</ofd:AbbreviatedData></ofd:PathObject>",
        rect("5 30 20 15", "128", cs="8"),
    ])], public_res=res)
    img = render_ofd_page(path, 0, dpi=DPI)
    px = img.getpixel
    assert px((4 * 7, 4 * 7)) == (0, 0, 255)                 # the ring
    assert px((4 * 15, 4 * 15)) == (255, 255, 255)           # its hole (even-odd)
    assert px((4 * 40, 4 * 15)) == (255, 0, 0)               # CMYK 0 255 255 0 is red
    assert px((4 * 15, 4 * 37)) == (128, 128, 128)           # gray
    line = region(img, (56, 14.5, 38, 1))
    assert share(line, lambda c: c[1] > 100 and c[0] < 60 and c[2] < 60) > 0.5  # the green stroke
    assert blank(region(img, (56, 17, 20, 7)))


def test_image_object_placed_by_ctm_and_missing_resources_skipped(make):
    res = (f'<ofd:Res {NS} BaseLoc="Res"><ofd:MultiMedias>'
           '<ofd:MultiMedia ID="20" Type="Image" Format="PNG"><ofd:MediaFile>green.png</ofd:MediaFile></ofd:MultiMedia>'
           '<ofd:MultiMedia ID="21" Type="Image"><ofd:MediaFile>gone.png</ofd:MediaFile></ofd:MultiMedia>'
           '<ofd:MultiMedia ID="22" Type="Image"><ofd:MediaFile>broken.png</ofd:MediaFile></ofd:MultiMedia>'
           "</ofd:MultiMedias></ofd:Res>")
    path = make([
        '<ofd:ImageObject ID="30" Boundary="10 10 30 20" CTM="30 0 0 20 0 0" ResourceID="20"/>'
        '<ofd:ImageObject ID="31" Boundary="50 10 30 20" CTM="30 0 0 20 0 0" ResourceID="21"/>'
        '<ofd:ImageObject ID="32" Boundary="50 10 30 20" CTM="30 0 0 20 0 0" ResourceID="22"/>'
        '<ofd:ImageObject ID="33" Boundary="50 10 30 20" CTM="30 0 0 20 0 0" ResourceID="404"/>'
        # rotated a quarter turn: the unit square maps to x 60..80, y 30..45
        '<ofd:ImageObject ID="34" Boundary="60 30 20 15" CTM="0 15 -20 0 20 0" ResourceID="20"/>'
        + text("10 35 40 10", "正文照常显示"),
    ], document_res=res, files={"Doc_0/Res/green.png": png((0, 200, 0, 255)), "Doc_0/Res/broken.png": b"\x89PNG..."})
    img = render_ofd_page(path, 0, dpi=DPI)
    assert share(region(img, (11, 11, 28, 18)), lambda c: c == (0, 200, 0)) > 0.99
    assert blank(region(img, (50, 10, 8, 18)))
    assert share(region(img, (61, 31, 18, 13)), lambda c: c == (0, 200, 0)) > 0.95
    assert share(region(img, (10, 35, 40, 10)), inked) > 0.03


def test_templates_layers_annotations_composites_and_clips(make):
    res = FONTS.replace("</ofd:Res>", '<ofd:CompositeGraphicUnits><ofd:CompositeGraphicUnit ID="40" Width="10" '
                        f'Height="10"><ofd:Content>{rect("0 0 10 10", "255 0 255")}</ofd:Content>'
                        "</ofd:CompositeGraphicUnit></ofd:CompositeGraphicUnits></ofd:Res>")
    page = (
        '<ofd:Layer ID="2" Type="Foreground">' + rect("40 5 10 10", "0 255 0") + "</ofd:Layer>"
        '<ofd:Layer ID="3">' + rect("35 5 10 10", "0 0 255") + rect("5 5 20 20", "0 0 255")
        + '<ofd:PageBlock ID="50"><ofd:PageBlock ID="51">'
        '<ofd:CompositeObject ID="41" Boundary="5 30 10 10" ResourceID="40"/></ofd:PageBlock></ofd:PageBlock>'
        # clipped to its left half (the clip is in the object's Boundary space, not scaled by its CTM)
        + rect("60 5 30 20", "255 128 0", children='<ofd:Clips><ofd:Clip><ofd:Area><ofd:Path Boundary="0 0 15 20">'
               "<ofd:AbbreviatedData>M 0 0 L 15 0 L 15 20 L 0 20 C</ofd:AbbreviatedData></ofd:Path></ofd:Area>"
               "</ofd:Clip></ofd:Clips>")
        + "</ofd:Layer>")
    path = make(
        [page],
        public_res=res,
        templates={"100": ("Background", rect("0 0 100 50", "255 0 0")),
                   "101": ("Foreground", rect("20 20 10 10", "0 0 0"))},
        heads={0: '<ofd:Template TemplateID="100"/><ofd:Template TemplateID="101" ZOrder="Foreground"/>'},
        annotations={0: '<ofd:Annot ID="60" Type="Stamp"><ofd:Appearance Boundary="80 30 10 10">'
                        + rect("0 0 10 10", "255 255 0") + "</ofd:Appearance></ofd:Annot>"
                        '<ofd:Annot ID="61" Type="Stamp" Visible="false"><ofd:Appearance Boundary="60 30 10 10">'
                        + rect("0 0 10 10", "0 0 0") + "</ofd:Appearance></ofd:Annot>"})
    img = render_ofd_page(path, 0, dpi=DPI)
    px = img.getpixel
    assert px((4 * 2, 4 * 45)) == (255, 0, 0)       # background template under everything
    assert px((4 * 10, 4 * 10)) == (0, 0, 255)      # page content over it
    assert px((4 * 22, 4 * 22)) == (0, 0, 0)        # foreground template over the page content
    assert px((4 * 42, 4 * 10)) == (0, 255, 0)      # a Foreground layer is drawn after the Body layer
    assert px((4 * 10, 4 * 35)) == (255, 0, 255)    # CompositeObject inside nested PageBlocks
    assert px((4 * 65, 4 * 15)) == (255, 128, 0)    # inside the clip
    assert px((4 * 85, 4 * 15)) == (255, 0, 0)      # clipped away: the background shows
    assert px((4 * 85, 4 * 35)) == (255, 255, 0)    # a visible annotation
    assert px((4 * 65, 4 * 35)) == (255, 0, 0)      # an invisible one is not drawn


def test_page_area_from_the_page_the_document_or_a4(make):
    own = make([rect("0 0 10 10", "0 0 0")], heads={0: "<ofd:Area><ofd:PhysicalBox>0 0 50 100</ofd:PhysicalBox></ofd:Area>"})
    assert render_ofd_page(own, 0, dpi=DPI).size == (200, 400)
    assert render_ofd_page(make([rect("0 0 10 10", "0 0 0")]), 0, dpi=DPI).size == (400, 200)
    a4 = render_ofd_page(make([rect("0 0 10 10", "0 0 0")], page_area=None), 0, dpi=25.4)
    assert a4.size == (210, 297)
    # a nonsensical box falls back to A4 instead of allocating a huge image
    huge = make([rect("0 0 10 10", "0 0 0")], page_area="0 0 99999999 99999999")
    assert render_ofd_page(huge, 0, dpi=25.4).size == (210, 297)


def test_output_is_capped_by_max_side(make):
    path = make([rect("0 0 10 10", "0 0 0")])
    img = render_ofd_page(path, 0, dpi=5000, max_side=1000)
    assert img.size == (1000, 500)
    assert render_ofd_page(path, 0, dpi=5000).size == (2400, 1200)


# -- bad input ----------------------------------------------------------------------------------------------------


def refused(call: Callable[[], object], code: str = "OFD_UNREADABLE") -> ValidationFailed:
    with pytest.raises(ValidationFailed) as ei:
        call()
    assert ei.value.code == code
    assert any("\u4e00" <= ch <= "\u9fff" for ch in ei.value.message)  # a Chinese message
    return ei.value


def test_truncated_not_a_zip_and_not_an_ofd(tmp_path: Path, make):
    whole = Path(make([text("10 10 80 10", "完整的文件")])).read_bytes()
    cut = tmp_path / "cut.ofd"
    cut.write_bytes(whole[: len(whole) // 2])
    refused(lambda: ofd_page_count(str(cut)))
    refused(lambda: render_ofd_page(str(cut), 0))
    junk = tmp_path / "junk.ofd"
    junk.write_bytes(b"%PDF-1.7 not a zip at all")
    refused(lambda: render_ofd_page(str(junk), 0))
    other = tmp_path / "other.ofd"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("word/document.xml", "<w/>")
    assert "OFD.xml" in refused(lambda: ofd_page_count(str(other))).message
    refused(lambda: ofd_page_count(str(tmp_path / "absent.ofd")))


def test_page_index_out_of_range(make):
    path = make([text("10 10 80 10", "第一页"), text("10 10 80 10", "第二页")])
    assert ofd_page_count(path) == 2
    assert render_ofd_page(path, 1).size[0] > 0
    for index in (2, -1, 99):
        err = refused(lambda index=index: render_ofd_page(path, index), "PAGE_OUT_OF_RANGE")
        assert "共 2 页" in err.message and err.detail["pages"] == 2


def test_doctype_and_entity_bomb_pages_are_refused(make):
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
            '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;">]>'
            f'<ofd:Page {NS}><ofd:Content><ofd:Layer ID="2">&lol4;</ofd:Layer></ofd:Content></ofd:Page>')
    external = ('<?xml version="1.0"?><!DOCTYPE p SYSTEM "http://example.invalid/p.dtd">'
                f'<ofd:Page {NS}><ofd:Content/></ofd:Page>')
    path = make([text("10 10 80 10", "正常页"), "", ""],
                files={"Doc_0/Pages/Page_1/Content.xml": bomb, "Doc_0/Pages/Page_2/Content.xml": external})
    assert ofd_page_count(path) == 3
    assert share(render_ofd_page(path, 0, dpi=DPI), inked) > 0
    started = time.perf_counter()
    for index in (1, 2):
        err = refused(lambda index=index: render_ofd_page(path, index))
        assert "DOCTYPE" in err.message and f"第 {index + 1} 页" in err.message
    assert time.perf_counter() - started < 1.0
    # a DOCTYPE in a template or resource part: the part is ignored, the page still renders
    tpl = make([text("10 10 80 10", "正文")], templates={"100": ("Background", "")},
               heads={0: '<ofd:Template TemplateID="100"/>'},
               files={"Doc_0/Tpls/Tpl_100/Content.xml": bomb})
    assert share(render_ofd_page(tpl, 0, dpi=DPI), inked) > 0.002


def test_zip_bomb_page_is_refused_without_inflating(make):
    huge = f'<ofd:Page {NS}><ofd:Content>' + " " * (40 * 1024 * 1024) + "</ofd:Content></ofd:Page>"
    path = make([""], files={"Doc_0/Pages/Page_0/Content.xml": huge})
    started = time.perf_counter()
    err = refused(lambda: render_ofd_page(path, 0))
    assert "ZIP 炸弹" in err.message or "上限" in err.message
    assert time.perf_counter() - started < 1.0


def test_missing_page_part_font_file_template_and_signatures(make, tmp_path: Path):
    path = make([text("10 10 80 10", "缺页")], files={})
    with zipfile.ZipFile(path) as zf:
        kept = {n: zf.read(n) for n in zf.namelist() if "Pages/Page_0" not in n}
    gone = tmp_path / "gone.ofd"
    with zipfile.ZipFile(gone, "w") as zf:
        for n, data in kept.items():
            zf.writestr(n, data)
    assert ofd_page_count(str(gone)) == 1
    assert "不存在" in refused(lambda: render_ofd_page(str(gone), 0)).message
    # a font whose FontFile is missing or is not a font, a template that is missing: the text still shows
    res = (f'<ofd:Res {NS} BaseLoc="Res"><ofd:Fonts><ofd:Font ID="3" FontName="方正小标宋简体">'
           "<ofd:FontFile>nofont.ttf</ofd:FontFile></ofd:Font></ofd:Fonts></ofd:Res>")
    for files in ({}, {"Doc_0/Res/nofont.ttf": b"\x00\x01\x00\x00garbage"}):
        doc = make([text("10 10 80 10", "字体缺失")], public_res=res, files=files,
                   templates={"100": ("Background", "")}, heads={0: '<ofd:Template TemplateID="100"/>'})
        with zipfile.ZipFile(doc) as zf:
            names = zf.namelist()
        assert "Doc_0/Tpls/Tpl_100/Content.xml" in names
        assert share(render_ofd_page(doc, 0, dpi=DPI), inked) > 0.01


def test_damaged_objects_are_skipped(make):
    path = make([
        '<ofd:PathObject ID="1" Boundary="a b c d" CTM="nan 0 0 inf 0 0"><ofd:AbbreviatedData>M x y L 1</ofd:AbbreviatedData></ofd:PathObject>'
        '<ofd:PathObject ID="2" Boundary="0 0 10 10"><ofd:AbbreviatedData>A 1 1 0 0 1 1e300 1e300 Q 1 C</ofd:AbbreviatedData></ofd:PathObject>'
        '<ofd:TextObject ID="3" Boundary="0 0 10 10" Font="999" Size="-4"><ofd:TextCode>坏</ofd:TextCode></ofd:TextObject>'
        '<ofd:TextObject ID="4" Boundary="0 0 10 10" Font="3" Size="5"><ofd:CGTransform CodePosition="x"/>'
        '<ofd:TextCode X="q" DeltaX="g 99999999999 1 g x">坏坏</ofd:TextCode></ofd:TextObject>'
        '<ofd:ImageObject ID="5" Boundary="0 0 10 10" CTM="0 0 0 0 0 0" ResourceID=""/>'
        '<ofd:CompositeObject ID="6" Boundary="0 0 10 10" ResourceID="77"/>'
        '<ofd:UnknownObject ID="7"/>'
        + text("10 30 80 10", "其余照常", attrs='DrawParam="404"'),
    ])
    img = render_ofd_page(path, 0, dpi=DPI)
    assert share(region(img, (10, 30, 80, 10)), inked) > 0.03


def test_object_budget_stops_drawing_but_returns_the_page(make, monkeypatch: pytest.MonkeyPatch):
    objects = "".join(rect(f"{2 * i} 0 1 50", "0 0 0") for i in range(50))
    path = make([objects])
    monkeypatch.setattr(ofd_render, "MAX_OBJECTS", 10)
    img = render_ofd_page(path, 0, dpi=DPI)
    assert share(region(img, (0, 0, 20, 50)), inked) > 0.3    # the first objects are drawn
    assert blank(region(img, (30, 0, 70, 50)))                 # then drawing stopped
    monkeypatch.setattr(ofd_render, "MAX_OBJECTS", 200_000)
    monkeypatch.setattr(ofd_render, "MAX_POINTS", 5)
    assert render_ofd_page(path, 0, dpi=DPI).size == (400, 200)
