"""One fetched exchange -> its WARC records: request, response or revisit, and metadata.

The metadata record closes every group. It says how the URL was reached (seed, role,
via, hops), what the page referenced, and for a failed fetch why no response came:
enough for ``reindex`` to rebuild the catalog from the WARC files alone.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import asdict, dataclass
from typing import Any

from warcio.recordbuilder import RecordBuilder
from warcio.recordloader import ArcWarcRecord

from .extract import Link
from .fetch import Exchange
from .warcfile import warc_date

BUILDER = RecordBuilder(warc_version="WARC/1.1")
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
                     original: Original | None) -> list[ArcWarcRecord]:
    """The records of one exchange, in write order: request, response or revisit, the TLS
    certificate and DNS answer when there are, and the closing metadata record. A fetch
    that got no response is its DNS record (if any) and a lone metadata record."""
    provenance = [dns_record(ex, "")] if ex.dns else []
    if ex.response_head is None:
        return provenance + [metadata_record(ex, reached, links, concurrent_to="")]
    response = revisit_record(ex, original) if original else response_record(ex)
    response_id = response.rec_headers.get_header("WARC-Record-ID")
    provenance = [tls_record(ex, response_id)] if ex.tls else []
    provenance += [dns_record(ex, response_id)] if ex.dns else []
    return [request_record(ex, response_id), response, *provenance,
            metadata_record(ex, reached, links, concurrent_to=response_id)]


def _headers(ex: Exchange, **extra: str) -> dict[str, str]:
    headers = {"WARC-Date": warc_date(ex.started)}
    if ex.ip:
        headers["WARC-IP-Address"] = ex.ip
    headers.update({k.replace("_", "-"): v for k, v in extra.items() if v})
    return headers


def request_record(ex: Exchange, response_id: str) -> ArcWarcRecord:
    return BUILDER.create_warc_record(
        ex.url, "request", http_headers=ex.request_head,
        warc_headers_dict=_headers(ex, WARC_Concurrent_To=response_id))


def response_record(ex: Exchange) -> ArcWarcRecord:
    assert ex.body is not None
    ex.body.seek(0)
    return BUILDER.create_warc_record(
        ex.url, "response", payload=ex.body, length=ex.body_length, http_headers=ex.response_head,
        warc_headers_dict=_headers(ex, WARC_Payload_Digest=ex.payload_digest,
                                   WARC_Block_Digest=ex.block_digest, WARC_Truncated=ex.truncated))


def revisit_record(ex: Exchange, original: Original) -> ArcWarcRecord:
    """WARC 1.1 identical-payload-digest revisit, carrying the new response headers."""
    return BUILDER.create_warc_record(
        ex.url, "revisit", http_headers=ex.response_head,
        warc_headers_dict=_headers(
            ex, WARC_Profile=REVISIT_PROFILE, WARC_Payload_Digest=ex.payload_digest,
            WARC_Refers_To=original.record_id, WARC_Refers_To_Target_URI=original.url,
            WARC_Refers_To_Date=original.date, WARC_Truncated=ex.truncated))


def metadata_record(ex: Exchange, reached: Reached, links: list[Link], concurrent_to: str) -> ArcWarcRecord:
    body = json.dumps(metadata_content(ex, reached, links), ensure_ascii=False, sort_keys=True).encode()
    return BUILDER.create_warc_record(
        ex.url, "metadata", payload=io.BytesIO(body), length=len(body), warc_content_type=METADATA_TYPE,
        warc_headers_dict=_headers(ex, WARC_Concurrent_To=concurrent_to))


def tls_record(ex: Exchange, response_id: str) -> ArcWarcRecord:
    """The server certificate from the connection that delivered the response."""
    assert ex.tls is not None
    tls = ex.tls
    content = {"kind": "tls", "tls_version": tls.version, "cipher": tls.cipher,
               "certificate_sha256": hashlib.sha256(tls.certificate_der).hexdigest(),
               "certificate_der": base64.b64encode(tls.certificate_der).decode(),
               "chain_der": [base64.b64encode(c).decode() for c in tls.chain_der]}
    return _json_metadata(ex, content, TLS_TYPE, response_id)


def dns_record(ex: Exchange, concurrent_to: str) -> ArcWarcRecord:
    """Every address the host resolved to; WARC-IP-Address says which one was used."""
    assert ex.dns is not None
    host, addresses = ex.dns
    return _json_metadata(ex, {"kind": "dns", "host": host, "addresses": addresses}, DNS_TYPE, concurrent_to)


def _json_metadata(ex: Exchange, content: dict, content_type: str, concurrent_to: str) -> ArcWarcRecord:
    body = json.dumps(content, sort_keys=True).encode()
    return BUILDER.create_warc_record(
        ex.url, "metadata", payload=io.BytesIO(body), length=len(body), warc_content_type=content_type,
        warc_headers_dict=_headers(ex, WARC_Concurrent_To=concurrent_to))


def metadata_content(ex: Exchange, reached: Reached, links: list[Link]) -> dict[str, Any]:
    content: dict[str, Any] = {**asdict(reached), "links": [
        {"url": link.url, "kind": link.kind, "text": link.text, "position": link.position} for link in links]}
    if ex.error:
        content["error"] = ex.error
    return content
