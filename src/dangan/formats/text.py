"""Plain text and XML: which encoding a text is in (UTF-8, GB18030, Big5 ...) and whether an XML file is well-formed.

`decode_text` is the one place that guesses a Chinese text's encoding; identification, validation and text
extraction all use it. The guess is deliberately small: a BOM decides; otherwise strict UTF-8; otherwise the
legacy Chinese encodings that decode strictly, ranked by how many of the decoded characters are common
Chinese characters (a Big5 text read as GBK turns into kana, symbols and rare characters, and the reverse).
"""

from __future__ import annotations

import codecs
import os
import re

from dangan.formats.results import Identification, Validation

# Frequent characters of modern and classical Chinese, simplified and traditional (written for this module).
_COMMON = set(
    "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里"
    "用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理心她本前开但因只从想实"
    "日军者意无力它与长把机十民第公此已工使情明性知全三又关点正业外将两高间由问很最重并物手应战向头文体政"
    "美相见被利什二等产或新己制身果加西斯月话合回特代内信表化老给世位次度门任常先海通教儿原东声提立及比员"
    "解水名真论处走义各入几口认条平系气题活尔更别打女变四神总何电数安少报才结反受目太量再感建务做接必场件"
    "计管期市直德资命山金指克许统区保至队形社便空决治展马科司五基眼书非则听白却界达光放强即像难且权思王象"
    "完设式色路记南品住告类求据程北边死张该交规万取拉格望觉术领共确传师观清今切院让识候带导争运笑飞风步改"
    "收根干造言联持组每济车亲极林服快办议往元英士证近失转夫令准布始怎呢存未远叫台单影具罗字爱击流备兵连调"
    "深商算质团集百需价花党华城石级整府离况亚请技际约示复病息究线似官火断精满支视消越器容照须九增研写称企"
    "八功吗包片史委乎查轻易早曾除农找装广显吧阿李标谈吃图念六引历首医局突专费号尽另周较注语仅考落青随选列"
    "武红响虽推势参希古众构房半节土投某案黑维革划敌致陈律足态护七兴派孩验责营星够章音跟志底站严巴例防族供"
    "效续施留讲型料终答紧黄绝奇察母京段依批群项故按河米围江织害斗双境客纪采举杀攻父苏密低朝友诉止细愿千值"
    "仍男钱破网热助倒育属坐帝限船脸职速刻乐否刚威毛状率甚独球般普怕弹校苦创假久错承印晚兰试股拿脑预谁益阳"
    "若哪微尼继送急血惊伤素药适波夜省初喜卫源食险待述陆习置居劳财环排福纳欢雷警获模充负云停木游龙树疑层冷"
    "洲冲射略范竟句室异激汉村哈策演简卡罪判担州静退既衣您宗积余痛检差富灵协角占配征修皮挥胜降阶审沉坚善妈"
    "刘读啊超免压银买皇养伊怀执副乱抗犯追帮宣佛岁航优怪香著田铁控税左右份穿艺背阵草脚概恶块顿敢守酒岛托央"
    "這為們個來會時說國後對裡過發與當經無從點還進種將現麼動開實長問體麗關係間見於學樣話頭書應義總軍員變聽"
    "處產樂機據條點氣邊東車電隊萬將愛轉讓認識論記輕區選錢請萬歷響難臺導傳類資題專雖師務營報權業術統醫單號"
    "曰矣乎焉哉耳兮亦乃遂皆諸莫蓋夫斯於其之以而也者所為則"
    "，。、；：？！“”‘’（）《》"
)
_KANA_OR_SYMBOL = re.compile(r"[\u3040-\u30ff\u0370-\u03ff\u0400-\u04ff\u2460-\u24ff\u2500-\u257f\ue000-\uf8ff]")
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")
LEGACY = ("gb18030", "big5")
ENCODING_NAMES = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8（带 BOM）", "utf-16": "UTF-16", "utf-32": "UTF-32",
                  "gb18030": "GB18030", "big5": "Big5", "unknown": "未知编码"}


def _score(text: str) -> float:
    """Share of the non-ASCII characters that are common Chinese characters, minus kana/symbol noise."""
    chars = [c for c in text if ord(c) > 0x7f]
    if not chars:
        return 0.0
    common = sum(1 for c in chars if c in _COMMON)
    noise = len(_KANA_OR_SYMBOL.findall(text))
    return (common - 2 * noise) / len(chars)


def decode_text(data: bytes, *, partial: bool = False) -> tuple[str, str]:
    """Decode bytes of a text file: return (text, encoding).

    encoding is a Python codec name ("utf-8", "utf-8-sig", "utf-16", "gb18030", "big5"), or "unknown" when no
    candidate decodes the bytes strictly (the text is then UTF-8 with replacement characters). ASCII comes back
    as "utf-8". With partial=True the bytes are a prefix of the file and a character cut at the end is ignored.
    """
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(enc, errors="strict" if not partial else "ignore"), enc
            except UnicodeDecodeError:
                break
    body = data
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as e:
        if partial and e.start >= len(body) - 3:
            try:
                return body[:e.start].decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                pass
    best: tuple[float, str, str] | None = None
    for enc in LEGACY:
        chunk = body
        for cut in range(0, 4 if partial else 1):
            try:
                text = (chunk[:len(chunk) - cut] if cut else chunk).decode(enc)
            except UnicodeDecodeError:
                continue
            score = _score(text)
            if best is None or score > best[0]:
                best = (score, text, enc)
            break
    if best is not None:
        return best[1], best[2]
    return data.decode("utf-8", errors="replace"), "unknown"


