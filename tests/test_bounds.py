"""What one page or one server can make a snapshot do is bounded, and a bound hit is
recorded: links per page, URLs per snapshot, addresses a redirect or link may reach."""

from __future__ import annotations

import json
import logging
import socket

import pytest
from warcio.archiveiterator import ArchiveIterator

from archiver.catalog import Catalog
from archiver.capture.fetch import Fetcher

from .conftest import make_archive, run_snapshot, warc_files
from .site import Site, redirect, send


def linking_page(paths: list[str]) -> str:
    """An article whose body links every path (editorial links: followed as kind body)."""
    links = "".join(f"<a href='{p}'>story {i}</a> " for i, p in enumerate(paths))
    return ("<html><head><title>Hub</title></head><body><div class='entry-content'><p>"
            + "The ministry said on Tuesday that the office would open next year. " * 4
            + links + "</p></div></body></html>")


def capture_metadata(config, url: str) -> dict:
    """The capture metadata (JSON) of url's capture."""
    for path in warc_files(config):
        with open(path, "rb") as f:
            for record in ArchiveIterator(f):
                if record.rec_headers.get_header("WARC-Target-URI") == "urn:archiver:capture:" + url:
                    return json.loads(record.content_stream().read())
    raise AssertionError(f"no capture metadata for {url}")


def test_links_past_max_links_per_page_are_listed_not_fetched_and_the_capture_says_so(site, tmp_path, caplog):
    paths = [f"/story/{n}" for n in range(40)]
    for path in paths:
        site.page(path, "<html><body>story</body></html>")
    images = [f"/img/{n}.png" for n in range(3)]
    for path in images:
        site.page(path, b"\x89PNG", "image/png")
    site.page("/hub/", linking_page(paths).replace("</body>", "".join(f"<img src='{p}'>" for p in images) + "</body>"))
    config = make_archive(tmp_path / "a", max_links_per_page="5")
    with caplog.at_level(logging.WARNING, logger="archiver"):
        summary = run_snapshot(config, site.url("/hub/"))
    fetched = [r.url for r in summary.results if r.role == "body"]
    assert fetched == [site.url(p) for p in paths[:5]]
    assert sorted(r.url for r in summary.results if r.role == "requisite") == [site.url(p) for p in images]
    assert sum(site.hits[p] for p in paths) == 5
    [seed] = [r for r in summary.results if r.role == "seed"]
    assert seed.status == 200 and seed.error == "35 links not followed (max_links_per_page 5)"
    assert len(capture_metadata(config, seed.url)["links"]) == 43  # every link is still listed
    assert f"{seed.url}: 35 links not followed (max_links_per_page 5)" in caplog.text
    catalog = Catalog(config.storage.catalog)
    try:
        [row] = [r for r in catalog.captures.rows(seed.url) if r.role == "seed"]
    finally:
        catalog.close()
    assert row.error == seed.error


def test_ten_thousand_requisites_make_no_more_fetches_than_the_bound(site, tmp_path):
    images = "".join(f"<img src='/i/{n}.png'>" for n in range(10_000))
    site.page("/huge/", f"<html><body><p>A gallery.</p>{images}</body></html>")
    config = make_archive(tmp_path / "a", max_links_per_page="20")
    summary = run_snapshot(config, site.url("/huge/"))
    assert len(summary.results) == 21  # the page and 20 of its images (404s here)
    assert summary.results[0].error == "9980 links not followed (max_links_per_page 20)"


def test_max_urls_per_snapshot_stops_following_and_says_so_once_in_the_log(site, tmp_path, caplog):
    hubs = [f"/hub/{n}/" for n in range(3)]
    for n, hub in enumerate(hubs):
        site.page(hub, linking_page([f"/hub/{n}/story/{i}" for i in range(4)]))
    config = make_archive(tmp_path / "a", max_urls_per_snapshot="6", concurrency="1")
    with caplog.at_level(logging.WARNING, logger="archiver"):
        summary = run_snapshot(config, *(site.url(h) for h in hubs))
    seeds = [r for r in summary.results if r.role == "seed"]
    assert sorted(r.url for r in seeds) == sorted(site.url(h) for h in hubs)  # seeds are always fetched
    assert len(summary.results) == 6
    notes = [r.error for r in seeds if r.error]
    assert notes and all("links not followed (max_urls_per_snapshot 6)" in n for n in notes)
    assert sum(int(n.split()[0]) for n in notes) == 3 * 4 - 3  # every link not fetched is counted
    assert caplog.text.count("reached max_urls_per_snapshot (6)") == 1


