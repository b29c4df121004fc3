"""Every read (and the two seed writes) the web interface makes of an archive, in one place.

The interface reads the catalog through one read-only SQLite connection (``mode=ro``, never
``immutable``: ``archiver run`` may be writing beside it, and WAL lets it read while a
writer commits). Each request holds the archive's ``reading`` lock (locks.reading, shared,
as every writer takes it) only while it reads, so a writer is never held up and a
``reindex`` waits for no more than one request.

The tracked articles are the seed files, and the URLs captured as seeds that no seed file
names (``archiver snapshot URL``); to page them in SQL they are copied into a temporary
table of that connection (the seed files when they change, new observations' URLs as they
come), joined to the catalog's versions, schedule and observations a page at a time.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import tempfile
import threading
import urllib.parse
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from archiver.archive.records import TLS_TYPE, pem_certificates
from archiver.archive.locks import UrlLocks, reading
from archiver.archive.warcfile import warc_date
from archiver.catalog import Catalog, open_read_only, writable
from archiver.catalog.captures import Captures
from archiver.catalog.history import History as HistoryStore
from archiver.catalog.ledger import LedgerState
from archiver.catalog.schedule import Schedule
from archiver import library
from archiver.config import Config
from archiver.edits.history import CaptureRef, History
from archiver.edits.observe import load_history, version_diff
from archiver.edits.report import VersionDiff, atom_feed, change_event_json
from archiver.errors import ArchiverError, UsageError
from archiver.evidence.warcscan import ScannedRecord, WarcScan
from archiver.schedule.runner import seeds_fingerprint, tracked_seeds
from archiver.seeds import Seed, url_host

PAGE_SIZE = 50
HISTORIES_KEPT = 32  # histories kept built, the most recently shown


@dataclass(frozen=True)
class Filters:
    """What the tracked-articles page is narrowed to (empty: everything)."""
    tag: str = ""
    site: str = ""
    since: str = ""  # a WARC date: changed at or after it
    q: str = ""      # in the title of the latest version

    def where(self) -> tuple[str, list[Any]]:
        clauses, args = ["1"], []
        if self.tag:
            clauses.append("t.url IN (SELECT url FROM temp.web_tags WHERE tag = ?)")
            args.append(self.tag)
        if self.site:
            clauses.append("t.site = ?")
            args.append(self.site.lower())
        if self.since:
            clauses.append("t.url IN (SELECT tracked_url FROM changes WHERE to_time >= ?)")
            args.append(self.since)
        if self.q:
            clauses.append("(SELECT title FROM versions v WHERE v.tracked_url = t.url ORDER BY number DESC LIMIT 1)"
                           " LIKE ? ESCAPE '\\'")
            args.append("%" + self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        return " AND ".join(clauses), args


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int
    number: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


# One row of the tracked-articles page: the seed, its latest version (title, and the
# change that made it), its schedule and its newest observed capture.
_TRACKED_SQL = """
SELECT t.url, t.site, t.tags, t.schedule, s.next_due, s.last_result,
       v.number AS version, v.title, v.first_seen, v.kinds, v.gone,
       (SELECT c.fetched_at || ' ' || IFNULL(c.status, '') || ' ' || c.error FROM observations o
          JOIN captures c ON c.id = o.capture_id WHERE o.tracked_url = t.url
          ORDER BY c.fetched_at DESC, c.id DESC LIMIT 1) AS last_capture
FROM (SELECT * FROM temp.web_tracked t WHERE {where} ORDER BY t.url LIMIT ? OFFSET ?) t
LEFT JOIN schedule s ON s.url = t.url
LEFT JOIN versions v ON v.tracked_url = t.url
     AND v.number = (SELECT MAX(number) FROM versions WHERE tracked_url = t.url)
