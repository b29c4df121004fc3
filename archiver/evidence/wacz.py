"""``archiver verify OUT.wacz``: an export checked on its own, against a key the user trusts.

What passes is proven: datapackage.json is signed by the trusted key (or, with --any-key,
by the key named in the result) and lists every file with its hash and size, no more and
no fewer; every WARC record's digests hold; every record but the warcinfo ones is listed,
digests and WARC head included, by a ledger entry that chains to a checkpoint signed with
that same key at capture time (proof.py); every index line is the one the WARC's record
gives, and every page names a record's id, URL and date. Not proven by capture-time
signatures, only by the export's: warcinfo records, page titles, the provenance report.

Memory, temporary disk and time stay bounded whatever the file holds (package.py,
warcscan.py); records go to a scratch SQLite index in the temporary folder.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

from archiver.evidence.export import WARC_NAME
from archiver.archive.index import Placed, cdxj_line
from archiver.archive.keys import fingerprint, trusted_fingerprint, verify_signature
from archiver.evidence.package import MAX_JSON, READ_ERRORS, BadPackage, Package, parse_json, read_all
from archiver.evidence.proof import ProofChecker, listed_rows
from archiver.evidence.recordindex import RecordIndex, scratch_index
from archiver.evidence.verify import Report, check_pairs, finish_index, scan_records
from archiver.evidence.warcscan import ScannedRecord

WARC = f"archive/{WARC_NAME}"
INDEX, PAGES, LEDGER, REPORT = "indexes/index.cdx", "pages/pages.jsonl", "ledger/ledger.jsonl", "report/provenance.html"
PACKAGE, DIGEST = "datapackage.json", "datapackage-digest.json"
REQUIRED = (WARC, INDEX, PAGES, LEDGER, PACKAGE, DIGEST)
OPTIONAL = (REPORT,)
OUTPUT_FLOOR, OUTPUT_RATIO = 256 << 20, 100  # decompressed WARC bytes allowed: floor + ratio x its size
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Trust:
    """Whose signature a package must carry: a key's fingerprint, or any key (any_key)."""
    fingerprint: str | None = None
    any_key: bool = False

    @classmethod
    def of(cls, key: str | None, any_key: bool) -> Trust:
        return cls(trusted_fingerprint(key) if key else None, any_key)


def verify_wacz(path: Path, trust: Trust = Trust()) -> Report:
    report = Report()
    try:
        with Package(path) as package:
            _verify(package, trust, report)
    except BadPackage as e:
        report.add(e.where, e.message)
    return report


def _verify(package: Package, trust: Trust, report: Report) -> None:
    _check_names(package, report)
    if PACKAGE not in package.members:
        raise BadPackage(PACKAGE, "missing: nothing says what the package holds")
    description = package.json(PACKAGE)
    resources = _resources(package, description, report)
    signer = _check_signature(package, description, trust, report)
    _check_hashes(package, resources, report)
    if WARC not in package.members:
        return
    with scratch_index(PackageRecords) as records:
        warc_hash = _scan_warc(package, records, report)
        _check_hash(WARC, warc_hash, resources.get(WARC), report)
        finish_index(records, report)
        check_pairs(records, report)
        _check_index(package, records, report)
        _check_pages(package, records, report)
        _check_proof(package, records, trust.fingerprint or signer, report)


# ---- the files and their signature ----------------------------------------------------

def _check_names(package: Package, report: Report) -> None:
    for name in sorted(set(package.members) - set(REQUIRED) - set(OPTIONAL)):
        report.add(name, "not a file an archiver export holds")
    for name in REQUIRED:
        if name not in package.members:
            report.add(name, "missing: every archiver export holds it")