def looks_like_text(head: bytes, *, partial: bool = True) -> str | None:
    """The encoding if the bytes look like text (no NULs or control characters, decodes strictly), else None."""
    if not head:
        return None
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        _, enc = decode_text(head[:4096], partial=True)
        return enc if enc != "unknown" else None
    sample = head[:65536]
    if b"\x00" in sample:
        return None
    if len(_CONTROL.findall(sample)) > max(2, len(sample) // 1000):
        return None
    _, enc = decode_text(sample, partial=partial)
    return None if enc == "unknown" else enc


# -- validation ------------------------------------------------------------------------------------------------

TEXT_READ_LIMIT = 64 * 1024 * 1024  # read at most this much of a text file (streamed, not held)


def validate_text(path: str, ident: Identification | None = None) -> Validation:
    """Plain text: it decodes completely in one encoding (the one detected from its start)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(65536)
            _, enc = decode_text(head, partial=size > len(head))
            if enc == "unknown":
                return Validation(status="invalid", details={"encoding": enc},
                                  problems=["文本不是 UTF-8、GB18030 或 Big5 编码，含有无法解码的字节"])
            codec = "utf-8" if enc == "utf-8-sig" else enc
            dec = codecs.getincrementaldecoder(codec)(errors="strict")
            fh.seek(0)
            pos = 0
            warnings: list[str] = []
            while True:
                chunk = fh.read(1024 * 1024)
                if not chunk:
                    break
                try:
                    dec.decode(chunk)
                except UnicodeDecodeError as e:
                    return Validation(status="invalid", details={"encoding": enc},
                                      problems=[f"文本按 {ENCODING_NAMES.get(enc, enc)} 解码时在第 {pos + e.start} 字节处"
                                                f"遇到无效字节，文件可能损坏或混用了多种编码"])
                pos += len(chunk)
                if pos >= TEXT_READ_LIMIT:
                    warnings.append(f"文件较大，只检查了前 {TEXT_READ_LIMIT // (1024 * 1024)} MB")
                    break
            else:
                pass
            if pos < TEXT_READ_LIMIT:
                try:
                    dec.decode(b"", final=True)
                except UnicodeDecodeError:
                    return Validation(status="invalid", details={"encoding": enc},
                                      problems=["文本末尾有不完整的多字节字符，文件可能被截断"])
            return Validation(status="valid", warnings=warnings, details={"encoding": enc,
                                                                          "encoding_name": ENCODING_NAMES.get(enc, enc)})
    except OSError as e:
        return Validation(status="invalid", problems=[f"无法读取文件：{e.strerror or e}"])


def safe_xml_parser(**kw: object):  # -> lxml.etree.XMLParser
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_blank_text=False, **kw)


_DOCTYPE = re.compile(rb"<!DOCTYPE", re.I)
XML_SIZE_LIMIT = 256 * 1024 * 1024


def check_xml_bytes(data: bytes, what: str = "XML") -> str | None:
    """None if the bytes are well-formed XML without a DOCTYPE, else a Chinese reason."""
    from lxml import etree

    head = data[:4096]
    if _DOCTYPE.search(head) or (b"<!DOCTYPE" in data and _doctype_before_root(data)):
        return f"{what} 含有 DOCTYPE 声明：出于安全考虑（外部实体、实体膨胀）不予解析"
    try:
        etree.fromstring(data, safe_xml_parser())
    except etree.XMLSyntaxError as e:
        line = f"第 {e.lineno} 行：" if getattr(e, "lineno", None) else ""
        return f"{what} 不是格式良好的 XML（{line}{_xml_msg(e)}）"
    except ValueError as e:
        return f"{what} 无法解析：{e}"
    return None


def _doctype_before_root(data: bytes) -> bool:
    i = data.find(b"<!DOCTYPE")
    if i < 0:
        return False
    prolog = data[:i]
    # only comments / processing instructions / whitespace before it: it is the document's DOCTYPE
    stripped = re.sub(rb"<\?.*?\?>|<!--.*?-->|\s", b"", prolog, flags=re.S)
    return stripped in (b"", codecs.BOM_UTF8)


def _xml_msg(e: Exception) -> str:
    msg = str(e)
    return msg.split(" (", 1)[0][:200]


def validate_xml(path: str, ident: Identification | None = None) -> Validation:
    """XML: well-formed under a safe parser (no DTD, no entities, no network); a DOCTYPE is refused."""
    try:
        size = os.path.getsize(path)
        if size > XML_SIZE_LIMIT:
            return Validation(status="unchecked", warnings=[f"XML 文件过大（{size // (1024 * 1024)} MB），未做完整解析"])
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        return Validation(status="invalid", problems=[f"无法读取文件：{e.strerror or e}"])
    reason = check_xml_bytes(data)
    if reason:
        return Validation(status="invalid", problems=[reason])
    from lxml import etree

    root = etree.fromstring(data, safe_xml_parser())
    details = {"root": etree.QName(root).localname, "namespace": etree.QName(root).namespace or ""}
    return Validation(status="valid", details=details)
