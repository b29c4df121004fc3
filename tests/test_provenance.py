"""Provenance recorded at capture time: TLS certificates from the very connection that
delivered each response, and the DNS answer of every host."""

from __future__ import annotations

import hashlib
import json

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
    tls = [(h, json.loads(body)) for t, h, _, body in records
           if t == "metadata" and h.get_header("Content-Type") == "application/vnd.archiver.tls+json"]
    assert len(tls) == 2  # one per hop, each from its own exchange
    for headers, content in tls:
        response = responses[headers.get_header("WARC-Concurrent-To")]
        assert response.get_header("WARC-Target-URI") == headers.get_header("WARC-Target-URI")
        assert content["certificate_sha256"] == hashlib.sha256(leaf_der).hexdigest()
        assert content["tls_version"].startswith("TLSv1.")
        assert content["cipher"]
        assert content["chain_der"][0] == content["certificate_der"]
    for path in warc_files(config):
        assert warcio_check(path).returncode == 0


def test_untrusted_certificate_is_a_recorded_tls_failure(tls_site, tmp_path):
    site, _, _ = tls_site
    site.page("/x/", "<html></html>")
    config = make_archive(tmp_path / "a")
    summary = run_snapshot(config, site.url("/x/"))
    [result] = summary.results
    assert result.record == "failed" and "TLS certificate verification failed" in result.error
    assert summary.failed_seeds == [site.url("/x/")]


def test_dns_answer_recorded_once_per_host_and_snapshot(site, config):
    site.page("/a/", "<html><body><div class='entry-content'><p>" + "words " * 30 +
              "<a href='/b/'>b</a></p></div></body></html>")
    site.page("/b/", "<html><body>b</body></html>")
    run_snapshot(config, site.url("/a/"))
    run_snapshot(config, site.url("/a/"))
    dns = [json.loads(body) for t, h, _, body in all_records(config)
           if t == "metadata" and h.get_header("Content-Type") == "application/vnd.archiver.dns+json"]
    assert dns == [{"kind": "dns", "host": "127.0.0.1", "addresses": ["127.0.0.1"]}] * 2
