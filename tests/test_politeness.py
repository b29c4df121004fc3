"""Per-host politeness, global concurrency, robots.txt and hostile slow servers."""

from __future__ import annotations

import threading

import pytest

from archiver.archive.records import Reached
from archiver.capture.politeness import HostSlots
from archiver.capture.pool import FetchPool
from archiver.crawl import Job
from archiver.capture.fetch import Fetcher

from .conftest import make_archive, run_snapshot
from .site import Site, redirect, send


def job(url: str) -> Job:
    return Job(url, Reached(url, "seed"), is_page=True)


def test_host_slots_space_requests_to_one_host_and_not_across_hosts():
    now = [100.0]
    slots = HostSlots(delay=2.0, limit=1, clock=lambda: now[0])
    a1, a2, b1 = job("http://a.example/1"), job("http://a.example/2"), job("http://b.example/1")
    for j in (a1, a2, b1):
        slots.add(j)
    assert slots.take() == a1
    assert slots.take() == b1          # another host is not held back by a.example
    assert slots.take() is None        # a.example busy
    slots.done(a1)
    assert slots.take() is None        # a.example must wait its delay
    assert slots.seconds_until_ready() == 2.0
    now[0] += 2.0
    assert slots.take() == a2


def test_host_slots_without_delay_allow_the_per_host_limit():
    slots = HostSlots(delay=0.0, limit=2, clock=lambda: 0.0)
    jobs = [job(f"http://a.example/{i}") for i in range(3)]
    for j in jobs:
        slots.add(j)
    assert [slots.take(), slots.take(), slots.take()] == [jobs[0], jobs[1], None]


def test_hosts_take_turns_so_none_is_starved():
    slots = HostSlots(delay=0.0, limit=1, clock=lambda: 0.0)
    for n in range(3):
        for host in "abcd":
            slots.add(job(f"http://{host}.example/{n}"))
    served = []
    while (j := slots.take()) is not None:  # each fetch ends before the next starts
        served.append(j.url)
        slots.done(j)
    assert served == [f"http://{host}.example/{n}" for n in range(3) for host in "abcd"]
    assert not slots.pending()


def test_fetch_pool_runs_exchanges_side_by_side_wakes_and_abandons(site, tmp_path):
    release = threading.Event()
    site.routes["/slow"] = lambda h: release.wait(10)  # answers nothing until released
    site.page("/fast", "<html></html>")
    fetcher = Fetcher(make_archive(tmp_path / "a").capture)
    loop = FetchPool(fetcher.fetch, 4, fetcher.cancel)
    try:
        loop.submit(site.url("/slow"))
        loop.submit(site.url("/fast"))
        finished: list = []
        while not finished:
            finished = loop.wait(5)
        assert [(job, ex.status) for job, ex in finished] == [(site.url("/fast"), 200)]
        finished[0][1].close()
        waker = threading.Thread(target=loop.wake)
        waker.start()
        waker.join()
        assert loop.wait(None) == []  # the wake-up ends the wait; the slow exchange still waits
        assert loop.abandon() == [site.url("/slow")] and not loop.in_flight
    finally:
        release.set()
        loop.close()
        fetcher.close()


@pytest.mark.slow
def test_snapshot_is_polite_per_host_and_concurrent_across_hosts(tmp_path):
    sites = [Site(host="127.0.0.1"), Site(host="127.0.0.2")]
    other_host_seen = threading.Event()
    try:
        for s in sites:
            for i in range(3):
                s.page(f"/p{i}", "<html><body>x</body></html>")
        # The first host's first answer waits until the second host has been asked: the
        # snapshot must not wait for one host before starting on another.
        sites[0].routes["/p0"] = lambda h: (other_host_seen.wait(10), send(h, 200, b"<html></html>", "text/html"))
        sites[1].routes["/p0"] = lambda h: (other_host_seen.set(), send(h, 200, b"<html></html>", "text/html"))
        config = make_archive(tmp_path / "a", per_host_delay="0.3", concurrency="4")
        run_snapshot(config, *[s.url(f"/p{i}") for s in sites for i in range(3)])
        assert other_host_seen.is_set()
        for s in sites:
            times = sorted(seen.at for seen in s.seen)
            assert len(times) == 3
            assert all(b - a >= 0.29 for a, b in zip(times, times[1:])), times
    finally:
        for s in sites:
            s.stop()


