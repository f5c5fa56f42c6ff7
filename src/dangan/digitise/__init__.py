"""Digitisation (数字化, DA/T 31-2017): scanned page images, image quality control, offline OCR, searchable PDF/A."""
