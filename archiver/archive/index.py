"""WARC records -> catalog rows and CDXJ replay index lines.

The same functions turn freshly written records and records read back from disk into
catalog rows, so ``reindex`` rebuilds exactly what ``snapshot`` stored. Both record
layouts are read (see records.py): a capture's metadata record at ``urn:archiver:capture:``
naming its response by WARC-Refers-To, or, in archives written before, at the page's URL
naming it by WARC-Concurrent-To. The CDXJ index lists HTTP responses and revisits only.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable

import surt
from warcio.statusandheaders import StatusAndHeaders

from archiver.archive.records import capture_url
from archiver.capture.http1 import Response
from archiver.catalog import CaptureRow, XrefRow
from archiver.seeds import DEFAULT_PORTS, PLAIN_HOST
from archiver.archive.warcfile import iter_records



@dataclass(frozen=True)
class Placed:
    """A record's headers and where it sits in its WARC file."""
    offset: int
    length: int
    rec_headers: StatusAndHeaders  # or WarcHeaders, for a record just written
    http_headers: StatusAndHeaders | Response | None = None

    def get(self, name: str) -> str:
        return self.rec_headers.get_header(name) or ""


def capture_row(warc: str, meta: Placed, content: dict[str, Any],
                response: Placed | None) -> tuple[CaptureRow, list[XrefRow]]:
    common = dict(seed=content["seed"], role=content["role"], via=content["via"], hops=content["hops"],
                  snapshot=content.get("snapshot", ""), chain=int(content.get("chain", False)),
                  warc=warc, metadata_offset=meta.offset, error=content.get("error", ""))
    if response is None:
        row = CaptureRow(url=capture_url(meta.get("WARC-Target-URI")), fetched_at=meta.get("WARC-Date"), status=None,
                         record="failed", offset=meta.offset, length=meta.length,
                         record_id=meta.get("WARC-Record-ID"), **common)
    else:
        http = response.http_headers
        row = CaptureRow(
            url=response.get("WARC-Target-URI"), fetched_at=response.get("WARC-Date"),
            status=int(http.get_statuscode()) if http and http.get_statuscode().isdigit() else None,
            record=response.get("WARC-Type"), offset=response.offset, length=response.length,
            record_id=response.get("WARC-Record-ID"), payload_digest=response.get("WARC-Payload-Digest"),
            block_digest=response.get("WARC-Block-Digest"), ip=response.get("WARC-IP-Address"),
            mime=(http.get_header("Content-Type") or "") if http else "",
            refers_to=response.get("WARC-Refers-To"), truncated=response.get("WARC-Truncated"), **common)
    xrefs = [XrefRow(x["url"], x["kind"], x["text"], x["position"]) for x in content.get("links", [])]
    return row, xrefs


def warc_captures(path: Path, name: str | None = None) -> list[tuple[CaptureRow, list[XrefRow]]]:
    """Catalog rows for every capture group in one WARC file (named ``name`` in the rows,
    by default its own name)."""
    name = name or path.name
    responses: dict[str, Placed] = {}
    out = []
    for offset, length, record, content in iter_records(path):
        placed = Placed(offset, length, record.rec_headers, record.http_headers)
        rec_type = record.rec_type
        if rec_type in ("response", "revisit"):
            responses[placed.get("WARC-Record-ID")] = placed
        elif rec_type == "metadata" and record.content_type.startswith("application/json"):
            fields = _metadata(content)
            if fields is not None:
                out.append(capture_row(name, placed, fields, responses.get(described(placed))))
    return out


def described(meta: Placed) -> str:
    """The id of the response or revisit a capture metadata record describes: its
    WARC-Refers-To, or in archives written before that, its WARC-Concurrent-To."""
    return meta.get("WARC-Refers-To") or meta.get("WARC-Concurrent-To")


def _metadata(data: bytes) -> dict[str, Any] | None:
    try:
        content = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return content if isinstance(content, dict) and {"seed", "role", "via", "hops"} <= content.keys() else None


# ---- CDXJ -------------------------------------------------------------------------------

def cdxj_line(warc: str, placed: Placed) -> str:
    url = placed.get("WARC-Target-URI")
    http = placed.http_headers
    revisit = placed.get("WARC-Type") == "revisit"
    fields = {
        "url": url,
        "mime": "warc/revisit" if revisit else _mime(http),
        "status": http.get_statuscode() if http else "-",
        "digest": placed.get("WARC-Payload-Digest").removeprefix("sha1:"),
        "length": str(placed.length),
        "offset": str(placed.offset),
        "filename": warc,
    }
    return f"{surt_key(url)} {_timestamp(placed.get('WARC-Date'))} {json.dumps(fields)}"


