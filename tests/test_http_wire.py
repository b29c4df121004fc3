"""The HTTP/1.1 wire, read through requests and the recording transport (transport.py):
odd and hostile responses sent byte by byte from a raw socket server, requests through a
proxy, cookies_file."""

from __future__ import annotations

import base64
import gzip
import socket
import threading
import time
import zlib
from dataclasses import dataclass

import pytest
from warcio.archiveiterator import ArchiveIterator

from archiver.capture.fetch import Fetcher
from archiver.capture.redact import proves

from .conftest import make_archive, run_snapshot, warc_files, warcio_check
from .rawnet import Listener, pipe_both_ways, read_head
from .site import redirect


@dataclass
class Reply:
    data: bytes
    close: bool = True  # close the connection after sending
    drip: float = 0.0   # seconds between bytes: a server that sends slowly
    then: bytes = b""   # sent after the reply, as a second write


class RawServer(Listener):
    """127.0.0.1:0, answering each request head it reads with the next scripted reply,
    as bytes no HTTP server library would send. Records every request head received."""

    def __init__(self, *replies: Reply):
        self.replies = list(replies)
        self.requests: list[bytes] = []
        self.sent = threading.Event()  # set after each reply is sent
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                while (head := read_head(conn)) and self.replies:
                    self.requests.append(head)
                    reply = self.replies.pop(0)
                    _send(conn, reply)
                    self.sent.set()
                    if reply.close:
                        return
            except OSError:  # the client hung up (it gave up on a reply, or closed with bytes unread)
                return


def _send(conn: socket.socket, reply: Reply) -> None:
    if not reply.drip:
        conn.sendall(reply.data)
        conn.sendall(reply.then)
        return
    for i in range(len(reply.data)):
        conn.sendall(reply.data[i:i + 1])
        time.sleep(reply.drip)


def body_of(ex) -> bytes:
    """The exchange's body; its spool file closed."""
    try:
        return ex.read_body(1 << 20)
    finally:
        ex.close()


@pytest.fixture
def fetcher(tmp_path):
    config = make_archive(tmp_path / "a", timeout="2.0")
    f = Fetcher(config.capture)
    yield f
    f.close()


def test_odd_response_head_is_kept_byte_for_byte_and_read(tmp_path):
    head = (b"HTTP/1.1 200 Fine\n"            # bare LF line endings
            b"Content-Type:text/html\n"        # no space after the colon
            b"X-Folded: one\n\ttwo\n"           # an obs-folded value
            b"this line has no colon\n"
            b"Content-Length: 5\n\n")
    server = RawServer(Reply(head + b"hello"))
    config = make_archive(tmp_path / "a")
    try:
        summary = run_snapshot(config, server.base + "/odd")
    finally:
        server.stop()
    [result] = summary.results
    assert (result.status, result.record) == (200, "response")
    [path] = warc_files(config)
    assert warcio_check(path).returncode == 0
    with open(path, "rb") as f:
        blocks = {r.rec_type: r.raw_stream.read() for r in ArchiveIterator(f, no_record_parse=True)
                  if r.rec_type in ("request", "response")}
    assert blocks["response"] == head + b"hello"
    assert blocks["request"] == server.requests[0]  # the request record is what the server read


def test_folded_and_unspaced_headers_are_parsed(fetcher):
    server = RawServer(Reply(b"HTTP/1.1 200 OK\r\nContent-Type:text/plain\r\nX-Folded: one\r\n two\r\n"
                         b"Content-Length: 2\r\n\r\nok"))
    ex = fetcher.fetch(server.base + "/")
    server.stop()
    assert ex.header("Content-Type") == "text/plain" and ex.header("X-Folded") == "one two"
    assert body_of(ex) == b"ok" and not ex.error


def test_informational_responses_are_dropped_before_the_final_one(fetcher):
    server = RawServer(Reply(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
                         b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"))
    ex = fetcher.fetch(server.base + "/")
    server.stop()
    assert ex.status == 200 and ex.response_head_bytes == b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"
    assert body_of(ex) == b"body"


def test_chunked_body_with_extensions_and_trailer_is_dechunked_and_the_connection_reused(fetcher):
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    server = RawServer(Reply(chunked, close=False), Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    first, second = fetcher.fetch(server.base + "/1"), fetcher.fetch(server.base + "/2")
    server.stop()
    assert body_of(first) == b"hello world" and not first.error
    assert first.response_head_bytes == b"HTTP/1.1 200 OK\r\nX-Archive-Orig-Transfer-Encoding: chunked\r\n\r\n"
    assert first.header("X-Archive-Orig-Transfer-Encoding") == "chunked" and not first.header("Transfer-Encoding")
    assert body_of(second) == b"ok" and server.connections == 1


def chunked(data: bytes, size: int = 7) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + size]), data[i:i + size])
                    for i in range(0, len(data), size)) + b"0\r\n\r\n"


