"""Capture: safe parsing of what clerks and business systems hand in (pure functions, no database).

- `dates`: dates and whole numbers as clerks write them
- `workbook`: the Excel catalogue (归档文件目录), streamed, and the dry-run report
- `zipsafe`: ZIP archives of files, checked as a whole before anything is extracted
- `eep`: DA/T 48-2009 electronic record encapsulation packages (电子文件封装包)
"""

from dangan.capture.dates import parse_date, parse_int
from dangan.capture.eep import EepFile, EepPackage, parse_eep
from dangan.capture.workbook import Catalogue, CatalogueRow, ReportSummary, open_catalogue, write_report
from dangan.capture.zipsafe import SafeZip, ZipEntry

__all__ = [
    "Catalogue",
    "CatalogueRow",
    "EepFile",
    "EepPackage",
    "ReportSummary",
    "SafeZip",
    "ZipEntry",
    "open_catalogue",
    "parse_date",
    "parse_eep",
    "parse_int",
    "write_report",
]
