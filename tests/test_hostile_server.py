"""Servers that are slow on purpose, or send what is not HTTP: bounded in time, and what
they sent is kept as evidence (a WARC record of the raw bytes, the error in the capture)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest
from warcio.archiveiterator import ArchiveIterator

from archiver.capture import politeness
from archiver.capture.fetch import Fetcher
from archiver.evidence.verify import verify_archive

from .conftest import make_archive, run_snapshot, warc_files, warcio_check
from .rawnet import Listener, read_head
from .test_http_wire import RawServer, Reply, body_of


class SilentServer(Listener):
    """Reads each request and answers nothing until stopped."""

    def __init__(self) -> None:
        self.stopped = threading.Event()
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            read_head(conn)
            self.stopped.wait(10)

    def stop(self) -> None:
        self.stopped.set()
        super().stop()


def records(config) -> list:
    """(type, target, WARC headers, block) of every record but warcinfo."""
    out = []
    for path in warc_files(config):
        with open(path, "rb") as f:
            for record in ArchiveIterator(f, no_record_parse=True):
                if record.rec_type != "warcinfo":
                    out.append((record.rec_type, record.rec_headers.get_header("WARC-Target-URI"),
                                record.rec_headers, record.raw_stream.read()))
    return out


def snapshot_of(tmp_path, reply: Reply, **settings: str):
    server = RawServer(reply)
    config = make_archive(tmp_path / "a", **settings)
    try:
        summary = run_snapshot(config, server.base + "/")
    finally:
        server.stop()
    return config, server, summary


# ---- time ------------------------------------------------------------------------------------

def test_a_head_sent_a_byte_at_a_time_is_cut_at_head_timeout_and_kept_a_slow_body_is_not(tmp_path):
    head = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 200 + b"\r\n\r\n"
    slow_head = RawServer(Reply(head, drip=0.02))  # each byte well within `timeout`; 4 s in all
    body = b"x" * 30  # a head in 0.8 s, the whole response in 1.4 s
    slow_body = RawServer(Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n" + body, drip=0.02))
    fetcher = Fetcher(make_archive(tmp_path / "a", timeout="1.0", head_timeout="1.0", total_timeout="30").capture)
    started = time.monotonic()
    ex = fetcher.fetch(slow_head.base + "/")
    elapsed = time.monotonic() - started
    whole = fetcher.fetch(slow_body.base + "/")
    fetcher.close()
    slow_head.stop()
    slow_body.stop()
    received = body_of(ex)
    assert 1.0 <= elapsed < 2.0  # not total_timeout's 30 s
    assert ex.status is None and ex.error == "timed out: no complete response head within 1 s (head_timeout)"
    assert ex.raw and ex.truncated == "time" and head.startswith(received) and len(received) > 5
    assert (whole.status, body_of(whole), whole.error, whole.truncated) == (200, body, "", "")


def test_a_dripping_server_is_not_retried(tmp_path):
    config, server, summary = snapshot_of(tmp_path, Reply(b"HTTP/1.1 200 OK\r\nX: " + b"z" * 100, drip=0.02),
                                          retries="2", timeout="1.0", head_timeout="0.3")
    assert server.connections == 1 and len(summary.results) == 1  # it answered: slowly, and not in time
    assert "head_timeout" in summary.results[0].error


def test_retries_share_total_timeout(tmp_path, monkeypatch):
    """A server that accepts and never answers: each attempt runs into `timeout`, and the
    attempts of one URL together stop at total_timeout, the last one cut short."""
    monkeypatch.setattr(politeness, "RETRY_BASE_SECONDS", 0.01)  # no back-off to wait out here
    server = SilentServer()
    config = make_archive(tmp_path / "a", retries="5", timeout="0.4", total_timeout="1.0")
    started = time.monotonic()
    try:
        summary = run_snapshot(config, server.base + "/")
    finally:
        server.stop()
    elapsed = time.monotonic() - started
    assert elapsed < 2.0  # not 6 attempts of 0.4 s
    assert [r.error.split(";")[0] for r in summary.results] == ["timed out (TimeoutError)"] * 2 + [
        "timed out (TimeoutError)"]
    assert summary.results[-1].error.endswith("; not retried: 1 s spent on this URL (total_timeout)")


# ---- what is not HTTP ------------------------------------------------------------------------

@pytest.mark.parametrize("reply, error", [
    (b"<html><body>HTTP/0.9: a bare body</body></html>", "BadStatusLine: <html><body>HTTP/0.9: a bare body</body></html>"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n<html>no blank line</html>",
     "ResponseError: connection closed in the response head"),
    (b"ICY 200 OK\r\nicy-name: radio\r\n\r\nstream", "BadStatusLine: ICY 200 OK"),
    (b"HTTP/2 200\r\n\r\nbody", "UnknownProtocol: HTTP/2"),
    (b"HTTP/1.1 0200 OK\r\n\r\nbody", "ResponseError: not an HTTP/1.x status line: 'HTTP/1.1 0200 OK'"),
])
def test_what_is_not_http_is_kept_as_a_resource_record_with_the_error(tmp_path, reply, error):
    config, server, summary = snapshot_of(tmp_path, Reply(reply), retries="2")
    [result] = summary.results  # an answer, if not HTTP: not retried
    url = result.url
    assert (result.status, result.record, result.error) == (None, "failed", error)
    [path] = warc_files(config)
    assert warcio_check(path).returncode == 0
    by_type = {(rec_type, target): (headers, block) for rec_type, target, headers, block in records(config)}
    headers, block = by_type[("resource", "urn:archiver:raw:" + url)]
    assert block == reply  # the bytes as they came, to the end of the connection
    assert headers.get_header("Content-Type") == "application/octet-stream"
    assert headers.get_header("Archiver-Error") == error.replace("\r", "\\x0d").replace("\n", "\\x0a")
    assert headers.get_header("WARC-IP-Address") == "127.0.0.1"
    request, _ = by_type[("request", url)]
    assert block and request.get_header("WARC-Concurrent-To") == headers.get_header("WARC-Record-ID")
    meta, meta_block = by_type[("metadata", "urn:archiver:capture:" + url)]
    assert meta.get_header("WARC-Refers-To") == headers.get_header("WARC-Record-ID")
    assert json.loads(meta_block)["error"] == error
    assert not any(target == url for rec_type, target in by_type if rec_type in ("response", "resource"))
    assert verify_archive(config).ok


def test_pywb_indexes_the_raw_bytes_apart_from_the_page(tmp_path):
    """Under their synthesized target: replay never serves them as the page (a resource
    record at the page's URL would replay as a 200)."""
    config, server, summary = snapshot_of(tmp_path, Reply(b"<html>HTTP/0.9</html>"))
    [path] = warc_files(config)
    indexed = subprocess.run([sys.executable, "-c", "import sys; from pywb.indexer.cdxindexer import main; "
                              "main(['-j', sys.argv[1]])", str(path)], capture_output=True, text=True, check=True)
    urls = [json.loads(line.split(" ", 2)[2])["url"] for line in indexed.stdout.splitlines()]
    url = summary.results[0].url
    assert "urn:archiver:raw:" + url in urls and url not in urls


def test_a_non_http_answer_stops_at_max_bytes(tmp_path):
    config, server, summary = snapshot_of(tmp_path, Reply(b"garbage " * 10_000), max_bytes="1000")
    [(headers, block)] = [(h, b) for t, _, h, b in records(config) if t == "resource"]
    assert len(block) == 1000 and block == (b"garbage " * 10_000)[:1000]
    assert headers.get_header("WARC-Truncated") == "length"


# ---- framing ---------------------------------------------------------------------------------

def test_chunked_trailer_is_kept_in_the_capture_metadata(tmp_path):
    trailer = b"X-Checksum: abc123\r\nX-Other:  two\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    server = RawServer(Reply(head + b"5\r\nhello\r\n0\r\n" + trailer, close=False),
                       Reply(head + b"5\r\nplain\r\n0\r\n\r\n"))
    config, base = make_archive(tmp_path / "a", concurrency="1"), server.base
    try:
        summary = run_snapshot(config, base + "/with", base + "/without")
    finally:
        server.stop()
    assert [(r.status, r.error) for r in summary.results] == [(200, "")] * 2
    meta = {target: json.loads(block) for t, target, _, block in records(config) if t == "metadata"
            and target.startswith("urn:archiver:capture:")}
    assert meta["urn:archiver:capture:" + base + "/with"]["trailer"].encode("latin-1") == trailer
    assert "trailer" not in meta["urn:archiver:capture:" + base + "/without"]  # no fields, nothing to keep


