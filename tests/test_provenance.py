"""Provenance recorded at capture time: TLS certificates from the very connection that
delivered each response, and the DNS answer of every host."""

from __future__ import annotations

import socket

from cryptography import x509
from warcio.archiveiterator import ArchiveIterator

from archiver.archive.records import iana_cipher_suite, pem_certificates

from .conftest import make_archive, run_snapshot, warc_files, warcio_check
from .site import redirect
from .test_warc_records import all_records


def test_tls_certificate_of_every_hop_is_recorded_with_its_response(tls_site, tmp_path):
    site, ca, leaf_der = tls_site
    site.routes["/old/"] = redirect("/new/", 301)
    site.page("/new/", "<html><body><p>article over TLS</p></body></html>")
    config = make_archive(tmp_path / "a", ca_bundle=f'"{ca}"')
    summary = run_snapshot(config, site.url("/old/"))
    assert [(r.status, r.record) for r in summary.results] == [(301, "response"), (200, "response")]
    records = all_records(config)
    responses = {h.get_header("WARC-Record-ID"): h for t, h, _, _ in records if t == "response"}
    tls = [(h, body) for t, h, _, body in records
           if t == "metadata" and h.get_header("Content-Type") == "application/pem-certificate-chain"]
    assert len(tls) == 2  # one per hop, each from its own exchange
    for headers, body in tls:
        response = responses[headers.get_header("WARC-Refers-To")]
        assert headers.get_header("WARC-Target-URI") == "urn:archiver:tls:" + response.get_header("WARC-Target-URI")
        chain = pem_certificates(body)
        assert chain[0] == leaf_der
        x509.load_pem_x509_certificates(body)  # a PEM chain any tool reads
        assert headers.get_header("WARC-Protocol").startswith("tls/1.")
        assert headers.get_header("WARC-Cipher-Suite") == response.get_header("WARC-Cipher-Suite")
        assert headers.get_header("WARC-Cipher-Suite").startswith("TLS_")
    for path in warc_files(config):
        assert warcio_check(path).returncode == 0
        with open(path, "rb") as f:
            for record in ArchiveIterator(f):
                if record.rec_type in ("request", "response"):  # WARC-Protocol, higher layer first
                    protocols = [v for k, v in record.rec_headers.headers if k == "WARC-Protocol"]
                    assert protocols[0] == "http/1.1" and protocols[1].startswith("tls/1."), protocols


def test_untrusted_certificate_is_a_recorded_tls_failure(tls_site, tmp_path):
    site, _, _ = tls_site
    site.page("/x/", "<html></html>")
    config = make_archive(tmp_path / "a")
    summary = run_snapshot(config, site.url("/x/"))
    [result] = summary.results
    assert result.record == "failed" and "TLS certificate verification failed" in result.error
    assert summary.failed_seeds == [site.url("/x/")]


def test_dns_answer_recorded_once_per_host_and_snapshot(site, config, monkeypatch):
    resolve = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: resolve(
        "127.0.0.1" if host == "looked-up.test" else host, *a, **k))
    site.page("/a/", "<html><body><div class='entry-content'><p>" + "words " * 30 +
              "<a href='/b/'>b</a></p></div></body></html>")
    site.page("/b/", "<html><body>b</body></html>")
    url = f"http://looked-up.test:{site.server.server_address[1]}/a/"
    run_snapshot(config, url)
    run_snapshot(config, url)
    records = all_records(config)
    responses = {h.get_header("WARC-Record-ID"): h for t, h, _, _ in records if t in ("response", "revisit")}
    dns = [(h, body) for t, h, _, body in records if h.get_header("WARC-Target-URI") == "dns:looked-up.test"]
    assert len(dns) == 2
    for headers, body in dns:  # Heritrix's text/dns: the lookup's time, then one line per address
        assert (headers.get_header("WARC-Type"), headers.get_header("Content-Type")) == ("resource", "text/dns")
        response = responses[headers.get_header("WARC-Concurrent-To")]
        stamp = "".join(c for c in response.get_header("WARC-Date") if c.isdigit())[:14]
        assert body.decode() == f"{stamp}\nlooked-up.test.\tIN\tA\t127.0.0.1\n"
        assert headers.get_header("WARC-IP-Address") is None  # not the DNS server's
    assert not [h for t, h, _, _ in records if h.get_header("Content-Type") == "application/vnd.archiver.dns+json"]


def test_openssl_cipher_names_become_iana_names():
    assert iana_cipher_suite("TLS_AES_256_GCM_SHA384") == "TLS_AES_256_GCM_SHA384"
    assert iana_cipher_suite("ECDHE-RSA-AES128-GCM-SHA256") == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert iana_cipher_suite("ECDHE-ECDSA-CHACHA20-POLY1305") == "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
    assert iana_cipher_suite("DHE-RSA-AES256-SHA256") == "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256"
    assert iana_cipher_suite("AES128-SHA") == "TLS_RSA_WITH_AES_128_CBC_SHA"
    assert iana_cipher_suite("CAMELLIA128-SHA") == ""  # not covered: the field is left out
