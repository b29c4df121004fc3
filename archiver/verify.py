"""``archiver verify``: is the archive what it was when it was captured?

Checks every WARC record's block and payload digests, that requests and responses pair
up, that every revisit resolves, that every catalog row points at its record, the whole
ledger chain and its signed checkpoints (against the copies kept in the catalog), and
that every ledger entry's records are where, and what, the ledger says.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from .catalog import Catalog
from .locks import reading
from .config import Config
from .export import WARC_NAME
from .keys import load_key, verify_signature
from .errors import os_error_text
from .ledger import Ledger, check_chain, checkpoint_message, entry_hash
from .recordindex import RecordIndex, SeenRecord, batched, scratch_index
from .warcfile import WARC_SUFFIX, iter_gzip_members


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

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "counts": self.counts, "latest_checkpoint": self.checkpoint, "key": self.key,
                "signature": self.signature,
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
    to its end is reported at the first member that does not decompress."""
    files = sorted(warc_dir.glob("*" + WARC_SUFFIX)) if warc_dir.exists() else []
    for path in files:
        _scan_file(path, records, report)
    for path in sorted(warc_dir.glob("*" + WARC_SUFFIX + ".open")) if warc_dir.exists() else []:
        report.problems.append(Problem(path.name, "still open (being written, or left by a crash: any command "
                                                  "that opens the archive repairs it)"))
    report.counts["warc_files"] = len(files)
    _indexed(records, report)


def _indexed(records: RecordIndex, report: Report) -> None:
    records.indexed()
    for record, warc, offset in records.duplicates():
        report.problems.append(Problem(f"{record.warc}@{record.offset}", f"record id {record.id} also at "
                                                                         f"{warc}@{offset}"))
    report.counts["records"] = records.count


def _scan_file(path: Path, records: RecordIndex, report: Report) -> None:
    end = _readable_end(path, report)
    with open(path, "rb") as f:
        it = ArchiveIterator(f, check_digests=True)
        try:
            for record in it:
                for _ in iter(lambda: record.content_stream().read(1 << 20), b""):
                    pass
                offset = it.get_record_offset()
                if offset >= end:
                    break
                _note(path.name, offset, record, records, report)
        except (ArchiveLoadFailed, zlib.error, OSError, ValueError, EOFError) as e:
            if end >= path.stat().st_size:  # not already reported as a corrupt member
                report.problems.append(Problem(path.name, f"unreadable: {e}"))


def _readable_end(path: Path, report: Report) -> int:
    """Where the last whole gzip member ends; a corrupt or torn member is reported there."""
    end = 0
    with open(path, "rb") as f:
        for _, member_end in iter_gzip_members(f):
            end = member_end
    if end < path.stat().st_size:
        report.problems.append(Problem(f"{path.name}@{end}", "corrupt or truncated gzip member: this record and "
                                                            "any after it cannot be read"))
    return end


def _note(warc: str, offset: int, record, records: RecordIndex, report: Report) -> None:
    h = record.rec_headers
    if record.digest_checker.passed is False:
        for problem in record.digest_checker.problems:
            report.problems.append(Problem(f"{warc}@{offset}", problem))
    records.add(SeenRecord(warc, offset, record.rec_type, h.get_header("WARC-Target-URI") or "",
                           h.get_header("WARC-Block-Digest") or "", h.get_header("WARC-Payload-Digest") or "",
                           h.get_header("WARC-Concurrent-To") or "", h.get_header("WARC-Refers-To") or "",
                           h.get_header("WARC-Record-ID") or ""))


def check_pairs(records: RecordIndex, report: Report) -> None:
    """Every request names its response, every response has its request, every revisit
    resolves to a response with the same payload (asked of the index, a query each)."""
    def add(r: SeenRecord, message: str) -> None:
        report.problems.append(Problem(f"{r.warc}@{r.offset}", message))

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
    for rows in batched(catalog.iter_captures()):
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
            report.problems.append(Problem(where, f"catalog row for {row.url} does not match the record there"))
    elif records.at(row.warc, row.offset) is None:
        report.problems.append(Problem(where, f"catalog row for {row.url} points at no record"))
    else:
        report.problems.append(Problem(where, f"catalog row for {row.url} does not match the record there"))