def test_a_trailer_section_without_end_is_cut_at_64_kb(tmp_path):
    fetcher = Fetcher(make_archive(tmp_path / "a", timeout="2.0").capture)
    endless = b"".join(b"X-%d: %s\r\n" % (n, b"v" * 1000) for n in range(100))
    server = RawServer(Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n" + endless))
    ex = fetcher.fetch(server.base + "/")
    fetcher.close()
    server.stop()
    assert body_of(ex) == b"hello" and ex.error == "body incomplete: ResponseError: trailer section over 64 KB"


@pytest.mark.parametrize("head, body, error", [
    (b"Content-Length: 5\r\nContent-Length: 7\r\n", b"hello world",
     "framing: conflicting Content-Length values 5, 7 (the body is read to the end of the connection)"),
    (b"Content-Length: 5, 7\r\n", b"hello world",
     "framing: conflicting Content-Length values 5, 7 (the body is read to the end of the connection)"),
    (b"Content-Length: abc\r\n", b"hello world",
     "framing: Content-Length 'abc' is not a length (the body is read to the end of the connection)"),
    (b"Content-Length: 1_0\r\n", b"hello world",  # int() takes it; RFC 9110 does not
     "framing: Content-Length '1_0' is not a length (the body is read to the end of the connection)"),
    (b"Content-Length: -3\r\n", b"hello world",
     "framing: Content-Length '-3' is not a length (the body is read to the end of the connection)"),
    (b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n",
     "framing: both Transfer-Encoding and Content-Length (the connection is not used again)"),
    (b"Content-Length: 5, 5\r\n", b"hello world", ""),  # a list of one value, repeated: that value (RFC 9110 8.6)
])
def test_bad_or_conflicting_content_length_is_named_and_the_bytes_kept(tmp_path, head, body, error):
    fetcher = Fetcher(make_archive(tmp_path / "a", timeout="2.0").capture)
    server = RawServer(Reply(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n" + body))
    ex = fetcher.fetch(server.base + "/")
    fetcher.close()
    server.stop()
    assert (ex.status, ex.error, ex.truncated) == (200, error, "")
    assert body_of(ex) == (b"hello" if b"chunked" in head or b"5, 5" in head else body)