ORDER BY t.url
"""


class _ReadCatalog(Catalog):
    """The Catalog's queries over the interface's read-only connection (it writes nothing)."""

    def __init__(self, db: sqlite3.Connection):  # noqa: super().__init__ would open a writable one
        self.db, self.holding, self.read_only, self.write_lock = db, None, True, None
        self.captures, self.history = Captures(self), HistoryStore(self)
        self.schedule, self.ledger = Schedule(self), LedgerState(self)


class ArchiveData:
    """The archive as the interface sees it. Thread-safe: one request at a time reads."""

    def __init__(self, config: Config):
        self.config = config
        if not config.storage.catalog.exists():  # an archive nothing was captured into yet
            Catalog(config.storage.catalog).close()
        self.db = _connect(config.storage.catalog)
        self.catalog = _ReadCatalog(self.db)
        self._lock = threading.Lock()
        self._fingerprint: tuple | None = None
        self._observed = 0  # the highest observation (capture id) whose URL is in web_tracked
        self._histories: OrderedDict[str, tuple[tuple, History]] = OrderedDict()  # url -> (state, history)
        self.db.create_function("url_host", 1, _site, deterministic=True)
        self.db.execute("PRAGMA temp_store = MEMORY")
        self._tags: list[str] = []
        self.db.executescript(
            "CREATE TEMP TABLE web_tracked (url TEXT PRIMARY KEY, site TEXT NOT NULL, tags TEXT NOT NULL, "
            "schedule TEXT NOT NULL); CREATE INDEX temp.web_tracked_site ON web_tracked (site);"
            "CREATE TEMP TABLE web_tags (url TEXT NOT NULL, tag TEXT NOT NULL);"
            "CREATE INDEX temp.web_tags_tag ON web_tags (tag, url);")

    def close(self) -> None:
        self.db.close()

    def _rows(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        cur = self.db.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(sql, args).fetchall()

    @contextmanager
    def reading(self) -> Iterator[None]:
        """One request's reads: never while reindex rebuilds the catalog; writers go on."""
        lock = reading(self.config.storage.lock_dir)
        try:
            with self._lock:
                yield
        finally:
            if lock is not None:
                lock.close()

    # ---- tracked articles --------------------------------------------------------------

    def _sync_seeds(self) -> None:
        """Copy the seed files into the temporary tables when they have changed, and add
        the URLs captured since the last look (a snapshot of a URL no seed file names)."""
        fingerprint = seeds_fingerprint(self.config)
        upto = self.db.execute("SELECT IFNULL(MAX(capture_id), 0) FROM observations").fetchone()[0]
        if fingerprint != self._fingerprint or upto < self._observed:  # seeds edited, or a reindex
            self._load_seeds()
            self._fingerprint, self._observed = fingerprint, 0
        if upto > self._observed:
            self.db.execute("INSERT OR IGNORE INTO temp.web_tracked SELECT DISTINCT tracked_url, "
                            "url_host(tracked_url), '[]', '' FROM observations WHERE capture_id > ?", (self._observed,))
            self._observed = upto

    def _load_seeds(self) -> None:
        tracked = tracked_seeds(self.config)
        rows, tags = [], []
        for url, t in tracked.items():
            seed_tags = [v for k, v in t.seed.options if k == "tag"]
            rows.append((url, _site(url), json.dumps(seed_tags), t.schedule.describe()))
            tags += [(url, tag) for tag in seed_tags]
        self.db.execute("BEGIN")
        self.db.execute("DELETE FROM temp.web_tracked")
        self.db.execute("DELETE FROM temp.web_tags")
        self.db.executemany("INSERT OR IGNORE INTO temp.web_tracked VALUES (?, ?, ?, ?)", rows)
        self.db.executemany("INSERT INTO temp.web_tags VALUES (?, ?)", tags)
        self.db.execute("COMMIT")
        self._tags = sorted({tag for _, tag in tags})

    def tracked(self, filters: Filters, number: int, size: int = PAGE_SIZE) -> Page:
        """One page of the tracked articles, in URL order (so by site)."""
        with self.reading():
            self._sync_seeds()
            where, args = filters.where()
            total = self.db.execute(f"SELECT COUNT(*) FROM temp.web_tracked t WHERE {where}", args).fetchone()[0]
            rows = self._rows(_TRACKED_SQL.format(where=where), (*args, size, (number - 1) * size))
        return Page([_tracked_row(r) for r in rows], total, number, size)

    def tags(self) -> list[str]:
        with self.reading():
            self._sync_seeds()
            return list(self._tags)

    def is_tracked(self, url: str) -> bool:
        """Whether a seed file names the URL."""
        with self.reading():
            self._sync_seeds()
            row = self.db.execute("SELECT schedule FROM temp.web_tracked WHERE url = ?", (url,)).fetchone()
        return bool(row and row[0])

    # ---- one article -------------------------------------------------------------------

    def history(self, url: str) -> History:
        """The URL's history, built again only when its observations (or its site's
        learned noise) have changed since it was last built: 1,000 observations take a
        second to fold into versions."""
        with self.reading():
            key = self.db.execute(
                "SELECT COUNT(*), IFNULL(MAX(capture_id), 0), IFNULL(SUM(length(content_digest)), 0), "
                "(SELECT COUNT(*) FROM noise WHERE site = ?) FROM observations WHERE tracked_url = ?",
                (url_host(url), url)).fetchone()
            cached = self._histories.get(url)
            if cached is not None and cached[0] == key:
                self._histories.move_to_end(url)
                return cached[1]
            history = load_history(self.catalog, url, self.config.detect.confirm)
            self._histories[url] = (key, history)
            if len(self._histories) > HISTORIES_KEPT:
                self._histories.popitem(last=False)
            return history

    def diff(self, url: str, old: int | None, new: int | None) -> VersionDiff:
        """Versions old and new (default: the last change) of a tracked URL."""
        return version_diff(url, self.history(url), old, new)

    def evidence(self, ref: CaptureRef) -> dict[str, Any]:
        """A capture's records, what they say of it, and their digests checked now."""
        with self.reading():
            row = self._rows("SELECT * FROM captures WHERE warc = ? AND offset = ?", (ref.warc, ref.offset))
            if not row:
                raise UsageError(f"no capture at {ref.warc}@{ref.offset} in the catalog")
            capture = dict(row[0])
            seq = self.db.execute("SELECT seq FROM ledgered WHERE capture_id = ?", (capture["id"],)).fetchone()
            checkpoint = self.db.execute("SELECT MAX(seq) FROM checkpoints").fetchone()[0]
        group = _check_group(self.config.storage.warc_dir / ref.warc, capture)
        covered = seq is not None and checkpoint is not None and checkpoint >= seq[0]
        return {"capture": capture, "ledger_seq": seq[0] if seq else None, "checkpointed": covered, **group}

    def record(self, warc: str, offset: int) -> bytes:
        """The stored bytes (one gzip member) of a catalogued response, revisit or failure record."""
        with self.reading():
            row = self.db.execute("SELECT length FROM captures WHERE warc = ? AND offset = ?", (warc, offset)).fetchone()
        if row is None:  # only records the catalog names: never any other file or byte range
            raise UsageError(f"no capture at {warc}@{offset} in the catalog")
        with open(self.config.storage.warc_dir / warc, "rb") as f:
            f.seek(offset)
            return f.read(row[0])

    # ---- changes and status ------------------------------------------------------------

    def changes(self, number: int, size: int = PAGE_SIZE) -> Page:
        """Change events, newest first."""
        with self.reading():
            total = self.db.execute("SELECT COUNT(*) FROM changes").fetchone()[0]
            rows = self._rows("SELECT * FROM changes ORDER BY to_time DESC, tracked_url, kind LIMIT ? OFFSET ?",
                              (size, (number - 1) * size))
        return Page([change_event_json(r) for r in rows], total, number, size)

    def feed(self, now: datetime) -> str:
        """The Atom feed of the latest change events, as ``archiver changes`` writes it."""
        with self.reading():
            rows = self.catalog.history.latest_changes(self.config.report.feed_entries)
        return atom_feed([change_event_json(r) for r in rows], warc_date(now))

    def status(self, now: datetime) -> dict[str, Any]:
        """What ``archiver status`` shows (schedule/status.py), from the read-only connection."""
        locks = UrlLocks(self.config.storage.lock_dir)
        try:
            with self.reading():
                self._sync_seeds()
                tracked = [r[0] for r in self.db.execute("SELECT url FROM temp.web_tracked WHERE schedule != ''")]
                scheduled = dict(self.db.execute("SELECT url, next_due FROM schedule").fetchall())
                hosts = self.catalog.schedule.host_rows()
            running = sum(1 for url in tracked if locks.is_locked_elsewhere(url))
        finally:
            locks.release_all()
        due = sum(1 for url in tracked if scheduled.get(url, 0) <= now.timestamp())
        sizes = [_size(p) for p in self.config.storage.warc_dir.glob("*.warc.gz*")]
        return {"tracked": len(tracked), "due_now": due, "running": running,
                "failing_hosts": [{"host": h["host"], "failures": h["failures"], "last_error": h["last_error"],
                                   "backoff_until": _iso(h["backoff_until"]) if h["backoff_until"] > now.timestamp()
                                   else None} for h in hosts],
                "warc_files": len(sizes), "warc_bytes": sum(sizes)}

    # ---- writes: the seed files, as archiver add / remove --------------------------------

    def track(self, url: str, every: str, cron: str, tags: list[str]) -> Seed:
        """archiver add URL [--every|--cron] [--tag...] into seeds/added.txt."""
        return library.Archive(self.config).add(url, every or None, cron or None, [t for t in tags if t]).seed

    def untrack(self, url: str) -> list[Path]:
        """archiver remove URL."""
        return library.Archive(self.config).remove(url)

    # ---- export --------------------------------------------------------------------------

    def export_article(self, url: str, now: datetime) -> Path:
        """``archiver export --article URL OUT.wacz`` into a new temporary folder (the caller
        removes it)."""
        out = Path(tempfile.mkdtemp(prefix="archiver-export-")) / f"{_file_name(url)}.wacz"
        library.Archive(self.config).export_article(url, out)
        return out


