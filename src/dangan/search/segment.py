"""Chinese segmentation for full-text search: one function for documents and queries, no I/O.

Every record field goes through :func:`segment` (or :func:`index_text`, its space-joined form) before it
is stored in an FTS5 column or in ``to_tsvector('simple', …)``, and every search word goes through the
same analysis (:func:`analyse`) in :mod:`dangan.search.query`. Documents and queries must be segmented
by the same code, the same rjieba version and the same dictionary, or words stop matching. Any change
to this module's output is a change of :data:`SEGMENTATION_VERSION`, and every index built with the old
version must be rebuilt. Do not call ``rjieba.add_word``/``suggest_freq`` anywhere in the process: the
dictionary is global and would change the tokens of documents already indexed.

Normalisation (documents and queries alike)
    NFKC (full-width letters, digits and punctuation become half-width; compatibility ideographs
    become the unified ones), then lower case. Hyphen and middle-dot variants (‐ ‑ – — − ﹣ and
    ・ • ‧ ∙ ･) become ``-`` and ``·``. Lone surrogates and control characters are dropped.

Tokens
    rjieba's search mode (``cut_for_search``): the words of ``rjieba.cut`` (HMM on) plus, for a word
    longer than two characters, its two- and three-character sub-words found in the dictionary.
    Punctuation and white space are dropped; numbers and Latin words are kept as one token each
    (``2024``, ``0001``, ``z109``). Every token consists of letters and digits only
    (``str.isalnum``), so the FTS5 and PostgreSQL tokenizers see exactly one token per segment.
    Tokens longer than :data:`MAX_TOKEN_CHARS` characters are dropped (PostgreSQL ignores lexemes
    over 2,047 bytes).

Token order (it matters for phrases)
    1. the *main stream*: the text tiled word by word, in reading order. A dictionary word that its
       own sub-words tile without overlap is replaced by them (中华人民共和国 → 中华 人民 共和国,
       档案管理 → 档案 管理), so a phrase typed as 人民共和国 still finds 中华人民共和国. These
       positions are consecutive, and phrase queries are matched on them;
    2. the *extras*: the whole words replaced in step 1 and the overlapping sub-words (华人, 共和),
       i.e. the rest of ``cut_for_search``; the multiset of main + extras is exactly
       ``rjieba.cut_for_search`` of the cleaned text;
    3. the *codes*: archival identifiers kept whole (below).

Archival identifiers
    档号 (DA/T 13) such as ``Z109-WS·2024-Y-BGS-0001``: at least three parts joined by ``-`` or
    ``·``, Latin letters and digits (inner parts may be Chinese, e.g. a department name), at least one
    Latin letter, the last part digits. Its parts are ordinary tokens (z109 ws 2024 y bgs 0001) and
    the whole code is one more token with the separators removed: ``z109ws2024ybgs0001``.

    文号 (GB/T 9704 发文字号) such as ``国办发〔2024〕12号``: 发文机关代字, a four-digit year in
    brackets (〔〕 [] () （） 【】 〖〗 ［］ are all accepted), an optional 第, the sequence number and an
    optional 号. Its *normal form* (:func:`normalize_doc_number`) follows GB/T 9704: the year in 〔〕,
    the number without leading zeros (不编虚位) and without 第, ending in 号 — so ``国办发[2024]012``
    and ``国办发（2024）第12号`` both normalise to ``国办发〔2024〕12号``. The whole-code token is the
    normal form without brackets, lower-cased: ``国办发202412号`` (unambiguous, the year has four
    digits). In running text the 代字's left edge is unknown (根据国办发〔2024〕…), so a token is
    written for every suffix of the Chinese run before the bracket, two to ten characters long
    (办发202412号, 国办发202412号, 据国办发202412号, …); a query, segmented the same way, asks for a
    subset of them.

FTS5 and PostgreSQL
    Store :func:`index_text` in the FTS5 column and create the table with ``tokenize='ascii'``.
    ``ascii`` splits on ASCII non-alphanumerics only — here just the spaces — and treats every
    non-ASCII character as part of a token, so the index holds exactly our tokens, independently of
    the Unicode tables compiled into SQLite (``unicode61`` would also work, but would fold
    diacritics, which PostgreSQL does not, and depends on SQLite's Unicode version).
    In PostgreSQL use ``to_tsvector('simple', index_text)``: the default parser sees one word per
    token (letters and digits only; in a UTF-8 database CJK characters are letters) and ``simple``
    only lower-cases, so the lexemes are our tokens again. Queries come from :mod:`dangan.search.query`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import rjieba

SEGMENTATION_VERSION = "dangan-seg-1/rjieba-0.2.2"
"""Stored next to an index; when it differs from the running code's value, the index must be rebuilt."""

MAX_TOKEN_CHARS = 100
"""Longer tokens are dropped (a SHA-256 or SM3 hex digest, 64 characters, is still one token)."""

_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_DOTS = "\u30fb\u2022\u2027\u2219\u22c5\uff65\u00b7\u0387\u16eb\u2e31"
_TRANSLATE = {ord(c): "-" for c in _DASHES} | {ord(c): "·" for c in _DOTS}
_TRANSLATED = re.compile("[" + re.escape("".join(chr(c) for c in _TRANSLATE)) + "]")

