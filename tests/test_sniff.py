"""Format sniffing at capture, on real files made by other software (../shared/corpus)."""

import pytest

from conftest import CORPUS
from dangan.formats.sniff import sniff

CASES = [(p, "application/ofd") for p in sorted((CORPUS / "ofd").glob("*.ofd"))] + [
    (CORPUS / "pdf" / "chinese-word-contract-simsun.pdf", "application/pdf"),
    (CORPUS / "pdf" / "encrypted-aes256-r6.pdf", "application/pdf"),
    (CORPUS / "formats" / "tiff-g3-fax-scan.tif", "image/tiff"),
    (CORPUS / "formats" / "jpeg2000-photo.jp2", "image/jp2"),
    (CORPUS / "formats" / "wav-valid-pcm.wav", "audio/wav"),
    (CORPUS / "formats" / "mp4-xray-video.mp4", "video/mp4"),
    (CORPUS / "formats" / "ooxml-samples-docx-xlsx-pptx.zip", "application/zip"),
]


@pytest.mark.parametrize("path,media_type", CASES, ids=lambda v: getattr(v, "name", v))
def test_corpus_files(path, media_type):
    head = path.read_bytes()[:8192]
    assert sniff(head, path.name)[0] == media_type


def test_ofd_recognised_by_content_even_when_misnamed():
    ofd = CORPUS / "ofd" / "ofdrw-helloworld.ofd"
    assert sniff(ofd.read_bytes()[:8192], "document.zip") == ("application/ofd", "OFD（GB/T 33190）")


def test_extension_lies():
    pdf = (CORPUS / "pdf" / "chinese-word-contract-simsun.pdf").read_bytes()[:8192]
    assert sniff(pdf, "picture.jpg")[0] == "application/pdf"
    assert sniff(b"just text", "unknown")[0] == "application/octet-stream"


def test_every_corpus_ofd_is_recorded_as_ofd_at_capture(app, admin):
    import io

    from dangan.services.files import NewFile
    from dangan.services.records import RecordInput, create_record

    meta = {"title": "电子发票", "year": 2024, "retention_period": "D30", "responsible": "财务科", "date": "2024-05-31"}
    files = [NewFile(p.name.replace(".ofd", ".bin"), io.BytesIO(p.read_bytes()), role="attachment" if i else "main")
             for i, p in enumerate(sorted((CORPUS / "ofd").glob("*.ofd")))]
    r = create_record(app, admin, RecordInput("Z109", "WS", meta, department="CWK"), files)
    assert {f["media_type"] for f in r["files"]} == {"application/ofd"}
    assert len(r["files"]) == 15