def since_date(text: str, now: datetime) -> str:
    """An ISO date-time or a duration back from now (7d) -> a WARC date, as archiver changes --since."""
    return library.since_date(text, now)


def _connect(path: Path) -> sqlite3.Connection:
    """A read-only connection that sees what writers commit after it opened (never
    ``immutable``); on storage nobody can write, catalog.open_read_only's."""
    if not writable(path):
        return open_read_only(path)
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1")
    except sqlite3.DatabaseError as e:
        raise ArchiverError(f"catalog {path}: {e}") from e
    return db


MAX_CHECKED = 500_000_000  # decompressed bytes one capture's records may take to check


def _check_group(path: Path, capture: dict[str, Any]) -> dict[str, Any]:
    """The records of a capture, from its response (or failure) record to its closing
    metadata record, their digests recomputed now, checked against the catalog row; the
    TLS certificate's subject."""
    records, problems, tls = [], [], None
    try:
        with open(path, "rb") as f:
            f.seek(capture["offset"])
            for scanned in WarcScan(f, MAX_CHECKED):
                at = capture["offset"] + scanned.offset
                records.append(_record_json(scanned, at))
                problems += [f"{path.name}@{at}: {p}" for p in scanned.problems]
                if scanned.get("Content-Type") == TLS_TYPE:
                    tls = _tls(path, at, scanned)
                if at >= capture["metadata_offset"]:
                    break
    except OSError as e:
        problems.append(f"{path.name}: cannot be read ({e.strerror or e})")
    problems += _disagreements(capture, records[0] if records else None)
    return {"records": records, "tls": tls, "problems": problems}


