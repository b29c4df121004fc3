"""One fetched exchange -> its WARC records: request, response or revisit, and metadata.

The metadata record closes every group. It says how the URL was reached (seed, role,
via, hops), what the page referenced, and for a failed fetch why no response came:
enough for ``reindex`` to rebuild the catalog from the WARC files alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .extract import Link
from .fetch import Exchange
from .warcfile import (PRECOMPRESSED_TYPES, STORED_LEVEL, TEXT_LEVEL, Record, WarcHeaders, new_record_id,
                       sha1_digest, warc_date)

REVISIT_PROFILE = "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"
METADATA_TYPE = "application/json"  # the record that closes every exchange's group
TLS_TYPE = "application/vnd.archiver.tls+json"
DNS_TYPE = "application/vnd.archiver.dns+json"


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
    certificate and DNS answer when there are, and the closing metadata record. A fetch
    that got no response is its DNS record (if any) and a lone metadata record."""
    provenance = [dns_record(ex, "")] if ex.dns else []
    if ex.response_head is None:
        return provenance + [metadata_record(ex, reached, links, concurrent_to="")]
    response = revisit_record(ex, original) if original else response_record(ex)
    response_id = response.rec_headers["WARC-Record-ID"]
    provenance = [tls_record(ex, response_id)] if ex.tls else []
    provenance += [dns_record(ex, response_id)] if ex.dns else []
    return [request_record(ex, response_id), response, *provenance,
            metadata_record(ex, reached, links, concurrent_to=response_id)]


def _headers(ex: Exchange, rec_type: str, **extra: str) -> WarcHeaders:
    headers = WarcHeaders({"WARC-Type": rec_type, "WARC-Record-ID": new_record_id(),
                           "WARC-Date": warc_date(ex.started), "WARC-Target-URI": ex.url})
    if ex.ip:
        headers["WARC-IP-Address"] = ex.ip
    headers.update({k.replace("_", "-"): v for k, v in extra.items() if v})
    return headers


def request_record(ex: Exchange, response_id: str) -> Record:
    assert ex.request_head is not None
    return Record("request", _headers(ex, "request", WARC_Concurrent_To=response_id,
                                      WARC_Block_Digest=sha1_digest(ex.request_head)),
                  http_head=ex.request_head)


def response_record(ex: Exchange) -> Record:
    assert ex.body is not None
    return Record("response", _headers(ex, "response", WARC_Payload_Digest=ex.payload_digest,
                                       WARC_Block_Digest=ex.block_digest, WARC_Truncated=ex.truncated),
                  http_head=ex.response_head_bytes, http_headers=ex.response_head, payload=ex.body,
                  payload_length=ex.body_length, level=compression_level(ex))


def revisit_record(ex: Exchange, original: Original) -> Record:
    """WARC 1.1 identical-payload-digest revisit, carrying the new response headers."""
    return Record("revisit", _headers(
        ex, "revisit", WARC_Profile=REVISIT_PROFILE, WARC_Payload_Digest=ex.payload_digest,
        WARC_Refers_To=original.record_id, WARC_Refers_To_Target_URI=original.url,
        WARC_Refers_To_Date=original.date, WARC_Truncated=ex.truncated,
        WARC_Block_Digest=sha1_digest(ex.response_head_bytes)),
        http_head=ex.response_head_bytes, http_headers=ex.response_head)


def compression_level(ex: Exchange) -> int:
    """Stored, not deflated, when the body is already compressed."""
    ctype = ex.header("Content-Type").lower()
    encoded = ex.header("Content-Encoding").lower() not in ("", "identity")
    return STORED_LEVEL if encoded or ctype.startswith(PRECOMPRESSED_TYPES) else TEXT_LEVEL


def metadata_record(ex: Exchange, reached: Reached, links: list[Link], concurrent_to: str) -> Record:
    body = json.dumps(metadata_content(ex, reached, links), ensure_ascii=False, sort_keys=True).encode()
    return _metadata(ex, body, METADATA_TYPE, concurrent_to)


def tls_record(ex: Exchange, response_id: str) -> Record:
    """The server certificate from the connection that delivered the response."""
    assert ex.tls is not None
    tls = ex.tls
    content = {"kind": "tls", "tls_version": tls.version, "cipher": tls.cipher,
               "certificate_sha256": hashlib.sha256(tls.certificate_der).hexdigest(),
               "certificate_der": base64.b64encode(tls.certificate_der).decode(),
               "chain_der": [base64.b64encode(c).decode() for c in tls.chain_der]}
    return _metadata(ex, json.dumps(content, sort_keys=True).encode(), TLS_TYPE, response_id)


def dns_record(ex: Exchange, concurrent_to: str) -> Record:
    """Every address the host resolved to; WARC-IP-Address says which one was used."""
    assert ex.dns is not None
    host, addresses = ex.dns
    body = json.dumps({"kind": "dns", "host": host, "addresses": addresses}, sort_keys=True).encode()
    return _metadata(ex, body, DNS_TYPE, concurrent_to)


def _metadata(ex: Exchange, body: bytes, content_type: str, concurrent_to: str) -> Record:
    headers = _headers(ex, "metadata", WARC_Concurrent_To=concurrent_to, Content_Type=content_type,
                       WARC_Block_Digest=sha1_digest(body))
    return Record("metadata", headers, payload=body, payload_length=len(body))


def metadata_content(ex: Exchange, reached: Reached, links: list[Link]) -> dict[str, Any]:
    content: dict[str, Any] = {**vars(reached), "links": [
        {"url": link.url, "kind": link.kind, "text": link.text, "position": link.position} for link in links]}
    if ex.error:
        content["error"] = ex.error
    return content
