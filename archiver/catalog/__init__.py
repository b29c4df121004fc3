"""The catalog: SQLite, one store per concern over one connection (see db.py)."""

from .captures import COLUMNS, CaptureRow, XrefRow, iter_rows
from .db import Catalog, open_read_only, writable

__all__ = ["COLUMNS", "CaptureRow", "Catalog", "XrefRow", "iter_rows", "open_read_only", "writable"]