# ---- addresses ---------------------------------------------------------------------------

@pytest.fixture
def other_loopback():
    """A server on 127.0.0.2: not the address a seed on 127.0.0.1 was served from."""
    s = Site(host="127.0.0.2")
    yield s
    s.stop()


def test_a_redirect_or_link_to_another_private_address_is_refused_and_recorded(site, other_loopback, tmp_path):
    other_loopback.page("/secret", "<html>internal</html>")
    inner = other_loopback.url("/secret")
    site.routes["/moved/"] = redirect(inner)
    site.page("/page/", linking_page(["/local/", inner, "http://169.254.169.254/latest/meta-data/"]))
    site.page("/local/", "<html>same host</html>")
    config = make_archive(tmp_path / "a", timeout="1.0")
    summary = run_snapshot(config, site.url("/moved/"), site.url("/page/"))
    outcome = {r.url: (r.status, r.record, r.error) for r in summary.results}
    assert outcome[site.url("/local/")][0] == 200  # the seed's own (private) address: allowed
    assert outcome[inner] == (None, "failed", "refused: 127.0.0.2 not a public address (allow_private_addresses)")
    assert outcome["http://169.254.169.254/latest/meta-data/"][2] == ("refused: 169.254.169.254 not a public address "
                                                                      "(allow_private_addresses)")
    assert other_loopback.hits["/secret"] == 0 and len(summary.results) == 5  # nothing retried
    assert capture_metadata(config, inner)["error"].startswith("refused: ")


def test_allow_private_addresses_follows_them(site, other_loopback, tmp_path):
    other_loopback.page("/secret", "<html>internal</html>")
    site.routes["/moved/"] = redirect(other_loopback.url("/secret"))
    config = make_archive(tmp_path / "a", allow_private_addresses="true")
    summary = run_snapshot(config, site.url("/moved/"))
    assert [r.status for r in summary.results] == [302, 200]


def test_the_address_connected_to_is_checked_not_the_first_answer(site, other_loopback, tmp_path, monkeypatch):
    """DNS rebinding: rebind.test resolves to the seed's own address for its DNS record
    and first connection, then to another private address. Each connection is checked on
    the address it goes to."""
    port = site.server.server_address[1]
    other = socket.create_server(("127.0.0.2", port))  # the same port on the other address
    other.listen()
    far = f"http://rebind.test:{port}"
    site.routes["/a"] = lambda h: send(h, 200, b"<html>a</html>", "text/html", (("Connection", "close"),))
    site.page("/page/", linking_page([far + "/a", far + "/b"]))
    answers = iter(["127.0.0.1"])
    resolve = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: resolve(
        next(answers, "127.0.0.2") if host == "rebind.test" else host, *a, **k))
    config = make_archive(tmp_path / "a", concurrency="1", timeout="1.0")
    try:
        summary = run_snapshot(config, site.url("/page/"))
    finally:
        other.close()
    outcome = {r.url: (r.status, r.error) for r in summary.results}
    assert outcome[far + "/a"] == (200, "")
    assert outcome[far + "/b"] == (None, "refused: rebind.test is at 127.0.0.2, not a public address "
                                         "(allow_private_addresses)")


def test_a_kept_alive_connection_is_checked_too(site, tmp_path):
    site.page("/one", "<html>1</html>")
    site.page("/two", "<html>2</html>")
    fetcher = Fetcher(make_archive(tmp_path / "a").capture)
    try:
        first = fetcher.fetch(site.url("/one"))  # a seed: any address
        second = fetcher.fetch(site.url("/two"), reach=frozenset())  # public addresses only
    finally:
        fetcher.close()
    first.close()
    assert first.status == 200
    assert (second.status, second.refused, second.request_head) == (None, True, None)
    assert second.error == "refused: 127.0.0.1 not a public address (allow_private_addresses)"
    assert site.hits["/two"] == 0


def test_through_a_proxy_a_private_address_is_refused_by_name(tmp_path):
    from .test_http_wire import RawServer

    proxy = RawServer()
    fetcher = Fetcher(make_archive(tmp_path / "a", proxy=f'"{proxy.base}"').capture)
    try:
        refused = [fetcher.fetch(url, reach=frozenset()) for url in
                   ("http://10.1.2.3/", "http://[::1]/", "http://localhost:8080/", "http://a.localhost/")]
    finally:
        fetcher.close()
        proxy.stop()
    assert all(ex.refused and ex.error.startswith("refused: ") for ex in refused)
    assert proxy.connections == 0
