"""Archival rules as plain Python: no database, no files, no HTTP."""