def _resources(package: Package, description: Any, report: Report) -> dict[str, tuple[str, int]]:
    """path -> (hash, bytes) as datapackage.json lists them."""
    resources = description.get("resources") if isinstance(description, dict) else None
    if not isinstance(resources, list):
        raise BadPackage(PACKAGE, "has no list of resources")
    listed: dict[str, tuple[str, int]] = {}
    for i, r in enumerate(resources):
        ok = isinstance(r, dict) and isinstance(r.get("path"), str) and isinstance(r.get("hash"), str) \
            and type(r.get("bytes")) is int
        if not ok or r["path"] in listed or r["path"] in (PACKAGE, DIGEST):
            report.add(PACKAGE, f"resource {i} is not a path with a hash and a size, or is listed twice")
            continue
        listed[r["path"]] = (r["hash"], r["bytes"])
    for name in sorted(set(package.members) - set(listed) - {PACKAGE, DIGEST}):
        report.add(name, "file is not listed in datapackage.json")
    for name in sorted(set(listed) - set(package.members)):
        report.add(name, "listed in datapackage.json but missing")
    report.counts["files"] = len(listed)
    return listed


def _check_signature(package: Package, description: Any, trust: Trust, report: Report) -> str | None:
    """The signer's fingerprint when the signature over datapackage.json verifies."""
    if DIGEST not in package.members:
        return None
    digest = package.json(DIGEST)
    with package.open(PACKAGE) as f:
        package_hash = "sha256:" + hashlib.sha256(read_all(f, PACKAGE, MAX_JSON[PACKAGE])).hexdigest()
    if not isinstance(digest, dict) or digest.get("hash") != package_hash:
        report.add(DIGEST, "hash does not match datapackage.json")
    signed = digest.get("signedData") if isinstance(digest, dict) else None
    report.counts["signed"] = int(bool(signed))
    if not isinstance(signed, dict):
        report.add(DIGEST, "not signed: nothing ties this package to an archive's key (an archive with a key "
                           "signs its exports)")
        return None
    public_key, created = str(signed.get("publicKey")), str(signed.get("created"))
    if signed.get("hash") != package_hash or not (isinstance(signed.get("signature"), str) and verify_signature(
            public_key, package_hash, signed["signature"])):
        report.add(DIGEST, "signature does not verify")
        return None
    signer = fingerprint(public_key)
    report.signature = {"public_key": public_key, "fingerprint": signer, "created": created,
                        "trusted": signer == trust.fingerprint, "signer": _signer_is(signer, trust)}
    _check_signer(signer, trust, description, public_key, report)
    return signer


def _signer_is(signer: str, trust: Trust) -> str:
    if trust.fingerprint:
        return "the trusted key" if signer == trust.fingerprint else "not the trusted key"
    return "a key accepted unchecked (--any-key)" if trust.any_key else "an unknown key"


def _check_signer(signer: str, trust: Trust, description: Any, public_key: str, report: Report) -> None:
    if trust.fingerprint and signer != trust.fingerprint:
        report.add(DIGEST, f"signed by key {signer}, not by the trusted key {trust.fingerprint}")
    elif not trust.fingerprint and not trust.any_key:
        report.add(DIGEST, f"signed by an unknown key {signer}: name the archive's key with --key "
                           "(archive.key.pub or its fingerprint), or accept any signer with --any-key")
    if isinstance(description, dict) and description.get("archiver_public_key", public_key) != public_key:
        report.add(PACKAGE, "names another key than the one that signed it")


def _check_hashes(package: Package, resources: dict[str, tuple[str, int]], report: Report) -> None:
    for name in sorted(set(resources) & set(package.members) - {WARC}):
        with package.open(name) as f:
            _check_hash(name, _hash_stream(f, name), resources[name], report)


def _check_hash(name: str, found: tuple[str, int], listed: tuple[str, int] | None, report: Report) -> None:
    if listed is not None and found != listed:
        report.add(name, "hash or size differs from datapackage.json")