# After NFKC: （） → ()  ［］ → []; 〔〕 【】 〖〗 stay as they are.
_OPEN = "〔[(【〖"
_CLOSE = "〕])】〗"
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_DAIZI = f"[a-z{_HAN}]"

# 发文字号 in normalised (lower-cased) text. Group 1: the run of Chinese/Latin letters before the
# bracket (its last characters are the 代字), 2: the year, 3: the number.
_DOC_NUMBER_IN_TEXT = re.compile(
    rf"({_DAIZI}+)\s*[{re.escape(_OPEN)}]\s*([0-9]{{4}})\s*[{re.escape(_CLOSE)}]\s*第?\s*([0-9]{{1,8}})(?:\s*号)?"
)
# 档号 in normalised text: ASCII first and last parts, inner parts may be Chinese, ≥ 3 parts.
_ARCHIVAL_CODE_IN_TEXT = re.compile(
    rf"(?<![0-9a-z·\-])[0-9a-z]+(?:[-·][0-9a-z{_HAN}]+)+[-·][0-9]+(?![0-9a-z])"
)
# The same 文号 found from its bracketed year (linear time on long runs of Chinese text).
_DOC_NUMBER_TAIL = re.compile(
    rf"[{re.escape(_OPEN)}]\s*([0-9]{{4}})\s*[{re.escape(_CLOSE)}]\s*第?\s*([0-9]{{1,8}})(?:\s*号)?"
)
_DAIZI_CHAR = re.compile(_DAIZI)
_CODE_SEPARATORS = re.compile(r"[-·]")
_LATIN = re.compile(r"[a-z]")
_NON_WORD = re.compile(r"[\W_]+")  # \w is str.isalnum() plus "_"
_SPACE = re.compile(r"\s+")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u2060-\u2064\ufeff\ud800-\udfff]")

_DAIZI_MIN, _DAIZI_MAX = 2, 10


def normalize(text: str) -> str:
    """NFKC, lower case, one hyphen and one middle dot; control characters become spaces, zero-width
    characters and lone surrogates are removed."""
    out = fold(text).lower()
    # lower() can produce characters that NFKC would change again (rare); settle it.
    if out.isascii() or unicodedata.is_normalized("NFKC", out):
        return out
    return unicodedata.normalize("NFKC", out).lower().translate(_TRANSLATE)


def fold(text: str) -> str:
    """normalize() without the lower-casing (the query lexer needs the case of OR and NOT)."""
    if not text:
        return ""
    text = _INVISIBLE.sub("", _CONTROL.sub(" ", text))
    if not unicodedata.is_normalized("NFKC", text):  # the quick check: most text is already NFKC
        text = unicodedata.normalize("NFKC", text)
    return text.translate(_TRANSLATE) if _TRANSLATED.search(text) else text


@dataclass(frozen=True)
class Analysis:
    """The three parts of a text's tokens (see the module docstring); segment() is their concatenation."""

    main: tuple[str, ...]
    extra: tuple[str, ...]
    codes: tuple[str, ...]

    @property
    def tokens(self) -> list[str]:
        return [*self.main, *self.extra, *self.codes]


def analyse(text: str) -> Analysis:
    """Segment *text* into the main stream, the search-mode extras and the whole-code tokens."""
    norm = normalize(text)
    codes = _code_tokens(norm)
    main: list[str] = []
    extra: list[str] = []
    cleaned = _NON_WORD.sub(" ", norm)
    if cleaned.strip():
        add_main, add_extra, refine, append = main.extend, extra.extend, _refine, main.append
        for word in rjieba.cut(cleaned):
            if len(word) <= 2 and word.isalnum():  # _refine's first rule, without the call
                append(word)
                continue
            fine, rest = refine(word)
            add_main(fine)
            if rest:
                add_extra(rest)
    return Analysis(tuple(main), tuple(extra), tuple(codes))


def word_tokens(text: str) -> list[str]:
    """The tokens a search *word* requires (query side): its main stream and its whole codes.

    A 文号 inside the word is required through its whole-code tokens only, not through its written
    parts, so 国办发（2024）第012号 asks for what 国办发〔2024〕12号 is indexed with.
    """
    norm = normalize(text)
    a = analyse(norm)
    if a.codes and _DOC_NUMBER_IN_TEXT.search(norm):
        a = Analysis(analyse(_DOC_NUMBER_IN_TEXT.sub(" ", norm)).main, (), a.codes)
    return list(dict.fromkeys([*a.main, *a.codes]))


def segment(text: str) -> list[str]:
    """Tokens to index for *text*: main stream, then extras, then whole codes (the module docstring).

    The same function, with the same rjieba version, segments documents and (through analyse())
    queries; its output is stable for a given :data:`SEGMENTATION_VERSION`.
    """
    return analyse(text).tokens


def index_text(text: str) -> str:
    """The space-joined tokens of :func:`segment`: the value to store in an FTS5 column (tokenize='ascii')
    or to pass to ``to_tsvector('simple', …)`` in PostgreSQL."""
    return " ".join(segment(text))


