"""A snapshot of several seeds shared out among capture processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
from pathlib import Path

import pytest

from archiver.parallel import Claims, process_count
from archiver.verify import verify_archive

from .conftest import make_archive, run_cli, warc_files, warcio_check
from .site import Site, send
from .test_crash import assert_catalog_matches_warcs, stalling_handler, start_snapshot


def article(n: int, total: int) -> str:
    """An article with shared and own requisites, a READ box to the next article and a
    body link to the one after."""
    a, b = n % total + 1, (n + 1) % total + 1
    return (f'<html><head><link rel="stylesheet" href="/static/site.css"><script src="/static/app.js"></script>'
            f'</head><body><nav><a href="/">Home</a></nav><article><h1>Article {n}</h1>'
            f'<div class="entry-content"><p>{"Words of the article body. " * 20}</p>'
            f'<p><span class="ctaText">READ</span> <a href="/a/{a}/"><span class="postTitle">Article {a}</span></a></p>'
            f'<p>{"More of the article body here. " * 20} See <a href="/a/{b}/">article {b}</a>.</p>'
            f'<img src="/img/{n}.png"></div></article></body></html>')


def test_seeds_shared_out_among_processes_fetch_each_url_once(site, tmp_path):
    total = 12
    site.page("/static/site.css", "body { background: url(/static/bg.png) }", "text/css")
    site.page("/static/app.js", "var x = 1;", "application/javascript")
    site.page("/static/bg.png", b"\x89PNG" + b"b" * 200, "image/png")
    for n in range(1, total + 1):
        site.page(f"/a/{n}/", article(n, total))
        site.page(f"/img/{n}.png", b"\x89PNG" + bytes([n]) * 300, "image/png")
    site.page("/only-linked/", "<html><body><p>not a seed</p></body></html>")
    site.page("/a/1/", article(1, total).replace("</div>", '<p>Also see <a href="/only-linked/">this page</a>.</p></div>'))
    config = make_archive(tmp_path / "a", processes="3", concurrency="6", per_host_concurrency="6")
    assert process_count(config, total) == 3

    result = run_cli("--config", str(config.root / "config.toml"), "snapshot", "--json",
                     *[site.url(f"/a/{n}/") for n in range(1, total + 1)])

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert 1 <= len(warc_files(config)) <= 3  # one per process that got a seed (on a busy machine one may get none)
    expected = {f"/a/{n}/" for n in range(1, total + 1)} | {f"/img/{n}.png" for n in range(1, total + 1)} \
        | {"/static/site.css", "/static/app.js", "/static/bg.png", "/only-linked/"}
    assert set(site.hits) == expected and set(site.hits.values()) == {1}  # every URL once, across processes
    assert sorted(line["url"] for line in lines) == sorted(site.url(p) for p in expected)
    assert {line["role"] for line in lines if line["url"].endswith("/a/1/")} == {"seed"}  # never fetched as a cross-reference
    for path in warc_files(config):
        assert warcio_check(path).returncode == 0
    assert_catalog_matches_warcs(config)
    assert verify_archive(config).ok


def test_a_worker_held_up_by_a_slow_seed_leaves_the_other_seeds_to_the_others(site, tmp_path):
    """Seeds are not dealt out in advance: while one worker waits on a slow page, the
    other captures every other seed, those it would have been dealt included."""
    fast = [f"/fast/{n}/" for n in range(1, 7)]
    all_fast_asked = threading.Event()
    for path in fast:
        body = f"<html><body><p>page {path}</p></body></html>"
        site.routes[path] = lambda h, body=body: (send(h, 200, body.encode(), "text/html"),
                                                  all(site.hits[p] for p in fast) and all_fast_asked.set())
    slow_waited_for_them = []
    site.routes["/slow/"] = lambda h: (slow_waited_for_them.append(all_fast_asked.wait(10)),
                                       send(h, 200, b"<html><body><p>slow</p></body></html>", "text/html"))
    config = make_archive(tmp_path / "a", processes="2", concurrency="2", per_host_concurrency="2",
                          requisites="false")
    seeds = [site.url(p) for p in ["/slow/", *fast]]  # the first worker starts with /slow/

    result = run_cli("--config", str(config.root / "config.toml"), "snapshot", "--json", *seeds)

    assert result.returncode == 0, result.stderr
    assert slow_waited_for_them == [True]  # no seed waited for /slow/ to be answered
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(line["url"] for line in lines) == sorted(seeds)
    assert {line["role"] for line in lines} == {"seed"} and set(site.hits.values()) == {1}


def test_a_seed_that_redirects_or_is_retried_stays_with_the_process_that_claimed_it(site, tmp_path):
    site.routes["/old/"] = lambda h: send(h, 301, b"", "text/html", (("Location", "/new/"),))
    site.page("/new/", "<html><body><p>moved here</p></body></html>")
    answers = iter([503, 200])
    site.routes["/busy/"] = lambda h: send(h, next(answers), b"<html><body><p>busy</p></body></html>",
                                           "text/html", (("Retry-After", "0"),))
    for n in range(4):
        site.page(f"/plain/{n}/", f"<html><body><p>plain {n}</p></body></html>")
    config = make_archive(tmp_path / "a", processes="2", concurrency="2", per_host_concurrency="2",
                          requisites="false", retries="1")
    seeds = [site.url(p) for p in ["/old/", "/busy/", *(f"/plain/{n}/" for n in range(4))]]

    result = run_cli("--config", str(config.root / "config.toml"), "snapshot", "--json", *seeds)

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted((line["url"], line["status"], line["role"]) for line in lines) == sorted(
        [(site.url("/old/"), 301, "seed"), (site.url("/new/"), 200, "redirect"),
         (site.url("/busy/"), 503, "seed"), (site.url("/busy/"), 200, "seed")]
        + [(site.url(f"/plain/{n}/"), 200, "seed") for n in range(4)])
    assert "WARNING" not in result.stderr and "no capture process" not in result.stderr


def _claim_all(claims: Claims, urls: list[str], start, conn) -> None:
    start.wait()
    conn.send([url for url in urls if claims.claim(url)])
    conn.close()


def test_each_url_is_claimed_by_exactly_one_of_the_forked_processes():
    claims = Claims()
    urls = [f"http://e.example/{n}.png" for n in range(3000)]
    fork = multiprocessing.get_context("fork")
    start = fork.Event()
    pipes, processes = [], []
    for _ in range(4):
        receive, send = fork.Pipe(duplex=False)
        processes.append(fork.Process(target=_claim_all, args=(claims, urls, start, send)))
        processes[-1].start()
        pipes.append(receive)
    start.set()  # all four race for the same URLs
    won = [receive.recv() for receive in pipes]
    for process in processes:
        process.join()
    assert sorted(url for share in won for url in share) == sorted(urls)  # each once, none lost
    assert not claims.claim(urls[0])  # the parent sees the workers' claims too


class TinyClaims(Claims):
    SLOTS = 8
    FULL_AT = 6
    LOCK_WAIT = 0.2


def test_a_full_claim_table_lets_the_processes_go_on_fetching(caplog):
    claims = TinyClaims()
    seeds = [f"http://e.example/seed/{n}" for n in range(4)]
    claims.fall_back_to_share(seeds, seeds[2:])  # the second of two processes
    assert [claims.claim(f"http://e.example/{n}") for n in range(6)] == [True] * 6
    assert not claims.claim("http://e.example/0")
    assert claims.claim("http://e.example/6")  # full: fetched rather than lost
    assert claims.claim("http://e.example/0")  # from then on, every URL is this process's,
    assert [claims.claim(seed) for seed in seeds] == [False, False, True, True]  # but seeds only its share
    assert "claims stopped working" in caplog.text and "6 URLs" in caplog.text


def _hold_the_lock_and_die(claims: Claims) -> None:
    claims.lock.acquire()
    os._exit(0)  # as if killed while holding it


def test_a_claim_lock_left_held_by_a_dead_process_does_not_stop_the_others(caplog):
    claims = TinyClaims()
    holder = multiprocessing.get_context("fork").Process(target=_hold_the_lock_and_die, args=(claims,))
    holder.start()
    holder.join()
    assert claims.claim("http://e.example/a") and claims.claim("http://e.example/a")
    assert "lock was not released" in caplog.text


def test_one_process_when_politeness_is_on(tmp_path):
    assert process_count(make_archive(tmp_path / "a", per_host_delay="0.5", processes="4"), 10) == 1
    assert process_count(make_archive(tmp_path / "b", processes="4"), 1) == 1
    assert process_count(make_archive(tmp_path / "c", processes="4"), 10) == 4


@pytest.mark.slow
def test_a_killed_capture_process_fails_the_snapshot_in_one_line_and_its_file_is_repaired(tmp_path):
    """kill -9 of one worker: the others finish, the snapshot exits 1 naming the failure,
    and the dead worker's open WARC file is repaired, keeping what it had stored."""
    site = Site()
    stalled, release = threading.Event(), threading.Event()
    proc = None
    try:
        site.page("/first/", "<html><body><p>first</p></body></html>")
        site.page("/second/", "<html><body><p>second</p></body></html>")
        stalling = stalling_handler(stalled, release)
        clients = []
        site.routes["/big"] = lambda h: (clients.append(h.client_address[1]), stalling(h))
        config = make_archive(tmp_path / "a", processes="2", concurrency="2", per_host_concurrency="2",
                              requisites="false")
        # The first worker starts with /big and stalls there; the second starts at
        # /first/, goes on to /second/, and finds /big claimed.
        proc = start_snapshot(config, site.url("/big"), site.url("/first/"), site.url("/second/"))
        assert stalled.wait(30)
        victim = worker_connected_from(proc.pid, clients[0], site.server.server_address[1])
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err
        assert "capture process archiver-capture-" in err and "died" in err
        assert not list(config.storage.warc_dir.glob("*.open"))
        for path in warc_files(config):
            assert warcio_check(path).returncode == 0
        urls = {row[0] for row in assert_catalog_matches_warcs(config)}
        assert {site.url("/first/"), site.url("/second/")} <= urls, (err, site.hits)
    finally:
        release.set()
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.communicate()  # closes its pipes
        site.stop()


def worker_connected_from(parent: int, client_port: int, server_port: int) -> int:
    """Of parent's children, the one holding the client end of the live TCP connection
    from client_port to server_port: the capture process the server saw."""
    inode = ""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(f.split(":")[1], 16) for f in fields[1:3])
        if (local, remote) == (client_port, server_port) and fields[9] != "0":  # 0: TIME_WAIT, no owner
            inode = fields[9]
    children = [int(p) for p in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]
    for pid in children:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            if os.readlink(fd) == f"socket:[{inode}]":
                return pid
    raise AssertionError(f"no child of {parent} holds the connection from port {client_port}")
