"""An archive folder opened for writing: the WARC writer, the catalog, crash repair.

``Writer.store`` is the write path: records are written and fsynced, then their catalog
rows are committed, and only then reported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from warcio.recordloader import ArcWarcRecord

from archiver import __version__
from archiver.archive.records import Original, Reached, exchange_records, metadata_content
from archiver.catalog import CaptureRow, Catalog
from archiver.config import Config
from archiver.errors import ArchiverError, UsageError
from archiver.page.extract import Link
from archiver.capture.fetch import Exchange, utcnow
from archiver.archive.index import PendingIndex, Placed, capture_row, cdxj_line, warc_captures, write_cdxj
from archiver.archive.keys import SigningKey, generate_key, load_key
from archiver.archive.ledger import Ledger
from archiver.archive.locks import WriterLock, reading
from archiver.archive.warcfile import (Record, WarcWriterPool, Written, find_abandoned, group_records, record_head,
                       repair_open_file, warc_date)


log = logging.getLogger("archiver")

Repaired = Callable[[Catalog, str], None]


@dataclass(frozen=True)
class FetchResult:
    """One fetched URL, as reported to the user (one JSON line with --json)."""
    url: str
    status: int | None
    role: str
    record: str  # response | revisit | failed
    warc: str
    offset: int
    error: str = ""
    seed: str = ""

    def to_json(self) -> dict:
        return {"url": self.url, "status": self.status, "role": self.role, "record": self.record,
                "warc": self.warc, "offset": self.offset, "error": self.error}


@dataclass
class SnapshotSummary:
    results: list[FetchResult] = field(default_factory=list)
    seeds_ok: dict[str, bool] = field(default_factory=dict)
    warcs: list[str] = field(default_factory=list)
    histories: dict[str, Any] = field(default_factory=dict)  # seed -> its history (the observe stage's)

    @property
    def failed_seeds(self) -> list[str]:
        return [s for s, ok in self.seeds_ok.items() if not ok]

    def last_fetches(self) -> dict[str, FetchResult]:
        """Each fetched URL's last fetch: results hold one per attempt (retries), and a
        URL's outcome is its last. Confirming fetches (role confirm) are evidence for
        edit detection, not the URL's outcome: see confirmations."""
        return {r.url: r for r in self.results if r.role != "confirm"}

    @property
    def confirmations(self) -> int:
        return sum(r.role == "confirm" for r in self.results)


