"""``archiver verify``: is the archive what it was when it was captured?

Checks every WARC record's block and payload digests, that requests and responses pair
up, that every revisit resolves, that every catalog row points at its record, the whole
ledger chain and its signed checkpoints (against the copies kept in the catalog), and
that every ledger entry's records are where, and what, the ledger says (their WARC heads
included, for entries that hold their digests). Records are read by warcscan, with memory
bounded whatever a file holds. An exported WACZ is checked by wacz.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable

from archiver.catalog import Catalog
from archiver.archive.locks import reading
from archiver.config import Config
from archiver.archive.keys import public_key
from archiver.archive.ledger import Ledger, check_chain
from archiver.evidence.recordindex import RecordIndex, SeenRecord, batched, scratch_index
from archiver.archive.warcfile import WARC_SUFFIX
from archiver.evidence.warcscan import ScannedRecord, WarcScan

MAX_PROBLEMS = 1000  # listed one by one; beyond, only counted (a hostile file could give millions)


@dataclass(frozen=True)
class Problem:
    where: str  # "file.warc.gz@offset", "ledger.jsonl:line", "catalog"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    checkpoint: dict[str, Any] | None = None  # the archive's latest ledger checkpoint
    key: dict[str, Any] | None = None         # the ledger entry recording the key's creation
    signature: dict[str, Any] | None = None   # an export's signer
    notes: list[str] = field(default_factory=list)  # what a pass does not prove, said once each
    unlisted: int = 0                         # problems beyond MAX_PROBLEMS, counted only

    def add(self, where: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(where, message))
        else:
            self.unlisted += 1

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unlisted

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "counts": self.counts, "latest_checkpoint": self.checkpoint, "key": self.key,
                "signature": self.signature, "notes": self.notes, "problems_not_listed": self.unlisted,
                "problems": [{"where": p.where, "message": p.message} for p in self.problems]}


def verify_archive(config: Config) -> Report:
    """Every check, streaming: records go to a scratch index on disk (recordindex), the
    catalog and the ledger are read a row and an entry at a time, so memory stays bounded
    whatever the archive's size."""
    report = Report()
    # Not during a reindex: its catalog is half built. The lock goes with the catalog.
    catalog = Catalog(config.storage.catalog, holding=reading(config.storage.lock_dir))
    try:
        with scratch_index() as records:
            scan_warcs(config.storage.warc_dir, records, report)
            check_pairs(records, report)
            check_catalog(catalog, records, report)
            check_ledger(config, catalog, records, report)
    finally:
        catalog.close()
    return report


# ---- WARC records ------------------------------------------------------------------------

def scan_warcs(warc_dir: Path, records: RecordIndex, report: Report) -> None:
    """Every readable record into the index, digests checked; a file that cannot be read
    to its end is reported at the first member that cannot be read."""
    files = sorted(warc_dir.glob("*" + WARC_SUFFIX)) if warc_dir.exists() else []
    for path in files:
        _scan_file(path, records, report)
    for path in sorted(warc_dir.glob("*" + WARC_SUFFIX + ".open")) if warc_dir.exists() else []:
        report.add(path.name, "still open (being written, or left by a crash: any command "
                   "that opens the archive repairs it)")
    report.counts["warc_files"] = len(files)
    finish_index(records, report)


def finish_index(records: RecordIndex, report: Report) -> None:
    """Every record is in: index them, report repeated record ids."""
    records.indexed()
    for record, warc, offset in records.duplicates():
        report.add(f"{record.warc}@{record.offset}", f"record id {record.id} also at "
                   f"{warc}@{offset}")
    report.counts["records"] = records.count


def _scan_file(path: Path, records: RecordIndex, report: Report) -> None:
    with open(path, "rb") as f:
        scan_records(f, path.name, records, report)


def scan_records(f: IO[bytes], name: str, records: RecordIndex, report: Report, max_output: int | None = None,
                 on_record: Callable[[str, ScannedRecord], None] = lambda name, record: None) -> WarcScan:
    """Every readable record of one WARC file into the index, digests checked (warcscan:
    memory bounded whatever the file holds); where reading had to stop is reported."""
    scan = WarcScan(f, max_output)
    for record in scan:
        _note(name, record, records, report)
        on_record(name, record)
    if scan.stopped is not None:
        offset, why = scan.stopped
        report.add(f"{name}@{offset}", f"{why}: this record and any after it cannot be read")
    return scan


def _note(warc: str, record: ScannedRecord, records: RecordIndex, report: Report) -> None:
    for problem in record.problems:
        report.add(f"{warc}@{record.offset}", problem)
    records.add(SeenRecord(warc, record.offset, record.rec_type, record.get("WARC-Target-URI"),
                           record.get("WARC-Block-Digest"), record.get("WARC-Payload-Digest"),
                           record.get("WARC-Concurrent-To"), record.get("WARC-Refers-To"),
                           record.get("WARC-Record-ID"), record.head_digest))


def check_pairs(records: RecordIndex, report: Report) -> None:
    """Every request names its response, every response has its request, every revisit
    resolves to a response with the same payload (asked of the index, a query each)."""
    def add(r: SeenRecord, message: str) -> None:
        report.add(f"{r.warc}@{r.offset}", message)

    for r in records.where("r.type = 'request' AND NOT EXISTS (SELECT 1 FROM records x WHERE x.id = r.concurrent_to)"):
        add(r, f"request for {r.target} has no response ({r.concurrent_to})")
    for r in records.where("r.type IN ('response', 'revisit') AND NOT EXISTS (SELECT 1 FROM records q "
                           "WHERE q.type = 'request' AND q.concurrent_to = r.id)"):
        add(r, f"{r.type} for {r.target} has no request record")
    for r in records.where("r.type = 'revisit' AND NOT EXISTS (SELECT 1 FROM records o WHERE o.id = r.refers_to "
                           "AND o.type = 'response' AND o.payload_digest = r.payload_digest)"):
        add(r, f"revisit of {r.target} does not resolve to its original ({r.refers_to})")


