"""Chinese full-text search core: segmentation (segment) and the search-box query language (query).

Pure functions, no I/O and no database code; the services build FTS5 / PostgreSQL queries from them.
"""

from dangan.search.query import (
    DEFAULT_TS_WEIGHTS,
    FIELDS,
    And,
    ExactCode,
    Not,
    Or,
    Query,
    Term,
    highlight_terms,
    parse,
    to_fts5,
    to_tsquery,
)
from dangan.search.segment import (
    SEGMENTATION_VERSION,
    code_key,
    index_text,
    normalize,
    normalize_archival_code,
    normalize_doc_number,
    segment,
)

__all__ = [
    "DEFAULT_TS_WEIGHTS",
    "FIELDS",
    "SEGMENTATION_VERSION",
    "And",
    "ExactCode",
    "Not",
    "Or",
    "Query",
    "Term",
    "code_key",
    "highlight_terms",
    "index_text",
    "normalize",
    "normalize_archival_code",
    "normalize_doc_number",
    "parse",
    "segment",
    "to_fts5",
    "to_tsquery",
]