# URLs this simple get the same SURT key from a few string operations as from the
# reference implementation (the surt package, which pywb uses to look captures up), at
# a twentieth of the cost; anything else goes to the reference. The property test in
# test_reindex.py holds the two equal.
SIMPLE_URL = re.compile(rf"https?://({PLAIN_HOST})(?::([1-9][0-9]{{0,4}}))?(/[A-Za-z0-9._/-]*)?")
UNSAFE_PATH = re.compile(r"//|/\.\.?(?:/|$)")
WWW_PREFIX = re.compile(r"www\d*\.")
NON_DIGITS = re.compile(r"\D")


def surt_key(url: str) -> str:
    """The SURT form of a URL, e.g. ``com,example)/a/b`` for https://www.example.com/a/b/."""
    m = SIMPLE_URL.fullmatch(url)
    host = m.group(1) if m else ""
    if not m or UNSAFE_PATH.search(m.group(3) or "") or (host.replace(".", "").isdigit() and not _plain_ipv4(host)):
        return surt.surt(url)
    port = m.group(2)
    if port and int(port) == DEFAULT_PORTS[url[:url.index(":")]]:
        port = None
    host = host[WWW_PREFIX.match(host).end():] if WWW_PREFIX.match(host) else host
    path = (m.group(3) or "/").lower()
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return ",".join(reversed(host.split("."))) + (f":{port}" if port else "") + ")" + path


def _plain_ipv4(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(p == str(int(p)) and int(p) <= 255 for p in parts)


def _mime(http: StatusAndHeaders | Response | None) -> str:
    value = (http.get_header("Content-Type") or "") if http else ""
    return value.split(";")[0].strip() or "unk"


def _timestamp(warc_date: str) -> str:
    return NON_DIGITS.sub("", warc_date)[:14]


def write_cdxj(warc_path: Path, index_dir: Path) -> Path:
    """Index one closed WARC, read back from disk (after a repair, or by reindex)."""
    lines = [cdxj_line(warc_path.name, Placed(offset, length, record.rec_headers, record.http_headers))
             for offset, length, record, _ in iter_records(warc_path)
             if record.rec_type in ("response", "revisit")]
    (index_dir / (warc_path.name + PendingIndex.SUFFIX)).unlink(missing_ok=True)  # a crashed writer's
    return write_cdxj_lines(warc_path.name, lines, index_dir)


def write_cdxj_lines(warc_name: str, lines: list[str], index_dir: Path) -> Path:
    """``index_dir/<name>.cdxj``, sorted, written atomically."""
    return write_cdxj_stream(warc_name, (line + "\n" for line in sorted(lines)), index_dir)


def write_cdxj_stream(warc_name: str, sorted_lines: Iterable[str], index_dir: Path) -> Path:
    """``index_dir/<name>.cdxj`` from lines already sorted (each ending in a newline),
    written atomically."""
    index_dir.mkdir(parents=True, exist_ok=True)
    target = index_dir / (warc_name + ".cdxj")
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")  # two processes may index one file (repair, reindex)
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(sorted_lines)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return target


class PendingIndex:
    """CDXJ lines of the WARC files still being written, kept on disk (not in memory: a
    long-running process writes hundreds of thousands) until the file closes."""

    SUFFIX = ".cdxj.pending"  # pywb only loads *.cdx and *.cdxj

    def __init__(self, index_dir: Path):
        self.index_dir = index_dir
        self.files: dict[str, IO[str]] = {}

    def add(self, warc_name: str, line: str) -> None:
        if warc_name not in self.files:
            self.index_dir.mkdir(parents=True, exist_ok=True)
            self.files[warc_name] = open(self.index_dir / (warc_name + self.SUFFIX), "w", encoding="utf-8")
        self.files[warc_name].write(line + "\n")

    RUN_LINES = 20_000  # sorted in memory at a time: a few MB, however large the WARC file

    def finish(self, warc_name: str) -> Path:
        """The sorted index of a closed WARC file: runs of lines sorted in memory, then
        merged, so a file of 100,000 captures does not hold its whole index in memory."""
        pending = self.index_dir / (warc_name + self.SUFFIX)
        f = self.files.pop(warc_name, None)
        if f is not None:
            f.close()
        runs: list[IO[str]] = []
        try:
            if pending.exists():
                with open(pending, encoding="utf-8") as lines:
                    while chunk := list(itertools.islice(lines, self.RUN_LINES)):
                        run = tempfile.TemporaryFile("w+", encoding="utf-8", dir=self.index_dir)
                        run.writelines(sorted(chunk))
                        run.seek(0)
                        runs.append(run)
            target = write_cdxj_stream(warc_name, heapq.merge(*runs), self.index_dir)
        finally:
            for run in runs:
                run.close()
        pending.unlink(missing_ok=True)
        return target

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files.clear()
