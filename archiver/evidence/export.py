"""``archiver export``: signed WACZ 1.1.1 packages of selected captures.

The records are copied byte for byte (every record is its own gzip member, so a group
of records is a byte range of its WARC file), with each source file's warcinfo record and
the originals that included revisits refer to. The package holds a CDXJ index, an
explicit pages.jsonl, the ledger proof of the captures (their entries chained to the
signed checkpoints after them, proof.py), and for an article's evidence packet a
human-readable provenance report. datapackage.json is hashed and, when the archive has a
key, signed in the WACZ signing spec's anonymous form. The package is written to a new
file of its own in the destination folder (never through a link planted there), then
renamed over OUT.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from archiver.version import __version__
from archiver.catalog import CaptureRow, Catalog
from archiver.archive.locks import reading
from archiver.config import Config
from archiver.errors import ArchiverError, UsageError
from archiver.archive.index import Placed, cdxj_line
from archiver.archive.keys import SigningKey, load_key
from archiver.archive.ledger import Ledger
from archiver.evidence.proof import Slice, ledger_proof
from archiver.archive.records import OLD_TLS_TYPE, TLS_TYPE, pem_certificates
from archiver.archive.warcfile import OPEN_SUFFIX, iter_records

WACZ_VERSION = "1.1.1"
WARC_NAME = "data.warc.gz"


@dataclass(frozen=True)
class Exported:
    path: Path
    captures: int
    pages: int
    signed: bool


def select(catalog: Catalog, urls: list[str], since: str | None) -> list[CaptureRow]:
    """Captures of these URLs (as pages or as seeds) since a time, plus the originals
    their revisits refer to."""
    everything = catalog.captures.rows()
    rows = [r for r in everything if (not urls or r.url in urls or r.seed in urls)
            and (since is None or r.fetched_at >= since)]
    if not rows:
        raise UsageError("nothing to export: no captures match" + (f" {', '.join(urls)}" if urls else ""))
    by_id = {r.record_id: r for r in everything}
    chosen = {(r.warc, r.offset): r for r in rows}
    for r in rows:
        original = by_id.get(r.refers_to) if r.refers_to else None
        if original is not None:
            chosen.setdefault((original.warc, original.offset), original)
    return sorted(chosen.values(), key=lambda r: (r.warc, r.offset))


def group_spans(path: Path) -> tuple[tuple[int, int], dict[int, tuple[int, int]]]:
    """(warcinfo span, closing metadata offset -> byte span of its whole group)."""
    warcinfo = (0, 0)
    spans: dict[int, tuple[int, int]] = {}
    group_start = 0
    for offset, length, record, _ in iter_records(path):
        if record.rec_type == "warcinfo":
            warcinfo = (offset, offset + length)
            group_start = offset + length
        elif record.rec_type == "metadata" and record.content_type == "application/json":
            spans[offset] = (group_start, offset + length)
            group_start = offset + length
    return warcinfo, spans


def write_warc(warc_dir: Path, rows: list[CaptureRow], out: Path) -> None:
    with open(out, "wb") as f:
        for name in sorted({r.warc for r in rows}):
            source = warc_dir / name
            if not source.exists() and source.with_name(name + OPEN_SUFFIX).exists():
                raise ArchiverError(f"{name} is still being written (archiver run or a snapshot): export its "
                                    "captures once it is closed")
            warcinfo, spans = group_spans(source)
            with open(source, "rb") as src:
                for start, end in [warcinfo] + sorted(spans[r.metadata_offset] for r in rows if r.warc == name):
                    src.seek(start)
                    f.write(src.read(end - start))


def cdxj_lines(path: Path) -> list[str]:
    return sorted(cdxj_line(path.name, Placed(offset, length, record.rec_headers, record.http_headers))
                  for offset, length, record, _ in iter_records(path) if record.rec_type in ("response", "revisit"))


def pages(rows: list[CaptureRow], titles: dict[tuple[str, int], str]) -> str:
    lines = [{"format": "json-pages-1.0", "id": "pages", "title": "Tracked articles"}]
    for row in rows:
        if row.chain and row.record != "failed" and row.status and 200 <= row.status < 300:
            lines.append({"id": uuid.uuid5(uuid.NAMESPACE_URL, row.record_id).hex, "url": row.url,
                          "ts": row.fetched_at, "title": titles.get((row.warc, row.offset)) or row.url})
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def ledger_slice(ledger: Ledger, rows: list[CaptureRow], signing: bool) -> str:
    """The captures' ledger proof (proof.py). Refused, when the archive signs, for captures
    the ledger does not hold or no signed checkpoint covers yet: verify would fail it."""
    proof = ledger_proof(ledger, {r.record_id for r in rows})
    if signing:
        _check_covered(proof, rows, ledger.path.name)
    return "".join(line + "\n" for line in proof.lines)


def _check_covered(proof: Slice, rows: list[CaptureRow], ledger_name: str) -> None:
    unledgered = [r for r in rows if r.record_id not in proof.found]
    if unledgered:
        r = unledgered[0]
        raise ArchiverError(f"{len(unledgered)} capture(s) are not in {ledger_name}, such as {r.url} "
                         f"({r.warc}@{r.offset}): a crash left them out; any capture command adds them")
    if proof.uncovered:
        raise ArchiverError(f"ledger entries {proof.uncovered[0]} to {proof.uncovered[-1]} are not yet covered by a "
                         "signed checkpoint (archiver run writes one every [evidence] checkpoint_every entries "
                         "and at the end of each snapshot): export again after it")


def tls_certificates(warc: Path) -> dict[str, dict[str, Any]]:
    """Response record id -> the TLS record written with it (version, cipher, SHA-256 of
    the server's certificate), from either record layout (see archive/records.py)."""
    out = {}
    for _, _, record, content in iter_records(warc):
        h = record.rec_headers
        if record.rec_type != "metadata":
            continue
        if record.content_type == TLS_TYPE:
            certificates = pem_certificates(content)
            out[h.get_header("WARC-Refers-To")] = {
                "tls_version": h.get_header("WARC-Protocol") or "", "cipher": h.get_header("WARC-Cipher-Suite") or "",
                "certificate_sha256": hashlib.sha256(certificates[0]).hexdigest() if certificates else ""}
        elif record.content_type == OLD_TLS_TYPE:
            fields = json.loads(content)
            out[h.get_header("WARC-Concurrent-To")] = {
                k: fields.get(k) for k in ("tls_version", "cipher", "certificate_sha256")}
    return out


def export_wacz(config: Config, out: Path, urls: list[str], since: str | None = None,
                report: Callable[[list[CaptureRow], Path], str] | None = None,
                now: datetime | None = None) -> Exported:
    now = now or datetime.now(timezone.utc)
    created = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    catalog = Catalog(config.storage.catalog, holding=reading(config.storage.lock_dir))
    try:
        rows = select(catalog, urls, since)
        titles = catalog.history.article_titles()
    finally:
        catalog.close()
    key = load_key(config.evidence.key)
    proof = ledger_slice(Ledger(config.evidence.ledger), rows, key is not None).encode()
    with tempfile.TemporaryDirectory() as tmp:
        warc = Path(tmp) / WARC_NAME
        write_warc(config.storage.warc_dir, rows, warc)
        files: dict[str, bytes | Path] = {
            f"archive/{WARC_NAME}": warc,
            "indexes/index.cdx": "".join(line + "\n" for line in cdxj_lines(warc)).encode(),
            "pages/pages.jsonl": pages(rows, titles).encode(),
            "ledger/ledger.jsonl": proof,
        }
        if report is not None:
            files["report/provenance.html"] = report(rows, warc).encode()
        _write_zip(out, files, key, created)
    return Exported(out, len(rows), pages(rows, titles).count("\n") - 1, key is not None)


def _write_zip(out: Path, files: dict[str, bytes | Path], key: SigningKey | None, created: str) -> None:
    resources = [_resource(name, data) for name, data in files.items()]
    package = {"profile": "data-package", "wacz_version": WACZ_VERSION, "title": "archiver export",
               "created": created, "software": f"archiver {__version__}", "resources": resources}
    if key is not None:
        package["archiver_public_key"] = key.public_b64
    package_bytes = json.dumps(package, indent=2).encode()
    package_hash = "sha256:" + hashlib.sha256(package_bytes).hexdigest()
    digest: dict[str, Any] = {"path": "datapackage.json", "hash": package_hash}
    if key is not None:
        digest["signedData"] = {"hash": package_hash, "created": created, "software": "archiver",
                                "version": __version__, "signature": key.sign(package_hash),
                                "publicKey": key.public_b64}
    with _new_file_beside(out) as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
            for name, data in files.items():
                if isinstance(data, Path):
                    z.write(data, name)
                else:
                    z.writestr(name, data)
            z.writestr("datapackage.json", package_bytes)
            z.writestr("datapackage-digest.json", json.dumps(digest, indent=2))


@contextmanager
def _new_file_beside(out: Path) -> Iterator[IO[bytes]]:
    """A file created anew (O_EXCL, a random name: no link planted in the folder is
    followed) beside out, fsynced and renamed over it when the block ends, removed if it
    fails. The rename replaces a link at out itself, never what it points to."""
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w+b") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(name, out)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _resource(name: str, data: bytes | Path) -> dict[str, Any]:
    digest, size = hashlib.sha256(), 0
    if isinstance(data, Path):
        with open(data, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
    else:
        digest.update(data)
        size = len(data)
    return {"name": name.rsplit("/", 1)[-1].lower(), "path": name, "hash": "sha256:" + digest.hexdigest(),
            "bytes": size}