def _hash_stream(f: IO[bytes], name: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    try:
        for chunk in iter(lambda: f.read(HASH_CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    except READ_ERRORS as e:
        raise BadPackage(name, f"cannot be read: {e}") from None
    return "sha256:" + digest.hexdigest(), size


# ---- the WARC, its index and pages ------------------------------------------------------

class _Hashing:
    """A stream read through, hashed on the way."""

    def __init__(self, f: IO[bytes]):
        self.f, self.digest, self.size = f, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data

    def rest(self, name: str) -> tuple[str, int]:
        """Read to the end (reading may have stopped at a bad record): the member's hash."""
        _hash_stream(self, name)
        return "sha256:" + self.digest.hexdigest(), self.size


def _scan_warc(package: Package, records: PackageRecords, report: Report) -> tuple[str, int]:
    size = min(package.members[WARC].size, package.path.stat().st_size)  # stored: no more than the zip holds
    with package.open(WARC, stored=True) as member:
        f = _Hashing(member)
        try:
            scan_records(f, WARC, records, report, OUTPUT_FLOOR + OUTPUT_RATIO * size, records.note)
        except READ_ERRORS as e:
            raise BadPackage(WARC, f"cannot be read: {e}") from None
        return f.rest(WARC)


def _check_index(package: Package, records: PackageRecords, report: Report) -> None:
    """The index must be exactly the lines the WARC's responses and revisits give, sorted."""
    if INDEX not in package.members:
        return
    expected = records.index_lines()
    want = next(expected, None)
    number = 0
    for number, raw in package.lines(INDEX):
        line = raw.decode("utf-8", "replace")
        while want is not None and want < line:
            report.add(INDEX, f"no line for the record at {WARC}@{_offset_of(want)}")
            want = next(expected, None)
        if want == line:
            want = next(expected, None)
        else:
            report.add(f"{INDEX}:{number}", "not a line the WARC's records give (edited, or out of order)")
    for left in itertools.chain([want] if want is not None else [], expected):
        report.add(INDEX, f"no line for the record at {WARC}@{_offset_of(left)}")
    report.counts["index_lines"] = number


def _offset_of(line: str) -> str:
    return line.rsplit('"offset": "', 1)[-1].split('"', 1)[0]


def _check_pages(package: Package, records: PackageRecords, report: Report) -> None:
    """The header line, then pages naming a response or revisit by id, URL and date."""
    if PAGES not in package.members:
        return
    count = 0
    for number, raw in package.lines(PAGES):
        where = f"{PAGES}:{number}"
        try:
            page = parse_json(raw, where)
        except BadPackage as e:
            report.add(where, e.message)
            continue
        if number == 1:
            if not isinstance(page, dict) or page.get("format") != "json-pages-1.0":
                report.add(where, "not a pages header (format json-pages-1.0)")
            continue
        count += 1
        if not isinstance(page, dict) or records.page(page.get("id")) != (page.get("url"), page.get("ts")):
            report.add(where, "names no capture in the WARC (id, url and ts of a response or revisit)")
    report.counts["pages"] = count


# ---- the ledger proof --------------------------------------------------------------------

def _check_proof(package: Package, records: PackageRecords, signer: str | None, report: Report) -> None:
    def key_problem(public_key: str) -> str | None:
        found = fingerprint(public_key)
        if signer is None or found == signer:
            return None
        return f"signed by key {found}, not by the key this package is checked against ({signer})"

    checker = ProofChecker(records, key_problem, report.add)
    if LEDGER in package.members:
        with records.batch():
            for number, raw in package.lines(LEDGER):
                checker.line(number, raw)
            checker.end()
    report.counts["ledger_entries"] = checker.entries
    report.counts["signed_checkpoints"] = checker.proofs
    records.check_ledgered(report)
    if signer is None:
        report.notes.append("no key to check the ledger's signatures against: the package is not signed by one")


class PackageRecords(RecordIndex):
    """The scratch index, with what an export adds: index lines and pages the records give,
    and the records the ledger lists (proven once a signed entry covers them)."""

    def __init__(self, path: Path):
        super().__init__(path)
        for table in ("lines (line TEXT)", "pages (id TEXT PRIMARY KEY, url TEXT, ts TEXT)",
                      "listed (seq INTEGER, id TEXT, type TEXT, block TEXT, payload TEXT, head TEXT, "
                      "proven INTEGER DEFAULT 0)"):
            self.db.execute(f"CREATE TABLE {table}")

    def note(self, name: str, record: ScannedRecord) -> None:
        if record.rec_type not in ("response", "revisit"):
            return
        self.db.execute("INSERT INTO lines VALUES (?)",
                        (cdxj_line(WARC_NAME, Placed(record.offset, record.length, record.headers, record.http)),))
        page = uuid.uuid5(uuid.NAMESPACE_URL, record.get("WARC-Record-ID")).hex
        self.db.execute("INSERT OR IGNORE INTO pages VALUES (?, ?, ?)",
                        (page, record.get("WARC-Target-URI"), record.get("WARC-Date")))

    def index_lines(self) -> Iterator[str]:
        for (line,) in self.db.execute("SELECT line FROM lines ORDER BY line"):
            yield line

    def page(self, page_id: Any) -> tuple[str, str] | None:
        row = self.db.execute("SELECT url, ts FROM pages WHERE id = ?", (str(page_id),)).fetchone()
        return tuple(row) if row else None

    def listed(self, seq: int, records: list[dict[str, str]]) -> None:
        self.db.executemany("INSERT INTO listed (seq, id, type, block, payload, head) VALUES (?, ?, ?, ?, ?, ?)",
                            [(seq, *r) for r in listed_rows(records)])

    def prove(self, first: int, last: int) -> None:
        self.db.execute("UPDATE listed SET proven = 1 WHERE seq BETWEEN ? AND ?", (first, last))

    @contextmanager
    def batch(self) -> Iterator[None]:
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")
        self.db.execute("CREATE INDEX listed_id ON listed (id)")

    def check_ledgered(self, report: Report) -> None:
        """Every record but warcinfo is listed, as it is, by an entry a signature covers;
        every entry exported (one of its records is in the WARC) has all its records."""
        for warc, offset, rtype, target in self.db.execute(UNCOVERED):
            report.add(f"{warc}@{offset}", f"{rtype} record for {target} is not, as it is, in a ledger entry that "
                                           "a signed checkpoint covers")
        for seq, record_id in self.db.execute(MISSING):
            report.add(LEDGER, f"entry {seq} lists record {record_id}, which is not in the WARC")
        counts = dict(self.db.execute(COVERAGE).fetchall())
        report.counts["records_proven"] = counts.get("proven", 0)
        if counts.get("no head digest"):
            report.notes.append(f"{counts['no head digest']} record(s) are covered by ledger entries written before "
                                "entries held WARC head digests: their blocks are proven, their WARC headers are not")
        if counts.get("warcinfo"):
            report.notes.append(f"{counts['warcinfo']} warcinfo record(s) are covered by the export's signature only")


MATCHES = ("l.id = r.id AND l.type = r.type AND l.block = r.block_digest AND l.payload = r.payload_digest "
           "AND (l.head = '' OR l.head = r.head_digest)")
UNCOVERED = (f"SELECT r.warc, r.offset, r.type, r.target FROM records r WHERE r.type != 'warcinfo' AND NOT EXISTS "
             f"(SELECT 1 FROM listed l WHERE l.proven = 1 AND {MATCHES}) ORDER BY r.rowid")
MISSING = ("SELECT l.seq, l.id FROM listed l WHERE l.seq IN (SELECT l2.seq FROM listed l2 JOIN records r "
           "ON r.id = l2.id) AND NOT EXISTS (SELECT 1 FROM records r WHERE r.id = l.id) ORDER BY l.seq")
COVERAGE = (f"SELECT CASE WHEN r.type = 'warcinfo' THEN 'warcinfo' WHEN EXISTS (SELECT 1 FROM listed l WHERE "
            f"l.proven = 1 AND l.head = '' AND {MATCHES}) THEN 'no head digest' ELSE 'proven' END AS kind, COUNT(*) "
            f"FROM records r WHERE r.type = 'warcinfo' OR EXISTS (SELECT 1 FROM listed l WHERE l.proven = 1 AND "
            f"{MATCHES}) GROUP BY kind")