def _record_json(scanned: ScannedRecord, at: int) -> dict[str, Any]:
    return {"offset": at, "type": scanned.rec_type, "id": scanned.get("WARC-Record-ID"),
            "date": scanned.get("WARC-Date"), "ip": scanned.get("WARC-IP-Address"),
            "content_type": scanned.get("Content-Type"),
            "block_digest": scanned.get("WARC-Block-Digest"), "payload_digest": scanned.get("WARC-Payload-Digest")}


def _disagreements(capture: dict[str, Any], first: dict[str, Any] | None) -> list[str]:
    """Where the record at the catalog's offset is not the one the catalog describes."""
    if first is None:
        return [f"{capture['warc']}@{capture['offset']}: no record there"]
    out = []
    for name, key in (("record id", "record_id"), ("block digest", "block_digest"),
                      ("payload digest", "payload_digest")):
        wanted, found = capture[key], first["id" if key == "record_id" else key]
        if wanted and wanted != found:
            out.append(f"{capture['warc']}@{capture['offset']}: the catalog says {name} {wanted}, the record {found}")
    return out


def _tls(path: Path, offset: int, scanned: ScannedRecord) -> dict[str, Any]:
    """The TLS record's protocol, cipher, and its leaf certificate's subject and SHA-256."""
    from cryptography import x509
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as f:
        f.seek(offset)
        record = next(iter(ArchiveIterator(f, check_digests=False)))
        chain = pem_certificates(record.content_stream().read())
    subject = fingerprint = ""
    if chain:
        try:
            subject = x509.load_der_x509_certificate(chain[0]).subject.rfc4514_string()
        except ValueError as e:
            subject = f"(unreadable certificate: {e})"
        fingerprint = hashlib.sha256(chain[0]).hexdigest()
    return {"protocol": scanned.get("WARC-Protocol"), "cipher": scanned.get("WARC-Cipher-Suite"),
            "subject": subject, "certificate_sha256": fingerprint, "chain": len(chain)}


def _tracked_row(r: sqlite3.Row) -> dict[str, Any]:
    last = (r["last_capture"] or "").split(" ", 2)
    return {"url": r["url"], "site": r["site"], "tags": json.loads(r["tags"]), "schedule": r["schedule"],
            "next_due": _iso(r["next_due"]) if r["next_due"] is not None else None,
            "title": r["title"] or "", "version": r["version"], "gone": bool(r["gone"]),
            "last_change": r["first_seen"] if (r["version"] or 0) > 1 else None,
            "kinds": json.loads(r["kinds"]) if r["kinds"] and (r["version"] or 0) > 1 else [],
            "last_capture": last[0] or None,
            "last_result": r["last_result"] or _capture_result(last[1:] if len(last) == 3 else [])}


def _capture_result(fields: list[str]) -> str:
    status, error = (fields + ["", ""])[:2]
    return error or (f"HTTP {status}" if status else "")


def _site(url: str) -> str:
    """seeds.url_host of a normalised URL (its netloc), without urlsplit's cost: 100,000
    seeds are copied at once."""
    return _NETLOC_END.split(url.partition("//")[2], 1)[0]


_NETLOC_END = re.compile(r"[/?#]")


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds") if ts else None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # an .open file renamed by its writer just now
        return path.with_name(path.name.removesuffix(".open")).stat().st_size


def _file_name(url: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in url.split("://", 1)[-1])[:80].strip("-") or "article"
