#!/usr/bin/env python3
"""``archiver run`` tracking 100,000 URLs on 1,000 hosts with a 1-hour period: start-up
time, peak RSS, scheduler overhead per dispatched capture, captures per second, and a
check that every URL is captured exactly once in the period.

The hosts: 1,000 distinct loopback addresses (127.0.1.1 ... 127.0.4.250; Linux routes all
of 127.0.0.0/8 to lo) served by one nginx (one ``listen`` per address, one port) that
answers every path with a tiny HTML article (~500 bytes, no requisites) naming the
address and the path, so every URL has its own payload. The access log records which
address served which path.

The archive: a fresh folder (``archiver.archive.workdir.init_archive``) with 100 URLs per host,
``every=1h``, in seeds/*.txt (interleaved: the n-th page of every host, then the
(n+1)-th...), and per_host_delay 0, per_host_concurrency 1, concurrency C, depth 0,
requisites off, retries 0, jitter 0, tick 1 s, batch B, JSON logs.

Phases:
 1. cold start + full period: ``python -m archiver --config ROOT/config.toml run --quiet``
    under GNU time. Start-up = launch -> the "tracking N URLs" log line (seeds read,
    schedule synced) and -> the first "dispatching N due URL(s)" line. The catalog is
    polled read-only every --poll seconds until every URL has a finished capture (or no
    progress for --stall seconds, or --timeout); then SIGTERM, exit status 0 expected,
    no ``.open`` file left. Captures/s = URLs / (last finish - first start) from the
    schedule table. Peak RSS = GNU time %M; CPU = user+sys of the process.
 2. exactly once: per URL, the ``captures`` rows with role 'seed' (must be exactly 1),
    HTTP 200, the nginx access log (each path on each address requested exactly once),
    next_due = last_finished + 3600 s.
 3. warm restart: the same command on the populated archive; time to the "tracking N
    URLs (0 new...)" line, then a few ticks: nothing may be dispatched (nothing is due
    for an hour); SIGTERM.
 4. scheduler overhead, in this process, on a copy of the populated catalog with every
    URL made due again: a Runner whose crawler.submit only records the batch. "steady":
    each dispatch() is timed, then each URL's completion callback (Runner._seed_done:
    next due time, schedule and hosts update, lock release) is timed with a batch whose
    results grow as in the crawler. "backlog": dispatch() again and again without
    completing anything (the crawler falling behind), to show its cost as the running
    set grows. Compared with the CPU and wall time per capture of phase 1.

Everything talks to 127.0.0.0/8 only; nginx runs under coreutils ``timeout``; the
temporary folder is deleted at the end (unless --keep).

Usage: python bench/scheduler_100k.py [--urls 100000] [--hosts 1000] [--concurrency 16] [--batch 2000]
Results: a table on stdout and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import (CLK_TCK, GNU_TIME, environment, nginx_http_common, proc_tree_cpu_s,  # noqa: E402
                   stop_on_sigterm, system_busy_s, table, write_results)

GOAL_STARTUP_S = 5.0
GOAL_RSS_MB = 300.0
PERIOD = "1h"
PERIOD_S = 3600.0
PER_OCTET = 250  # hosts per third octet: 127.0.1.1-250, 127.0.2.1-250, ...
PROBE_PATH = "/probe.html"  # the benchmark's own checks that nginx answers; not a tracked URL


def host_addr(i: int) -> str:
    return f"127.0.{1 + i // PER_OCTET}.{1 + i % PER_OCTET}"


def page_path(j: int) -> str:
    return f"/news/{j:04d}.html"


# ---- the server -----------------------------------------------------------------------------

class MultiAddrNginx:
    """nginx listening on PORT of each given loopback address, answering every GET with a
    small HTML article; bounded lifetime (coreutils timeout); access log: addr path status."""

    def __init__(self, addrs: list[str], workdir: Path, port: int, lifetime: float, workers: int = 1):
        self.addrs, self.workdir, self.port, self.lifetime, self.workers = addrs, workdir, port, lifetime, workers
        self.nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc: subprocess.Popen | None = None
        self.access_log = workdir / "access.log"
        self.version = ""

    def __enter__(self) -> "MultiAddrNginx":
        if not Path(self.nginx).exists():
            raise SystemExit("nginx not found: apt-get install nginx (see bench/README.md)")
        w = self.workdir
        common = nginx_http_common(w)
        w.chmod(0o755)
        user = "user nobody nogroup;" if os.geteuid() == 0 else ""
        listens = "\n".join(f"        listen {a}:{self.port};" for a in self.addrs)
        # ~500 bytes: a title, a byline and three paragraphs; $server_addr and $uri make
        # every URL's payload different (no revisit records).
        body = ("<!DOCTYPE html><html lang=\\\"en\\\"><head><meta charset=\\\"utf-8\\\">"
                "<title>Council report $uri</title></head><body><article><h1>Council report $uri</h1>"
                "<p class=\\\"byline\\\">By Staff, $server_addr</p>"
                "<p>The harbour committee met on Tuesday to review the quarterly budget and the railway tender.</p>"
                "<p>Delegates from the district asked the auditor to publish the contract before the hearing.</p>"
                "<p>The ministry said a statement would follow after the appeal ruling next month.</p>"
                "</article></body></html>\\n")
        conf = w / "nginx.conf"
        conf.write_text(f"""
{user}
worker_processes {self.workers};
worker_rlimit_nofile 8192;
daemon off;
pid {w}/nginx.pid;
error_log {w}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format bench '$server_addr $request_uri $status';
    access_log {self.access_log} bench buffer=256k flush=1s;
{common}
    server {{
{listens}
        default_type text/html;
        location / {{ return 200 "{body}"; }}
    }}
}}
""")
        self.version = subprocess.run([self.nginx, "-v"], capture_output=True, text=True).stderr.strip()
        cmd = [self.nginx, "-p", str(w), "-c", str(conf), "-e", str(w / "nginx-error.log")]
        cmd = ["timeout", "--kill-after=10", str(int(self.lifetime)), *cmd]
        with open(w / "nginx-server.log", "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 20
        while True:  # the first and the last address must answer
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with status {self.proc.returncode}: "
                                   f"{(w / 'nginx-error.log').read_text(errors='replace')[-2000:]}")
            try:
                for a in (self.addrs[0], self.addrs[-1]):
                    self.get(a, PROBE_PATH)
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx does not answer on the loopback addresses after 20 s")
                time.sleep(0.1)

    def get(self, addr: str, path: str) -> bytes:
        with socket.create_connection((addr, self.port), timeout=5) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: {addr}:{self.port}\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            raise OSError(f"unexpected answer from {addr}: {data[:80]!r}")
        return data

    def cpu_s(self) -> float:
        return proc_tree_cpu_s(self.proc.pid) if self.proc else 0.0

    def __exit__(self, *exc) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # timeout passes it on to nginx: graceful stop, log flushed
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session only
            self.proc.wait(10)


# ---- the archive --------------------------------------------------------------------------------

def make_archive(root: Path, urls: list[str], args: argparse.Namespace) -> Path:
    from archiver.archive.workdir import init_archive

    config = init_archive(root, overrides={
        "per_host_delay": "0.0", "per_host_concurrency": "1", "concurrency": str(args.concurrency),
        "requisites": "false", "depth": "0", "retries": "0", "timeout": "15.0",
        "jitter": "0.0", "tick": "1.0", "batch": str(args.batch), "log_format": '"json"'})
    (root / "seeds" / "example.txt").unlink()  # its URL is on the internet
    files = 10 if len(urls) >= 1000 else 1
    per_file = -(-len(urls) // files)
    for k in range(files):
        chunk = urls[k * per_file:(k + 1) * per_file]
        (root / "seeds" / f"tracked-{k:02d}.txt").write_text(
            "".join(f"{u} every={PERIOD}\n" for u in chunk), encoding="utf-8")
    return config


# ---- the archiver process -----------------------------------------------------------------------

def proc_stat(pid: int) -> dict:
    """CPU seconds, VmRSS/VmHWM (MB), open fds and threads of pid (empty if it is gone)."""
    out: dict = {}
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2:].split()
        out["cpu_s"] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(line.split()[1]) / 1024
                elif key == "Threads":
                    out["threads"] = int(line.split()[1])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError, IndexError):
        pass
    return out


class ArchiverRun:
    """``python -m archiver --config CONFIG run --quiet`` under GNU time, its stderr read
    line by line (each timestamped), stopped with SIGTERM to archiver itself."""

    def __init__(self, config: Path, env: dict, log_path: Path):
        self.config, self.env, self.log_path = config, env, log_path
        self.lines: list[tuple[float, str]] = []  # (seconds since launch, message or raw line)
        self.events: dict[str, float] = {}
        self.first_dispatch_stat: dict = {}
        self.cond = threading.Condition()
        self.time_file = log_path.with_suffix(".time")

    def start(self) -> None:
        cmd = [sys.executable, "-m", "archiver", "--config", str(self.config), "run", "--quiet"]
        if Path(GNU_TIME).exists():
            cmd = [GNU_TIME, "-f", "%M %e %U %S %x", "-o", str(self.time_file), *cmd]
        self.cmd = cmd
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=self.config.parent, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        self.pid = self._archiver_pid()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _archiver_pid(self) -> int:
        if not self.cmd[0] == GNU_TIME:
            return self.proc.pid
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                    kids = f.read().split()
                if kids:
                    return int(kids[0])
            except OSError:
                pass
            time.sleep(0.005)
        raise RuntimeError("GNU time started no child")

    def _read(self) -> None:
        with open(self.log_path, "w", encoding="utf-8") as log:
            for raw in self.proc.stderr:
                t = time.perf_counter() - self.t0
                line = raw.decode("utf-8", "replace").rstrip("\n")
                log.write(line + "\n")
                try:
                    entry = json.loads(line)
                    msg = entry["message"] + (f" ({entry['error']})" if entry.get("error") else "")
                except (ValueError, KeyError, TypeError):
                    msg = line
                if msg.startswith("dispatching") and "first_dispatch" not in self.events:
                    self.first_dispatch_stat = proc_stat(self.pid)
                with self.cond:
                    self.lines.append((t, msg))
                    for key, prefix in (("tracking", "tracking "), ("first_dispatch", "dispatching"),
                                        ("running", "archiver ")):
                        if msg.startswith(prefix) and key not in self.events:
                            self.events[key] = t
                    self.cond.notify_all()

    def wait_for(self, key: str, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while key not in self.events and self.proc.poll() is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.5))
            return self.events.get(key)

    def messages(self, prefix: str = "") -> list[tuple[float, str]]:
        with self.cond:
            return [(t, m) for t, m in self.lines if m.startswith(prefix)]

    def stop(self, timeout: float = 60.0) -> dict:
        """SIGTERM archiver (GNU time does not pass signals on), wait, report."""
        stopping = time.perf_counter()
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        killed = False
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            killed = True
            self.kill()
        self.reader.join(10)
        end = time.perf_counter()
        out = {"wall_s": end - self.t0, "stop_s": end - stopping, "killed_after_timeout": killed,
               "returncode": self.proc.returncode}
        try:
            text = self.time_file.read_text().strip().splitlines()
            rss_kb, elapsed, user, system, code = text[-1].split()
            out.update(peak_rss_mb=int(rss_kb) / 1024, user_s=float(user), sys_s=float(system),
                       cpu_s=float(user) + float(system), exit_status=int(code), rss_method="GNU time %M",
                       time_notes=text[:-1])
        except (OSError, ValueError, IndexError):
            out.update(exit_status=self.proc.returncode, rss_method="unavailable")
        return out

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the session we started: GNU time and archiver
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


def catalog_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def progress(catalog: Path) -> tuple[int, int]:
    """(URLs started, URLs finished) in the schedule table, read-only."""
    try:
        db = catalog_ro(catalog)
        try:
            return db.execute("SELECT COUNT(last_started), COUNT(last_finished) FROM schedule").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return 0, 0


# ---- phase 1: cold start and one full period ------------------------------------------------------

def full_period(root: Path, config: Path, n: int, server: MultiAddrNginx, env: dict,
                args: argparse.Namespace) -> dict:
    catalog = root / "archive.sqlite"
    run = ArchiverRun(config, env, root.parent / "run-cold.log")
    busy0, server_cpu0 = system_busy_s(), server.cpu_s()
    run.start()
    out: dict = {"cmd": run.cmd}
    try:
        out["to_tracking_s"] = run.wait_for("tracking", args.timeout)
        out["to_first_dispatch_s"] = run.wait_for("first_dispatch", args.timeout)
        out["cpu_at_first_dispatch_s"] = run.first_dispatch_stat.get("cpu_s")
        out["rss_at_first_dispatch_mb"] = run.first_dispatch_stat.get("VmRSS")
        print(f"  cold start: 'tracking' after {_f(out['to_tracking_s'])} s, first dispatch after "
              f"{_f(out['to_first_dispatch_s'])} s", flush=True)
        timeline, last_done, last_change = [], -1, time.perf_counter()
        deadline = run.t0 + args.timeout
        done = 0
        while run.proc.poll() is None:
            started, done = progress(catalog)
            now = time.perf_counter()
            st = proc_stat(run.pid)
            timeline.append({"t": round(now - run.t0, 1), "started": started, "finished": done,
                             "rss_mb": round(st.get("VmRSS", 0), 1), "cpu_s": st.get("cpu_s"),
                             "fds": st.get("fds"), "threads": st.get("threads")})
            if done != last_done:
                last_done, last_change = done, now
            if len(timeline) % max(1, int(15 / args.poll)) == 1:
                print(f"  t={now - run.t0:6.0f} s  dispatched {started:>7,}  finished {done:>7,}/{n:,}  "
                      f"RSS {st.get('VmRSS', 0):5.0f} MB  fds {st.get('fds', 0):>6}", flush=True)
            if done >= n:
                break
            if now - last_change > args.stall or now > deadline:
                out["stopped_early"] = "stalled" if now <= deadline else "timeout"
                print(f"  STOPPING EARLY ({out['stopped_early']}): {done:,}/{n:,} finished", flush=True)
                break
            time.sleep(args.poll)
        out["all_finished_seen_at_s"] = time.perf_counter() - run.t0 if done >= n else None
        # A couple more ticks: anything dispatched now would be a second capture in the period.
        time.sleep(args.linger)
        out["dispatch_lines"] = len(run.messages("dispatching"))
        out.update(run.stop(timeout=args.grace))
    except BaseException:
        run.kill()
        raise
    out["server_cpu_s"] = server.cpu_s() - server_cpu0
    out["machine_busy_s"] = system_busy_s() - busy0
    out["timeline"] = timeline
    others = [m for _, m in run.lines if not m.startswith(("tracking", "dispatching", "archiver ",
                                                            "received ", "stopped after"))]
    out["errors_count"] = len(others)
    out["errors"] = others[:50]
    out["stopped_line"] = next((m for _, m in run.lines if m.startswith("stopped after")), None)
    sizes = [(round(t, 2), int(m.split()[1])) for t, m in run.messages("dispatching ")]
    out["dispatches"] = sizes
    counts = sorted(n for _, n in sizes)
    out["dispatch_sizes"] = {"calls": len(counts), "full_batches": sum(1 for n in counts if n == args.batch),
                             "min": counts[0] if counts else None, "median": counts[len(counts) // 2] if counts else None,
                             "max": counts[-1] if counts else None}
    out["peak_fds_sampled"] = max((x["fds"] or 0 for x in timeline), default=0)
    out["peak_running_sampled"] = max((x["started"] - x["finished"] for x in timeline), default=0)
    return out


# ---- phase 2: exactly once ---------------------------------------------------------------------------

def exactly_once(root: Path, urls: list[str], server: MultiAddrNginx, port: int) -> dict:
    db = catalog_ro(root / "archive.sqlite")
    try:
        per_url = Counter(dict(db.execute("SELECT url, COUNT(*) FROM captures WHERE role = 'seed' GROUP BY url")))
        roles = dict(db.execute("SELECT role, COUNT(*) FROM captures GROUP BY role"))
        statuses = Counter({str(k): v for k, v in db.execute(
            "SELECT status, COUNT(*) FROM captures WHERE role = 'seed' GROUP BY status")})
        sched = db.execute(
            "SELECT COUNT(*), COUNT(last_finished), MIN(next_due - last_finished), MAX(next_due - last_finished), "
            "MIN(last_started), MAX(last_finished), SUM(last_result = 'HTTP 200') FROM schedule").fetchone()
        observations = db.execute("SELECT COUNT(*) FROM observations").fetchone()[0]
    finally:
        db.close()
    expected = set(urls)
    got = set(per_url)
    # nginx access log: "$server_addr $request_uri $status"
    requests_seen: Counter = Counter()
    bad_status = 0
    if server.access_log.exists():
        for line in server.access_log.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) != 3:
                continue
            if parts[1] == PROBE_PATH:
                continue
            requests_seen[f"http://{parts[0]}:{port}{parts[1]}"] += 1
            bad_status += parts[2] != "200"
    warcs = root / "warcs"
    open_files = sorted(p.name for p in warcs.iterdir() if p.name.endswith(".open"))
    closed = sorted(warcs.glob("*.warc.gz"))
    cdxj_lines = sum(sum(1 for _ in open(p, "rb")) for p in (root / "indexes").glob("*.cdxj")) \
        if (root / "indexes").exists() else 0
    out = {
        "tracked": len(expected), "captured_urls": len(got & expected),
        "missing": len(expected - got), "missing_sample": sorted(expected - got)[:10],
        "captured_twice_or_more": sum(1 for u, c in per_url.items() if c > 1),
        "twice_sample": sorted(u for u, c in per_url.items() if c > 1)[:10],
        "unexpected_urls": len(got - expected), "seed_captures": sum(per_url.values()),
        "capture_roles": roles, "seed_statuses": dict(statuses), "observations": observations,
        "schedule_rows": sched[0], "schedule_finished": sched[1], "schedule_http_200": sched[6],
        "next_due_minus_finished_min_s": sched[2], "next_due_minus_finished_max_s": sched[3],
        "first_start_ts": sched[4], "last_finish_ts": sched[5],
        "server_requests": sum(requests_seen.values()), "server_distinct_urls": len(requests_seen),
        "server_urls_requested_twice": sum(1 for c in requests_seen.values() if c > 1),
        "server_missing": len(expected - set(requests_seen)), "server_non_200": bad_status,
        "open_warc_files": open_files, "warc_files": len(closed),
        "warc_bytes": sum(p.stat().st_size for p in closed), "cdxj_lines": cdxj_lines,
    }
    out["ok"] = (out["missing"] == 0 and out["captured_twice_or_more"] == 0 and out["unexpected_urls"] == 0
                 and out["server_urls_requested_twice"] == 0 and out["server_missing"] == 0
                 and not open_files and out["schedule_http_200"] == len(expected)
                 and abs((sched[2] or 0) - PERIOD_S) < 1 and abs((sched[3] or 0) - PERIOD_S) < 1)
    return out


# ---- phase 3: warm restart -------------------------------------------------------------------------

def warm_restart(root: Path, config: Path, env: dict, args: argparse.Namespace) -> dict:
    db = catalog_ro(root / "archive.sqlite")
    seed_rows_before = db.execute("SELECT COUNT(*) FROM captures").fetchone()[0]
    still_due = db.execute("SELECT COUNT(*) FROM schedule WHERE next_due <= ?", (time.time(),)).fetchone()[0]
    db.close()
    run = ArchiverRun(config, env, root.parent / "run-warm.log")
    run.start()
    out: dict = {"cmd": run.cmd, "due_at_restart": still_due}  # 0 unless the cold run left URLs uncaptured
    try:
        out["to_tracking_s"] = run.wait_for("tracking", 120)
        out["tracking_line"] = next((m for _, m in run.messages("tracking")), None)
        time.sleep(max(3.0, args.linger))  # a few ticks: nothing is due for an hour (unless the cold run missed some)
        out["dispatch_lines"] = len(run.messages("dispatching"))
        out.update(run.stop(timeout=args.grace))
    except BaseException:
        run.kill()
        raise
    out["dispatched_urls"] = sum(int(m.split()[1]) for _, m in run.messages("dispatching "))
    out["stopped_line"] = next((m for _, m in run.lines if m.startswith("stopped after")), None)
    db = catalog_ro(root / "archive.sqlite")
    out["captures_added"] = db.execute("SELECT COUNT(*) FROM captures").fetchone()[0] - seed_rows_before
    db.close()
    out["open_warc_files"] = sorted(p.name for p in (root / "warcs").iterdir() if p.name.endswith(".open"))
    return out


def version_startup(env: dict) -> float:
    """Interpreter + imports: ``python -m archiver --version`` (median of 3)."""
    times = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "archiver", "--version"], env=env, capture_output=True, timeout=60)
        times.append(time.perf_counter() - t)
    return sorted(times)[1]


# ---- phase 4: scheduler overhead, in process ---------------------------------------------------------

def scheduler_overhead(root: Path, copy: Path, args: argparse.Namespace) -> dict:
    """On a copy of the populated archive (catalog, config, seeds; no WARCs)."""
    from archiver.archive.writer import FetchResult
    from archiver.catalog import Catalog
    from archiver.config import load_config
    from archiver.crawl import Batch
    from archiver.schedule.runner import Runner, tracked_seeds
    from archiver.seeds import url_host

    copy.mkdir()
    shutil.copy(root / "config.toml", copy / "config.toml")
    shutil.copytree(root / "seeds", copy / "seeds")
    (copy / "warcs").mkdir()
    src = sqlite3.connect(root / "archive.sqlite")
    dst = sqlite3.connect(copy / "archive.sqlite")
    src.backup(dst)
    src.close()
    dst.execute("UPDATE schedule SET next_due = 0, last_started = NULL")  # every URL due again
    dst.commit()
    dst.close()
    config = load_config(copy / "config.toml")
    out: dict = {}

    # Start-up pieces: reading the seeds, syncing them into an empty and a populated schedule.
    t, c = time.perf_counter(), time.process_time()
    tracked = tracked_seeds(config)
    out["read_seeds"] = {"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c, "urls": len(tracked)}
    hosts = {u: url_host(u) for u in tracked}
    empty = Catalog(copy / "empty.sqlite")
    t, c = time.perf_counter(), time.process_time()
    empty.schedule.sync(hosts, time.time())
    out["sync_schedule_empty"] = {"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c}
    empty.close()

    runner = Runner(config)
    submitted: list[list[str]] = []
    runner.crawler.submit = lambda seeds: submitted.append(list(seeds))  # no capture: record the batch only
    t, c = time.perf_counter(), time.process_time()
    runner.sync_seeds()
    out["sync_seeds_populated"] = {"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c}

    def timed(fn, *a):
        t, c = time.perf_counter(), time.process_time()
        r = fn(*a)
        return r, time.perf_counter() - t, time.process_time() - c

    # steady: the crawler keeps up; each URL's completion callback runs before the next tick.
    calls, done_wall, done_cpu, done_n = [], 0.0, 0.0, 0
    by_tenth = [[0.0, 0] for _ in range(10)]  # CPU of _seed_done by position in its batch (tenths)
    while True:
        n, wall, cpu = timed(runner.dispatch)
        if not n:
            break
        calls.append({"urls": n, "wall_s": wall, "cpu_s": cpu, "running_before": 0})
        taken = submitted[-1]
        batch = Batch("bench")
        for i, url in enumerate(taken):  # results grow as the crawler stores them
            batch.summary.results.append(FetchResult(url, 200, "seed", "response", "bench.warc.gz", i, "", url))
            _, wall, cpu = timed(runner._seed_done, batch, url)
            done_wall, done_cpu, done_n = done_wall + wall, done_cpu + cpu, done_n + 1
            tenth = by_tenth[10 * i // len(taken)]
            tenth[0], tenth[1] = tenth[0] + cpu, tenth[1] + 1
    steady_urls = sum(c["urls"] for c in calls)
    out["steady"] = {
        "dispatch_calls": len(calls), "urls": steady_urls,
        "dispatch_wall_s": sum(c["wall_s"] for c in calls), "dispatch_cpu_s": sum(c["cpu_s"] for c in calls),
        "dispatch_us_per_url": 1e6 * sum(c["wall_s"] for c in calls) / max(1, steady_urls),
        "dispatch_cpu_us_per_url": 1e6 * sum(c["cpu_s"] for c in calls) / max(1, steady_urls),
        "seed_done_wall_s": done_wall, "seed_done_cpu_s": done_cpu,
        "seed_done_us_per_url": 1e6 * done_wall / max(1, done_n),
        "seed_done_cpu_us_per_url": 1e6 * done_cpu / max(1, done_n),
        "dispatch_ms_per_call_max": 1e3 * max((c["wall_s"] for c in calls), default=0),
        "dispatch_ms_per_call": [round(1e3 * c["wall_s"], 1) for c in calls],
    }
    if done_n:  # cost of the completion callback vs. how many results its batch already holds
        tenths = [1e6 * c / n if n else None for c, n in by_tenth]
        out["steady"]["seed_done_cpu_us_by_tenth_of_batch"] = tenths
        out["steady"]["seed_done_cpu_us_first_tenth_of_batch"] = tenths[0]
        out["steady"]["seed_done_cpu_us_last_tenth_of_batch"] = tenths[-1]

    # backlog: nothing completes, the running set grows (each running URL holds a lock file open).
    runner.dispatch_catalog.db.execute("UPDATE schedule SET next_due = 0")
    cap = min(args.backlog_cap, len(tracked))
    backlog = []
    try:
        while len(runner.running) < cap:
            before = len(runner.running)
            n, wall, cpu = timed(runner.dispatch)
            if not n:
                break
            backlog.append({"running_before": before, "urls": n, "wall_ms": 1e3 * wall, "cpu_ms": 1e3 * cpu,
                            "us_per_url": 1e6 * wall / n})
    except OSError as e:
        backlog.append({"error": f"{type(e).__name__}: {e}", "running_before": len(runner.running)})
    out["backlog"] = backlog
    out["backlog_cap"] = cap
    runner.locks.release_all()
    runner.running.clear()
    runner.close()
    return out


# ---- main ---------------------------------------------------------------------------------------------

def _f(x, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--urls", type=int, default=100_000, help="tracked URLs (default 100000)")
    p.add_argument("--hosts", type=int, default=1000, help="distinct loopback hosts (default 1000)")
    p.add_argument("--concurrency", type=int, default=16, help="[capture] concurrency (default 16)")
    p.add_argument("--batch", type=int, default=2000, help="[schedule] batch: most URLs dispatched per tick (default 2000)")
    p.add_argument("--timeout", type=float, default=720.0,
                   help="stop the capture phase after this many seconds (default 720)")
    p.add_argument("--stall", type=float, default=90.0, help="... or after this many seconds without a finished capture")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between two reads of the catalog")
    p.add_argument("--linger", type=float, default=3.0, help="seconds to keep running after the last capture")
    p.add_argument("--grace", type=float, default=60.0, help="seconds to wait for exit after SIGTERM, then SIGKILL")
    p.add_argument("--backlog-cap", type=int, default=12_000,
                   help="running-set size up to which the in-process backlog dispatch is measured")
    p.add_argument("--skip-overhead", action="store_true", help="skip the in-process scheduler overhead phase")
    p.add_argument("--nginx-workers", type=int, default=1)
    p.add_argument("--archiver-src", type=Path, help="run archiver from this source tree (folder holding archiver/)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder and print it")
    args = p.parse_args()
    if not 1 <= args.hosts <= PER_OCTET * 254:
        p.error(f"--hosts must be 1..{PER_OCTET * 254}")
    if args.urls < args.hosts:
        p.error("--urls must be at least --hosts")
    env = dict(os.environ)
    if args.archiver_src:
        args.archiver_src = args.archiver_src.resolve()
        sys.path.insert(0, str(args.archiver_src))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(args.archiver_src), env.get("PYTHONPATH", "")]))

    stop_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix="archiver-sched-"))
    addrs = [host_addr(i) for i in range(args.hosts)]
    per_host = -(-args.urls // args.hosts)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # interleaved: page j of every host, then page j+1 (a batch spans all hosts)
    urls = [f"http://{addrs[h]}:{port}{page_path(j)}" for j in range(per_host) for h in range(args.hosts)][:args.urls]
    result: dict = {"benchmark": "scheduler_100k", "environment": environment(),
                    "params": {"urls": len(urls), "hosts": args.hosts, "urls_per_host": per_host,
                               "period": PERIOD, "concurrency": args.concurrency, "batch": args.batch,
                               "tick_s": 1.0, "per_host_delay": 0.0, "per_host_concurrency": 1, "port": port,
                               "addresses": f"{addrs[0]} .. {addrs[-1]}",
                               "nofile_limit": list(__import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE)),
                               "archiver_src": str(args.archiver_src or "installed")}}
    try:
        root = work / "archive"
        t = time.perf_counter()
        config = make_archive(root, urls, args)
        result["seed_files_s"] = time.perf_counter() - t
        lifetime = args.timeout + 2 * args.grace + 900
        with MultiAddrNginx(addrs, work, port, lifetime, args.nginx_workers) as server:
            sample = server.get(addrs[len(addrs) // 2], PROBE_PATH)
            result["server"] = {"version": server.version, "workers": args.nginx_workers,
                                "page_bytes": len(sample.split(b"\r\n\r\n", 1)[1])}
            print(f"server: {server.version}, {len(addrs)} addresses {addrs[0]} .. {addrs[-1]} port {port}, "
                  f"page {result['server']['page_bytes']} bytes", flush=True)
            result["version_startup_s"] = version_startup(env)
            print(f"archive {root}: {len(urls):,} URLs, {per_host} per host, every={PERIOD}; "
                  f"concurrency {args.concurrency}, batch {args.batch}", flush=True)
            print("phase 1: cold start and one full period", flush=True)
            cold = full_period(root, config, len(urls), server, env, args)
            result["cold"] = cold
            print("phase 2: exactly-once check", flush=True)
            check = exactly_once(root, urls, server, port)
            result["check"] = check
            print("phase 3: warm restart", flush=True)
            result["warm"] = warm_restart(root, config, env, args)
        if not args.skip_overhead:
            print("phase 4: scheduler overhead in process (catalog copy, submit = no-op)", flush=True)
            result["overhead"] = scheduler_overhead(root, work / "overhead", args)
        report(result)
        path = write_results("scheduler_100k", result)
        print(f"\nresults: {path}")
        if args.keep:
            print(f"kept: {work}")
        return 0 if check["ok"] and cold.get("exit_status") == 0 else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def report(r: dict) -> None:
    cold, warm, check, n = r["cold"], r["warm"], r["check"], r["params"]["urls"]
    span = (check["last_finish_ts"] or 0) - (check["first_start_ts"] or 0)
    r["captures_per_s"] = check["seed_captures"] / span if span > 0 else None
    tl, best = cold["timeline"], 0.0
    for i, a in enumerate(tl):  # best capture rate over any 30-s window of the catalog polls
        b = next((x for x in tl[i:] if x["t"] - a["t"] >= 30), None)
        if b:
            best = max(best, (b["finished"] - a["finished"]) / (b["t"] - a["t"]))
    r["captures_per_s_best_30s"] = best or None
    # CPU of the capture phase: total minus what was spent up to the first dispatch
    cap_cpu = (cold.get("cpu_s") or 0) - (cold.get("cpu_at_first_dispatch_s") or 0)
    done = max(1, check["seed_captures"])
    r["capture_cost"] = {"wall_ms_per_capture": 1e3 * span / done if span > 0 else None,
                         "cpu_ms_per_capture": 1e3 * cap_cpu / done,
                         "wall_ms_per_capture_per_slot": 1e3 * span * r["params"]["concurrency"] / done if span > 0 else None}
    ok = lambda b: "ok" if b else "NOT MET"
    rows = [
        ["python -m archiver --version", f"{r['version_startup_s']:.2f} s", ""],
        ["cold start: launch -> 'tracking N URLs'", f"{_f(cold['to_tracking_s'])} s", ""],
        ["cold start: launch -> first dispatch", f"{_f(cold['to_first_dispatch_s'])} s",
         f"< {GOAL_STARTUP_S:g} s: {ok((cold['to_first_dispatch_s'] or 1e9) < GOAL_STARTUP_S)}"],
        ["  CPU s / RSS MB at first dispatch", f"{_f(cold['cpu_at_first_dispatch_s'])} / {_f(cold['rss_at_first_dispatch_mb'], '.0f')}", ""],
        ["warm restart: launch -> 'tracking N URLs'", f"{_f(warm['to_tracking_s'])} s",
         f"< {GOAL_STARTUP_S:g} s: {ok((warm['to_tracking_s'] or 1e9) < GOAL_STARTUP_S)}"],
        ["peak RSS, full period (GNU time %M)", f"{_f(cold.get('peak_rss_mb'), '.0f')} MB",
         f"< {GOAL_RSS_MB:g} MB: {ok((cold.get('peak_rss_mb') or 1e9) < GOAL_RSS_MB)}"],
        ["peak RSS, warm restart", f"{_f(warm.get('peak_rss_mb'), '.0f')} MB", ""],
        ["archiver CPU s (user+sys), full period", f"{_f(cold.get('cpu_s'), '.1f')} ({_f(cold.get('user_s'), '.1f')}+{_f(cold.get('sys_s'), '.1f')})", ""],
        ["nginx CPU s / machine busy CPU s", f"{cold['server_cpu_s']:.1f} / {cold['machine_busy_s']:.1f}", ""],
        ["captures/s (first start -> last finish)", f"{_f(r['captures_per_s'], '.1f')}", f"over {span:.0f} s"],
        ["captures/s, best 30-s window", f"{_f(r['captures_per_s_best_30s'], '.1f')}", ""],
        ["capture cost: wall ms (x concurrency) / CPU ms", f"{_f(r['capture_cost']['wall_ms_per_capture'])} "
         f"({_f(r['capture_cost']['wall_ms_per_capture_per_slot'], '.1f')}) / {r['capture_cost']['cpu_ms_per_capture']:.2f}", "per capture"],
    ]
    ov = r.get("overhead")
    if ov:
        st = ov["steady"]
        per_url_cpu = (st["dispatch_cpu_us_per_url"] + st["seed_done_cpu_us_per_url"]) / 1e3
        ratio = per_url_cpu / r["capture_cost"]["cpu_ms_per_capture"] if r["capture_cost"]["cpu_ms_per_capture"] else None
        r["overhead_vs_capture_cpu"] = ratio
        rows += [
            ["dispatch() per URL (steady): wall / CPU", f"{st['dispatch_us_per_url']:.0f} / {st['dispatch_cpu_us_per_url']:.0f} us",
             f"{st['dispatch_calls']} calls, max {st['dispatch_ms_per_call_max']:.0f} ms"],
            ["_seed_done per URL (steady): wall / CPU", f"{st['seed_done_us_per_url']:.0f} / {st['seed_done_cpu_us_per_url']:.0f} us",
             f"first/last tenth of a batch {_f(st.get('seed_done_cpu_us_first_tenth_of_batch'), '.0f')}/"
             f"{_f(st.get('seed_done_cpu_us_last_tenth_of_batch'), '.0f')} us"],
            ["scheduler CPU per URL vs capture CPU", f"{per_url_cpu:.3f} ms", f"{_f(ratio and 100 * ratio, '.1f')} % of a capture"],
        ]
        bl = [b for b in ov["backlog"] if "error" not in b]
        if bl:
            rows.append(["dispatch() per URL, backlog (running 0 -> max)",
                         f"{bl[0]['us_per_url']:.0f} -> {bl[-1]['us_per_url']:.0f} us",
                         f"running {bl[0]['running_before']:,} -> {bl[-1]['running_before']:,}"])
        rows += [["  read seeds / sync into empty / populated schedule",
                  f"{ov['read_seeds']['wall_s']:.2f} / {ov['sync_schedule_empty']['wall_s']:.2f} / "
                  f"{ov['sync_seeds_populated']['wall_s']:.2f} s", "in process"]]
    rows += [
        ["exactly once: URLs captured 1x / missing / 2x+", f"{check['captured_urls']:,} / {check['missing']:,} / "
         f"{check['captured_twice_or_more']:,}", ok(check["ok"])],
        ["  server: requests / distinct / twice / non-200", f"{check['server_requests']:,} / {check['server_distinct_urls']:,} / "
         f"{check['server_urls_requested_twice']:,} / {check['server_non_200']:,}", ""],
        ["  next_due - last_finished (min..max)", f"{_f(check['next_due_minus_finished_min_s'], '.1f')}..{_f(check['next_due_minus_finished_max_s'], '.1f')} s", "3600 s expected"],
        ["  warm restart: URLs dispatched / captures added", f"{warm['dispatched_urls']:,} / {warm['captures_added']:,}",
         f"0 / 0 expected ({warm['due_at_restart']:,} left due by the cold run)" if warm["due_at_restart"]
         else "0 / 0 expected"],
        ["exit status (cold, warm) / .open files left", f"{cold.get('exit_status')}, {warm.get('exit_status')} / "
         f"{len(check['open_warc_files']) + len(warm['open_warc_files'])}", "0, 0 / 0 expected"],
        ["WARC files / MB / CDXJ lines", f"{check['warc_files']} / {check['warc_bytes'] / 1e6:.1f} / {check['cdxj_lines']:,}", ""],
    ]
    ds = cold["dispatch_sizes"]
    rows += [
        ["dispatch calls: count / full batches / median / min", f"{ds['calls']} / {ds['full_batches']} / {ds['median']} / {ds['min']}",
         f"batch {r['params']['batch']}"],
        ["peak running URLs / open fds (sampled)", f"{cold['peak_running_sampled']:,} / {cold['peak_fds_sampled']:,}",
         f"RLIMIT_NOFILE {r['params']['nofile_limit'][0]:,}"],
        ["archiver ERROR/WARNING log lines", f"{cold['errors_count']}", "apscheduler's included"],
    ]
    if cold.get("stopped_early"):
        rows.append(["CAPTURE PHASE STOPPED EARLY", cold["stopped_early"], ""])
    print()
    print(f"{n:,} URLs on {r['params']['hosts']:,} hosts, every {PERIOD}, concurrency {r['params']['concurrency']}, "
          f"batch {r['params']['batch']}, tick 1 s")
    print(table(rows, ["metric", "value", "goal / note"]))
    if cold["errors"]:
        print(f"\narchiver log lines other than tracking/dispatching: {cold['errors_count']} (first 10):")
        for m in cold["errors"][:10]:
            print(f"  {m[:300]}")


if __name__ == "__main__":
    sys.exit(main())
