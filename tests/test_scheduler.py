"""Scheduled recapture: policy with fixed clocks, the dispatcher with an injected clock,
and a real ``archiver run`` process stopped by SIGTERM or killed with -9."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest

from archiver.catalog import Catalog
from archiver.config import load_config
from archiver.errors import ConfigError
from archiver.archive.locks import UrlLocks
from archiver.schedule.policy import Schedule, adaptive_interval, next_due, schedule_of
from archiver.schedule.runner import Runner
from archiver.schedule.status import archive_status
from archiver.seeds import Seed

from .conftest import reported, make_archive, run_cli, warc_files, warcio_check
from .site import Site, send

T0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self, start: datetime = T0):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> None:
        self.now += timedelta(**kw)


# ---- policy (pure) ------------------------------------------------------------------------

def test_adaptive_interval_follows_the_time_since_the_last_change(tmp_path):
    cfg = make_archive(tmp_path / "a").schedule
    assert adaptive_interval(cfg, timedelta(hours=1)) == 15 * 60
    assert adaptive_interval(cfg, timedelta(hours=5)) == 3600
    assert adaptive_interval(cfg, timedelta(days=3)) == 3 * 3600
    assert adaptive_interval(cfg, timedelta(days=20)) == 86400
    assert adaptive_interval(cfg, timedelta(days=200)) == 7 * 86400
    assert adaptive_interval(cfg, timedelta(days=900)) == 30 * 86400


def test_next_due_for_every_cron_and_adaptive_with_jitter(tmp_path):
    cfg = make_archive(tmp_path / "a").schedule
    rng = random.Random(1)
    every = next_due(Schedule("every", every=3600), cfg, T0, T0, rng)
    assert T0 + timedelta(minutes=54) <= every <= T0 + timedelta(minutes=66)
    cron = next_due(Schedule("cron", cron="30 */6 * * *"), cfg, T0, T0, rng)
    assert cron == datetime(2026, 11, 27, 12, 30, tzinfo=timezone.utc)
    fresh = next_due(Schedule("adaptive"), cfg, T0, T0 - timedelta(minutes=10), rng)
    assert fresh - T0 < timedelta(minutes=17)
    quiet = next_due(Schedule("adaptive"), cfg, T0, T0 - timedelta(days=10), rng)
    assert quiet - T0 > timedelta(hours=20)


def test_seed_schedules_and_their_errors(tmp_path):
    cfg = make_archive(tmp_path / "a").schedule
    assert schedule_of(Seed("https://e.example/", (("every", "6h"),)), cfg) == Schedule("every", every=21600)
    assert schedule_of(Seed("https://e.example/"), cfg).kind == "adaptive"
    with pytest.raises(ConfigError, match="not a duration"):
        schedule_of(Seed("https://e.example/", (("every", "soon"),), "s.txt", 3), cfg)
    with pytest.raises(ConfigError, match="invalid cron expression"):
        schedule_of(Seed("https://e.example/", (("cron", "61 * * * *"),), "s.txt", 4), cfg)


def test_bad_schedule_config_names_the_key(tmp_path):
    config_path = make_archive(tmp_path / "a").root / "config.toml"
    config_path.write_text(config_path.read_text().replace('adaptive_max = "30d"', 'adaptive_max = "a month"'))
    with pytest.raises(ConfigError, match=r"\[schedule\] adaptive_max"):
        load_config(config_path)


# ---- dispatcher with an injected clock ---------------------------------------------------------

@pytest.fixture
def tracked_site(site, tmp_path):
    for name in ("a", "b"):
        site.page(f"/{name}/", f"<html><body><article><p>{'Article ' + name + ' text. ' * 20}</p></article></body></html>")
    config = make_archive(tmp_path / "arch", requisites="false", depth="0", jitter="0.0")
    (config.seeds_dir / "example.txt").write_text(
        f"{site.url('/a/')} every=1h\n{site.url('/b/')} every=1d\n")
    return site, config


def test_due_urls_are_captured_once_per_interval_and_overdue_once_after_downtime(tracked_site):
    site, config = tracked_site
    clock = Clock()

    def once() -> int:
        return Runner(config, clock=clock, rng=random.Random(0)).run_once()

    assert once() == 2                     # new seeds are due at once
    assert once() == 0                     # nothing due a moment later
    clock.advance(minutes=61)
    assert once() == 1 and site.hits["/a/"] == 2 and site.hits["/b/"] == 1
    clock.advance(days=3)                  # "downtime": both overdue, many periods missed
    assert once() == 2                     # ... each captured once, no burst of duplicates
    assert (site.hits["/a/"], site.hits["/b/"]) == (3, 2)
    catalog = Catalog(config.storage.catalog)
    due = {r["url"]: r["next_due"] for r in catalog.schedule.rows()}
    catalog.close()
    assert due[site.url("/a/")] == (clock.now + timedelta(hours=1)).timestamp()


def test_run_once_captures_everything_due_a_batch_at_a_time(site, tmp_path):
    for i in range(5):
        site.page(f"/p{i}/", f"<html><body><p>page {i}</p></body></html>")
    config = make_archive(tmp_path / "a", requisites="false", depth="0", batch="2")
    (config.seeds_dir / "example.txt").write_text("".join(f"{site.url(f'/p{i}/')} every=1h\n" for i in range(5)))
    assert Runner(config, clock=Clock()).run_once() == 5
    assert all(site.hits[f"/p{i}/"] == 1 for i in range(5))


def test_a_batch_keeps_nothing_of_the_seeds_it_has_done(site, tmp_path):
    """A batch lasts until its slowest seed is stored: the results and histories of its
    other seeds are not kept until then (RSS grew ~2 kB per capture at 100,000 URLs)."""
    for i in range(5):
        site.page(f"/p{i}/", f"<html><body><p>page {i}</p></body></html>")
    config = make_archive(tmp_path / "a", requisites="false", depth="0")
    (config.seeds_dir / "example.txt").write_text("".join(f"{site.url(f'/p{i}/')} every=1h\n" for i in range(5)))
    runner = Runner(config, clock=Clock())
    held = []
    seed_done = runner.crawler.on_seed_done

    def on_seed_done(batch, seed) -> None:
        seed_done(batch, seed)
        held.append((len(batch.summary.results), len(batch.summary.histories), len(batch.by_seed)))
    runner.crawler.on_seed_done = on_seed_done
    assert runner.run_once() == 5
    assert held == [(0, 0, 1)] * 5  # by_seed: only the seed being reported


def test_removed_seed_is_no_longer_dispatched_and_added_one_is(tracked_site):
    site, config = tracked_site
    clock = Clock()
    Runner(config, clock=clock).run_once()
    assert run_cli("remove", site.url("/a/"), cwd=config.root).returncode == 0
    site.page("/c/", "<html><body><p>c</p></body></html>")
    assert run_cli("add", site.url("/c/"), "--every", "2h", cwd=config.root).returncode == 0
    clock.advance(days=2)
    Runner(config, clock=clock).run_once()
    assert (site.hits["/a/"], site.hits["/b/"], site.hits["/c/"]) == (1, 2, 1)


def test_a_failing_host_is_backed_off_not_retried_in_a_loop(tmp_path):
    dead = Site()
    url = dead.url("/gone/")
    dead.stop()
    config = make_archive(tmp_path / "a", host_failures="2", host_backoff='"1h"')
    (config.seeds_dir / "example.txt").write_text(f"{url} every=1m\n")
    clock = Clock()
    for _ in range(2):
        assert Runner(config, clock=clock).run_once() == 1
        clock.advance(minutes=2)
    assert Runner(config, clock=clock).run_once() == 0     # backed off for an hour
    [host] = archive_status(config, clock.now)["failing_hosts"]  # as of the runner's clock, not today's
    assert host["failures"] == 2 and "refused" in host["last_error"] and host["backoff_until"]
    [shown] = json.loads(run_cli("status", "--json", cwd=config.root).stdout)["failing_hosts"]
    assert shown["failures"] == 2 and "refused" in shown["last_error"]  # its back-off: as of the real clock
    clock.advance(minutes=61)
    assert Runner(config, clock=clock).run_once() == 1


def test_url_locks_exclude_other_processes_and_die_with_them(tmp_path):
    code = ("import sys, time; from pathlib import Path; from archiver.archive.locks import UrlLocks; "
            "l = UrlLocks(Path(sys.argv[1])); l.acquire('https://e.example/'); print('held', flush=True); "
            "sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        locks = UrlLocks(tmp_path)
        assert locks.is_locked_elsewhere("https://e.example/")
        assert not locks.acquire("https://e.example/")
        holder.kill()
        holder.wait()
        assert locks.acquire("https://e.example/")
    finally:
        holder.kill()
        holder.communicate()


def test_add_remove_list_commands(tmp_path):
    config = make_archive(tmp_path / "a")
    (config.seeds_dir / "example.txt").unlink()
    assert run_cli("add", "https://e.example/x", "--every", "6h", "--tag", "serbia", cwd=config.root).returncode == 0
    again = run_cli("add", "https://e.example/x", cwd=config.root)
    assert again.returncode == 2 and "already tracked" in again.stderr
    bad = run_cli("add", "https://e.example/y", "--every", "often", cwd=config.root)
    assert bad.returncode == 2 and "not a duration" in bad.stderr
    [row] = json.loads(run_cli("list", "--json", cwd=config.root).stdout)
    assert (row["url"], row["schedule"], row["tags"], row["next_due"]) == ("https://e.example/x", "every 6h", ["serbia"], None)
    removed = run_cli("remove", "https://e.example/x", cwd=config.root)
    assert removed.returncode == 0 and "added.txt" in removed.stdout
    assert json.loads(run_cli("list", "--json", cwd=config.root).stdout) == []
    assert run_cli("remove", "https://e.example/x", cwd=config.root).returncode == 2


# ---- a real archiver run process ---------------------------------------------------------------

def start_run(config, json_results: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "archiver", "--config", str(config.root / "config.toml"),
                             "run", "--quiet", *(["--json"] if json_results else [])],
                            stdout=subprocess.PIPE if json_results else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


class HitCounter:
    """Lets a test wait (on a condition, not by polling) until the site saw N requests."""

    def __init__(self, site: Site, path: str, body: bytes):
        self.cond = threading.Condition()
        self.count = 0
        self.concurrent = self.max_concurrent = 0
        site.routes[path] = self.handler(body)

    def handler(self, body: bytes):
        def handle(h) -> None:
            with self.cond:
                self.concurrent += 1
                self.max_concurrent = max(self.max_concurrent, self.concurrent)
            send(h, 200, body, "text/html")
            with self.cond:
                self.concurrent -= 1
                self.count += 1
                self.cond.notify_all()
        return handle

    def wait_for(self, n: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.count >= n, timeout)


@pytest.mark.slow
def test_archiver_run_recaptures_on_schedule_and_stops_cleanly_on_sigterm(site, tmp_path):
    counters = {name: HitCounter(site, f"/{name}/", f"<html><body><p>{name} {'text ' * 30}</p></body></html>".encode())
                for name in ("one", "two")}
    config = make_archive(tmp_path / "a", requisites="false", depth="0", jitter="0.0", tick="0.2",
                          warc_idle_close="3600")
    (config.seeds_dir / "example.txt").write_text(f"{site.url('/one/')} every=1s\n{site.url('/two/')} every=1s\n")
    proc = start_run(config)
    try:
        assert all(c.wait_for(3, 30) for c in counters.values()), proc.stderr.read() if proc.poll() else ""
        assert list(config.storage.warc_dir.glob("*.open"))  # a long-running writer keeps its file open
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert not list(config.storage.warc_dir.glob("*.open"))
    for path in warc_files(config):
        assert warcio_check(path).returncode == 0
    catalog = Catalog(config.storage.catalog)
    for name, counter in counters.items():
        times = [datetime.strptime(r.fetched_at, "%Y-%m-%dT%H:%M:%S.%fZ")
                 for r in catalog.captures.rows(site.url(f"/{name}/"))]
        assert len(times) == counter.count >= 3
        assert all(b - a >= timedelta(seconds=0.95) for a, b in zip(times, times[1:])), times
        assert counter.max_concurrent == 1
    catalog.close()
    assert any(json.loads(line)["message"].startswith("received SIGTERM") for line in err.splitlines()
               if line.startswith("{"))


@pytest.mark.slow
def test_kill_9_mid_capture_then_restart_resumes_and_repairs(site, tmp_path):
    stalled, release = threading.Event(), threading.Event()

    def stall(h):
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Content-Length", "1000000")
        h.end_headers()
        h.wfile.write(b"<html><body>" + b"x" * 1000)
        h.wfile.flush()
        stalled.set()
        release.wait(30)
    HitCounter(site, "/fast/", b"<html><body><p>fast page text</p></body></html>")
    site.routes["/slow/"] = stall
    config = make_archive(tmp_path / "a", requisites="false", depth="0", tick="0.2", concurrency="1")
    (config.seeds_dir / "example.txt").write_text(f"{site.url('/fast/')} every=1h\n{site.url('/slow/')} every=1h\n")
    proc = start_run(config, json_results=True)
    fast_done = reported(proc, site.url("/fast/"))
    try:
        assert stalled.wait(30) and fast_done.wait(30)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
        release.set()
    assert list(config.storage.warc_dir.glob("*.open"))  # left behind by the crash
    site.page("/slow/", "<html><body><p>slow page, now answering</p></body></html>")
    result = run_cli("--config", str(config.root / "config.toml"), "run", "--once", "--json")
    assert result.returncode == 0, result.stderr
    captured = [json.loads(line)["url"] for line in result.stdout.splitlines()]
    assert captured == [site.url("/slow/")]  # the interrupted capture is still due; the fast one is not
    assert not list(config.storage.warc_dir.glob("*.open"))
    for path in warc_files(config):
        assert warcio_check(path).returncode == 0
    catalog = Catalog(config.storage.catalog)
    assert [r.url for r in catalog.captures.rows()] == [site.url("/fast/"), site.url("/slow/")]
    catalog.close()
