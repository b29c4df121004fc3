"""One fetched exchange -> its WARC records: request, response or revisit, the TLS chain,
the DNS answer, and the capture's metadata.

Only the request and the response (or revisit) carry the page's URL as WARC-Target-URI:
replay tools index every response, revisit, resource and metadata record by its target
URI, so a record that describes a capture is named apart from it, as Heritrix and
Browsertrix name theirs:

- the capture metadata (JSON) at ``urn:archiver:capture:<url>``, WARC-Refers-To the
  response. It closes every group and says how the URL was reached (seed, role, via,
  hops), what the page referenced, and for a failed fetch why no response came: enough
  for ``reindex`` to rebuild the catalog from the WARC files alone;
- the server's certificate chain (PEM) at ``urn:archiver:tls:<url>``, WARC-Refers-To the
  response; TLS version and cipher suite as WARC-Protocol and WARC-Cipher-Suite;
- the DNS answer as a ``resource`` record at ``dns:<host>`` (text/dns, Heritrix's body);
- what a server sent that is not an HTTP response (HTTP/0.9, a garbage status line, a
  head the connection ends in) as a ``resource`` record at ``urn:archiver:raw:<url>``
  (a synthesized target, WARC 1.1 6.4.1: no replay tool takes it for the page),
  application/octet-stream, its ``Archiver-Error`` field saying why it is not one.

Archives written before (every record at the page's URL; TLS and DNS as JSON metadata)
are still read: see ``capture_url`` and ``index.warc_captures``.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

from archiver.capture.fetch import Exchange
from archiver.capture.transport import TlsInfo
from archiver.page.extract import Link
from archiver.archive.warcfile import (PRECOMPRESSED_TYPES, STORED_LEVEL, TEXT_LEVEL, Record, WarcHeaders, new_record_id,
                       sha1_digest, warc_date)

CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # not in a WARC header line
REVISIT_PROFILE = "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"
METADATA_TYPE = "application/json"  # the capture metadata, which closes every exchange's group
CAPTURE_URN = "urn:archiver:capture:"  # + the URL: the capture metadata's target
TLS_URN = "urn:archiver:tls:"  # + the URL: the certificate chain's target
TLS_TYPE = "application/pem-certificate-chain"  # RFC 8555, leaf first
DNS_TYPE = "text/dns"  # RFC 4027; the body as Heritrix writes it (RFC 2540)
RAW_URN = "urn:archiver:raw:"  # + the URL: the bytes a server sent that are not an HTTP response
RAW_TYPE = "application/octet-stream"
OLD_TLS_TYPE = "application/vnd.archiver.tls+json"  # until c5a6521, at the page's URL
OLD_DNS_TYPE = "application/vnd.archiver.dns+json"


@dataclass(frozen=True)
class Reached:
    """How a URL came to be fetched in a snapshot."""
    seed: str
    role: str  # seed | read | body | requisite | redirect
    via: str = ""
    hops: int = 0
    snapshot: str = ""  # id of the snapshot run, shared by every URL it fetched
    chain: bool = False  # a hop of the seed's own redirect chain (not of a requisite or cross-reference)


@dataclass(frozen=True)
class Original:
    """An earlier response record with the same URL and payload digest."""
    record_id: str
    url: str
    date: str


def exchange_records(ex: Exchange, reached: Reached, links: list[Link],
                     original: Original | None) -> list[Record]:
    """The records of one exchange, in write order: request, response or revisit, the TLS
    chain and DNS answer when there are, and the closing capture metadata. A fetch that
    got no response is its DNS record (if any) and a lone metadata record, after the
    request and the bytes received when what came back was not HTTP."""
    if ex.response_head is None and ex.raw:
        raw = raw_record(ex)
        raw_id = raw.rec_headers["WARC-Record-ID"]
        return [request_record(ex, raw_id), raw, *dns_records(ex, raw_id),
                metadata_record(ex, reached, links, response_id=raw_id)]
    if ex.response_head is None:
        return dns_records(ex, "") + [metadata_record(ex, reached, links, response_id="")]
    response = revisit_record(ex, original) if original else response_record(ex)
    response_id = response.rec_headers["WARC-Record-ID"]
    provenance = [tls_record(ex, ex.tls, response_id)] if ex.tls else []
    return [request_record(ex, response_id), response, *provenance, *dns_records(ex, response_id),
            metadata_record(ex, reached, links, response_id=response_id)]


def capture_url(target_uri: str) -> str:
    """The URL a capture metadata record describes, in either layout."""
    return target_uri.removeprefix(CAPTURE_URN)


def _headers(ex: Exchange, rec_type: str, target: str = "", **extra: Any) -> WarcHeaders:
    headers = WarcHeaders({"WARC-Type": rec_type, "WARC-Record-ID": new_record_id(),
                           "WARC-Date": warc_date(ex.started), "WARC-Target-URI": target or ex.url})
    if ex.ip and not target.startswith("dns:"):
        headers["WARC-IP-Address"] = ex.ip
    headers.update({k.replace("_", "-"): v for k, v in extra.items() if v})
    return headers


def request_record(ex: Exchange, response_id: str) -> Record:
    assert ex.request_head is not None
    return Record("request", _headers(ex, "request", WARC_Concurrent_To=response_id,
                                      WARC_Block_Digest=sha1_digest(ex.request_head), **_protocol(ex)),
                  http_head=ex.request_head)


def response_record(ex: Exchange) -> Record:
    assert ex.body is not None
    return Record("response", _headers(ex, "response", WARC_Payload_Digest=ex.payload_digest,
                                       WARC_Block_Digest=ex.block_digest, WARC_Truncated=ex.truncated,
                                       **_protocol(ex)),
                  http_head=ex.response_head_bytes, http_headers=ex.response_head, payload=ex.body,
                  payload_length=ex.body_length, level=compression_level(ex))


def raw_record(ex: Exchange) -> Record:
    """The bytes received instead of an HTTP response, as they came (WARC-Truncated when
    they stop at max_bytes or a timeout)."""
    assert ex.body is not None
    headers = _headers(ex, "resource", RAW_URN + ex.url, Content_Type=RAW_TYPE, WARC_Truncated=ex.truncated,
                       WARC_Payload_Digest=ex.payload_digest, WARC_Block_Digest=ex.block_digest)
    headers["Archiver-Error"] = CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", ex.error)
    return Record("resource", headers, payload=ex.body, payload_length=ex.body_length, level=TEXT_LEVEL)


def revisit_record(ex: Exchange, original: Original) -> Record:
    """WARC 1.1 identical-payload-digest revisit, carrying the new response headers; its
    block stops before the payload, which WARC-Truncated: length says (WARC 1.1, 6.7.2)."""
    return Record("revisit", _headers(
        ex, "revisit", WARC_Profile=REVISIT_PROFILE, WARC_Payload_Digest=ex.payload_digest,
        WARC_Refers_To=original.record_id, WARC_Refers_To_Target_URI=original.url,
        WARC_Refers_To_Date=original.date, WARC_Truncated="length",
        WARC_Block_Digest=sha1_digest(ex.response_head_bytes), **_protocol(ex)),
        http_head=ex.response_head_bytes, http_headers=ex.response_head)


def compression_level(ex: Exchange) -> int:
    """Stored, not deflated, when the body is already compressed."""
    ctype = ex.header("Content-Type").lower()
    encoded = ex.header("Content-Encoding").lower() not in ("", "identity")
    return STORED_LEVEL if encoded or ctype.startswith(PRECOMPRESSED_TYPES) else TEXT_LEVEL


# ---- WARC-Protocol and WARC-Cipher-Suite (adopted WARC extensions) --------------------------

TLS_PROTOCOLS = {"TLSv1": "tls/1.0", "TLSv1.1": "tls/1.1", "TLSv1.2": "tls/1.2", "TLSv1.3": "tls/1.3",
                 "SSLv3": "ssl/3"}
# OpenSSL's names of the TLS 1.2 suites servers choose, read as parts of the IANA name.
OPENSSL_SUITE = re.compile(r"(?:(?P<kx>ECDHE|DHE)-(?P<auth>RSA|ECDSA)-)?(?:AES(?P<bits>128|256)(?P<gcm>-GCM)?"
                           r"-(?P<mac>SHA|SHA256|SHA384)|(?P<chacha>CHACHA20-POLY1305))")


def _protocol(ex: Exchange) -> dict[str, Any]:
    """Over TLS: the HTTP version and the TLS version (higher layer first), and the cipher
    suite. Plain HTTP needs neither: the URI scheme and the status line say it."""
    if ex.tls is None or ex.response_head is None:
        return {}
    return tls_fields(ex.tls, ex.response_head.version.lower())


def tls_fields(tls: TlsInfo, http_version: str = "") -> dict[str, Any]:
    protocols = [p for p in (http_version, TLS_PROTOCOLS.get(tls.version, "")) if p]
    return {"WARC_Protocol": protocols, "WARC_Cipher_Suite": iana_cipher_suite(tls.cipher)}


def iana_cipher_suite(openssl_name: str) -> str:
    """The IANA registry's name of a cipher suite (what WARC-Cipher-Suite holds) from
    OpenSSL's; "" for a suite not covered here (the field is then left out)."""
    if openssl_name.startswith("TLS_"):  # TLS 1.3 suites: OpenSSL uses the IANA names
        return openssl_name
    m = OPENSSL_SUITE.fullmatch(openssl_name)
    if m is None or (m["chacha"] and not m["kx"]):
        return ""
    kx = f"{m['kx']}_{m['auth']}" if m["kx"] else "RSA"
    if m["chacha"]:
        return f"TLS_{kx}_WITH_CHACHA20_POLY1305_SHA256"
    return f"TLS_{kx}_WITH_AES_{m['bits']}_{'GCM' if m['gcm'] else 'CBC'}_{m['mac']}"