# ---- ledger --------------------------------------------------------------------------------

LEDGER_BATCH = 150  # capture entries checked at once (a few records each: one query per 500)

def check_ledger(config: Config, catalog: Catalog, records: RecordIndex, report: Report) -> None:
    """One pass over the ledger: the chain, every capture entry's records, and the entries
    the catalog keeps copies of (marked in the index, compared after)."""
    ledger = Ledger(config.evidence.ledger)
    key = load_key(config.evidence.key)
    head = catalog.ledger_head()
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

    chain = check_chain(ledger, key.public_b64 if key else catalog.recorded_key(), on_entry)
    _check_entries(captures, records, report)
    report.problems += [Problem(f"{name}:{p.line}", p.message) for p in chain.problems]
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
            report.problems.append(Problem(where, f"ledger entry {entry['seq']}: record {listed.get('id')} "
                                                  "is missing from the archive"))
        elif (seen.warc, seen.offset) != (entry.get("warc"), listed.get("offset")):
            report.problems.append(Problem(where, f"ledger entry {entry['seq']}: record {listed.get('id')} "
                                                  f"has moved to {seen.warc}@{seen.offset}"))
        elif (seen.block_digest, seen.payload_digest) != (listed.get("block_digest"), listed.get("payload_digest")):
            report.problems.append(Problem(where, f"ledger entry {entry['seq']}: digests differ from the record's"))


def _check_against_catalog(head, catalog: Catalog, records: RecordIndex, count: int, report: Report,
                           name: str) -> None:
    """The catalog keeps the ledger head and every checkpoint outside the ledger file."""
    if head is not None:
        seq, digest = head
        if seq > count:
            report.problems.append(Problem(name, f"ledger ends at entry {count} but had reached entry {seq}: "
                                                 "its tail was removed"))
        elif (records.marked(seq) or {}).get("hash") != digest:
            report.problems.append(Problem(name, f"entry {seq} is not the one recorded as the ledger head: "
                                                 "the chain was rewritten"))
    for saved in catalog.iter_checkpoints():
        entry = records.marked(saved["seq"])
        if entry is None:
            report.problems.append(Problem(name, f"checkpoint at entry {saved['seq']} ({saved['time']}) "
                                                 "is missing from the ledger"))
        elif entry.get("type") not in ("checkpoint", "key") or \
                (entry.get("head"), entry.get("signature") or "") != (saved["head"], saved["signature"]):
            report.problems.append(Problem(name, f"checkpoint at entry {saved['seq']} differs from the copy in "
                                                 "the catalog: the chain was rewritten"))


# ---- an exported WACZ ----------------------------------------------------------------------

def verify_wacz(path: Path) -> Report:
    """An export on its own: every file against datapackage.json, that against its digest
    and signature, every index line against its record, the ledger slice's entries."""
    report = Report()
    try:
        z = zipfile.ZipFile(path)
    except OSError as e:
        report.problems.append(Problem(path.name, f"cannot read it: {os_error_text(e, with_path=False)}"))
        return report
    except zipfile.BadZipFile as e:
        report.problems.append(Problem(path.name, f"not a readable WACZ (zip) file: {e}"))
        return report
    with z, tempfile.TemporaryDirectory() as tmp:
        names = set(z.namelist())
        package = _json_member(z, "datapackage.json", report)
        if package is None:
            return report
        _check_resources(z, names, package, report)
        _check_digest(z, report)
        if f"archive/{WARC_NAME}" in names:
            z.extract(f"archive/{WARC_NAME}", tmp)
            warc = Path(tmp) / "archive" / WARC_NAME
            with scratch_index() as records:
                _scan_file(warc, records, report)
                _indexed(records, report)
                check_pairs(records, report)
                _check_index(z, warc, records, report)
                _check_slice(z, records, report)
    return report