def test_robots_obey_records_disallowed_urls_as_failed(site, tmp_path):
    site.page("/robots.txt", "User-agent: *\nDisallow: /private/\n", "text/plain")
    site.page("/ok/", "<html><body><div class='entry-content'><p>" + "text " * 30 +
              "<a href='/private/x'>p</a></p></div></body></html>")
    site.page("/private/x", "secret")
    config = make_archive(tmp_path / "a", robots='"obey"')
    summary = run_snapshot(config, site.url("/ok/"))
    outcome = {r.url: (r.record, r.error) for r in summary.results}
    assert outcome[site.url("/ok/")] == ("response", "")
    assert outcome[site.url("/private/x")] == ("failed", "blocked by robots.txt")
    assert site.hits["/private/x"] == 0


def test_robots_txt_is_fetched_again_after_a_day(site, tmp_path):
    """archiver run goes on for months: a site's new robots.txt must be seen."""
    from archiver.capture.politeness import ROBOTS_MAX_AGE, ROBOTS_RETRY, RobotsPolicy
    from archiver.capture.fetch import Fetcher

    site.page("/robots.txt", "User-agent: *\nDisallow:\n", "text/plain")
    now = [1000.0]
    fetcher = Fetcher(make_archive(tmp_path / "a").capture)
    policy = RobotsPolicy(fetcher, clock=lambda: now[0])
    try:
        assert policy.allowed(site.url("/p/"), "archiver")
        site.page("/robots.txt", "User-agent: *\nDisallow: /p/\n", "text/plain")
        now[0] += ROBOTS_MAX_AGE - 1
        assert policy.allowed(site.url("/p/"), "archiver")  # kept for a day
        now[0] += 2
        assert not policy.allowed(site.url("/p/"), "archiver")
        assert site.hits["/robots.txt"] == 2
        # A day later the server fails: the rules it gave are kept, and asked for in an hour.
        site.page("/robots.txt", "down", "text/plain", status=503)
        now[0] += ROBOTS_MAX_AGE + 1
        assert not policy.allowed(site.url("/p/"), "archiver")
        now[0] += ROBOTS_RETRY - 1
        assert not policy.allowed(site.url("/p/"), "archiver")
        assert site.hits["/robots.txt"] == 3
        site.page("/robots.txt", "User-agent: *\nDisallow:\n", "text/plain")
        now[0] += 2
        assert policy.allowed(site.url("/p/"), "archiver")
        assert site.hits["/robots.txt"] == 4
    finally:
        fetcher.close()


def test_robots_txt_unreachable_disallows_all_and_redirects_are_followed(site, tmp_path):
    """RFC 9309 2.3.1: redirects followed; a 5xx or 429 with no rules fetched before
    means complete disallow (tried again in an hour); a 404 means no rules."""
    from archiver.capture.politeness import ROBOTS_RETRY, RobotsPolicy
    from archiver.capture.fetch import Fetcher

    now = [0.0]
    fetcher = Fetcher(make_archive(tmp_path / "a").capture)
    policy = RobotsPolicy(fetcher, clock=lambda: now[0])
    allowed = lambda path: policy.allowed(site.url(path), "archiver")  # noqa: E731
    try:
        site.page("/robots.txt", "busy", "text/plain", status=429)
        assert not allowed("/p/")
        now[0] += ROBOTS_RETRY
        site.routes["/robots.txt"] = redirect("/rules.txt")
        site.page("/rules.txt", "User-agent: *\nDisallow: /private/\n", "text/plain")
        assert allowed("/p/") and not allowed("/private/x")
        assert site.hits["/rules.txt"] == 1
    finally:
        fetcher.close()