# ---- the records that describe a capture -----------------------------------------------------

def metadata_record(ex: Exchange, reached: Reached, links: list[Link], response_id: str) -> Record:
    body = json.dumps(metadata_content(ex, reached, links), ensure_ascii=False, sort_keys=True).encode()
    headers = _headers(ex, "metadata", CAPTURE_URN + ex.url, WARC_Refers_To=response_id,
                       Content_Type=METADATA_TYPE, WARC_Block_Digest=sha1_digest(body))
    return Record("metadata", headers, payload=body, payload_length=len(body))


def tls_record(ex: Exchange, tls: TlsInfo, response_id: str) -> Record:
    """The certificate chain the server sent on the connection that delivered the response."""
    body = "".join(pem_certificate(der) for der in tls.chain_der or [tls.certificate_der]).encode("ascii")
    headers = _headers(ex, "metadata", TLS_URN + ex.url, WARC_Refers_To=response_id, Content_Type=TLS_TYPE,
                       WARC_Block_Digest=sha1_digest(body), **tls_fields(tls))
    return Record("metadata", headers, payload=body, payload_length=len(body))


def pem_certificate(der: bytes) -> str:
    b64 = base64.b64encode(der).decode("ascii")
    lines = "".join(b64[i:i + 64] + "\n" for i in range(0, len(b64), 64))
    return f"-----BEGIN CERTIFICATE-----\n{lines}-----END CERTIFICATE-----\n"