@lru_cache(maxsize=65536)
def _refine(word: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(main-stream pieces, extras) for one rjieba word, following cut_for_search's sub-word rule."""
    n = len(word)
    if not word.isalnum() or n > MAX_TOKEN_CHARS:  # the spaces between words, over-long tokens
        return (), ()
    if n <= 2:
        return (word,), ()
    grams: list[tuple[int, str]] = []
    for size in (2, 3):
        if n > size:
            for i in range(n - size + 1):
                g = word[i:i + size]
                if rjieba.has_word(g):
                    grams.append((i, g))
    if not grams:
        return (word,), ()
    tiling = _tile(n, grams)
    if tiling is None:
        return (word,), tuple(g for _, g in grams)
    used = set(tiling)
    rest = [word, *(g for i, g in grams if (i, g) not in used)]
    return tuple(g for _, g in tiling), tuple(rest)


def _tile(n: int, grams: list[tuple[int, str]]) -> list[tuple[int, str]] | None:
    """The non-overlapping cover of positions 0..n with the fewest sub-words (ties: longer first piece)."""
    starting: dict[int, list[tuple[int, str]]] = {}
    for i, g in grams:
        starting.setdefault(i, []).append((i, g))
    best: dict[int, list[tuple[int, str]] | None] = {n: []}
    for pos in range(n - 1, -1, -1):
        choice: list[tuple[int, str]] | None = None
        for i, g in sorted(starting.get(pos, []), key=lambda p: -len(p[1])):
            tail = best.get(pos + len(g))
            if tail is not None and (choice is None or len(tail) + 1 < len(choice)):
                choice = [(i, g), *tail]
        best[pos] = choice
    return best[0]


def _code_tokens(norm: str) -> list[str]:
    out: list[str] = []
    for m in _DOC_NUMBER_TAIL.finditer(norm):
        end = m.start()
        while end > 0 and norm[end - 1].isspace():
            end -= 1
        start = end
        while start > 0 and end - start < _DAIZI_MAX and _DAIZI_CHAR.match(norm[start - 1]):
            start -= 1
        run = norm[start:end]
        if not run:
            continue
        year, number = m.group(1), int(m.group(2))
        tail = f"{year}{number}号"
        sizes = range(_DAIZI_MIN, len(run) + 1) if len(run) >= _DAIZI_MIN else (len(run),)
        out.extend(run[-k:] + tail for k in sizes)
        if m.group(2) != str(number):  # 012号 is also found as 12号
            out.append(str(number))
    if "-" not in norm and "·" not in norm:
        return out
    for m in _ARCHIVAL_CODE_IN_TEXT.finditer(norm):
        code = m.group()
        if _LATIN.search(code) and len(_CODE_SEPARATORS.findall(code)) >= 2:
            key = _CODE_SEPARATORS.sub("", code)
            if len(key) <= MAX_TOKEN_CHARS:
                out.append(key)
    return out


# ---- normal forms of whole codes (exact lookups) ----------------------------------------------------

_DOC_NUMBER_EXACT = re.compile(
    rf"({_DAIZI}{{1,{_DAIZI_MAX * 2}}})[{re.escape(_OPEN)}]([0-9]{{4}})[{re.escape(_CLOSE)}]第?([0-9]{{1,8}})号?"
)
_ARCHIVAL_CODE_EXACT = re.compile(rf"[0-9a-z]+(?:[-·][0-9a-z{_HAN}]+)+[-·][0-9]+")


def normalize_doc_number(value: str) -> str | None:
    """The normal form of a whole 文号 (``国办发〔2024〕12号``), or None when *value* is not one.

    Brackets become 〔〕, 第 and leading zeros of the number are dropped, 号 is always written, white
    space is ignored, Latin letters of the 代字 are upper case. Compare stored values in this form.
    """
    compact = _SPACE.sub("", normalize(value))
    m = _DOC_NUMBER_EXACT.fullmatch(compact)
    if not m:
        return None
    return f"{m.group(1).upper()}〔{m.group(2)}〕{int(m.group(3))}号"


def normalize_archival_code(value: str) -> str | None:
    """The normal form of a whole 档号 (``Z109-WS·2024-Y-BGS-0001``), or None when *value* is not one.

    NFKC, hyphen/dot variants unified to ``-``/``·``, white space removed, Latin letters upper case.
    The separators are kept as written; :func:`code_key` ignores them.
    """
    compact = _SPACE.sub("", normalize(value))
    if not _ARCHIVAL_CODE_EXACT.fullmatch(compact) or not _LATIN.search(compact):
        return None
    if len(_CODE_SEPARATORS.findall(compact)) < 2:
        return None
    return compact.upper()


def code_key(normal_form: str) -> str:
    """The whole-code index token of a normal form: lower case, without separators or brackets.

    ``Z109-WS·2024-Y-BGS-0001`` → ``z109ws2024ybgs0001``; ``国办发〔2024〕12号`` → ``国办发202412号``.
    Two 档号 that differ only in their separators (``-`` for ``·``) have the same key.
    """
    return _NON_WORD.sub("", normalize(normal_form))
