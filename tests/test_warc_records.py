"""What a snapshot writes: WARC/1.1 records that replay and can be trusted."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import uuid
import zlib

import pytest
from warcio.archiveiterator import ArchiveIterator

from archiver.catalog import Catalog

from .conftest import make_archive, run_snapshot, warc_files, warcio_check
from .site import gzipped, redirect, send, send_chunked

ARTICLE = """<html><head><title>A</title><link rel="stylesheet" href="/s.css"></head><body>
<nav><a href="/nav/">Nav</a></nav>
<div class="entry-content"><p>First paragraph of the article with enough words to be the body text here.
See <a href="/source/">the source</a>.</p>
<div style="clear:both;"><a href="/related/" rel="nofollow" class="u1"><div><span class="ctaText">READ</span>&nbsp;
<span class="postTitle">Related story</span></div></a></div>
<p>Second paragraph, also long enough to count as article text for the body detector.</p></div>
<footer><a href="/footer/">Footer</a></footer></body></html>"""


def records(path):
    with open(path, "rb") as f:
        return [(r.rec_type, r.rec_headers, r.http_headers, r.content_stream().read()) for r in ArchiveIterator(f)]


def all_records(config):
    return [rec for path in warc_files(config) for rec in records(path)]


def sha1_b32(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


@pytest.fixture
def captured(site, config):
    site.page("/article/", ARTICLE)
    site.page("/s.css", "body { background: url(/bg.png) }", "text/css")
    site.page("/bg.png", b"\x89PNG fake", "image/png")
    site.page("/source/", "<html><body><p>source</p></body></html>")
    site.page("/related/", "<html><body><p>related</p></body></html>")
    summary = run_snapshot(config, site.url("/article/"))
    return site, config, summary


def test_files_are_warc_1_1_with_one_gzip_member_per_record(captured):
    site, config, summary = captured
    [path] = warc_files(config)
    assert re.fullmatch(r"archiver-\d{17}-\d+-[\w.-]+\.warc\.gz", path.name)
    assert not list(config.storage.warc_dir.glob("*.open"))
    data = path.read_bytes()
    members = 0
    while data:
        d = zlib.decompressobj(31)
        record = d.decompress(data)
        assert record.startswith(b"WARC/1.1\r\n")
        data = d.unused_data
        members += 1
    assert members == len(records(path))
    result = warcio_check(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_warcinfo_first_and_referenced_by_every_record(captured):
    _, config, _ = captured
    [path] = warc_files(config)
    recs = records(path)
    rec_type, headers, _, body = recs[0]
    assert rec_type == "warcinfo"
    fields = dict(line.split(": ", 1) for line in body.decode().strip().splitlines())
    for name in ("software", "hostname", "operator", "robots", "http-header-user-agent", "format", "conformsTo"):
        assert name in fields
    assert fields["format"] == "WARC File Format 1.1"
    info_id = headers.get_header("WARC-Record-ID")
    assert all(h.get_header("WARC-Warcinfo-ID") == info_id for _, h, _, _ in recs[1:])


def test_record_ids_are_distinct_version_4_uuid_urns(captured):
    _, config, _ = captured
    ids = [h.get_header("WARC-Record-ID") for path in warc_files(config) for _, h, _, _ in records(path)]
    assert len(set(ids)) == len(ids) > 10
    for record_id in ids:
        assert record_id.startswith("<urn:uuid:") and record_id.endswith(">")
        parsed = uuid.UUID(record_id[len("<urn:uuid:"):-1])
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, record_id[len("<urn:uuid:"):-1])


def test_request_and_response_pair_with_ip_date_and_digests(captured):
    site, config, _ = captured
    recs = all_records(config)
    by_id = {h.get_header("WARC-Record-ID"): (t, h, http, body) for t, h, http, body in recs}
    responses = [r for r in recs if r[0] == "response"]
    requests_ = [r for r in recs if r[0] == "request"]
    assert len(responses) == len(requests_) == 5
    for _, headers, http, body in requests_:
        response = by_id[headers.get_header("WARC-Concurrent-To")]
        assert response[0] == "response"
        assert response[1].get_header("WARC-Target-URI") == headers.get_header("WARC-Target-URI")
    for _, headers, http, body in responses:
        assert headers.get_header("WARC-IP-Address") == "127.0.0.1"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", headers.get_header("WARC-Date"))
        assert headers.get_header("WARC-Payload-Digest") == sha1_b32(body)
        path = headers.get_header("WARC-Target-URI").removeprefix(site.base)
        assert body == site.sent[path]


def test_request_record_holds_the_headers_actually_sent(captured):
    site, config, _ = captured
    sent = {s.path: s.headers for s in site.seen}
    for rec_type, headers, http, _ in all_records(config):
        if rec_type == "request":
            path = headers.get_header("WARC-Target-URI").removeprefix(site.base)
            assert http.protocol == "GET" or http.statusline.startswith("GET ")
            assert [(k.lower(), v) for k, v in http.headers] == [(k.lower(), v) for k, v in sent[path]]


def test_metadata_record_lists_links_and_how_each_url_was_reached(captured):
    site, config, _ = captured
    recs = all_records(config)
    responses = {h.get_header("WARC-Record-ID"): h.get_header("WARC-Target-URI") for t, h, _, _ in recs
                 if t == "response"}
    metas = {}
    for t, h, _, body in recs:
        if t == "metadata":
            target = h.get_header("WARC-Target-URI")
            assert target.startswith("urn:archiver:capture:http") and h.get_header("Content-Type") == "application/json"
            assert responses[h.get_header("WARC-Refers-To")] == target.removeprefix("urn:archiver:capture:")
            metas[target.removeprefix("urn:archiver:capture:")] = json.loads(body)
    article = metas[site.url("/article/")]
    assert (article["role"], article["hops"], article["via"]) == ("seed", 0, "")
    kinds = {(link["url"], link["kind"]) for link in article["links"]}
    assert (site.url("/related/"), "read") in kinds
    assert (site.url("/source/"), "body") in kinds
    assert (site.url("/s.css"), "requisite") in kinds
    assert site.url("/nav/") not in {u for u, _ in kinds}
    assert site.url("/footer/") not in {u for u, _ in kinds}
    related = metas[site.url("/related/")]
    assert (related["role"], related["hops"], related["via"]) == ("read", 1, site.url("/article/"))
    bg = metas[site.url("/bg.png")]
    assert (bg["role"], bg["via"]) == ("requisite", site.url("/s.css"))


def test_never_fetches_a_url_twice_and_skips_navigation(captured):
    site, _, summary = captured
    assert all(n == 1 for n in site.hits.values())
    assert set(site.hits) == {"/article/", "/s.css", "/bg.png", "/source/", "/related/"}
    assert summary.failed_seeds == []


def test_second_snapshot_writes_revisits_that_refer_to_the_original(captured):
    site, config, _ = captured
    run_snapshot(config, site.url("/article/"))
    recs = all_records(config)
    originals = {h.get_header("WARC-Record-ID"): h for t, h, _, _ in recs if t == "response"}
    revisits = [(h, http) for t, h, http, _ in recs if t == "revisit"]
    assert len(revisits) == 5
    for headers, http in revisits:
        assert headers.get_header("WARC-Profile") == \
            "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"
        original = originals[headers.get_header("WARC-Refers-To")]
        assert headers.get_header("WARC-Refers-To-Target-URI") == original.get_header("WARC-Target-URI")
        assert headers.get_header("WARC-Refers-To-Date") == original.get_header("WARC-Date")
        assert headers.get_header("WARC-Payload-Digest") == original.get_header("WARC-Payload-Digest")
        assert http.get_statuscode() == "200"
        assert headers.get_header("WARC-Truncated") == "length"  # the payload left out (WARC 1.1, 6.7.2)
    for path in warc_files(config):
        assert warcio_check(path).returncode == 0


def test_content_encoding_and_chunking_are_stored_as_sent(site, config):
    html = b"<html><body><p>compressed page</p></body></html>"
    site.page("/gz/", gzipped(html), headers=(("Content-Encoding", "gzip"),))
    body = b"<html><body>" + b"<p>chunk</p>" * 100 + b"</body></html>"
    site.routes["/chunked/"] = lambda h: send_chunked(h, body)
    run_snapshot(config, site.url("/gz/"), site.url("/chunked/"))
    responses = {h.get_header("WARC-Target-URI"): (http, raw) for t, h, http, raw in all_records(config)
                 if t == "response"}
    http, _ = responses[site.url("/gz/")]
    assert http.get_header("Content-Encoding") == "gzip"
    raw = b""
    for path in warc_files(config):  # one per capture process
        with open(path, "rb") as f:
            raw += b"".join(r.raw_stream.read() for r in ArchiveIterator(f) if r.rec_type == "response"
                            and r.rec_headers.get_header("WARC-Target-URI") == site.url("/gz/"))
    assert raw == gzipped(html)  # the bytes on the wire, not decoded
    http, stored = responses[site.url("/chunked/")]
    assert http.get_header("Transfer-Encoding") is None
    assert http.get_header("X-Archive-Orig-Transfer-Encoding") == "chunked"
    assert stored == body


def test_target_uri_is_percent_encoded(site, config):
    site.page("/caf%C3%A9/a%20b", "<html><body>x</body></html>")
    run_snapshot(config, site.base + "/café/a b")
    uris = {h.get_header("WARC-Target-URI") for t, h, _, _ in all_records(config) if t == "response"}
    assert uris == {site.url("/caf%C3%A9/a%20b")}


def test_redirect_hops_are_each_their_own_exchange(site, config):
    site.routes["/a"] = redirect("/b", 301)
    site.routes["/b"] = redirect("/final")
    site.page("/final", "<html><body>final</body></html>")
    summary = run_snapshot(config, site.url("/a"))
    roles = [(r.url.removeprefix(site.base), r.status, r.role) for r in summary.results]
    assert roles == [("/a", 301, "seed"), ("/b", 302, "redirect"), ("/final", 200, "redirect")]
    assert summary.failed_seeds == []


def test_endless_redirects_stop_at_the_limit(site, config):
    for i in range(50):
        site.routes[f"/r{i}"] = redirect(f"/r{i + 1}")
    summary = run_snapshot(config, site.url("/r0"))
    assert len(summary.results) == config.capture.max_redirects + 1
    assert summary.results[-1].error == "stopped after 10 redirects (max_redirects)"
    assert sum(site.hits.values()) == config.capture.max_redirects + 1


def test_failed_fetch_is_recorded_in_warc_and_catalog(site, config):
    site.stop()  # nothing listens on this port any more
    summary = run_snapshot(config, site.url("/gone/"))
    [result] = summary.results
    assert result.record == "failed" and result.status is None
    assert "refused" in result.error
    assert summary.failed_seeds == [site.url("/gone/")]
    [closing] = [r for r in all_records(config) if r[0] != "warcinfo"]  # 127.0.0.1 was never looked up: no DNS
    assert closing[0] == "metadata" and "refused" in json.loads(closing[3])["error"]
    assert closing[1].get_header("WARC-Target-URI") == "urn:archiver:capture:" + site.url("/gone/")
    assert closing[1].get_header("WARC-Refers-To") is None
    catalog = Catalog(config.storage.catalog)
    [row] = catalog.captures.rows()
    catalog.close()
    assert (row.record, row.warc, row.offset) == ("failed", result.warc, result.offset)


def test_body_over_max_bytes_is_truncated_with_warc_truncated(site, tmp_path):
    config = make_archive(tmp_path / "a", max_bytes="1000")
    site.page("/big", b"x" * 5000, "application/octet-stream")
    run_snapshot(config, site.url("/big"))
    [(headers, body)] = [(h, b) for t, h, _, b in all_records(config) if t == "response"]
    assert headers.get_header("WARC-Truncated") == "length"
    assert body == b"x" * 1000
    assert headers.get_header("WARC-Payload-Digest") == sha1_b32(b"x" * 1000)


def test_gzip_bomb_is_stored_raw_and_not_expanded(site, config):
    bomb = gzip.compress(b"<html><body>" + b"a" * 100_000_000, compresslevel=9)
    site.page("/bomb/", bomb, headers=(("Content-Encoding", "gzip"),))
    summary = run_snapshot(config, site.url("/bomb/"))
    assert [r.status for r in summary.results] == [200]
    [path] = warc_files(config)
    with open(path, "rb") as f:
        [stored] = [r.raw_stream.read() for r in ArchiveIterator(f) if r.rec_type == "response"]
    assert stored == bomb


def test_broken_encodings_still_give_links(site, config):
    page = "<html><body><div class='entry-content'><p>Caf\xe9 " + "text " * 20 + \
           "<a href='/s'>src</a></p></div></body></html>"
    site.page("/latin/", page.encode("latin-1") + b"\xff\xfe\x00", "text/html; charset=utf-8")
    site.page("/s", "<html></html>")
    summary = run_snapshot(config, site.url("/latin/"))
    assert {r.url for r in summary.results} == {site.url("/latin/"), site.url("/s")}


def test_warc_rotates_at_max_bytes_between_records(site, tmp_path):
    config = make_archive(tmp_path / "a", warc_max_bytes="2000")
    for i in range(5):
        site.page(f"/p{i}", f"<html><body>{'page %d ' % i * 200}</body></html>")
    run_snapshot(config, *[site.url(f"/p{i}") for i in range(5)])
    files = warc_files(config)
    assert len(files) >= 3
    for path in files:
        recs = records(path)
        assert recs[0][0] == "warcinfo" and recs[-1][0] == "metadata"
        assert warcio_check(path).returncode == 0
    indexes = sorted(p.name for p in config.storage.index_dir.glob("*.cdxj"))
    assert indexes == sorted(p.name + ".cdxj" for p in files)


def test_idle_file_is_closed_and_indexed_by_a_long_running_writer(site, config):
    from archiver.archive.writer import Writer
    from archiver.archive.records import Reached
    site.page("/a", "<html><body>a</body></html>")
    archive = Writer(config)
    try:
        ex = archive_fetch(archive, site.url("/a"))
        archive.store([(ex, Reached(site.url("/a"), "seed"), [])])
        ex.close()
        assert len(list(config.storage.warc_dir.glob("*.open"))) == 1
        archive.writer.close_if_idle(3600)
        assert len(list(config.storage.warc_dir.glob("*.open"))) == 1
        archive.writer.close_if_idle(0)
        assert not list(config.storage.warc_dir.glob("*.open"))
        [path] = warc_files(config)
        assert (config.storage.index_dir / (path.name + ".cdxj")).read_text().count("\n") == 1
    finally:
        archive.close()


def archive_fetch(archive, url):
    from archiver.capture.fetch import Fetcher
    fetcher = Fetcher(archive.config.capture)
    try:
        return fetcher.fetch(url)
    finally:
        fetcher.close()


def test_redirect_bodies_are_stored_whole(site, config):
    body = b"<html><body>Moved <a href='/b'>here</a></body></html>"
    site.routes["/a"] = lambda h: send(h, 301, body, "text/html", (("Location", "/b"),))
    site.page("/b", "<html><body>b</body></html>")
    run_snapshot(config, site.url("/a"))
    [(headers, http, stored)] = [(h, http, b) for t, h, http, b in all_records(config)
                                 if t == "response" and h.get_header("WARC-Target-URI") == site.url("/a")]
    assert http.get_statuscode() == "301" and stored == body
    assert headers.get_header("WARC-IP-Address") == "127.0.0.1"