def pem_certificates(pem: bytes) -> list[bytes]:
    """The DER certificates of a PEM chain, in order."""
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", pem, re.S)
    return [base64.b64decode(b"".join(block.split())) for block in blocks]


def dns_records(ex: Exchange, concurrent_to: str) -> list[Record]:
    """The host's DNS answer as Heritrix writes one: a ``resource`` record at dns:<host>
    (WARC 1.1, 6.4.4), text/dns, the lookup's 14-digit time and one line per address.
    getaddrinfo gives no TTL, so the lines have none (zone-file syntax allows that). An IP
    address in the URL was never looked up: no record."""
    if not ex.dns or not ex.dns[1] or _is_ip(ex.dns[0]):
        return []
    host, addresses = ex.dns
    lines = [ex.started.strftime("%Y%m%d%H%M%S")]
    lines += [f"{host}.\tIN\t{'AAAA' if ':' in a else 'A'}\t{a}" for a in addresses]
    body = "".join(line + "\n" for line in lines).encode("ascii")
    digest = sha1_digest(body)
    headers = _headers(ex, "resource", "dns:" + host, WARC_Concurrent_To=concurrent_to, Content_Type=DNS_TYPE,
                       WARC_Payload_Digest=digest, WARC_Block_Digest=digest)
    return [Record("resource", headers, payload=body, payload_length=len(body))]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def metadata_content(ex: Exchange, reached: Reached, links: list[Link]) -> dict[str, Any]:
    content: dict[str, Any] = {**vars(reached), "links": [
        {"url": link.url, "kind": link.kind, "text": link.text, "position": link.position} for link in links]}
    if ex.error:
        content["error"] = ex.error
    if ex.trailer:
        content["trailer"] = ex.trailer.decode("latin-1")  # byte for byte: the trailer section as received
    return content