def _json_member(z: zipfile.ZipFile, name: str, report: Report) -> Any:
    try:
        return json.loads(z.read(name))
    except (KeyError, ValueError) as e:
        report.problems.append(Problem(name, f"missing or not JSON: {e}"))
        return None


def _check_resources(z: zipfile.ZipFile, names: set[str], package: dict, report: Report) -> None:
    listed = {r.get("path"): r for r in package.get("resources", [])}
    for name in sorted(names - {"datapackage.json", "datapackage-digest.json"} - set(listed)):
        report.problems.append(Problem(name, "file is not listed in datapackage.json"))
    for name, resource in listed.items():
        if name not in names:
            report.problems.append(Problem(str(name), "listed in datapackage.json but missing"))
            continue
        digest, size = hashlib.sha256(), 0
        with z.open(name) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
        if "sha256:" + digest.hexdigest() != resource.get("hash") or size != resource.get("bytes"):
            report.problems.append(Problem(name, "hash or size differs from datapackage.json"))
    report.counts["files"] = len(listed)


def _check_digest(z: zipfile.ZipFile, report: Report) -> None:
    digest = _json_member(z, "datapackage-digest.json", report)
    if digest is None:
        return
    package_hash = "sha256:" + hashlib.sha256(z.read("datapackage.json")).hexdigest()
    if digest.get("hash") != package_hash:
        report.problems.append(Problem("datapackage-digest.json", "hash does not match datapackage.json"))
    signed = digest.get("signedData")
    if not signed:
        report.counts["signed"] = 0
        return
    report.counts["signed"] = 1
    if signed.get("hash") != package_hash or not verify_signature(signed.get("publicKey", ""), package_hash,
                                                                   signed.get("signature", "")):
        report.problems.append(Problem("datapackage-digest.json", "signature does not verify"))
    report.signature = {"public_key": signed.get("publicKey"), "created": signed.get("created")}


def _check_index(z: zipfile.ZipFile, warc: Path, records: RecordIndex, report: Report) -> None:
    for number, line in enumerate(z.read("indexes/index.cdx").decode().splitlines(), 1):
        try:
            fields = json.loads(line.split(" ", 2)[2])
            key = (int(fields["offset"]), fields["digest"])
        except (IndexError, ValueError, KeyError):
            report.problems.append(Problem(f"indexes/index.cdx:{number}", "not a CDXJ line"))
            continue
        seen = records.at(warc.name, key[0])
        if seen is None or seen.payload_digest.removeprefix("sha1:") != key[1]:
            report.problems.append(Problem(f"indexes/index.cdx:{number}", "points at no matching record"))


def _check_slice(z: zipfile.ZipFile, records: RecordIndex, report: Report) -> None:
    lines = z.read("ledger/ledger.jsonl").decode().splitlines() if "ledger/ledger.jsonl" in z.namelist() else []
    for number, line in enumerate(lines, 1):
        where = f"ledger/ledger.jsonl:{number}"
        try:
            entry = json.loads(line)
        except ValueError:
            report.problems.append(Problem(where, "not JSON"))
            continue
        if entry.get("hash") != entry_hash(entry):
            report.problems.append(Problem(where, "entry was edited: its hash does not match its content"))
        if entry.get("type") == "checkpoint" and "signature" in entry and not verify_signature(
                entry.get("public_key", ""), checkpoint_message(entry["count"], entry["head"], entry["time"]),
                entry["signature"]):
            report.problems.append(Problem(where, "checkpoint signature does not verify"))
        for listed in entry.get("records", []) if entry.get("type") == "capture" else []:
            seen = records.get(listed.get("id", ""))
            if seen is None or (seen.block_digest, seen.payload_digest) != (listed.get("block_digest"),
                                                                            listed.get("payload_digest")):
                report.problems.append(Problem(where, f"record {listed.get('id')} is missing or differs"))
    report.counts["ledger_entries"] = len(lines)
