"""What requests users expect, on real local servers: environment proxies and NO_PROXY,
an authenticating HTTP proxy whose credentials never reach a record, socks5h:// without
a local DNS lookup, cookies along a consent redirect, brotli pages, IDNA 2008,
REQUESTS_CA_BUNDLE and client certificates."""

from __future__ import annotations

import base64
import gzip
import socket
import ssl
import struct
from pathlib import Path

import brotlicffi
import pytest
from cryptography.hazmat.primitives import serialization
from warcio.archiveiterator import ArchiveIterator

from archiver.capture.fetch import Fetcher
from archiver.seeds import normalize_url

from .conftest import make_archive, run_snapshot, warc_files
from .rawnet import Listener, pipe_both_ways, read_head
from .site import Site, send
from .tls import self_signed

CREDENTIALS = "user:s3cret-pw"


class ForwardingProxy(Listener):
    """An HTTP proxy on 127.0.0.1 that wants Proxy-Authorization, and forwards every
    request to 127.0.0.1 at the port the URL names, whatever its host name (so the host
    names tests use need no DNS). Records each request head it received."""

    def __init__(self, credentials: str = CREDENTIALS):
        self.authorization = "Basic " + base64.b64encode(credentials.encode()).decode()
        self.requests: list[bytes] = []
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = read_head(conn)
            if not head:
                return
            self.requests.append(head)
            if f"Proxy-Authorization: {self.authorization}\r\n".encode() not in head:
                conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                return
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ")
            if method == b"CONNECT":
                port = int(target.rsplit(b":", 1)[1])
                with socket.create_connection(("127.0.0.1", port)) as upstream:
                    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    pipe_both_ways(conn, upstream)
                return
            authority, _, path = target.split(b"://", 1)[1].partition(b"/")
            port = int(authority.rsplit(b":", 1)[1]) if b":" in authority else 80
            lines = [line for line in head.split(b"\r\n")[1:] if line and not line.lower().startswith(
                (b"proxy-authorization:", b"connection:"))]
            forwarded = b"\r\n".join([b"GET /" + path + b" HTTP/1.1", *lines, b"Connection: close", b"", b""])
            with socket.create_connection(("127.0.0.1", port)) as upstream:
                upstream.sendall(forwarded)
                while data := upstream.recv(65536):
                    conn.sendall(data)


