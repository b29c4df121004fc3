"""archiver serve over HTTP: every page against an archive made by real captures of local
sites, the escaping of hostile archived text, CSRF on writes, the access token, and the
read-only catalog connection that never holds a writer up."""

from __future__ import annotations

import hashlib
import html
import re
import threading
import zipfile
from io import BytesIO
from urllib.parse import quote, urlencode

import lxml.html
import pytest

from archiver.errors import ConfigError
from archiver.pipeline import reindex
from archiver.web import check_access, running
from archiver.web.data import ArchiveData, Filters

from .conftest import make_archive, run_cli, run_snapshot
from .site import Site
from .webarchive import HOSTILE_TITLE, INSERTED, build, fetch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sites():
    news, other = Site(), Site()
    yield news, other
    news.stop()
    other.stop()


@pytest.fixture(scope="module")
def web(tmp_path_factory, sites):
    archive = build(tmp_path_factory.mktemp("web") / "archive", *sites)
    with running(archive.config, "127.0.0.1", 0) as addresses:
        yield archive, addresses.interface


def page(base: str, path: str, **query: str) -> str:
    reply = fetch(f"{base}{path}" + (f"?{urlencode(query)}" if query else ""))
    assert reply.status == 200, reply.body
    return reply.body


def csrf_of(body: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', body).group(1)


def test_the_list_shows_tracked_articles_with_their_last_change(web):
    archive, base = web
    body = page(base, "/")
    assert "Defence Office Opens in Marenburg After Vote" in body
    assert f'href="/diff?url={archive.article}"' in body  # its last change
    assert "title" in body and "body" in body  # the kinds of that change
    assert archive.quiet in body and "every 1d" in body and "never" in body
    assert '<a class="tag" href="/?tag=ruritania">ruritania</a>' in body


def test_the_list_filters_by_tag_site_title_and_change_date(web):
    archive, base = web
    assert archive.quiet in page(base, "/", tag="defence") and archive.hostile not in page(base, "/", tag="defence")
    assert archive.article not in page(base, "/", site="quiet.example")
    found = page(base, "/", q="After Vote")
    assert archive.article in found and archive.quiet not in found and archive.hostile not in found
    assert archive.article in page(base, "/", since="7d") and archive.quiet not in page(base, "/", since="7d")
    assert archive.article not in page(base, "/", since="2999-01-01")
    assert "match these filters" in page(base, "/", q="no such words")


def test_the_list_is_paged_in_sql(web):
    archive, _ = web
    data = ArchiveData(archive.config)
    try:
        pages = [data.tracked(Filters(), n, size=2) for n in (1, 2)]
    finally:
        data.close()
    assert [p.total for p in pages] == [3, 3] and pages[0].pages == 2
    assert [len(p.rows) for p in pages] == [2, 1]
    assert sorted(r["url"] for p in pages for r in p.rows) == sorted([archive.article, archive.hostile, archive.quiet])


def test_the_history_lists_versions_with_replay_and_record_links(web):
    archive, base = web
    body = page(base, "/history", url=archive.article)
    assert body.count('<tr class="version">') == 2 and "first version" in body
    replays = re.findall(r'class="replay" href="(http://127\.0\.0\.1:\d+/archive/\d{14}/[^"]+)"', body)
    assert replays and all(r.endswith(archive.article) for r in replays)
    record = html.unescape(re.search(r'href="(/record\?warc=[^"]+)"', body).group(1))
    reply = fetch(base + record)
    warc, offset = re.search(r"warc=([^&]+)&offset=(\d+)", record).groups()
    stored = (archive.config.storage.warc_dir / warc).read_bytes()[int(offset):]
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/warc"
    assert stored.startswith(reply.data) and len(reply.data) > 100 and "attachment" in reply.headers["Content-Disposition"]


def test_a_record_is_served_only_where_the_catalog_has_one(web):
    archive, base = web
    warc = next(archive.config.storage.warc_dir.glob("*.warc.gz")).name
    assert fetch(f"{base}/record?warc={warc}&offset=1").status == 400
    assert fetch(f"{base}/record?warc=../config.toml&offset=0").status == 400


def test_the_diff_marks_words_moves_and_fields_with_the_evidence(web):
    archive, base = web
    body = page(base, "/diff", url=archive.article)  # default: the last change
    assert INSERTED in " ".join(re.findall(r"<ins>(.*?)</ins>", body))
    assert "12" in " ".join(re.findall(r"<del>(.*?)</del>", body))
    assert '<mark class="moved"' in body
    assert "<th>title</th><td class=\"before\">Defence Office Opens in Marenburg Amid Protests</td>" in body
    warcs = re.findall(r"<dt>WARC file</dt><dd><code>([^<]+)</code> at offset \d+", body)
    assert len(set(warcs)) == 2 and all((archive.config.storage.warc_dir / w).exists() for w in warcs)
    assert body.count("<dt>IP address</dt><dd>127.0.0.1</dd>") == 2
    assert body.count('class="ok">OK: the digests') == 2
    assert re.search(r"<dt>Payload digest</dt><dd><code>sha1:[A-Z2-7]{32}</code>", body)


def test_a_damaged_record_fails_its_check_on_the_diff_page(tmp_path):
    news, other = Site(), Site()
    try:
        archive = build(tmp_path / "archive", news, other)
    finally:
        news.stop()
        other.stop()
    data = ArchiveData(archive.config)
    try:
        d = data.diff(archive.article, None, None)
        path = archive.config.storage.warc_dir / d.new.first.warc
        raw = bytearray(path.read_bytes())
        # Flip one byte inside the response's gzip member: its CRC (or digest) no longer holds.
        raw[d.new.first.offset + 200] ^= 0xFF
        path.write_bytes(bytes(raw))
        evidence = data.evidence(d.new.first)
    finally:
        data.close()
    assert evidence["problems"], evidence


def markup_of(body: str) -> list[tuple[str, dict[str, str]]]:
    """Every element of a page with its attributes, as a browser would build them."""
    return [(el.tag, dict(el.attrib)) for el in lxml.html.fromstring(body).iter() if isinstance(el.tag, str)]


def test_hostile_archived_text_is_shown_as_text(web):
    archive, base = web
    for path, query in (("/", {}), ("/history", {"url": archive.hostile}), ("/changes", {}),
                        ("/diff", {"url": archive.hostile, "from": "1", "to": "1"})):
        reply = fetch(f"{base}{path}?{urlencode(query)}")
        assert reply.status == 200, reply.body
        elements = markup_of(reply.body)
        assert not [tag for tag, _ in elements if tag in ("script", "iframe", "img", "b", "object", "embed")]
        assert not [(tag, a) for tag, attrs in elements for a in attrs if a.startswith("on")]
        links = [attrs["href"] for tag, attrs in elements if "href" in attrs]
        assert all(href.startswith(("/", "http://127.0.0.1:")) for href in links), links
        policy = reply.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy  # no script runs at all
    texts = [lxml.html.fromstring(page(base, p, url=archive.hostile)).text_content() for p in ("/history", "/diff")]
    assert all(HOSTILE_TITLE in text for text in texts)
    assert HOSTILE_TITLE in lxml.html.fromstring(page(base, "/")).text_content()


def test_changes_are_listed_newest_first_with_their_feed(web):
    archive, base = web
    body = page(base, "/changes")
    assert 'type="application/atom+xml"' in body and archive.article in body
    times = re.findall(r">(\d{4}-\d\d-\d\dT[\d:.]+Z)</a>", body)
    assert times and times == sorted(times, reverse=True)
    feed = fetch(f"{base}/changes.atom")
    assert feed.status == 200 and feed.headers["Content-Type"].startswith("application/atom+xml")
    assert feed.body.count("<entry>") >= 2 and "<script" not in feed.body


def test_status_shows_what_archiver_status_shows(web):
    archive, base = web
    body = page(base, "/status")
    files = len(list(archive.config.storage.warc_dir.glob("*.warc.gz")))
    assert "<dt>Tracked</dt><dd>3</dd>" in body and f"<dt>WARC files</dt><dd>{files} (" in body


def test_track_and_stop_tracking_need_the_csrf_token(web):
    archive, base = web
    url = "https://www.example.org/2026/12/new-story/"
    added = archive.config.seeds_dir / "added.txt"
    refused = fetch(f"{base}/track", "POST", urlencode({"url": url, "tags": "x"}))
    assert refused.status == 403 and not added.exists()
    token = csrf_of(page(base, "/"))
    done = fetch(f"{base}/track", "POST", urlencode({"url": url, "tags": "x, y", "every": "6h", "csrf": token}))
    assert done.status == 303
    assert added.read_text() == f"{url} every=6h tag=x tag=y\n"
    assert url in page(base, "/", tag="y")
    bad = fetch(f"{base}/track", "POST", urlencode({"url": url + "2", "every": "soon", "csrf": token}))
    assert bad.status == 400 and url + "2" not in added.read_text()
    assert fetch(f"{base}/untrack", "POST", urlencode({"url": url})).status == 403
    assert url in added.read_text()
    assert fetch(f"{base}/untrack", "POST", urlencode({"url": url, "csrf": token})).status == 303
    assert url not in added.read_text()


def test_the_evidence_packet_downloads(web):
    archive, base = web
    reply = fetch(f"{base}/export?url={quote(archive.article, safe='')}")
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"] == "application/wacz"
    assert "attachment" in reply.headers["Content-Disposition"]
    packet = zipfile.ZipFile(BytesIO(reply.data))
    assert {"report/provenance.html", "datapackage.json"} <= set(packet.namelist())
    assert "Defence Office Opens in Marenburg After Vote" in packet.read("report/provenance.html").decode()


def test_replay_is_served_beside_the_interface(web):
    archive, base = web
    body = page(base, "/history", url=archive.article)
    replay = re.search(r'class="replay" href="([^"]+)"', body).group(1)
    assert not replay.startswith(base)  # another origin than the interface's
    stamp = re.search(r"/archive/(\d{14})/", replay).group(1)
    reply = fetch(replay.replace(f"/{stamp}/", f"/{stamp}id_/"), headers={"Sec-Fetch-Dest": "iframe"})
    if reply.status == 302:  # the replay guard: the capture's origin token
        reply = fetch(replay.split("/archive/")[0] + reply.headers["Location"], headers={"Sec-Fetch-Dest": "iframe"})
    assert reply.status == 200 and "Defence Office Opens in Marenburg" in reply.body
    redirect = fetch(f"{base}/replay/archive/{stamp}/{archive.article}")
    assert redirect.status == 302 and redirect.headers["Location"] == replay


def test_a_non_loopback_address_needs_a_token(tmp_path):
    with pytest.raises(ConfigError, match="token"):
        check_access("0.0.0.0", "")
    check_access("0.0.0.0", "s3cret")
    check_access("127.0.0.1", "")
    check_access("::1", "")
    config = make_archive(tmp_path / "a")
    result = run_cli("serve", "--host", "0.0.0.0", "--port", "0", cwd=config.root)
    assert result.returncode == 2 and "[serve] token" in result.stderr


def test_with_a_token_every_request_must_carry_it(tmp_path, site):
    site.page("/a/", "<html><head><title>A</title></head><body><p>Some text here.</p></body></html>")
    config = make_archive(tmp_path / "a", replay_port="0", token='"s3cret-token"')
    run_snapshot(config, site.url("/a/"))
    with running(config, "127.0.0.1", 0) as addresses:
        for base in (addresses.interface, addresses.replay):
            assert fetch(f"{base}/").status == 401
            assert fetch(f"{base}/", headers={"Authorization": "Bearer wrong"}).status == 401
            assert fetch(f"{base}/", headers={"Authorization": "Bearer s3cret-token"}).status in (200, 302)
        first = fetch(f"{addresses.interface}/status?token=s3cret-token")
        assert first.status == 303 and first.headers["Location"] == "/status"
        cookie = first.headers["Set-Cookie"].split(";")[0]
        assert "HttpOnly" in first.headers["Set-Cookie"] and "SameSite=Strict" in first.headers["Set-Cookie"]
        assert fetch(f"{addresses.interface}/status", headers={"Cookie": cookie}).status == 200
        assert fetch(f"{addresses.interface}/status", headers={"Cookie": "archiver_token=nope"}).status == 401
        # The replay server: a capture's own prefix passes once pywb has handed it out with the token.
        capture = f"{addresses.replay}/archive/2id_/{site.url('/a/')}"
        stranger = fetch(f"{addresses.replay}/o-{'0' * 24}/archive/2id_/{site.url('/a/')}")
        assert stranger.status == 401
        assert fetch(capture, headers={"Sec-Fetch-Dest": "iframe"}).status == 401
        handed = fetch(capture, headers={"Sec-Fetch-Dest": "iframe", "Authorization": "Bearer s3cret-token"})
        assert handed.status == 302 and handed.headers["Location"].startswith("/o-")
        under = fetch(addresses.replay + handed.headers["Location"], headers={"Sec-Fetch-Dest": "iframe"})
        assert under.status == 200 and "Some text here." in under.body
        assert fetch(f"{addresses.interface}{handed.headers['Location']}").status == 401  # not the interface's


def test_the_token_never_reaches_a_warc_record(tmp_path, site):
    site.page("/a/", "<html><body><p>Text.</p></body></html>")
    config = make_archive(tmp_path / "a", token='"s3cret-token"')
    run_snapshot(config, site.url("/a/"))
    import gzip
    for path in config.storage.warc_dir.glob("*.warc.gz"):
        assert b"s3cret-token" not in gzip.decompress(path.read_bytes())


def test_reading_never_holds_a_writer_up_and_sees_its_captures(tmp_path, site):
    site.page("/a/", "<html><head><title>First</title></head><body><article><p>" + "Words of the story. " * 20
              + "</p></article></body></html>")
    config = make_archive(tmp_path / "a")
    run_snapshot(config, site.url("/a/"))
    data = ArchiveData(config)
    try:
        assert len(data.history(site.url("/a/")).versions) == 1
        with data.reading():  # a request reading while archiver run captures
            done = threading.Event()
            writer = threading.Thread(target=lambda: (run_snapshot(config, site.url("/a/")), done.set()))
            site.page("/a/", "<html><head><title>Second</title></head><body><article><p>"
                      + "Other words of the story. " * 20 + "</p></article></body></html>")
            writer.start()
            writer.join(timeout=60)
            assert done.is_set()
        assert len(data.history(site.url("/a/")).versions) == 2  # the connection sees what was written since
        reindex(config)  # and a reindex between two requests finds no reader holding it
    finally:
        data.close()


def test_a_page_shows_an_error_not_a_traceback(web):
    _, base = web
    reply = fetch(f"{base}/history?url=https://nowhere.example/x")
    assert reply.status == 404 and "no captures" in reply.body
    assert fetch(f"{base}/diff?url=https://nowhere.example/x").status == 400
    assert fetch(f"{base}/diff").status == 400
    assert fetch(f"{base}/?page=x").status == 400


def test_the_evidence_names_the_tls_certificate_of_a_capture(tls_site, tmp_path):
    site, ca, leaf_der = tls_site
    site.page("/a/", "<html><head><title>Over TLS</title></head><body><article><p>"
              + "Words of a story over TLS. " * 20 + "</p></article></body></html>")
    config = make_archive(tmp_path / "a", ca_bundle=f'"{ca}"')
    run_snapshot(config, site.url("/a/"))
    data = ArchiveData(config)
    try:
        [version] = data.history(site.url("/a/")).versions
        evidence = data.evidence(version.first)
    finally:
        data.close()
    tls = evidence["tls"]
    assert tls["subject"] == "CN=localhost" and tls["chain"] == 2
    assert tls["certificate_sha256"] == hashlib.sha256(leaf_der).hexdigest()
    assert tls["protocol"].startswith("tls/1.") and tls["cipher"].startswith("TLS_")
    types = [r["content_type"] for r in evidence["records"]]  # response ... TLS, DNS, capture metadata
    assert "application/pem-certificate-chain" in types and types[-1] == "application/json"
    assert evidence["problems"] == [] and evidence["ledger_seq"] is not None
