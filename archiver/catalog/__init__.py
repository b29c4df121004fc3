"""The catalog: one SQLite connection (db.py) shared by one store per concern, each with
its own tables and queries and no domain logic: ``catalog.captures``, ``catalog.history``,
``catalog.schedule`` and ``catalog.ledger``. What reindex rebuilds from the WARC files
and the ledger file, and what it cannot (the schedule, the ledger's head and
checkpoints), is said in each store."""

from __future__ import annotations

from pathlib import Path

from .captures import COLUMNS, CaptureRow, Captures, XrefRow, iter_rows
from .db import Database, Held, open_read_only, writable
from .history import History
from .ledger import LedgerState
from .schedule import Schedule
from . import captures, history, ledger, schedule

__all__ = ["COLUMNS", "CaptureRow", "Catalog", "XrefRow", "iter_rows", "open_read_only", "writable"]

SCHEMA = captures.SCHEMA + history.SCHEMA + ledger.SCHEMA + schedule.SCHEMA


class Catalog(Database):
    def __init__(self, path: Path, holding: Held | None = None):
        super().__init__(path, SCHEMA, holding)
        self.captures = Captures(self)
        self.history = History(self)
        self.schedule = Schedule(self)
        self.ledger = LedgerState(self)
        if not self.read_only:
            self.history.add_missing_columns()

    def clear_captured(self) -> None:
        """Every table reindex rebuilds from the WARC files and the ledger."""
        self.clear(("ledgered", *history.TABLES, "xrefs", "captures"))
