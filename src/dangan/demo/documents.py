"""Small but real files for the demo: PDFs with Chinese text (Adobe-GB1 CID font) and PNG images."""

from __future__ import annotations

import struct
import zlib


def _hex_ucs2(text: str) -> str:
    return text.encode("utf-16-be").hex().upper()


def make_pdf(title: str, lines: list[str], *, author: str = "", created: str = "20240101000000") -> bytes:
    """A one-page A4 PDF. The text uses STSong-Light with UniGB-UCS2-H, which every PDF viewer carries."""
    content = ["BT", "/F1 18 Tf", "1 0 0 1 72 770 Tm", f"<{_hex_ucs2(title)}> Tj", "/F1 12 Tf"]
    y = 730
    for line in lines:
        for i in range(0, len(line), 36):
            content.append(f"1 0 0 1 72 {y} Tm <{_hex_ucs2(line[i:i + 36])}> Tj")
            y -= 22
            if y < 72:
                break
    content.append("ET")
    stream = "\n".join(content).encode("ascii")
    info_title = _hex_ucs2(title)
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UCS2-H /DescendantFonts [6 0 R] >>",
        b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light "
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 4 >> /FontDescriptor 7 0 R /DW 1000 >>",
        b"<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox [-25 -254 1000 880] /ItalicAngle 0 "
        b"/Ascent 880 /Descent -120 /CapHeight 880 /StemV 93 >>",
        f"<< /Title <FEFF{info_title}> /Author <FEFF{_hex_ucs2(author)}> /Producer (dangan demo) "
        f"/CreationDate (D:{created}+08'00') >>".encode("ascii"),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 8 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def make_png(width: int, height: int, seed: int) -> bytes:
    """A small colour gradient PNG (a stand-in photograph)."""
    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            row += bytes(((x * 255 // width + seed * 37) % 256, (y * 255 // height + seed * 11) % 256, (seed * 53) % 256))
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 6)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
