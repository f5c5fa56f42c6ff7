"""dangan (档案): electronic records management for Chinese government agencies."""

__version__ = "0.1.0"