def test_slow_drip_body_is_cut_at_total_timeout(site, tmp_path):
    stop = threading.Event()

    def drip(h):
        h.send_response(200)
        h.send_header("Content-Type", "text/plain")
        h.send_header("Content-Length", "100000")
        h.end_headers()
        for _ in range(1000):
            h.wfile.write(b"x")
            h.wfile.flush()
            if stop.wait(0.01):
                return
    site.routes["/drip"] = drip
    config = make_archive(tmp_path / "a", total_timeout="0.5")
    try:
        summary = run_snapshot(config, site.url("/drip"))
    finally:
        stop.set()
    [result] = summary.results
    assert result.status == 200 and result.record == "response"
    from archiver.catalog import Catalog
    catalog = Catalog(config.storage.catalog)
    [row] = catalog.captures.rows()
    catalog.close()
    assert row.truncated == "time"


def test_server_that_never_answers_times_out_and_is_recorded(site, tmp_path):
    release = threading.Event()
    site.routes["/hang"] = lambda h: release.wait(10)
    config = make_archive(tmp_path / "a", timeout="0.5")
    try:
        summary = run_snapshot(config, site.url("/hang"))
    finally:
        release.set()
    [result] = summary.results
    assert result.record == "failed" and "timed out" in result.error
    assert summary.failed_seeds == [site.url("/hang")]


def test_503_is_retried_after_retry_after_and_every_response_is_kept(site, tmp_path):
    answers = iter([(503, (("Retry-After", "1"),)), (429, ()), (200, ())])

    def flaky(h):
        status, headers = next(answers)
        send(h, status, b"<html><body>try again</body></html>" if status != 200 else
             b"<html><body><p>the article</p></body></html>", "text/html", headers)
    site.routes["/flaky/"] = flaky
    config = make_archive(tmp_path / "a", retries="2")
    summary = run_snapshot(config, site.url("/flaky/"))
    # the 429 body equals the 503 one: stored as a revisit of it
    assert [(r.status, r.record) for r in summary.results] == [(503, "response"), (429, "revisit"), (200, "response")]
    assert summary.failed_seeds == []
    times = [s.at for s in site.seen]
    assert times[1] - times[0] >= 0.95          # Retry-After: 1
    assert times[2] - times[1] >= 3.9           # no Retry-After: back-off 2 s * 2 ** 1
    history = summary.histories[site.url("/flaky/")]
    assert len(history.versions) == 1 and history.suspects == []  # only the final answer is observed


def test_retry_delay_reads_seconds_and_http_dates():
    from datetime import datetime, timezone
    from archiver.capture.politeness import MAX_RETRY_AFTER, retry_delay
    now = datetime(2026, 11, 27, 12, 0, 0, tzinfo=timezone.utc)
    assert retry_delay("7", 0, now) == 7
    assert retry_delay("Fri, 27 Nov 2026 12:00:30 GMT", 0, now) == 30
    assert retry_delay("", 0, now) == 2 and retry_delay("", 2, now) == 8
    assert retry_delay("99999", 0, now) == MAX_RETRY_AFTER
    assert retry_delay("garbage", 1, now) == 4


def test_kept_alive_connections_are_reused_and_bounded_across_many_hosts(tmp_path, monkeypatch):
    """One connection per origin is reused; past the adapter's number of pools (one per
    origin) the least recently used origin's are closed, so a crawl across thousands of
    hosts keeps few sockets open."""
    from archiver.capture import fetch
    from archiver.capture import transport

    monkeypatch.setattr(fetch, "MIN_POOLS", 3)  # with concurrency 1: 3 pools
    connects = []
    connect = transport._HTTPConnection.connect
    monkeypatch.setattr(transport._HTTPConnection, "connect", lambda self: connects.append(self.port) or connect(self))
    sites = [Site() for _ in range(5)]
    try:
        for s in sites:
            s.page("/", "<html><body>x</body></html>")
        fetcher = fetch.Fetcher(make_archive(tmp_path / "a", concurrency="1").capture)
        ports = [s.server.server_address[1] for s in sites]
        for s in sites + sites[-2:]:
            ex = fetcher.fetch(s.url("/"))
            assert ex.status == 200 and not ex.error
            ex.close()
        assert connects == ports  # the last two origins were fetched again on kept connections
        pools = fetcher.session.get_adapter("http://127.0.0.1/").poolmanager.pools
        assert sorted(key.key_port for key in pools.keys()) == sorted(ports[2:])
        fetcher.close()
        assert len(pools) == 0
    finally:
        for s in sites:
            s.stop()