class Writer:
    """An archive folder opened for writing: repairs crashed files, then captures."""

    def __init__(self, config: Config, clock: Callable[[], datetime] = utcnow, repair: bool = True,
                 on_repaired: Repaired = lambda catalog, warc: None):
        """on_repaired(catalog, warc): a file a crashed process left open was closed and
        its captures cataloged (pipeline.open_archive observes them)."""
        self.config = config
        self.clock = clock
        self.writing = WriterLock(config.storage.lock_dir)
        self.writing.share()
        self.catalog = Catalog(config.storage.catalog)
        self.ledger = Ledger(config.evidence.ledger)
        self.key = signing_key(config.evidence.key)
        if self.key is None and (recorded := self.catalog.ledger.recorded_key()):
            self.catalog.close()
            self.writing.close()
            raise ArchiverError(f"{config.evidence.key} is missing, but this archive has signed with key "
                                f"{recorded[:24]}...: restore the key file (checkpoints made without it would "
                                "not verify)")
        if repair:
            repair_abandoned(config, self.catalog, on_repaired)
            recover_ledger(config, self.catalog, self.ledger, warc_date(clock()))
        self.since_checkpoint = 0
        self.cdxj = PendingIndex(config.storage.index_dir)  # index lines of the open WARC, sorted when it closes
        self.writer = WarcWriterPool(
            config.storage.warc_dir, config.storage.warc_prefix, config.storage.warc_max_bytes,
            warcinfo_fields(config, self.key), clock, on_close=self._indexed)

    def _indexed(self, path: Path) -> None:
        self.cdxj.finish(path.name)

    def store(self, batch: list[tuple[Exchange, Reached, list[Link]]]) -> list[tuple[FetchResult, int]]:
        """Write the exchanges' records and fsync once, then commit their catalog rows in
        one transaction; return what to report (and each capture's id)."""
        originals = self._originals([ex for ex, _, _ in batch])
        groups = [exchange_records(ex, reached, links, originals.get((ex.url, ex.payload_digest)))
                  for ex, reached, links in batch]
        placed = self.writer.write_groups(groups)
        rows = [self._row(ex, reached, links, records, written)
                for (ex, reached, links), records, written in zip(batch, groups, placed)]
        ids = self.catalog.captures.add_many(rows)
        self._ledger(batch, groups, placed, ids)
        results = []
        for (ex, reached, _), (row, _), capture_id in zip(batch, rows, ids):
            assert capture_id is not None, "a new record cannot already be in the catalog"
            results.append((FetchResult(row.url, row.status, reached.role, row.record, row.warc, row.offset,
                                        ex.error, reached.seed), capture_id))
        return results

    def _ledger(self, batch, groups, placed, ids) -> None:
        """Ledger entries for stored captures: after the records and their catalog rows,
        so an entry never exists without its record."""
        now = warc_date(self.clock())
        payloads = [capture_entry(ex.url, written[0].warc, now, records, written)
                    for (ex, _, _), records, written in zip(batch, groups, placed)]
        entries = self.ledger.append(payloads)
        self.catalog.ledger.mark([(i, e["seq"]) for i, e in zip(ids, entries)],
                                   (entries[-1]["seq"], entries[-1]["hash"]))
        self.since_checkpoint += len(entries)
        if self.since_checkpoint >= self.config.evidence.checkpoint_every:
            self.checkpoint()

    def checkpoint(self) -> None:
        """A signed checkpoint in the ledger, and a copy in the catalog."""
        entry = self.ledger.checkpoint(self._signing_key, warc_date(self.clock()))
        self.catalog.ledger.add_checkpoint(entry)
        self.catalog.ledger.mark([], (entry["seq"], entry["hash"]))
        self.since_checkpoint = 0

    def _signing_key(self) -> SigningKey | None:
        """The key, looked for again while there is none: archiver keygen may make it
        while this archive is open (a running archiver run)."""
        if self.key is None:
            self.key = signing_key(self.config.evidence.key)
        return self.key

    def _row(self, ex: Exchange, reached: Reached, links: list[Link], records, written) -> tuple:
        meta = Placed(written[-1].offset, written[-1].length, records[-1].rec_headers)
        response = None
        for record, where in zip(records, written):
            if record.rec_type in ("response", "revisit"):
                response = Placed(where.offset, where.length, record.rec_headers, record.http_headers)
                self.cdxj.add(where.warc, cdxj_line(where.warc, response))
        return capture_row(written[-1].warc, meta, metadata_content(ex, reached, links), response)

    def _originals(self, exchanges: list[Exchange]) -> dict[tuple[str, str], Original]:
        """Earlier responses with the same (URL, payload digest): these exchanges are
        written as revisits of them."""
        keys = [(ex.url, ex.payload_digest) for ex in exchanges if ex.response_head is not None and not ex.truncated]
        return {key: Original(*found) for key, found in self.catalog.captures.find_originals(keys).items()}

    def close(self) -> None:
        self.writer.close()
        self.cdxj.close()
        if self.since_checkpoint:
            self.checkpoint()
        self.catalog.close()
        self.ledger.close()
        self.writing.close()


def signing_key(path: Path) -> SigningKey | None:
    """The archive's key, or None when it has none."""
    return load_key(path) if path.exists() else None


def create_key(config: Config, now: str) -> SigningKey:
    """archiver keygen: make the archive's key and record its creation in the ledger (an
    entry signed by it over the chain so far) and in the catalog. Captures ledgered
    before it stay unsigned-before-key: the key entry signs the chain that holds them.
    Refused when the archive has had a key: deleting archive.key must not make a new
    key, and with it a new "before", possible."""

    catalog = Catalog(config.storage.catalog)
    ledger = Ledger(config.evidence.ledger)
    made: list[SigningKey] = []

    def make() -> SigningKey:  # under the ledger's lock
        made.append(generate_key(config.evidence.key))
        return made[0]

    try:
        recorded = catalog.ledger.recorded_key()
        if recorded and not config.evidence.key.exists():
            raise UsageError(f"{config.evidence.key} is missing, but this archive has signed with key "
                             f"{recorded[:24]}...: restore the key file; an archive keeps its key")
        try:
            entry = ledger.record_key(make, now)
        except BaseException:
            if made:  # the key exists but its creation is not in the ledger: it must not be used
                config.evidence.key.unlink(missing_ok=True)
                config.evidence.key.with_name(config.evidence.key.name + ".pub").unlink(missing_ok=True)
            raise
        catalog.ledger.add_checkpoint(entry)
        catalog.ledger.mark([], (entry["seq"], entry["hash"]))
        return made[0]
    finally:
        ledger.close()
        catalog.close()


def warcinfo_fields(config: Config, key: SigningKey | None) -> dict[str, str]:
    fields = {
        "software": f"archiver/{__version__} (Python/{sys.version.split()[0]})",
        "hostname": socket.gethostname(),
        "operator": config.capture.operator or "(not configured)",
        "robots": config.capture.robots,
        "http-header-user-agent": config.capture.user_agent,
        "format": "WARC File Format 1.1",
        "conformsTo": "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
        "archiver-config": json.dumps(config.public_dict(), sort_keys=True),
    }
    if key is not None:
        fields["archiver-public-key"] = key.public_b64
    return fields


