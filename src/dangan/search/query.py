"""The search-box query language: parsed into an AST, compiled to SQLite FTS5 and PostgreSQL tsquery.

Syntax (after NFKC, so full-width （）：＂ work like ( ) : ")

    档案 归档              both words (AND); each word is segmented like documents, and all of its
                           main-stream segments are required: 档案管理 → 档案 AND 管理; a 档号 or 文号
                           in a word is also required whole (segment.word_tokens)
    "电子档案管理"          a phrase: its segments, consecutive and in order (also “…” 「…」 『…』)
    通知 OR 通报, 通知 或 通报   either
    -草稿, NOT 草稿         exclusion (needs at least one positive word beside it)
    (通知 OR 通报) 归档      grouping
    题名:通知  文号:国办发   field prefixes: 题名 文号 责任者 档号 主题词 全文 (or the field codes
                           title doc_number responsible archival_code keywords content); a prefix
                           applies to the word, phrase or parenthesised group after it
    国办发[2024]12号         a whole query that is a 文号 or a 档号 (optionally with 文号:/档号: and
    Z109-WS·2024-Y-BGS-0001  quotes) is an exact-code lookup: Query.exact, with Query.root kept as the
                           full-text fallback

Operators are recognised only as separate words (档案或文件 is three segments, not an OR). Nothing
the user types is ever passed to an engine as syntax: words become segments made of letters and
digits only, and the compilers quote every one of them. parse() never raises; whatever it had to drop
or repair is explained, in Chinese, in Query.notices.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from dangan.search.segment import (
    _DOC_NUMBER_IN_TEXT,
    analyse,
    code_key,
    fold,
    normalize,
    normalize_archival_code,
    normalize_doc_number,
    word_tokens,
)

MAX_QUERY_CHARS = 500
MAX_TERMS = 32
MAX_SEGMENTS = 64  # per word or phrase
MAX_DEPTH = 8  # parenthesis nesting

FIELDS: dict[str, str] = {
    "题名": "title",
    "文号": "doc_number",
    "责任者": "responsible",
    "档号": "archival_code",
    "主题词": "keywords",
    "全文": "content",
}
FIELD_CODES = tuple(FIELDS.values())
FIELD_LABELS = {v: k for k, v in FIELDS.items()}

DEFAULT_TS_WEIGHTS: dict[str, str] = {
    "title": "A",
    "doc_number": "B",
    "archival_code": "B",
    "responsible": "C",
    "keywords": "C",
    "content": "D",
}
"""Field → tsvector weight for to_tsquery(): PostgreSQL has four weights for six fields, so 文号/档号 and
责任者/主题词 share one. Build the document vector with the same mapping, e.g.
``setweight(to_tsvector('simple', title_idx), 'A') || setweight(to_tsvector('simple', doc_number_idx), 'B')
|| …``, where each ``*_idx`` is index_text() of the field."""


# ---- AST -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Term:
    """A word or phrase as typed (normalised), its segments, and the field it is limited to (or None)."""

    text: str
    segments: tuple[str, ...]
    phrase: bool = False
    field: str | None = None
    highlights: tuple[str, ...] = ()


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """Exclusion; only ever a child of And, beside at least one positive child."""

    child: Node


Node = Term | And | Or | Not


@dataclass(frozen=True)
class ExactCode:
    """A whole query that is one 档号 or 文号: the service may look it up in a plain index.

    ``value`` is the normal form (normalize_archival_code / normalize_doc_number), ``key`` the
    separator-insensitive whole-code token (code_key), ``field`` archival_code or doc_number.
    """

    field: str
    value: str
    key: str


@dataclass(frozen=True)
class Query:
    root: Node | None
    exact: ExactCode | None = None
    notices: tuple[str, ...] = ()
    text: str = ""

    @property
    def empty(self) -> bool:
        """Nothing to search for: show the notices (if any) and no results."""
        return self.root is None and self.exact is None


# ---- lexer -----------------------------------------------------------------------------------------

_QUOTES = {'"': '"”', "“": "”\"", "「": "」", "『": "』"}
_STOP = frozenset('()"“”「」『』')
_FIELD_RE = re.compile(
    r"(" + "|".join(sorted([*FIELDS, *FIELD_CODES], key=len, reverse=True)) + r")\s*:", re.IGNORECASE
)
_DOC_NUMBER_AT = re.compile(_DOC_NUMBER_IN_TEXT.pattern, re.IGNORECASE)

_LP, _RP, _OR, _NOT, _FIELD, _WORD, _PHRASE = "(", ")", "OR", "NOT", "FIELD", "WORD", "PHRASE"


@dataclass
class _Tok:
    kind: str
    value: str = ""


def _lex(q: str, notes: _Notes) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(q)
    while i < n:
        c = q[i]
        if c.isspace():
            i += 1
        elif c in "()":
            toks.append(_Tok(c))
            i += 1
        elif c in _QUOTES:
            closers = _QUOTES[c]
            j = i + 1
            while j < n and q[j] not in closers:
                j += 1
            if j >= n:
                notes.add("引号不成对，已把引号后的全部内容作为短语")
            toks.append(_Tok(_PHRASE, q[i + 1:j]))
            i = j + 1
        elif c in "”」』":
            i += 1  # a closing quote without an opening one: ignore
        elif c == "-" and i + 1 < n and not q[i + 1].isspace() and q[i + 1] not in ")-":
            toks.append(_Tok(_NOT))
            i += 1
        elif m := _FIELD_RE.match(q, i):
            toks.append(_Tok(_FIELD, FIELDS.get(m.group(1), m.group(1).lower())))
            i = m.end()
        elif m := _DOC_NUMBER_AT.match(q, i):  # keeps the () of 国办发(2024)12号 inside the word
            toks.append(_Tok(_WORD, q[i:m.end()]))
            i = m.end()
        else:
            j = i
            while j < n and not q[j].isspace() and q[j] not in _STOP:
                j += 1
            word = q[i:j]
            if word in ("OR", "或", "|", "||"):
                toks.append(_Tok(_OR))
            elif word == "NOT":
                toks.append(_Tok(_NOT))
            elif word not in ("AND", "&", "&&", "+"):
                toks.append(_Tok(_WORD, word))
            i = j
    return toks


# ---- parser ----------------------------------------------------------------------------------------

class _Notes:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, msg: str) -> None:
        if msg not in self.items:
            self.items.append(msg)


@dataclass
class _Parser:
    toks: list[_Tok]
    notes: _Notes
    pos: int = 0
    terms: int = 0
    dropped: list[str] = field(default_factory=list)
    unsearchable: list[str] = field(default_factory=list)

    def peek(self) -> str | None:
        return self.toks[self.pos].kind if self.pos < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def parse(self) -> Node | None:
        branches = [self.parse_or(0, None)]
        while self.peek() == _RP:  # a stray closing parenthesis at the top
            self.take()
            self.notes.add("多余的右括号已忽略")
            branches.append(self.parse_or(0, None))
        return _and(branches, self.notes) if len(branches) > 1 else branches[0]

    def parse_or(self, depth: int, fld: str | None) -> Node | None:
        branches = [self.parse_and(depth, fld)]
        while self.peek() == _OR:
            self.take()
            branches.append(self.parse_and(depth, fld))
        if len(branches) > 1 and any(b is None for b in branches):
            self.notes.add("OR（或）两边都要有检索词，多余的 OR 已忽略")
        kept = [b for b in branches if b is not None]
        if not kept:
            return None
        return kept[0] if len(kept) == 1 else Or(tuple(_flatten(kept, Or)))

    def parse_and(self, depth: int, fld: str | None) -> Node | None:
        items: list[Node | None] = []
        while (k := self.peek()) is not None and k != _OR and k != _RP:
            items.append(self.parse_unary(depth, fld))
        return _and(items, self.notes)

    def parse_unary(self, depth: int, fld: str | None) -> Node | None:
        negate = False
        saw_not = False
        while self.peek() == _NOT:
            self.take()
            negate, saw_not = not negate, True
        while self.peek() == _FIELD:
            fld = self.take().value
        k = self.peek()
        if k is None or k in (_OR, _RP, _NOT):
            if saw_not:
                self.notes.add("NOT（-）后面没有检索词，已忽略")
            elif k != _NOT:
                self.notes.add("字段名后面没有检索词，已忽略")
            return None
        node = self.parse_primary(depth, fld)
        if node is None or not negate:
            return node
        return Not(node)

    def parse_primary(self, depth: int, fld: str | None) -> Node | None:
        tok = self.take()
        if tok.kind == _LP:
            inner_depth = depth + 1
            if inner_depth > MAX_DEPTH:
                self.notes.add(f"括号嵌套超过 {MAX_DEPTH} 层，多出的括号已忽略")
                inner_depth = depth
            node = self.parse_or(inner_depth, fld)
            if self.peek() == _RP:
                self.take()
            else:
                self.notes.add("括号不成对，已在结尾补上右括号")
            return node
        return self.term(tok.value, tok.kind == _PHRASE, fld)

    def term(self, raw: str, phrase: bool, fld: str | None) -> Term | None:
        text = normalize(raw).strip()
        a = analyse(text)
        # a word needs all of its segments and whole codes; a phrase, its main stream in order
        segs = list(a.main) if phrase else word_tokens(text)
        if not segs:
            if text:
                self.unsearchable.append(text)
            return None
        if self.terms >= MAX_TERMS:
            self.dropped.append(text)
            return None
        self.terms += 1
        if len(segs) > MAX_SEGMENTS:
            self.notes.add(f"“{_short(text)}”切分后超过 {MAX_SEGMENTS} 个词，只使用了前 {MAX_SEGMENTS} 个")
            segs = segs[:MAX_SEGMENTS]
        return Term(text, tuple(segs), phrase, fld, _highlights(text, a.main))


def _short(s: str, n: int = 20) -> str:
    return s if len(s) <= n else s[:n] + "…"


def _highlights(text: str, main: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for m in _DOC_NUMBER_IN_TEXT.finditer(text):
        out.append(m.group())
        if nf := normalize_doc_number(m.group()):
            out.append(normalize(nf))
    if normalize_archival_code(text):
        out.append(text)
    out.extend(main)
    return tuple(dict.fromkeys(out))


def _flatten(nodes: list[Node], kind: type) -> Iterator[Node]:
    for n in nodes:
        if isinstance(n, kind):
            yield from n.children  # type: ignore[union-attr]
        else:
            yield n


def _and(items: list[Node | None], notes: _Notes) -> Node | None:
    kept = list(_flatten([i for i in items if i is not None], And))
    pos = [n for n in kept if not isinstance(n, Not)]
    neg = [n for n in kept if isinstance(n, Not)]
    if not pos:
        if neg:
            notes.add("排除条件（-、NOT）要和至少一个检索词一起使用，单独的排除条件已忽略")
        return None
    children = tuple(dict.fromkeys([*pos, *neg]))
    return children[0] if len(children) == 1 else And(children)


def _exact(q: str) -> ExactCode | None:
    s = q.strip()
    want = None
    if m := _FIELD_RE.match(s):
        want = FIELDS.get(m.group(1), m.group(1).lower())
        if want not in ("doc_number", "archival_code"):
            return None
        s = s[m.end():].strip()
    if len(s) >= 2 and s[0] in _QUOTES and s[-1] in _QUOTES[s[0]]:
        s = s[1:-1].strip()
    if want in (None, "doc_number") and (nf := normalize_doc_number(s)):
        return ExactCode("doc_number", nf, code_key(nf))
    if want in (None, "archival_code") and (nf := normalize_archival_code(s)):
        return ExactCode("archival_code", nf, code_key(nf))
    return None


def parse(q: str) -> Query:
    """Parse the search box's text. Never raises; see Query.notices for what was dropped or repaired."""
    notes = _Notes()
    try:
        text = fold(q) if isinstance(q, str) else ""
    except Exception:  # pragma: no cover - fold() handles every str; belt and braces for user input
        text = ""
    if len(text) > MAX_QUERY_CHARS:
        notes.add(f"检索式超过 {MAX_QUERY_CHARS} 个字符，只使用了前 {MAX_QUERY_CHARS} 个字符")
        text = text[:MAX_QUERY_CHARS]
    text = text.strip()
    if not text:
        return Query(None, None, tuple(notes.items), "")
    exact = _exact(text)
    parser = _Parser(_lex(text, notes), notes)
    root = parser.parse()
    if parser.dropped:
        shown = "、".join(f"“{_short(t, 10)}”" for t in parser.dropped[:5])
        more = f"等 {len(parser.dropped)} 个" if len(parser.dropped) > 5 else ""
        notes.add(f"检索词最多 {MAX_TERMS} 个，已忽略：{shown}{more}")
    if parser.unsearchable:
        shown = "、".join(f"“{_short(t, 10)}”" for t in parser.unsearchable[:5])
        notes.add(f"{shown} 不含可检索的文字（只有标点或符号），已忽略")
    if root is None and exact is None and parser.terms == 0 and not notes.items:
        notes.add("没有可检索的文字")
    return Query(root, exact, tuple(notes.items), text)


