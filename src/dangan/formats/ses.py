"""Electronic seal and signature structures used inside OFD packages, and SM2 verification.

Covers the SES_Signature / SESeal structures of GM/T 0031-2014 (version 1) and
GB/T 38540-2020 (version 4), the GM/T 0010 / GB/T 35275 SignedData that OFD uses
for plain digital signatures and GM/T 0099 integrity protection, and SM2 signature
verification (GB/T 32918, SM3 with the default user id 1234567812345678).

Producers deviate from the standards in small ways (OCTET STRING where a BIT STRING
is specified, UTCTime instead of GeneralizedTime, optional fields), so the structures
are read positionally from a generic DER walk instead of with strict schema classes.
Everything here raises ``SesError`` (or returns False) on malformed input and never
reads outside the bytes it is given.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asn1crypto import cms, core, parser, x509
from gmssl import sm2 as gmssl_sm2

SM2_WITH_SM3 = "1.2.156.10197.1.501"
SM2_SIGN = "1.2.156.10197.1.301.1"
SM2_CURVE = "1.2.156.10197.1.301"
SM3 = "1.2.156.10197.1.401"
SM3_PLAIN = "1.2.156.10197.1.401.1"
SM3_WITH_KEY = "1.2.156.10197.1.401.2"
GM_SIGNED_DATA = "1.2.156.10197.6.1.4.2.2"
GM_DATA = "1.2.156.10197.6.1.4.2.1"
PKCS7_SIGNED_DATA = "1.2.840.113549.1.7.2"

DEFAULT_USER_ID = b"1234567812345678"
_ECC = gmssl_sm2.default_ecc_table
_N = int(_ECC["n"], 16)
_MAX_DEPTH = 32


class SesError(ValueError):
    """The bytes are not the expected DER structure."""


# --------------------------------------------------------------------------- DER walk


@dataclass(frozen=True)
class Node:
    """One DER TLV: class (0 universal, 2 context ...), constructed flag, tag number."""

    cls: int
    constructed: bool
    tag: int
    header: bytes
    contents: bytes

    @property
    def raw(self) -> bytes:
        return self.header + self.contents

    def children(self) -> list[Node]:
        if not self.constructed:
            raise SesError("期望构造类型的 ASN.1 值")
        return _parse_all(self.contents)

    def is_universal(self, tag: int) -> bool:
        return self.cls == 0 and self.tag == tag


def parse_der(data: bytes) -> Node:
    """Parse one DER value that must span all of ``data``."""
    try:
        cls, method, tag, header, contents, trailer = parser.parse(data, strict=True)
    except (ValueError, TypeError) as exc:
        raise SesError(f"不是有效的 DER 编码：{exc}") from exc
    return Node(cls, method == 1, tag, header, contents)


def _parse_all(data: bytes) -> list[Node]:
    out: list[Node] = []
    pos = 0
    while pos < len(data):
        try:
            length = parser.peek(data[pos:])
            cls, method, tag, header, contents, trailer = parser.parse(data[pos:pos + length], strict=True)
        except (ValueError, TypeError) as exc:
            raise SesError(f"不是有效的 DER 编码：{exc}") from exc
        out.append(Node(cls, method == 1, tag, header, contents))
        pos += length
    return out


def _int(node: Node) -> int:
    if not node.is_universal(2):
        raise SesError("期望 INTEGER")
    return int.from_bytes(node.contents, "big", signed=True)


def _text(node: Node) -> str:
    # IA5String 22, UTF8String 12, PrintableString 19, VisibleString 26, BMPString 30
    if node.cls != 0 or node.tag not in (12, 19, 22, 26, 30, 4):
        raise SesError("期望字符串")
    if node.tag == 30:
        return node.contents.decode("utf-16-be", "replace")
    return node.contents.decode("utf-8", "replace")


def _bits_or_octets(node: Node) -> bytes:
    """BIT STRING contents without the unused-bits byte; producers sometimes use OCTET STRING."""
    if node.is_universal(3):
        if not node.contents:
            raise SesError("空的 BIT STRING")
        return node.contents[1:]
    if node.is_universal(4):
        return node.contents
    raise SesError("期望 BIT STRING 或 OCTET STRING")


def _octets(node: Node) -> bytes:
    if not node.is_universal(4):
        raise SesError("期望 OCTET STRING")
    return node.contents


def _oid(node: Node) -> str:
    if not node.is_universal(6):
        raise SesError("期望 OBJECT IDENTIFIER")
    return core.ObjectIdentifier.load(node.raw).dotted


def _time(node: Node) -> datetime | str:
    """GeneralizedTime / UTCTime as datetime; a BIT/OCTET STRING holding a time text as str."""
    try:
        if node.is_universal(24):
            return core.GeneralizedTime.load(node.raw).native
        if node.is_universal(23):
            return core.UTCTime.load(node.raw).native
    except ValueError as exc:
        raise SesError(f"时间格式错误：{exc}") from exc
    return _bits_or_octets(node).decode("utf-8", "replace")


def _der_sequence(body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return b"\x30" + bytes([n]) + body
    lb = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\x30" + bytes([0x80 | len(lb)]) + lb + body


# --------------------------------------------------------------------------- certificates and SM2


@dataclass(frozen=True)
class CertInfo:
    subject_cn: str
    subject: str
    issuer: str
    serial: str
    not_before: datetime | None
    not_after: datetime | None
    public_key: bytes                 # uncompressed point 04||X||Y (or whatever the certificate holds)
    key_algorithm: str                # dotted OID of the curve / key parameters when present


def load_certificate(der: bytes) -> CertInfo:
    try:
        cert = x509.Certificate.load(der)
        tbs = cert["tbs_certificate"]
        spki = tbs["subject_public_key_info"]
        public_key = bytes(spki["public_key"].contents[1:])  # drop the unused-bits byte
        curve = ""
        try:
            p = spki["algorithm"]["parameters"]
            curve = p.chosen.dotted if hasattr(p, "chosen") and hasattr(p.chosen, "dotted") else ""
        except (ValueError, KeyError, AttributeError):
            curve = ""
        subject = cert.subject
        names = subject.native if subject is not None else {}
        cn = names.get("common_name", "") if isinstance(names, dict) else ""
        if isinstance(cn, list):
            cn = cn[0] if cn else ""
        validity = tbs["validity"]
        return CertInfo(
            subject_cn=str(cn),
            subject=subject.human_friendly,
            issuer=cert.issuer.human_friendly,
            serial=format(tbs["serial_number"].native, "x"),
            not_before=validity["not_before"].native,
            not_after=validity["not_after"].native,
            public_key=public_key,
            key_algorithm=curve,
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise SesError(f"证书无法解析：{exc}") from exc


def _sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


def _xy(public_key: bytes) -> bytes:
    if len(public_key) == 65 and public_key[0] == 4:
        return public_key[1:]
    if len(public_key) == 64:
        return public_key
    raise SesError("不是未压缩的 SM2 公钥")


def sm2_z(public_key: bytes, user_id: bytes = DEFAULT_USER_ID) -> bytes:
    """Z_A = SM3(ENTL || ID || a || b || xG || yG || xA || yA) per GB/T 32918.2."""
    entl = (len(user_id) * 8).to_bytes(2, "big")
    return _sm3(entl + user_id + bytes.fromhex(_ECC["a"] + _ECC["b"] + _ECC["g"]) + _xy(public_key))


def sm3_with_z(public_key: bytes, chunks: Any) -> bytes:
    """SM3(Z_A || data) where data is given as an iterable of byte chunks (bounded memory)."""
    h = hashlib.new("sm3")
    h.update(sm2_z(public_key))
    for chunk in chunks:
        h.update(chunk)
    return h.digest()


def _rs(signature: bytes) -> tuple[int, int]:
    if len(signature) == 64 and signature[:1] != b"\x30":
        return int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    node = parse_der(signature)
    if not node.is_universal(16):
        raise SesError("SM2 签名值不是 SEQUENCE(r, s)")
    parts = node.children()
    if len(parts) != 2:
        raise SesError("SM2 签名值不是 SEQUENCE(r, s)")
    return _int(parts[0]), _int(parts[1])


def sm2_verify_digest(public_key: bytes, signature: bytes, e: bytes) -> bool:
    """Verify an SM2 signature (DER or r||s) over the already computed value e."""
    try:
        r, s = _rs(signature)
        xy = _xy(public_key).hex()
    except SesError:
        return False
    if not (1 <= r < _N and 1 <= s < _N):
        return False
    signer = gmssl_sm2.CryptSM2(private_key=None, public_key="00")
    # Set the key after construction: the constructor's lstrip("04") would damage keys whose X starts with 0 or 4.
    signer.public_key = xy
    try:
        return bool(signer.verify(f"{r:064x}{s:064x}", e))
    except Exception:  # noqa: BLE001 - gmssl raises assorted errors on points off the curve: not a valid signature
        return False


def sm2_verify(public_key: bytes, signature: bytes, message: bytes, user_id: bytes = DEFAULT_USER_ID) -> bool:
    """SM2 with SM3 signature verification with the standard Z_A preprocessing."""
    try:
        e = _sm3(sm2_z(public_key, user_id) + message)
    except SesError:
        return False
    return sm2_verify_digest(public_key, signature, e)


# --------------------------------------------------------------------------- SES structures


@dataclass
class SesSeal:
    """SESeal: the electronic seal (印章) made and signed by the seal maker."""

    version: int
    raw: bytes
    es_id: str = ""
    vendor: str = ""
    name: str = ""
    seal_type: int | None = None
    valid_start: datetime | str | None = None
    valid_end: datetime | str | None = None
    picture_type: str = ""
    maker_cert: bytes = b""
    maker_algorithm: str = ""
    maker_signature: bytes = b""
    maker_signed_bytes: bytes = b""   # what the maker's signature is computed over


@dataclass
class SesSignature:
    """SES_Signature: the electronic signature with seal (电子签章数据)."""

    version: int
    tbs_der: bytes
    seal: SesSeal
    time_info: datetime | str | None
    data_hash: bytes
    property_info: str
    signer_cert: bytes
    algorithm: str
    signature: bytes
    extra: dict[str, Any] = field(default_factory=dict)


def _parse_seal(node: Node) -> SesSeal:
    parts = node.children()
    if len(parts) < 2:
        raise SesError("SESeal 结构不完整")
    info = parts[0]
    info_parts = info.children()
    if len(info_parts) < 4:
        raise SesError("SES_SealInfo 结构不完整")
    header = info_parts[0].children()
    if len(header) < 3:
        raise SesError("SES_Header 结构不完整")
    version = _int(header[1])
    seal = SesSeal(version=version, raw=node.raw, es_id=_text(info_parts[1]), vendor=_text(header[2]))
    prop = info_parts[2].children()
    if len(prop) >= 2:
        seal.seal_type = _int(prop[0]) if prop[0].is_universal(2) else None
        seal.name = _text(prop[1])
        times = [p for p in prop if p.cls == 0 and p.tag in (23, 24)]
        if len(times) >= 3:
            seal.valid_start, seal.valid_end = _time(times[1]), _time(times[2])
    pic = info_parts[3].children()
    if pic:
        seal.picture_type = _text(pic[0])
    if version >= 4 or len(parts) >= 4:
        # GB/T 38540: SESeal ::= SEQUENCE { esealInfo, cert OCTET STRING, signAlgID OID, signedValue BIT STRING }
        if len(parts) < 4:
            raise SesError("SESeal 结构不完整")
        seal.maker_cert = _octets(parts[1])
        seal.maker_algorithm = _oid(parts[2])
        seal.maker_signature = _bits_or_octets(parts[3])
        # Every v4 seal in our corpus (four different makers) signs DER(esealInfo) alone.
        seal.maker_signed_bytes = info.raw
    else:
        # GM/T 0031: SESeal ::= SEQUENCE { esealInfo, signInfo SES_SignInfo { cert, signatureAlgorithm, signData } }
        sign_info = parts[1].children()
        if len(sign_info) < 3:
            raise SesError("SES_SignInfo 结构不完整")
        seal.maker_cert = _octets(sign_info[0])
        seal.maker_algorithm = _oid(sign_info[1])
        seal.maker_signature = _bits_or_octets(sign_info[2])
        seal.maker_signed_bytes = _der_sequence(info.raw + sign_info[0].raw + sign_info[1].raw)
    return seal


def parse_ses_signature(data: bytes) -> SesSignature:
    """Parse an SES_Signature of version 1 (GM/T 0031) or 4 (GB/T 38540)."""
    top = parse_der(data)
    if not top.is_universal(16):
        raise SesError("电子签章数据不是 SEQUENCE")
    parts = top.children()
    if len(parts) < 2 or not parts[0].is_universal(16):
        raise SesError("电子签章数据结构不完整")
    tbs = parts[0]
    tbs_parts = tbs.children()
    if len(tbs_parts) < 5 or not tbs_parts[0].is_universal(2):
        raise SesError("TBS_Sign 结构不完整")
    version = _int(tbs_parts[0])
    seal = _parse_seal(tbs_parts[1])
    if version >= 4:
        # SES_Signature ::= SEQUENCE { toSign, cert OCTET STRING, signatureAlgID OID, signature BIT STRING, timeStamp [0] OPTIONAL }
        # TBS_Sign ::= SEQUENCE { version, eseal, timeInfo GeneralizedTime, dataHash BIT STRING, propertyInfo IA5String, extDatas [0] OPTIONAL }
        if len(parts) < 4:
            raise SesError("电子签章数据结构不完整（缺少证书或签名值）")
        return SesSignature(
            version=version,
            tbs_der=tbs.raw,
            seal=seal,
            time_info=_time(tbs_parts[2]),
            data_hash=_bits_or_octets(tbs_parts[3]),
            property_info=_text(tbs_parts[4]),
            signer_cert=_octets(parts[1]),
            algorithm=_oid(parts[2]),
            signature=_bits_or_octets(parts[3]),
            extra={"timestamp": len(parts) > 4},
        )
    # GM/T 0031 v1: SES_Signature ::= SEQUENCE { toSign, signature BIT STRING }
    # TBS_Sign ::= SEQUENCE { version, eseal, timeInfo BIT STRING, dataHash BIT STRING, propertyInfo IA5String,
    #                         cert OCTET STRING, signatureAlgorithm OID }
    if len(tbs_parts) < 7:
        raise SesError("TBS_Sign（V1）结构不完整")
    return SesSignature(
        version=version,
        tbs_der=tbs.raw,
        seal=seal,
        time_info=_time(tbs_parts[2]),
        data_hash=_bits_or_octets(tbs_parts[3]),
        property_info=_text(tbs_parts[4]),
        signer_cert=_octets(tbs_parts[5]),
        algorithm=_oid(tbs_parts[6]),
        signature=_bits_or_octets(parts[1]),
    )


def looks_like_raw_sm2_signature(data: bytes) -> bool:
    """A bare SEQUENCE { r INTEGER, s INTEGER } or 64 bytes r||s."""
    if len(data) == 64:
        return True
    try:
        node = parse_der(data)
        kids = node.children() if node.is_universal(16) else []
    except SesError:
        return False
    return len(kids) == 2 and all(k.is_universal(2) for k in kids)


# --------------------------------------------------------------------------- SignedData (GB/T 35275, PKCS#7)


class GMContentInfo(core.Sequence):
    """ContentInfo whose content type may be the GM signedData OID that asn1crypto does not know."""

    _fields = [
        ("content_type", core.ObjectIdentifier),
        ("content", cms.SignedData, {"explicit": 0}),
    ]


@dataclass
class SignedDataInfo:
    content_type: str
    encapsulated: bytes | None
    signer_cert: bytes | None
    digest_algorithm: str
    signature_algorithm: str
    signature: bytes
    signed_attrs_der: bytes | None       # DER of the signed attributes as a SET (what is signed), if any
    message_digest: bytes | None


def parse_signed_data(data: bytes) -> SignedDataInfo:
    try:
        try:
            info = GMContentInfo.load(data, strict=True)
            ctype = info["content_type"].dotted
            sd = info["content"]
        except ValueError:
            # some producers store the SignedData without the ContentInfo wrapper
            sd = cms.SignedData.load(data, strict=True)
            ctype = GM_SIGNED_DATA if sd["encap_content_info"]["content_type"].dotted.startswith("1.2.156") \
                else PKCS7_SIGNED_DATA
        if ctype not in (GM_SIGNED_DATA, PKCS7_SIGNED_DATA):
            raise SesError(f"不是 SignedData（内容类型 {ctype}）")
        signer_infos = sd["signer_infos"]
        if len(signer_infos) == 0:
            raise SesError("SignedData 没有签名者信息")
        si = signer_infos[0]
        encap = sd["encap_content_info"]
        content = encap["content"]
        encapsulated = None if isinstance(content, core.Void) else bytes(content.contents)
        cert_der = None
        certs = sd["certificates"]
        if certs.native is not None and len(certs) > 0:
            sid = si["sid"]
            chosen = None
            for c in certs:
                cert = c.chosen
                if not isinstance(cert, x509.Certificate):
                    continue
                if sid.name == "issuer_and_serial_number":
                    if cert.serial_number == sid.chosen["serial_number"].native:
                        chosen = cert
                        break
                elif chosen is None:
                    chosen = cert
            if chosen is None:
                chosen = certs[0].chosen
            cert_der = chosen.dump()
        attrs = si["signed_attrs"]
        attrs_der = None
        message_digest = None
        if attrs.native is not None and len(attrs) > 0:
            raw = attrs.dump()
            attrs_der = b"\x31" + raw[1:]   # signed over as SET OF, not [0] IMPLICIT
            for a in attrs:
                if a["type"].dotted == "1.2.840.113549.1.9.4":
                    message_digest = a["values"][0].native
        return SignedDataInfo(
            content_type=ctype,
            encapsulated=encapsulated,
            signer_cert=cert_der,
            digest_algorithm=si["digest_algorithm"]["algorithm"].dotted,
            signature_algorithm=si["signature_algorithm"]["algorithm"].dotted,
            signature=bytes(si["signature"].native),
            signed_attrs_der=attrs_der,
            message_digest=message_digest,
        )
    except SesError:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise SesError(f"SignedData 无法解析：{exc}") from exc
