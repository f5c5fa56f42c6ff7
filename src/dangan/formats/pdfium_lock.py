"""PDFium (pypdfium2) is not thread-safe: every use of it in dangan — text extraction, the page viewer, the
归档章 placement, scan intake, OFD pictures — holds this one lock. Re-entrant, so a caller already holding it may
call another user of PDFium."""

import threading

PDFIUM = threading.RLock()
