"""Packages dangan writes and reads: DA/T 48-2009 EEP, BagIt bags with METS/PREMIS, and the package reader."""