# ---- catalog -----------------------------------------------------------------------------

def check_catalog(catalog: Catalog, records: RecordIndex, report: Report) -> None:
    """Every row points at its record (the one with its id) with its digests: rows are
    read in batches, their records asked for by id in one query per batch."""
    count = 0
    for rows in batched(catalog.captures.iter()):
        found = records.by_ids([row.record_id for row in rows])
        for row in rows:
            _check_row(row, found.get(row.record_id), records, report)
        count += len(rows)
    report.counts["captures"] = count


def _check_row(row, by_id: SeenRecord | None, records: RecordIndex, report: Report) -> None:
    where = f"{row.warc}@{row.offset}"
    if by_id is not None and (by_id.warc, by_id.offset) == (row.warc, row.offset):
        if row.record != "failed" and (by_id.payload_digest, by_id.block_digest) != (row.payload_digest,
                                                                                     row.block_digest):
            report.add(where, f"catalog row for {row.url} does not match the record there")
    elif records.at(row.warc, row.offset) is None:
        report.add(where, f"catalog row for {row.url} points at no record")
    else:
        report.add(where, f"catalog row for {row.url} does not match the record there")


# ---- ledger --------------------------------------------------------------------------------

LEDGER_BATCH = 150  # capture entries checked at once (a few records each: one query per 500)

def check_ledger(config: Config, catalog: Catalog, records: RecordIndex, report: Report) -> None:
    """One pass over the ledger: the chain, every capture entry's records, and the entries
    the catalog keeps copies of (marked in the index, compared after)."""
    ledger = Ledger(config.evidence.ledger)
    key = public_key(config.evidence.key)
    head = catalog.ledger.head()
    name = ledger.path.name

    captures: list[dict] = []  # capture entries waiting for their records, checked a batch at a time

    def on_entry(entry: dict) -> None:
        seq = entry.get("seq")
        if not isinstance(seq, int):
            return
        if entry.get("type") == "capture":
            captures.append(entry)
            if len(captures) == LEDGER_BATCH:
                _check_entries(captures, records, report)
        if entry.get("type") in ("checkpoint", "key") or (head is not None and seq == head[0]):
            records.mark(seq, entry)

    chain = check_chain(ledger, key or catalog.ledger.recorded_key(), on_entry)
    _check_entries(captures, records, report)
    for p in chain.problems:
        report.add(f"{name}:{p.line}", p.message)
    if chain.key is not None:
        report.key = {k: chain.key.get(k) for k in ("seq", "time", "count", "public_key")}
        report.counts["checkpoints_before_key"] = chain.unsigned_before_key
    _check_against_catalog(head, catalog, records, chain.count, report, name)
    report.counts["ledger_entries"] = chain.count
    report.counts["checkpoints"] = chain.checkpoints
    if chain.last_checkpoint:
        last = chain.last_checkpoint
        report.checkpoint = {k: last.get(k) for k in ("seq", "time", "count", "head", "public_key", "signature")}


def _check_entries(entries: list[dict], records: RecordIndex, report: Report) -> None:
    """Capture entries against their records, asked for in one query per 500; the list is emptied."""
    found = records.by_ids([listed.get("id", "") for entry in entries for listed in entry.get("records", [])])
    for entry in entries:
        _check_entry(entry, found, report)
    entries.clear()


def _check_entry(entry: dict, found: dict[str, SeenRecord], report: Report) -> None:
    for listed in entry.get("records", []):
        seen = found.get(listed.get("id", ""))
        where = f"{entry.get('warc')}@{listed.get('offset')}"
        if seen is None:
            report.add(where, f"ledger entry {entry['seq']}: record {listed.get('id')} is missing from the archive")
        elif (seen.warc, seen.offset) != (entry.get("warc"), listed.get("offset")):
            report.add(where, f"ledger entry {entry['seq']}: record {listed.get('id')} "
                              f"has moved to {seen.warc}@{seen.offset}")
        elif (seen.block_digest, seen.payload_digest) != (listed.get("block_digest"), listed.get("payload_digest")):
            report.add(where, f"ledger entry {entry['seq']}: digests differ from the record's")
        elif listed.get("head_digest", seen.head_digest) != seen.head_digest:  # older entries have none
            report.add(where, f"ledger entry {entry['seq']}: the record's WARC head (its URI, date or another "
                              "header) is not the one written")


def _check_against_catalog(head, catalog: Catalog, records: RecordIndex, count: int, report: Report,
                           name: str) -> None:
    """The catalog keeps the ledger head and every checkpoint outside the ledger file."""
    if head is not None:
        seq, digest = head
        if seq > count:
            report.add(name, f"ledger ends at entry {count} but had reached entry {seq}: "
                       "its tail was removed")
        elif (records.marked(seq) or {}).get("hash") != digest:
            report.add(name, f"entry {seq} is not the one recorded as the ledger head: "
                       "the chain was rewritten")
    for saved in catalog.ledger.iter_checkpoints():
        entry = records.marked(saved["seq"])
        if entry is None:
            report.add(name, f"checkpoint at entry {saved['seq']} ({saved['time']}) "
                       "is missing from the ledger")
        elif entry.get("type") not in ("checkpoint", "key") or \
                (entry.get("head"), entry.get("signature") or "") != (saved["head"], saved["signature"]):
            report.add(name, f"checkpoint at entry {saved['seq']} differs from the copy in "
                       "the catalog: the chain was rewritten")