def record_summary(record: Record | ArcWarcRecord, where: Written) -> dict[str, Any]:
    """A record as its capture's ledger entry lists it. A record just written has its WARC
    head's SHA-256 too (the very bytes written), so the ledger covers its URI, date and
    every other header, not only its block (one read back after a crash has not)."""
    h = record.rec_headers
    summary = {"id": h.get_header("WARC-Record-ID"), "type": record.rec_type, "offset": where.offset,
               "length": where.length, "block_digest": h.get_header("WARC-Block-Digest") or "",
               "payload_digest": h.get_header("WARC-Payload-Digest") or ""}
    if isinstance(record, Record):
        summary["head_digest"] = "sha256:" + hashlib.sha256(record_head(record)).hexdigest()
    return summary


def capture_entry(url: str, warc: str, time: str, records: list[Record] | list[ArcWarcRecord], written: list[Written],
                  recovered: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "capture", "time": time, "url": url, "warc": warc,
                             "records": [record_summary(r, w) for r, w in zip(records, written)]}
    if recovered:
        entry["recovered"] = True
    return entry


def recover_ledger(config: Config, catalog: Catalog, ledger: Ledger, now: str) -> int:
    """Ledger entries for captures a crash left out of the ledger (after the catalog
    commit, before the ledger append), marked as recovered.

    A live writer's captures are unledgered too, for a moment: committed, then ledgered,
    and its WARC file is closed only after that (or after its store failed). So only
    captures in closed files are candidates, their records read before the ledger's lock
    is taken. Under it, the candidates still unledgered are those the ledger already
    holds (the crash came after the append, before the catalog heard of it) and are
    linked to their entries; the others are appended and marked before the lock is let
    go, so two processes opening the archive at once cannot both recover them."""
    warc_dir = config.storage.warc_dir
    candidates = [row for row in catalog.ledger.unledgered() if (warc_dir / row.warc).exists()]
    if not candidates:
        return 0
    records = {}
    for row in candidates:
        try:
            records[(row.warc, row.offset)] = group_records(warc_dir / row.warc, row)
        except Exception as e:  # noqa: BLE001 - warcio raises many kinds; the archive must still open
            log.warning("%s@%d (%s): not readable, left out of the ledger; run archiver verify: %s",
                        row.warc, row.offset, row.url, f"{type(e).__name__}: {str(e)[:200]}")
    missing: list[CaptureRow] = []

    def payloads(count: int, head: str) -> list[dict[str, Any]]:
        rows = [row for row in catalog.ledger.unledgered() if (row.warc, row.offset) in records]
        held = ledger.seqs_holding({(row.warc, row.offset) for row in rows})
        if held:
            catalog.ledger.mark([(catalog.captures.id_at(*key) or 0, seq) for key, seq in held.items()], (count, head))
        missing[:] = [row for row in rows if (row.warc, row.offset) not in held]
        return [capture_entry(row.url, row.warc, now, *records[(row.warc, row.offset)], recovered=True)
                for row in missing]

    def mark(entries: list[dict[str, Any]]) -> None:
        catalog.ledger.mark([(catalog.captures.id_at(r.warc, r.offset) or 0, e["seq"]) for r, e in zip(missing, entries)],
                              (entries[-1]["seq"], entries[-1]["hash"]))

    entries = ledger.append_made(payloads, then=mark)
    if entries:
        log.warning("added %d capture(s) to the ledger that a crash had left out", len(entries))
    return len(entries)


def repair_abandoned(config: Config, catalog: Catalog,
                     on_repaired: Repaired = lambda catalog, warc: None) -> list[tuple[str, int]]:
    """Close every ``.open`` file a crashed process left, cutting its torn tail, and
    catalog any whole group the crash kept from being committed."""
    repaired: list[tuple[str, int]] = []
    warc_dir = config.storage.warc_dir
    if not warc_dir.exists():
        return repaired
    for path in find_abandoned(warc_dir):
        def catalog_it(open_path: Path, name: str) -> None:
            for row, xrefs in warc_captures(open_path, name):
                catalog.captures.add(row, xrefs)
        try:
            final, dropped = repair_open_file(path, catalog_it)
        except (BlockingIOError, FileNotFoundError):
            continue  # another process is repairing it right now
        write_cdxj(final, config.storage.index_dir)
        on_repaired(catalog, final.name)
        log.warning("repaired %s, left open by a crashed process (dropped %d torn bytes)", final.name, dropped)
        repaired.append((final.name, dropped))
    return repaired


def open_catalog(config: Config, on_repaired: Repaired = lambda catalog, warc: None) -> Catalog:
    """The catalog, after closing any WARC file a crashed process left open; a reindex
    is waited for."""
    catalog = Catalog(config.storage.catalog, holding=reading(config.storage.lock_dir))
    if not catalog.read_only:  # a write-protected copy: nothing can be repaired (verify reports open files)
        repair_abandoned(config, catalog, on_repaired)
    return catalog

