"""Formats: identification, validation, text extraction, conversion (identification grows in the preservation issue)."""
