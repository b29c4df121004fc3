"""One SQLite connection and its transaction helper, which the catalog's stores share.

WAL mode and a busy timeout let a ``snapshot`` and an ``archiver run`` write at once.
A catalog in a folder this process cannot write (a write-protected evidence copy) is
opened read-only, and immutable unless a write-ahead log beside it holds commits.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import urllib.parse
from pathlib import Path
from typing import IO, Protocol

from archiver.errors import ArchiverError


class Held(Protocol):
    """A lock held while the connection is open (locks.reading)."""

    def close(self) -> None: ...


class Database:
    def __init__(self, path: Path, schema: str, holding: Held | None = None, read_only: bool = False):
        """schema: what to create where it is missing; holding: a lock to let go when the
        connection is closed (see locks.reading); read_only: only read, though the
        storage could be written (a reader beside a live writer, such as archiver serve)."""
        self.holding = holding
        path.parent.mkdir(parents=True, exist_ok=True)
        self.read_only = read_only or not writable(path)
        self.write_lock: IO[bytes] | None = None
        if self.read_only:
            self.db = open_read_only(path, live=writable(path))
        else:
            self._open(path, schema)

    def _open(self, path: Path, schema: str) -> None:
        try:
            self.db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a crash never corrupts the catalog; an OS crash may lose the last
            # commits, which reindex rebuilds from the (fsynced) WARC files.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=30000")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(schema)
        except sqlite3.DatabaseError as e:
            raise ArchiverError(f"catalog {path}: {e}") from e
        self.write_lock = open(path.with_name(path.name + ".lock"), "a+b")

    def add_column(self, table: str, column: str) -> None:
        """ALTER TABLE table ADD COLUMN column, unless another process just added it."""
        try:
            self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
        except sqlite3.OperationalError as e:
            if "duplicate column" not in str(e):
                raise

    def close(self) -> None:
        self.db.close()
        if self.write_lock is not None:
            self.write_lock.close()
        if self.holding is not None:
            self.holding.close()

    def rows(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        cur = self.db.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(sql, args).fetchall()

    def has_table(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None

    def add_tables(self, schema: str, marker: str) -> None:
        """A store's CREATE ... IF NOT EXISTS statements, run in one transaction unless its
        table ``marker`` is there already or the catalog is read-only (executescript would
        commit the transaction it is in)."""
        if self.read_only or self.has_table(marker):
            return
        with self.transaction():
            for statement in schema.split(";"):
                if statement.strip():
                    self.db.execute(statement)

    def clear(self, tables: tuple[str, ...]) -> None:
        with self.transaction():
            for table in tables:
                self.db.execute(f"DELETE FROM {table}")

    def transaction(self) -> "_Tx":
        """Writes in one transaction; the catalog's own writes made inside join it."""
        if self.write_lock is None:
            raise ArchiverError("the catalog is on storage this process cannot write: it can only be read")
        return _Tx(self.db, self.write_lock)


def writable(path: Path) -> bool:
    """Whether this process may write the catalog and create files beside it (its log)."""
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def open_read_only(path: Path, live: bool = False) -> sqlite3.Connection:
    """The catalog read-only: immutable (no lock, no shared-memory file to create) unless
    a write-ahead log beside it holds commits, which only a reader able to use its
    shared-memory file sees, or unless it is ``live``: a writer may commit while it is
    open, and what it commits is to be seen."""
    log = path.with_name(path.name + "-wal")
    logged = log.exists() and log.stat().st_size > 0
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro" + ("" if logged or live else "&immutable=1")
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1")
    except sqlite3.DatabaseError as e:
        why = " (its write-ahead log needs its -shm file beside it)" if logged and not live else ""
        where = "" if live else " from read-only storage"
        raise ArchiverError(f"catalog {path}: cannot be read{where}: {e}{why}") from e
    return db


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT/ROLLBACK under an flock on ``<catalog>.lock``. Writers
    in other processes (a snapshot next to ``archiver run``) queue on
    the flock and wake the moment it is released; SQLite's own busy handler would poll,
    sleeping 1 to 100 ms a time. One begun inside another joins it: its writes commit or
    roll back with the outer one."""

    def __init__(self, db: sqlite3.Connection, lock: IO[bytes]):
        self.db, self.lock = db, lock
        self.joined = db.in_transaction

    def __enter__(self) -> None:
        if self.joined:
            return
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            fcntl.flock(self.lock, fcntl.LOCK_UN)
            raise

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.joined:
            return  # an exception goes on to the outer transaction, which rolls back
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            fcntl.flock(self.lock, fcntl.LOCK_UN)

