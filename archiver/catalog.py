"""SQLite catalog: schema and queries, no domain logic.

Rebuilt by ``reindex`` from the WARC files (and the ledger): ``captures``, ``xrefs``,
``observations``, ``versions``, ``changes``, ``ledgered``. Not rebuilt, because the
WARCs do not hold it: ``schedule``, ``hosts``, ``ledger_head``, ``checkpoints``.
WAL mode and a busy timeout let a ``snapshot`` and an ``archiver run`` write at once.
A catalog in a folder this process cannot write (a write-protected evidence copy) is
opened read-only, and immutable unless a write-ahead log beside it holds commits.
"""

from __future__ import annotations

import fcntl
import json
import operator
import os
import sqlite3
import urllib.parse
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Iterator

from .errors import ArchiverError
from .locks import WriterLock

SCHEMA = """
CREATE TABLE IF NOT EXISTS captures (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    seed TEXT NOT NULL,
    role TEXT NOT NULL,
    via TEXT NOT NULL,
    hops INTEGER NOT NULL,
    snapshot TEXT NOT NULL,
    chain INTEGER NOT NULL,        -- 1 for the hops of the seed's own redirect chain
    fetched_at TEXT NOT NULL,
    status INTEGER,
    record TEXT NOT NULL,          -- response | revisit | failed
    warc TEXT NOT NULL,            -- final file name, never the .open one
    offset INTEGER NOT NULL,       -- of the response/revisit record, or the metadata record of a failure
    length INTEGER NOT NULL,
    metadata_offset INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    payload_digest TEXT NOT NULL,
    block_digest TEXT NOT NULL,
    ip TEXT NOT NULL,
    mime TEXT NOT NULL,
    refers_to TEXT NOT NULL,
    truncated TEXT NOT NULL,
    error TEXT NOT NULL,
    UNIQUE (warc, offset)
);
CREATE INDEX IF NOT EXISTS captures_url ON captures (url, payload_digest);
CREATE INDEX IF NOT EXISTS captures_seed ON captures (seed, fetched_at);
CREATE TABLE IF NOT EXISTS xrefs (
    capture_id INTEGER NOT NULL REFERENCES captures (id) ON DELETE CASCADE,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,            -- read | body | requisite
    text TEXT NOT NULL,
    position INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS xrefs_capture ON xrefs (capture_id);
-- One row per capture of a tracked URL (the end of its redirect chain in a snapshot),
-- with the article extracted from it; rebuilt by reindex and reextract.
CREATE TABLE IF NOT EXISTS observations (
    capture_id INTEGER PRIMARY KEY REFERENCES captures (id) ON DELETE CASCADE,
    tracked_url TEXT NOT NULL,
    final_url TEXT NOT NULL,
    challenge TEXT NOT NULL,
    extractor TEXT NOT NULL,
    article TEXT,                 -- JSON, NULL when the capture holds no HTML page
    content_digest TEXT           -- diff.content_digest(article); NULL until a history build needs it
);
CREATE INDEX IF NOT EXISTS observations_url ON observations (tracked_url);
-- Keys of blocks a site renders anew on every request (noise.learn_noise), learned from
-- confirming fetches; derived from observations, so rebuilt with them.
CREATE TABLE IF NOT EXISTS noise (
    site TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (site, key)
);
-- Derived from observations by history.build_history, per tracked URL.
CREATE TABLE IF NOT EXISTS versions (
    tracked_url TEXT NOT NULL,
    number INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    captures INTEGER NOT NULL,
    title TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    kinds TEXT NOT NULL,          -- JSON list
    revert_of INTEGER,
    gone INTEGER NOT NULL,
    extractor TEXT NOT NULL,
    PRIMARY KEY (tracked_url, number)
);
CREATE TABLE IF NOT EXISTS changes (
    tracked_url TEXT NOT NULL,
    from_version INTEGER NOT NULL,
    to_version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    from_warc TEXT NOT NULL,
    from_offset INTEGER NOT NULL,
    from_time TEXT NOT NULL,
    to_warc TEXT NOT NULL,
    to_offset INTEGER NOT NULL,
    to_time TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_time ON changes (to_time);
-- Which ledger entry holds each capture; rebuilt by reindex from the ledger file.
CREATE TABLE IF NOT EXISTS ledgered (
    capture_id INTEGER PRIMARY KEY REFERENCES captures (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL
);
-- Kept outside the ledger file on purpose (NOT rebuilt): the latest head and every
-- checkpoint, so a truncated or rewritten ledger is detected.
CREATE TABLE IF NOT EXISTS ledger_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    count INTEGER NOT NULL,
    head TEXT NOT NULL,
    public_key TEXT NOT NULL,
    signature TEXT NOT NULL
);
-- Scheduler state: NOT rebuilt by reindex (it is not in the WARCs). Times are UNIX seconds.
CREATE TABLE IF NOT EXISTS schedule (
    url TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    added REAL NOT NULL,
    next_due REAL NOT NULL,
    last_started REAL,
    last_finished REAL,
    last_result TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS schedule_due ON schedule (next_due);
CREATE TABLE IF NOT EXISTS hosts (
    host TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,     -- consecutive: no response, 5xx, 429
    backoff_until REAL NOT NULL,
    last_error TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class CaptureRow:
    url: str
    seed: str
    role: str
    via: str
    hops: int
    snapshot: str
    chain: int
    fetched_at: str
    status: int | None
    record: str
    warc: str
    offset: int
    length: int
    metadata_offset: int
    record_id: str = ""
    payload_digest: str = ""
    block_digest: str = ""
    ip: str = ""
    mime: str = ""
    refers_to: str = ""
    truncated: str = ""
    error: str = ""


@dataclass(frozen=True)
class XrefRow:
    target: str
    kind: str
    text: str
    position: int


COLUMNS = [f.name for f in fields(CaptureRow)]
capture_values = operator.attrgetter(*COLUMNS)  # dataclasses.astuple deep-copies: 40 µs a row
xref_values = operator.attrgetter(*(f.name for f in fields(XrefRow)))
DERIVED_FROM_OBSERVATIONS = ("observations", "versions", "changes", "noise")


class Catalog:
    def __init__(self, path: Path, holding: WriterLock | None = None):
        """holding: a lock to let go when the catalog is closed (see locks.reading)."""
        self.holding = holding
        path.parent.mkdir(parents=True, exist_ok=True)
        self.read_only = not writable(path)
        self.write_lock: IO[bytes] | None = None
        if self.read_only:
            self.db = open_read_only(path)
            return
        try:
            self.db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a crash never corrupts the catalog; an OS crash may lose the last
            # commits, which reindex rebuilds from the (fsynced) WARC files.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=30000")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
            self._add_missing_columns()
        except sqlite3.DatabaseError as e:
            raise ArchiverError(f"catalog {path}: {e}") from e
        self.write_lock = open(path.with_name(path.name + ".lock"), "a+b")

    def _add_missing_columns(self) -> None:
        """Columns added since a catalog was created (its derived tables are rebuilt by
        reindex, but an old catalog must still open)."""
        have = {row[1] for row in self.db.execute("PRAGMA table_info(observations)")}
        if "content_digest" not in have:
            self.add_column("observations", "content_digest TEXT")

    def add_column(self, table: str, column: str) -> None:
        """ALTER TABLE table ADD COLUMN column, unless another process just added it."""
        try:
            self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
        except sqlite3.OperationalError as e:
            if "duplicate column" not in str(e):
                raise

    def copy_log_back(self) -> None:
        """Copy the write-ahead log into the database file now, alongside other writers:
        the last connection to close, which copies what is left, then has little to do."""
        self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        self.db.close()
        if self.write_lock is not None:
            self.write_lock.close()
        if self.holding is not None:
            self.holding.close()

    def add_capture(self, row: CaptureRow, xrefs: list[XrefRow]) -> int | None:
        return self.add_captures([(row, xrefs)])[0]

    def add_captures(self, rows: list[tuple[CaptureRow, list[XrefRow]]]) -> list[int | None]:
        """Insert captures and their cross-references in one transaction; each one's id,
        or None where a row for the same record already exists."""
        ids: list[int | None] = []
        with self.transaction():
            for row, xrefs in rows:
                cur = self.db.execute(
                    f"INSERT OR IGNORE INTO captures ({', '.join(COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(COLUMNS))})", capture_values(row))
                if cur.rowcount == 0:
                    ids.append(None)
                    continue
                ids.append(cur.lastrowid)
                self.db.executemany(
                    "INSERT INTO xrefs (capture_id, target, kind, text, position) VALUES (?, ?, ?, ?, ?)",
                    [(cur.lastrowid, *xref_values(x)) for x in xrefs])
        return ids

    def find_originals(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str, str]]:
        """For (url, payload digest) pairs: (record id, url, date) of the first stored
        response with that URL and payload, where there is one. One query per 500 URLs."""
        urls = sorted({url for url, _ in keys})
        wanted = set(keys)
        found: dict[tuple[str, str], tuple[str, str, str]] = {}
        for i in range(0, len(urls), 500):
            chunk = urls[i:i + 500]
            rows = self.db.execute(
                f"SELECT url, payload_digest, record_id, fetched_at FROM captures WHERE url IN "
                f"({', '.join('?' * len(chunk))}) AND record = 'response' AND truncated = '' "
                f"ORDER BY fetched_at DESC", chunk)
            for url, digest, record_id, fetched_at in rows:  # the earliest comes last and wins
                if (url, digest) in wanted:
                    found[(url, digest)] = (record_id, url, fetched_at)
        return found

    def iter_captures(self) -> Iterator[CaptureRow]:
        """Every capture, a row at a time (in the order they were added), for checks over
        the whole catalog that must not hold it in memory."""
        for r in self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM captures ORDER BY id"):
            yield CaptureRow(*r)

    def captures(self, url: str | None = None) -> list[CaptureRow]:
        where, args = ("WHERE url = ? OR seed = ?", (url, url)) if url else ("", ())
        rows = self.db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM captures {where} ORDER BY fetched_at, warc, offset", args)
        return [CaptureRow(*r) for r in rows]

    # ---- observations, versions, changes ----------------------------------------------

    def add_observation(self, capture_id: int, tracked_url: str, final_url: str, challenge: str,
                        extractor: str, article_json: str | None) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO observations (capture_id, tracked_url, final_url, challenge, extractor, article) "
                "VALUES (?, ?, ?, ?, ?, ?)", (capture_id, tracked_url, final_url, challenge, extractor, article_json))

    def observations(self, tracked_url: str) -> list[sqlite3.Row]:
        return self._rows(
            "SELECT o.*, c.warc, c.offset, c.fetched_at, c.status, c.error, c.role FROM observations o "
            "JOIN captures c ON c.id = o.capture_id WHERE o.tracked_url = ? ORDER BY c.fetched_at, c.id",
            (tracked_url,))

    def chain_ends(self) -> list[sqlite3.Row]:
        """The last fetch of each tracked URL's own chain (redirect hops, retries) per
        snapshot, and of its confirming fetch (role confirm) apart."""
        return self._rows(
            "SELECT c.id, c.seed, c.url, c.record, c.refers_to, c.warc, c.offset, c.status FROM captures c "
            "WHERE c.chain = 1 AND c.fetched_at = (SELECT MAX(d.fetched_at) FROM captures d "
            " WHERE d.snapshot = c.snapshot AND d.seed = c.seed AND d.chain = 1 "
            " AND (d.role = 'confirm') = (c.role = 'confirm')) ORDER BY c.fetched_at, c.id")

    def add_noise(self, site: str, keys: frozenset[str]) -> None:
        with self.transaction():
            self.db.executemany("INSERT OR IGNORE INTO noise (site, key) VALUES (?, ?)", [(site, k) for k in keys])

    def has_noise(self) -> bool:
        return self.db.execute("SELECT 1 FROM noise LIMIT 1").fetchone() is not None

    def noise(self, site: str) -> frozenset[str]:
        return frozenset(r[0] for r in self.db.execute("SELECT key FROM noise WHERE site = ?", (site,)))

    def record_location(self, record_id: str) -> tuple[str, int] | None:
        return self.db.execute("SELECT warc, offset FROM captures WHERE record_id = ?", (record_id,)).fetchone()

    def replace_history(self, tracked_url: str, versions: list[tuple], changes: list[tuple],
                        digests: list[tuple[str, str, int]]) -> None:
        """A tracked URL's versions and changes, and the content digests (digest, warc,
        offset) of its observations worked out while building them."""
        with self.transaction():
            self.db.executemany("UPDATE observations SET content_digest = ? WHERE capture_id = "
                                "(SELECT id FROM captures WHERE warc = ? AND offset = ?)", digests)
            self.db.execute("DELETE FROM versions WHERE tracked_url = ?", (tracked_url,))
            self.db.execute("DELETE FROM changes WHERE tracked_url = ?", (tracked_url,))
            self.db.executemany(f"INSERT INTO versions VALUES ({', '.join('?' * 11)})", versions)
            self.db.executemany(f"INSERT INTO changes VALUES ({', '.join('?' * 12)})", changes)

    def changes_since(self, since: str) -> list[sqlite3.Row]:
        return self._rows("SELECT * FROM changes WHERE to_time >= ? ORDER BY to_time, tracked_url", (since,))

    def latest_changes(self, limit: int) -> list[sqlite3.Row]:
        rows = self._rows("SELECT * FROM changes ORDER BY to_time DESC, tracked_url LIMIT ?", (limit,))
        return rows[::-1]

    def article_titles(self) -> dict[tuple[str, int], str]:
        """(warc, offset) of each observed capture -> the title of its article."""
        rows = self.db.execute("SELECT c.warc, c.offset, o.article FROM observations o JOIN captures c "
                               "ON c.id = o.capture_id WHERE o.article IS NOT NULL")
        return {(w, o): json.loads(a).get("title", "") for w, o, a in rows}

    def clear_observations(self) -> None:
        self._clear(DERIVED_FROM_OBSERVATIONS)

    def observed_capture_ids(self) -> set[int]:
        return {r[0] for r in self.db.execute("SELECT capture_id FROM observations")}

    def last_observed(self) -> dict[str, str]:
        """tracked URL -> time of its newest capture that was observed."""
        return dict(self.db.execute(
            "SELECT o.tracked_url, MAX(c.fetched_at) FROM observations o JOIN captures c ON c.id = o.capture_id "
            "GROUP BY o.tracked_url").fetchall())

    # ---- scheduler state ------------------------------------------------------------------

    def sync_schedule(self, urls: dict[str, str], now: float) -> tuple[int, int]:
        """Make the schedule hold exactly these URLs (url -> host); new ones are due now.
        Returns (added, removed)."""
        with self.transaction():  # the read too: another archiver run may be syncing the same seeds
            known = {r[0] for r in self.db.execute("SELECT url FROM schedule")}
            added = [(u, h, now, now) for u, h in urls.items() if u not in known]
            removed = [(u,) for u in known - urls.keys()]
            self.db.executemany("INSERT INTO schedule (url, host, added, next_due) VALUES (?, ?, ?, ?)", added)
            self.db.executemany("DELETE FROM schedule WHERE url = ?", removed)
        return len(added), len(removed)

    def due(self, now: float, limit: int, exclude: set[str]) -> list[str]:
        """Due URLs, most overdue first, skipping hosts that are backed off."""
        rows = self.db.execute(
            "SELECT s.url FROM schedule s LEFT JOIN hosts h ON h.host = s.host "
            "WHERE s.next_due <= ? AND (h.backoff_until IS NULL OR h.backoff_until <= ?) "
            "ORDER BY s.next_due LIMIT ?", (now, now, limit + len(exclude)))
        return [r[0] for r in rows if r[0] not in exclude][:limit]

    def mark_started(self, urls: list[str], now: float) -> None:
        with self.transaction():
            self.db.executemany("UPDATE schedule SET last_started = ? WHERE url = ?", [(now, u) for u in urls])

    def mark_finished(self, rows: list[tuple[str, float, str, float]]) -> None:
        """(url, next_due, result, finished) per seed of a finished snapshot."""
        with self.transaction():
            self.db.executemany("UPDATE schedule SET next_due = ?, last_result = ?, last_finished = ? WHERE url = ?",
                                [(due, result, finished, url) for url, due, result, finished in rows])

    def schedule_rows(self) -> list[sqlite3.Row]:
        return self._rows("SELECT * FROM schedule ORDER BY url")

    def added_at(self, url: str) -> float | None:
        row = self.db.execute("SELECT added FROM schedule WHERE url = ?", (url,)).fetchone()
        return row[0] if row else None

    def last_change(self, url: str) -> str | None:
        row = self.db.execute("SELECT MAX(first_seen) FROM versions WHERE tracked_url = ?", (url,)).fetchone()
        return row[0] if row else None

    def record_host_outcomes(self, outcomes: dict[str, str], now: float, threshold: int,
                             backoff: float, backoff_max: float) -> None:
        """host -> "" (answered) or an error; a host failing ``threshold`` times in a row is
        backed off, doubling while it keeps failing."""
        with self.transaction():
            for host, error in outcomes.items():
                if not error:
                    self.db.execute("DELETE FROM hosts WHERE host = ?", (host,))
                    continue
                row = self.db.execute("SELECT failures FROM hosts WHERE host = ?", (host,)).fetchone()
                failures = (row[0] if row else 0) + 1
                doublings = min(failures - threshold, 30)  # bounded: 2 ** 1000 overflows a float
                until = now + min(backoff * 2 ** doublings, backoff_max) if failures >= threshold else 0.0
                self.db.execute("INSERT OR REPLACE INTO hosts VALUES (?, ?, ?, ?)", (host, failures, until, error))

    def host_rows(self) -> list[sqlite3.Row]:
        return self._rows("SELECT * FROM hosts ORDER BY failures DESC, host")

    # ---- ledger bookkeeping ----------------------------------------------------------------

    def mark_ledgered(self, pairs: list[tuple[int, int]], head: tuple[int, str]) -> None:
        """(capture id, ledger seq) pairs, and the ledger's new head."""
        with self.transaction():
            self.db.executemany("INSERT OR REPLACE INTO ledgered (capture_id, seq) VALUES (?, ?)", pairs)
            self.db.execute("INSERT INTO ledger_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE "
                            "SET seq = excluded.seq, hash = excluded.hash WHERE excluded.seq > ledger_head.seq", head)

    def unledgered(self) -> list[CaptureRow]:
        rows = self.db.execute(
            f"SELECT {', '.join('c.' + c for c in COLUMNS)}, c.id FROM captures c "
            "LEFT JOIN ledgered l ON l.capture_id = c.id WHERE l.capture_id IS NULL ORDER BY c.id").fetchall()
        return [CaptureRow(*r[:-1]) for r in rows]

    def capture_id(self, warc: str, offset: int) -> int | None:
        row = self.db.execute("SELECT id FROM captures WHERE warc = ? AND offset = ?", (warc, offset)).fetchone()
        return row[0] if row else None

    def add_checkpoint(self, entry: dict) -> None:
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)",
                            (entry["seq"], entry["time"], entry["count"], entry["head"],
                             entry.get("public_key", ""), entry.get("signature", "")))

    def recorded_key(self) -> str | None:
        """The public key of the first signed checkpoint or key entry kept here: once an
        archive has signed, it has a key."""
        row = self.db.execute("SELECT public_key FROM checkpoints WHERE public_key != '' ORDER BY seq LIMIT 1").fetchone()
        return row[0] if row else None

    def ledger_head(self) -> tuple[int, str] | None:
        head = self.db.execute("SELECT seq, hash FROM ledger_head WHERE id = 1").fetchone()
        return tuple(head) if head else None

    def iter_checkpoints(self) -> Iterator[sqlite3.Row]:
        """Every checkpoint (and key entry) kept here, a row at a time."""
        cur = self.db.cursor()
        cur.row_factory = sqlite3.Row
        yield from cur.execute("SELECT * FROM checkpoints ORDER BY seq")

    def _rows(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        cur = self.db.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(sql, args).fetchall()

    def dump(self) -> tuple[list[tuple], list[tuple]]:
        """Every captured row, without ids, in a stable order (to compare catalogs)."""
        caps = self.db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM captures ORDER BY warc, offset").fetchall()
        refs = self.db.execute(
            "SELECT c.warc, c.offset, x.target, x.kind, x.text, x.position FROM xrefs x "
            "JOIN captures c ON c.id = x.capture_id ORDER BY c.warc, c.offset, x.position, x.target").fetchall()
        return caps, refs

    def clear_captured(self) -> None:
        self._clear(("ledgered", *DERIVED_FROM_OBSERVATIONS, "xrefs", "captures"))

    def _clear(self, tables: tuple[str, ...]) -> None:
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


def open_read_only(path: Path) -> sqlite3.Connection:
    """The catalog read-only: immutable (no lock, no shared-memory file to create) unless
    a write-ahead log beside it holds commits, which only a reader able to use its
    shared-memory file sees."""
    log = path.with_name(path.name + "-wal")
    logged = log.exists() and log.stat().st_size > 0
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro" + ("" if logged else "&immutable=1")
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1")
    except sqlite3.DatabaseError as e:
        why = " (its write-ahead log needs its -shm file beside it)" if logged else ""
        raise ArchiverError(f"catalog {path}: cannot be read from read-only storage: {e}{why}") from e
    return db


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT/ROLLBACK under an flock on ``<catalog>.lock``. Writers
    in other processes (capture workers, a snapshot next to ``archiver run``) queue on
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


def iter_rows(rows: list[CaptureRow]) -> Iterator[dict]:
    for row in rows:
        yield dict(zip(COLUMNS, capture_values(row)))