def test_gzip_and_deflate_transfer_codings_are_removed_like_chunked(fetcher):
    """A transfer coding is the hop's, not the resource's (RFC 9112 7): the payload is the
    body without it, as it is without chunked framing; Content-Encoding is kept."""
    gzip_coded = gzip.compress(b"hello, gzip")
    server = RawServer(
        Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + chunked(gzip_coded), close=False),
        Reply(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: deflate\r\n\r\n"
              + zlib.compress(gzip_coded)))
    first, second = fetcher.fetch(server.base + "/1"), fetcher.fetch(server.base + "/2")
    server.stop()
    assert body_of(first) == b"hello, gzip" and not first.error
    assert first.header("X-Archive-Orig-Transfer-Encoding") == "gzip, chunked"
    assert body_of(second) == gzip_coded and not second.error
    # (http.client closes a connection whose Transfer-Encoding does not end in a bare
    # "chunked" after the body, so no assertion on reuse here.)


def test_transfer_codings_as_servers_really_send_them(fetcher):
    """Raw deflate (no zlib header), gzip of several members, one byte a chunk, and the
    no-op identity."""
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw_deflate = raw.compress(b"raw deflate") + raw.flush()
    server = RawServer(
        Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: deflate, chunked\r\n\r\n" + chunked(raw_deflate), close=False),
        Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
              + chunked(gzip.compress(b"two ") + gzip.compress(b"members"), 1), close=False),
        Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity, chunked\r\n\r\n" + chunked(b"plain"), close=False),
        Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"))
    exchanges = [fetcher.fetch(server.base + f"/{n}") for n in range(4)]
    server.stop()
    assert [(body_of(ex), ex.error) for ex in exchanges[:3]] == [(b"raw deflate", ""), (b"two members", ""),
                                                                (b"plain", "")]
    assert body_of(exchanges[3]) == b"" and "empty body with a gzip or deflate transfer coding" in exchanges[3].error


def test_a_transfer_coded_bomb_stops_at_max_bytes(tmp_path):
    fetcher = Fetcher(make_archive(tmp_path / "a", timeout="5.0", max_bytes="1000000").capture)
    bomb = gzip.compress(b"a" * 200_000_000, compresslevel=9)  # 194 KB
    server = RawServer(Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                             + chunked(bomb, 65536)))
    ex = fetcher.fetch(server.base + "/")
    server.stop()
    fetcher.close()
    ex.close()
    assert ex.body_length == 1_000_000 and ex.truncated == "length"


def test_transfer_codings_that_are_not_what_they_say_are_recorded(fetcher):
    server = RawServer(
        Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + chunked(b"not gzip at all")),
        Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n" + gzip.compress(b"text") + b"tail"),
        Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: compress, chunked\r\n\r\n" + chunked(b"kept")))
    bad, tail, unknown = (fetcher.fetch(server.base + f"/{n}") for n in range(3))
    server.stop()
    assert body_of(bad) == b"" and "bad gzip or deflate transfer coding" in bad.error
    assert body_of(tail) == b"text" and "4 bytes after the end of the gzip or deflate transfer coding" in tail.error
    assert body_of(unknown) == b"kept" and "transfer coding compress kept as received" in unknown.error


