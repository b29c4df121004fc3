"""Forging an exported WACZ as an adversary would: change what it holds, then recompute
every hash that can be recomputed without the archive's key (record digests, index,
ledger entry hashes, datapackage.json), and sign with whatever key is at hand.

Used by tests/test_forgery.py and bench/wacz_forgery.py (which runs the forgeries against
the code before and after a change).
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
import threading
import zipfile
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from archiver.archive.writer import Writer
from archiver.config import Config
from archiver.evidence.export import cdxj_lines
from archiver.archive.keys import SigningKey
from archiver.archive.ledger import canonical, entry_hash
from archiver.pipeline import snapshot

from .conftest import make_archive, run_cli, run_snapshot
from .newssite import NewsSite
from .site import Site, send

WARC = "archive/data.warc.gz"


def build_evidence(root: Path) -> tuple[Config, Path]:
    """An article's evidence packet (export --article) from a keyed archive: the article
    captured with another seed's page in the same snapshot (so the proof leaves an entry
    out), then captured again after an edit."""
    site = Site()
    news = NewsSite(site)
    for path in ("/2026/10/pipeline-deal/", "/2026/09/airbase-rumours/", "/docs/ministry-statement",
                 "/docs/parliament-motion"):
        site.page(path, f"<html><body><p>Page {path}.</p></body></html>")
    url = news.url("wordpress")
    _answer_after(site, "/unrelated-investigation/", "/article/wordpress/")
    config = make_archive(root / "a", requisites="false")  # one process: one checkpoint after both
    assert run_cli("keygen", cwd=config.root).returncode == 0
    try:
        run_snapshot(config, url, site.url("/unrelated-investigation/"))
        news.story.title = "A changed headline"
        later = Writer(config, clock=lambda: datetime.now(timezone.utc) + timedelta(hours=1))
        try:
            snapshot(later, [url])
        finally:
            later.close()
    finally:
        site.stop()
    out = root / "evidence.wacz"
    result = run_cli("export", "--article", url, str(out), cwd=config.root)
    assert result.returncode == 0, result.stderr
    return config, out


def _answer_after(site: Site, path: str, first: str) -> None:
    """path answers once first has been answered: its capture's ledger entry comes after
    first's, before the snapshot's checkpoint."""
    answered = threading.Event()
    serve_first = site.routes[first]

    def first_then_signal(h) -> None:
        serve_first(h)
        answered.set()

    def after(h) -> None:
        answered.wait(30)
        send(h, 200, b"<html><body><p>Someone else's lead.</p></body></html>", "text/html")

    site.routes[first], site.routes[path] = first_then_signal, after


def read_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def write_members(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def resign(members: dict[str, bytes], key: SigningKey | None) -> dict[str, bytes]:
    """datapackage.json listing the members as they are now, its digest, signed by key (or
    not signed at all)."""
    package = json.loads(members["datapackage.json"])
    package["resources"] = [{"name": name.rsplit("/", 1)[-1], "path": name,
                             "hash": "sha256:" + hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                            for name, data in members.items() if not name.startswith("datapackage")]
    if key is not None:
        package["archiver_public_key"] = key.public_b64
    members["datapackage.json"] = json.dumps(package, indent=2).encode()
    package_hash = "sha256:" + hashlib.sha256(members["datapackage.json"]).hexdigest()
    digest = {"path": "datapackage.json", "hash": package_hash}
    if key is not None:
        digest["signedData"] = {"hash": package_hash, "created": package.get("created"), "software": "archiver",
                                "signature": key.sign(package_hash), "publicKey": key.public_b64}
    members["datapackage-digest.json"] = json.dumps(digest).encode()
    return members


def gzip_members(data: bytes) -> list[bytes]:
    out, start = [], 0
    while start < len(data):
        d = zlib.decompressobj(31)
        out.append(d.decompress(data[start:]))
        start = len(data) - len(d.unused_data)
    return out


def gzip(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def sha1_label(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def redigest(record: bytes) -> bytes:
    """A WARC record with Content-Length and its block and payload digests recomputed."""
    head, _, rest = record.partition(b"\r\n\r\n")
    block = rest[:-4] if rest.endswith(b"\r\n\r\n") else rest
    lines = head.split(b"\r\n")
    http = b"application/http" in head
    payload = block.partition(b"\r\n\r\n")[2] if http else block
    fixed = []
    for line in lines:
        name = line.split(b":", 1)[0].lower()
        if name == b"content-length":
            line = b"Content-Length: %d" % len(block)
        elif name == b"warc-block-digest":
            line = b"WARC-Block-Digest: " + sha1_label(block).encode()
        elif name == b"warc-payload-digest" and b"WARC-Type: revisit" not in head:
            line = b"WARC-Payload-Digest: " + sha1_label(payload).encode()
        fixed.append(line)
    return b"\r\n".join(fixed) + b"\r\n\r\n" + block + b"\r\n\r\n"


def redated(record: bytes) -> bytes:
    """A response record with another WARC-Date (a header outside every block digest)."""
    if b"WARC-Type: response" not in record:
        return record
    head, sep, rest = record.partition(b"\r\n\r\n")
    lines = [b"WARC-Date: 2026-01-01T00:00:00.000000Z" if line.startswith(b"WARC-Date:") else line
             for line in head.split(b"\r\n")]
    return b"\r\n".join(lines) + sep + rest


def rewrite_records(members: dict[str, bytes], change: Callable[[bytes], bytes]) -> set[str]:
    """Apply change to every record of the WARC (digests recomputed where it changed one),
    then rebuild the index from the new WARC; the ids of the changed records."""
    changed, out = set(), []
    for record in gzip_members(members[WARC]):
        new = change(record)
        if new != record:
            new = redigest(new)
            changed.add(_header(new, b"WARC-Record-ID"))
        out.append(gzip(new) if new != record else None)
    originals = _raw_members(members[WARC])
    members[WARC] = b"".join(g if g is not None else raw for g, raw in zip(out, originals))
    members["indexes/index.cdx"] = _index_of(members[WARC])
    return changed


def _raw_members(data: bytes) -> list[bytes]:
    out, start = [], 0
    while start < len(data):
        d = zlib.decompressobj(31)
        d.decompress(data[start:])
        end = len(data) - len(d.unused_data)
        out.append(data[start:end])
        start = end
    return out


def _header(record: bytes, name: bytes) -> str:
    for line in record.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip().decode()
    return ""


def _index_of(warc: bytes) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.warc.gz"
        path.write_bytes(warc)
        return "".join(line + "\n" for line in cdxj_lines(path)).encode()


def rehash_ledger(members: dict[str, bytes], relink: bool = False) -> None:
    """Ledger entries listing a record of the WARC get that record's digests as it is now
    and their hashes recomputed. The signed checkpoints are kept as they were, or with
    relink, the whole chain is relinked (every prev, hash and checkpoint head recomputed:
    only the signatures, which need the key, stay as they were)."""
    records = {}
    for record in gzip_members(members[WARC]):
        head = record.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
        records[_header(record, b"WARC-Record-ID")] = {
            "block_digest": _header(record, b"WARC-Block-Digest"),
            "payload_digest": _header(record, b"WARC-Payload-Digest"),
            "head_digest": "sha256:" + hashlib.sha256(head).hexdigest()}
    lines, prev = [], None
    for line in members["ledger/ledger.jsonl"].decode().splitlines():
        entry = json.loads(line)
        for listed in entry.get("records", []):
            if listed["id"] in records:
                listed.update({k: v for k, v in records[listed["id"]].items() if k in listed or k != "head_digest"})
        if relink and prev is not None:
            _relink(entry, prev)
        if "omitted" not in entry:
            entry["hash"] = entry_hash(entry)
        prev = entry["hash"]
        lines.append(canonical(entry))
    members["ledger/ledger.jsonl"] = "".join(line + "\n" for line in lines).encode()


def _relink(entry: dict, prev: str) -> None:
    if "omitted" in entry:
        from archiver.archive.ledger import link_hash  # only in ledgers that can leave entries out

        entry["hash"] = link_hash(prev, entry["omitted"])
        return
    entry["prev"] = prev
    if entry.get("type") in ("checkpoint", "key"):
        entry["head"] = prev