# ---- compilers -------------------------------------------------------------------------------------

_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def to_fts5(query: Query, columns: Mapping[str, str] | None = None) -> str:
    """The FTS5 MATCH expression for *query* (bind it as a parameter: ``… WHERE t MATCH ?``).

    Every segment is a double-quoted FTS5 string, so nothing typed is read as FTS5 syntax; a field
    becomes a column filter ``{column} : (…)``. *columns* maps field codes to the FTS5 column names
    (default: the field codes themselves). The table is expected to hold index_text() of each field,
    created with ``tokenize='ascii'``. Raises ValueError for an empty query: check ``query.empty``.
    """
    if query.root is None:
        raise ValueError("空检索式没有 FTS5 表达式（先检查 Query.empty）")
    cols = dict(zip(FIELD_CODES, FIELD_CODES, strict=True))
    if columns:
        cols.update(columns)
    for name in cols.values():
        if not _COLUMN_NAME.fullmatch(name):
            raise ValueError(f"FTS5 列名无效：{name!r}")
    return _fts5(query.root, cols)


def _fts5_str(seg: str) -> str:
    return '"' + seg.replace('"', '""') + '"'


def _fts5(node: Node, cols: Mapping[str, str]) -> str:
    if isinstance(node, Term):
        if node.phrase:
            body = " + ".join(_fts5_str(s) for s in node.segments)
        else:
            body = " AND ".join(_fts5_str(s) for s in node.segments)
        if len(node.segments) > 1:
            body = f"({body})"
        return f"{{{cols[node.field]}}} : {body}" if node.field else body
    if isinstance(node, Or):
        return "(" + " OR ".join(_fts5(c, cols) for c in node.children) + ")"
    if isinstance(node, And):
        pos = [_fts5(c, cols) for c in node.children if not isinstance(c, Not)]
        neg = [_fts5(c.child, cols) for c in node.children if isinstance(c, Not)]
        expr = pos[0] if len(pos) == 1 else "(" + " AND ".join(pos) + ")"
        if neg:
            expr = f"({expr} NOT " + (neg[0] if len(neg) == 1 else "(" + " OR ".join(neg) + ")") + ")"
        return expr
    raise TypeError(f"unexpected node {node!r}")  # Not only appears inside And