class Socks5Server(Listener):
    """A SOCKS5 server (no authentication) that connects every request to 127.0.0.1 at
    the port asked for, and records the address type and address of each request."""

    def __init__(self):
        self.asked: list[tuple[int, bytes]] = []  # (ATYP, address): 3 = a domain name
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            f = conn.makefile("rb")
            _, count = f.read(2)
            f.read(count)
            conn.sendall(b"\x05\x00")  # no authentication
            _, _, _, atyp = f.read(4)
            if atyp == 3:
                address = f.read(f.read(1)[0])
            else:
                address = f.read(4 if atyp == 1 else 16)
            (port,) = struct.unpack("!H", f.read(2))
            self.asked.append((atyp, address))
            with socket.create_connection(("127.0.0.1", port)) as upstream:
                conn.sendall(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", port))
                pipe_both_ways(conn, upstream)


def records(config) -> list:
    """(type, WARC headers, HTTP head or None, content as stored: not decoded) of every record."""
    out = []
    for path in warc_files(config):
        with open(path, "rb") as f:
            for r in ArchiveIterator(f):
                out.append((r.rec_type, r.rec_headers, r.http_headers, r.raw_stream.read()))
    return out


def raw_warc_bytes(config) -> bytes:
    return b"".join(gzip.decompress(path.read_bytes()) for path in warc_files(config))


@pytest.fixture
def no_lookup(monkeypatch):
    """Fail any local DNS lookup of a *.test host name: those go to proxies only."""
    looked_up: list[str] = []
    resolve = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        if isinstance(host, (str, bytes)) and str(host).endswith(".test"):
            looked_up.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, "no local lookup of a .test name")
        return resolve(host, *args, **kwargs)
    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    return looked_up


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_environment_proxy_with_credentials_and_no_proxy(site, tmp_path, monkeypatch, no_lookup, clean_env):
    """HTTP_PROXY from the environment carries the page; NO_PROXY sends its requisite
    direct. The proxy's credentials are in no record; the proxied response has no
    WARC-IP-Address and no DNS record (nothing was resolved here); the direct one has both."""
    port = site.server.server_address[1]
    site.page("/page", f"<html><body><p>via the proxy</p><img src='http://127.0.0.1:{port}/img.png'></body></html>")
    site.page("/img.png", b"\x89PNG" + b"i" * 50, "image/png")
    proxy = ForwardingProxy()
    monkeypatch.setenv("HTTP_PROXY", f"http://{CREDENTIALS}@127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    # A page that came through a proxy leads to a loopback address here: refused unless allowed.
    config = make_archive(tmp_path / "a", allow_private_addresses="true")
    try:
        summary = run_snapshot(config, f"http://news.test:{port}/page")
    finally:
        proxy.stop()
    assert sorted((r.url, r.status) for r in summary.results) == [
        (f"http://127.0.0.1:{port}/img.png", 200), (f"http://news.test:{port}/page", 200)]
    assert [h.split(b"\r\n")[0] for h in proxy.requests] == [f"GET http://news.test:{port}/page HTTP/1.1".encode()]
    assert no_lookup == []
    got = records(config)
    by_uri = {(t, h.get_header("WARC-Target-URI")): h for t, h, _, _ in got}
    assert by_uri[("response", f"http://news.test:{port}/page")].get_header("WARC-IP-Address") is None
    assert by_uri[("response", f"http://127.0.0.1:{port}/img.png")].get_header("WARC-IP-Address") == "127.0.0.1"
    # No DNS record: the proxied host was not resolved here, the direct one is an address.
    assert [h.get_header("WARC-Target-URI") for t, h, _, _ in got if t in ("resource", "metadata")
            and (h.get_header("WARC-Target-URI") or "").startswith("dns:")] == []
    [request] = [http for t, h, http, _ in got if t == "request" and "news.test" in h.get_header("WARC-Target-URI")]
    warc = raw_warc_bytes(config)
    secret = base64.b64encode(CREDENTIALS.encode())
    assert b"s3cret-pw" not in warc and secret not in warc
    assert b"\r\nProxy-Authorization: [redacted sha256:" in warc  # the header kept, its value redacted
    assert b"Proxy-Authorization" in proxy.requests[0]  # it was sent, to the proxy
    assert (request.protocol, request.statusline) == ("GET", f"http://news.test:{port}/page HTTP/1.1")  # as sent


def test_socks5h_sends_the_host_name_to_the_proxy_and_nothing_is_resolved_here(site, tmp_path, no_lookup,
                                                                             clean_env):
    port = site.server.server_address[1]
    site.page("/s", "<html><body><p>through socks</p></body></html>")
    socks = Socks5Server()
    config = make_archive(tmp_path / "a", proxy=f'"socks5h://127.0.0.1:{socks.port}"')
    try:
        summary = run_snapshot(config, f"http://socks.test:{port}/s")
    finally:
        socks.stop()
    assert [(r.status, r.error) for r in summary.results] == [(200, "")]
    assert socks.asked == [(3, b"socks.test")]  # ATYP 3: a domain name, resolved by the proxy
    assert no_lookup == []
    got = records(config)
    assert not [h for t, h, _, _ in got if (h.get_header("WARC-Target-URI") or "").startswith("dns:")
                or h.get_header("Content-Type") in ("text/dns", "application/vnd.archiver.dns+json")]
    assert all(h.get_header("WARC-IP-Address") is None for t, h, _, _ in got)


def test_consent_redirect_sets_a_cookie_and_the_article_is_captured(site, config):
    """/article without the consent cookie redirects to /consent, which sets it and sends
    the reader back: the article is captured, and the cookie goes with the snapshot's
    other requests (its requisite)."""
    def article(h):
        if "consent=yes" in (h.headers.get("Cookie") or ""):
            send(h, 200, b"<html><body><p>the article</p><img src='/photo.png'></body></html>", "text/html")
        else:
            send(h, 302, b"", "text/plain", (("Location", "/consent"),))
    site.routes["/article"] = article
    site.routes["/consent"] = lambda h: send(h, 302, b"", "text/plain",
                                             (("Set-Cookie", "consent=yes; Path=/"), ("Location", "/article")))
    site.page("/photo.png", b"\x89PNG" + b"p" * 50, "image/png")
    summary = run_snapshot(config, site.url("/article"))
    assert [(r.url, r.status) for r in summary.results] == [
        (site.url("/article"), 302), (site.url("/consent"), 302), (site.url("/article"), 200),
        (site.url("/photo.png"), 200)]
    assert summary.failed_seeds == []
    photo = [s for s in site.seen if s.path == "/photo.png"]
    assert [dict(s.headers).get("Cookie") for s in photo] == ["consent=yes"]
    # A later snapshot starts without the site's cookies: it sees the consent wall again.
    again = run_snapshot(config, site.url("/article"))
    assert [r.status for r in again.results][:2] == [302, 302]


def test_brotli_page_requisites_are_found(site, config):
    page = b"<html><head><link rel=stylesheet href='/style.css'></head><body><p>br</p></body></html>"
    site.routes["/br"] = lambda h: send(h, 200, brotlicffi.compress(page), "text/html",
                                        (("Content-Encoding", "br"),))
    site.page("/style.css", "p { color: red }", "text/css")
    summary = run_snapshot(config, site.url("/br"))
    assert sorted(r.url for r in summary.results) == [site.url("/br"), site.url("/style.css")]
    [seen] = [s for s in site.seen if s.path == "/br"]
    assert "br" in dict(seen.headers)["Accept-Encoding"]
    [response] = [body for t, h, _, body in records(config)
                  if t == "response" and h.get_header("WARC-Target-URI") == site.url("/br")]
    assert response == brotlicffi.compress(page)  # stored as sent, not decoded


def test_a_brotli_bomb_is_decoded_up_to_the_cap_only():
    from archiver.page.extract import MAX_DECODED_BYTES, decode_body

    bomb = brotlicffi.compress(b"a" * (MAX_DECODED_BYTES * 3))
    assert len(bomb) < 100_000 and len(decode_body(bomb, "br")) == MAX_DECODED_BYTES
    assert decode_body(b"not brotli", "br") == b"not brotli"


def test_idn_host_is_sent_as_idna_2008(tmp_path, site, no_lookup, clean_env):
    assert normalize_url("http://faß.de/") == "http://xn--fa-hia.de/"  # IDNA 2003 would make it fass.de
    assert normalize_url("https://bücher.example/") == "https://xn--bcher-kva.example/"
    port = site.server.server_address[1]
    site.page("/", "<html></html>")
    proxy = ForwardingProxy()
    config = make_archive(tmp_path / "a", proxy=f'"http://{CREDENTIALS}@127.0.0.1:{proxy.port}"')
    fetcher = Fetcher(config.capture)
    try:
        ex = fetcher.fetch(f"http://straße.test:{port}/")  # not normalised first: requests encodes it
    finally:
        fetcher.close()
        proxy.stop()
    assert ex.status == 200
    assert proxy.requests[0].startswith(f"GET http://xn--strae-oqa.test:{port}/ HTTP/1.1\r\n".encode())
    ex.close()


def test_requests_ca_bundle_from_the_environment_is_trusted(tls_site, tmp_path, monkeypatch, clean_env):
    site, ca, leaf_der = tls_site
    site.page("/t", "<html></html>")
    fetcher = Fetcher(make_archive(tmp_path / "a").capture)
    try:
        untrusted = fetcher.fetch(site.url("/t"))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
        trusted = fetcher.fetch(site.url("/t"))
    finally:
        fetcher.close()
    assert untrusted.status is None and "TLS certificate verification failed" in untrusted.error
    assert trusted.status == 200 and trusted.tls is not None and trusted.tls.certificate_der == leaf_der
    trusted.close()


def _client_identity(folder: Path) -> Path:
    """A self-signed client certificate and its key, in one PEM file."""
    cert, key = self_signed("archiver client")
    path = folder / "client.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path


def test_client_certificate_is_presented_to_a_server_that_requires_one(tmp_path, clean_env):
    from .tls import make_ca_and_leaf

    ca, chain, key, _ = make_ca_and_leaf(tmp_path)
    identity = _client_identity(tmp_path)
    site = Site()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(identity)
    site.server.socket = context.wrap_socket(site.server.socket, server_side=True)
    site.page("/private", "<html>members only</html>")
    url = f"https://localhost:{site.server.server_address[1]}/private"
    without = Fetcher(make_archive(tmp_path / "a", ca_bundle=f'"{ca}"').capture)
    with_cert = Fetcher(make_archive(tmp_path / "b", ca_bundle=f'"{ca}"', client_cert=f'"{identity}"').capture)
    try:
        refused, served = without.fetch(url), with_cert.fetch(url)
    finally:
        without.close()
        with_cert.close()
        site.stop()
    assert refused.status is None and refused.error
    assert served.status == 200 and served.read_body(100) == b"<html>members only</html>"
    served.close()