def test_body_shorter_than_content_length_is_kept_and_marked_cut(fetcher):
    server = RawServer(Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"))
    ex = fetcher.fetch(server.base + "/")
    server.stop()
    assert ex.status == 200 and body_of(ex) == b"only this"
    assert ex.truncated == "disconnect"
    assert ex.error == "body incomplete: connection closed mid-body (IncompleteRead)"


# The messages are http.client's and urllib3's now (they read the wire); the own client
# also refused trailer fields over 64 KB, which urllib3 reads and drops line by line.
@pytest.mark.parametrize("reply, error", [
    (b"", "connection closed without a response (RemoteDisconnected)"),
    (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "BadStatusLine: SSH-2.0-OpenSSH_9.6"),
    (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000, "LineTooLong: got more than 65536 bytes when reading header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", "ResponseError: connection closed in the response head"),
    (b"HTTP/1.1 2\xb30 OK\r\n\r\n", "BadStatusLine: HTTP/1.1 2\xb30 OK"),  # "2³0"
    (b"HTTP/1.1 100 Continue\r\n\r\n" * 5000, "HTTPException: informational (1xx) responses over 64 KB"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
     "body incomplete: connection closed mid-body (IncompleteRead)"),
])
def test_what_is_not_a_response_is_a_one_line_error(fetcher, reply, error):
    server = RawServer(Reply(reply))
    ex = fetcher.fetch(server.base + "/")
    body_of(ex)
    server.stop()
    assert ex.error == error


def test_host_name_idna_refuses_is_a_recorded_failure_not_a_crash(site, config):
    """A 64-character label passes URL normalisation, but not IDNA encoding; a redirect
    is enough to lead a snapshot there."""
    far = f"http://{'a' * 64}.example/"
    site.routes["/go/"] = redirect(far)
    summary = run_snapshot(config, site.url("/go/"))
    assert [(r.url, r.record) for r in summary.results] == [(site.url("/go/"), "response"), (far, "failed")]
    assert "label empty or too long" in summary.results[-1].error


def test_framing_reads_every_field_of_transfer_encoding_and_connection(fetcher):
    server = RawServer(
        # chunked, then an empty Transfer-Encoding field: still chunked; with a
        # Content-Length as well, the connection is not reused (request smuggling's shape).
        Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\nContent-Length: 3\r\n\r\n"
              b"5\r\nhello\r\n0\r\n\r\n", close=False),
        # "close" in the first of two Connection fields still closes.
        Reply(b"HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: x\r\nContent-Length: 2\r\n\r\nok", close=False),
        Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast"))
    first, second, third = (fetcher.fetch(server.base + f"/{n}") for n in range(3))
    server.stop()
    assert (body_of(first), body_of(second), body_of(third)) == (b"hello", b"ok", b"last")
    assert server.connections == 3


def test_a_field_name_that_is_not_a_token_does_not_frame_the_body(fetcher):
    # "\x0cTransfer-Encoding" is no field: the body is read by its Content-Length, and the
    # stored head is exactly what came.
    head = b"HTTP/1.1 200 OK\r\n\x0cTransfer-Encoding: chunked\r\nX-Bad : 1\r\nContent-Length: 5\r\n\r\n"
    server = RawServer(Reply(head + b"hello"))
    ex = fetcher.fetch(server.base + "/")
    server.stop()
    assert body_of(ex) == b"hello" and ex.response_head_bytes == head and not ex.error


def test_bytes_arriving_on_an_idle_connection_are_never_read_as_the_next_response(fetcher):
    # More than the Content-Length, in a second write: with the first read or after it.
    server = RawServer(Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", close=False,
                             then=b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"),
                       Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal"))
    first = fetcher.fetch(server.base + "/1")
    assert server.sent.wait(5)  # on loopback, sent is in the client's receive buffer
    second = fetcher.fetch(server.base + "/2")
    server.stop()
    # Bytes in the socket make urllib3 drop the connection; bytes already buffered go
    # with the first response's file. Either way the next response is the real one.
    assert (body_of(first), body_of(second)) == (b"ok", b"real")


def test_non_latin1_cookie_values_are_sent_as_utf8_as_browsers_do(site, tmp_path):
    site.page("/c/", "<html></html>")
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tname\tJosé–Ñ\n", encoding="utf-8")
    fetcher = Fetcher(make_archive(tmp_path / "a", cookies_file=f'"{cookies}"').capture)
    ex = fetcher.fetch(site.url("/c/"))
    fetcher.close()
    [cookie] = [value for name, value in site.seen[0].headers if name == "Cookie"]
    assert ex.status == 200 and cookie.encode("latin-1") == b"name=Jos\xc3\xa9\xe2\x80\x93\xc3\x91"  # as received
    # The record keeps a marker of the value: the user's cookie, proven by its UTF-8 bytes.
    [recorded] = [line for line in ex.request_head.split(b"\r\n") if line.startswith(b"Cookie: name=[redacted ")]
    assert proves(recorded.decode(), "José–Ñ")
    body_of(ex)


def test_dripping_response_head_is_cut_at_total_timeout(tmp_path):
    # Each byte comes well within `timeout`, but the whole head would take 20 s.
    server = RawServer(Reply(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 200 + b"\r\n\r\n", drip=0.1))
    config = make_archive(tmp_path / "a", timeout="1.0", total_timeout="0.5")
    fetcher = Fetcher(config.capture)
    started = time.monotonic()
    ex = fetcher.fetch(server.base + "/")
    elapsed = time.monotonic() - started
    fetcher.close()
    server.stop()
    body_of(ex)
    assert ex.status is None and ex.error == "timed out (TimeoutError)"
    assert 0.5 <= elapsed < 1.5


def test_tls_handshake_that_never_ends_is_cut_at_total_timeout(tmp_path):
    server = RawServer()  # accepts, reads, never answers the ClientHello
    config = make_archive(tmp_path / "a", timeout="5.0", total_timeout="0.5")
    fetcher = Fetcher(config.capture)
    started = time.monotonic()
    ex = fetcher.fetch(server.base.replace("http:", "https:") + "/")
    elapsed = time.monotonic() - started
    fetcher.close()
    server.stop()
    assert ex.status is None and ex.error.startswith("timed out")
    assert elapsed < 2.0  # not the 5 s of `timeout`


def test_an_address_that_drops_the_connection_is_left_for_the_next_one(site, tmp_path, monkeypatch):
    """As socket.create_connection does: a host name with two addresses, the first of which
    never completes a connection (a listener on 127.0.0.2 whose accept queue is full)."""
    site.page("/ok", "<html>ok</html>")
    port = site.server.server_address[1]
    full = socket.create_server(("127.0.0.2", port), backlog=0)
    fillers = []
    try:
        while True:  # fill the accept queue: from then on, connections are not completed
            fillers.append(socket.create_connection(("127.0.0.2", port), timeout=0.5))
    except OSError:  # timed out: the queue is full (refused, where the kernel resets instead)
        pass
    resolve = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: (
        resolve("127.0.0.2", *a, **k) + resolve("127.0.0.1", *a, **k)) if host == "dual.test" else resolve(host, *a, **k))
    fetcher = Fetcher(make_archive(tmp_path / "a", timeout="1.0", total_timeout="10.0").capture)
    try:
        ex = fetcher.fetch(f"http://dual.test:{port}/ok")
    finally:
        fetcher.close()
        for s in fillers + [full]:
            s.close()
    assert (ex.status, ex.ip, ex.error) == (200, "127.0.0.1", "")
    body_of(ex)


def test_a_host_is_looked_up_once_for_its_dns_record_and_first_connection(site, tmp_path, monkeypatch):
    site.page("/page", "<html><body><img src='/img.png'></body></html>")
    site.page("/img.png", b"\x89PNG" + b"i" * 100, "image/png")
    looked_up = []
    resolve = socket.getaddrinfo

    def counting(host, *a, **k):
        looked_up.append(host)
        return resolve("127.0.0.1" if host == "counted.test" else host, *a, **k)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    config = make_archive(tmp_path / "a")
    summary = run_snapshot(config, f"http://counted.test:{site.server.server_address[1]}/page")
    assert sorted(r.status for r in summary.results) == [200, 200]
    assert looked_up.count("counted.test") == 1


def test_bad_chunk_size_keeps_what_came_before_it(fetcher):
    server = RawServer(Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n-5\r\nxx"))
    ex = fetcher.fetch(server.base + "/")
    server.stop()
    assert body_of(ex) == b"abc" and ex.truncated == "disconnect"
    assert ex.error.startswith("body incomplete: ")


def test_body_without_length_is_read_to_the_end_of_the_connection(fetcher):
    server = RawServer(Reply(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end"))
    ex = fetcher.fetch(server.base + "/")
    server.stop()
    assert body_of(ex) == b"to the end" and not ex.error and not ex.truncated


def test_kept_alive_connection_closed_by_the_server_is_retried_once_on_a_new_one(fetcher):
    # The server closes after its first reply although the reply allowed keep-alive.
    server = RawServer(Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"),
                   Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"))
    first, second = fetcher.fetch(server.base + "/1"), fetcher.fetch(server.base + "/2")
    server.stop()
    assert (body_of(first), body_of(second)) == (b"a", b"b") and not second.error
    assert server.connections == 2


def test_request_target_with_a_space_is_sent_percent_encoded_and_a_line_break_is_refused(fetcher):
    server = RawServer(Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    ex = fetcher.fetch(server.base + "/a b")
    server.stop()
    assert body_of(ex) == b"ok" and ex.request_head.startswith(b"GET /a%20b HTTP/1.1\r\n")
    refused = fetcher.fetch("http://127.0.0.1:9/a\r\nX-Injected: 1")
    assert refused.status is None and b"\r\nX-Injected" not in (refused.request_head or b"")


# ---- proxy and cookies -------------------------------------------------------------------

class TunnelProxy(RawServer):
    """An HTTP proxy: CONNECT opens a tunnel to the named local port (after checking the
    credentials); a plain request is answered by the proxy itself, as a record of what it got."""

    def __init__(self, credentials: str):
        super().__init__()
        self.authorization = "Basic " + base64.b64encode(credentials.encode()).decode()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = read_head(conn)
            self.requests.append(head)
            if f"Proxy-Authorization: {self.authorization}\r\n".encode() not in head:
                conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            elif head.startswith(b"CONNECT "):
                port = int(head.split(b" ", 2)[1].rsplit(b":", 1)[1])
                with socket.create_connection(("127.0.0.1", port)) as upstream:
                    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    pipe_both_ways(conn, upstream)
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nproxied!")


def test_https_through_an_authenticating_proxy_tunnel(tls_site, tmp_path):
    site, ca, leaf_der = tls_site
    site.page("/t/", "<html><body><p>tunnelled</p></body></html>")
    proxy = TunnelProxy("user:secret")
    config = make_archive(tmp_path / "a", ca_bundle=f'"{ca}"', proxy=f'"http://user:secret@{proxy.base[7:]}"')
    fetcher = Fetcher(config.capture)
    ex = fetcher.fetch(site.url("/t/"))
    fetcher.close()
    proxy.stop()
    assert ex.status == 200 and body_of(ex) == site.sent["/t/"]
    assert ex.tls is not None and ex.tls.certificate_der == leaf_der
    port = site.server.server_address[1]
    assert proxy.requests[0].startswith(f"CONNECT localhost:{port} HTTP/1.".encode())  # urllib3's tunnel
    assert b"Proxy-Authorization" not in ex.request_head  # it went to the proxy, not the site
    assert [name for seen in site.seen for name, _ in seen.headers if name.lower() == "proxy-authorization"] == []
    assert ex.ip == ""  # the connection's peer is the proxy, not the server


def test_plain_http_through_the_proxy_sends_the_absolute_url_and_a_refused_tunnel_is_an_error(tls_site, tmp_path):
    site, ca, _ = tls_site
    proxy = TunnelProxy("user:secret")
    good = make_archive(tmp_path / "a", proxy=f'"http://user:secret@{proxy.base[7:]}"')
    bad = make_archive(tmp_path / "b", ca_bundle=f'"{ca}"', proxy=f'"http://user:wrong@{proxy.base[7:]}"')
    plain, tunnel = Fetcher(good.capture), Fetcher(bad.capture)
    ex = plain.fetch("http://news.example/a?b=1#frag")
    refused = tunnel.fetch(site.url("/t/"))
    plain.close()
    tunnel.close()
    proxy.stop()
    assert body_of(ex) == b"proxied!"
    assert ex.request_head.startswith(b"GET http://news.example/a?b=1 HTTP/1.1\r\nHost: news.example\r\n")
    # What the proxy got, the proxy's credentials redacted: they never reach a record.
    sent = b"Proxy-Authorization: Basic " + base64.b64encode(b"user:secret") + b"\r\n"
    assert sent in proxy.requests[0] and b"dXNlcjpzZWNyZXQ" not in ex.request_head
    kept, others = [], []
    for line in ex.request_head.splitlines(keepends=True):
        (kept if line.startswith(b"Proxy-Authorization: [redacted ") else others).append(line)
    assert b"".join(others) == proxy.requests[0].replace(sent, b"")
    assert proves(kept[0].decode(), sent[len(b"Proxy-Authorization: "):-2])
    assert refused.status is None
    assert refused.error == "OSError: Tunnel connection failed: 407 Proxy Authentication Required"


def test_cookies_file_is_sent_to_its_domain_with_session_cookies_and_expired_ones_named(site, tmp_path, caplog):
    site.page("/c/", "<html></html>")
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n"
                       "127.0.0.1\tFALSE\t/\tFALSE\t0\tconsent\tyes\n"           # 0: a session cookie
                       "127.0.0.1\tFALSE\t/\tFALSE\t4102444800\tlang\ten\n"
                       "127.0.0.1\tFALSE\t/\tFALSE\t1\tstale\tx\n"               # expired in 1970
                       "other.example\tFALSE\t/\tFALSE\t0\tsecret\tno\n")
    config = make_archive(tmp_path / "a", cookies_file=f'"{cookies}"')
    fetcher = Fetcher(config.capture)
    body_of(fetcher.fetch(site.url("/c/")))
    fetcher.close()
    [seen] = site.seen
    [cookie] = [value for name, value in seen.headers if name == "Cookie"]
    assert sorted(cookie.split("; ")) == ["consent=yes", "lang=en"]
    assert "1 expired cookie(s) will not be sent: stale (127.0.0.1)" in caplog.text