def to_tsquery(query: Query, weights: Mapping[str, str] | None = None) -> str:
    """The text for ``to_tsquery('simple', %s)`` (bind it as a parameter, never format it into SQL).

    Every lexeme is single-quoted with ``'`` and ``\\`` escaped; operators are only ever ours
    (``& | ! <-> ( )``). A field restricts its lexemes to the tsvector weight(s) of *weights*
    (default DEFAULT_TS_WEIGHTS; 'A'…'D' or several, e.g. 'AB'). Raises ValueError for an empty query.
    """
    if query.root is None:
        raise ValueError("空检索式没有 tsquery（先检查 Query.empty）")
    w = dict(DEFAULT_TS_WEIGHTS)
    if weights:
        w.update(weights)
    for letters in w.values():
        if not letters or not set(letters) <= set("ABCD"):
            raise ValueError(f"tsvector 权重无效：{letters!r}")
    return _ts(query.root, w)


def _ts_lexeme(seg: str, weight: str) -> str:
    quoted = "'" + seg.replace("\\", "\\\\").replace("'", "''") + "'"
    return f"{quoted}:{weight}" if weight else quoted


def _ts(node: Node, weights: Mapping[str, str]) -> str:
    if isinstance(node, Term):
        wt = weights[node.field] if node.field else ""
        op = " <-> " if node.phrase else " & "
        body = op.join(_ts_lexeme(s, wt) for s in node.segments)
        return f"({body})" if len(node.segments) > 1 else body
    if isinstance(node, Or):
        return "(" + " | ".join(_ts(c, weights) for c in node.children) + ")"
    if isinstance(node, And):
        parts = [_ts(c, weights) for c in node.children if not isinstance(c, Not)]
        parts += ["!" + _ts(c.child, weights) for c in node.children if isinstance(c, Not)]
        return parts[0] if len(parts) == 1 else "(" + " & ".join(parts) + ")"
    raise TypeError(f"unexpected node {node!r}")


def highlight_terms(query: Query) -> list[str]:
    """Strings to mark in a snippet, longest first: the main-stream segments of every word and phrase
    that is not excluded, plus whole codes as typed and in normal form. They are normalised (NFKC,
    lower case), so match them against normalize()d text, case-insensitively."""
    out: list[str] = []
    if query.exact:
        out += [normalize(query.exact.value)]
    if query.root is not None:
        _collect(query.root, out)
    uniq = list(dict.fromkeys(s for s in out if s))
    return sorted(uniq, key=lambda s: (-len(s), uniq.index(s)))


def _collect(node: Node, out: list[str]) -> None:
    if isinstance(node, Term):
        out.extend(node.highlights)
    elif isinstance(node, And | Or):
        for c in node.children:
            _collect(c, out)
    # Not: excluded words are not highlighted
