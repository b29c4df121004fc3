"""Shared helpers for the benchmarks: measured child processes, local servers, results.

Everything here talks to 127.0.0.1 only, and every wait is bounded.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- measured child process -------------------------------------------------------------

GNU_TIME = "/usr/bin/time"  # Debian package `time`; reports the peak RSS of the command it runs


@dataclass
class Measured:
    """What one child process cost: wall time, its CPU time and its peak RSS."""
    cmd: list[str]
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_kb: int
    rss_method: str = ""
    timed_out: bool = False
    rss_samples: list[tuple] = field(default_factory=list)  # (seconds since start, VmRSS kB, probe label)

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    def to_json(self) -> dict:
        out = asdict(self)
        out["cpu_s"] = self.cpu_s
        out["max_rss_mb"] = self.max_rss_kb / 1024
        out.pop("rss_samples")
        return out


def run_measured(cmd: list[str], *, timeout: float, cwd: Path | None = None, env: dict | None = None,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                 sample_rss_every: float = 0.0, probe=None) -> Measured:
    """Run cmd to completion (killed after ``timeout`` seconds) and return what it cost.

    Wall time is measured here; user/sys CPU come from os.wait4 on our child. Peak RSS
    does not: on Linux a child's ru_maxrss also counts the RSS of the forked copy of the
    parent before exec (here: the benchmark process itself, tens of MB after it has read
    WARC files). So the command runs under GNU time (``/usr/bin/time -f %M``), a ~2 MB
    process, and its %M is the peak RSS reported. Without /usr/bin/time, the peak VmHWM
    read from /proc every 20 ms is used instead (it can miss growth in the last 20 ms).
    With ``sample_rss_every`` > 0 VmRSS is also sampled at that interval, to show *when*
    the peak happens; ``probe()``, if given, labels each sample (e.g. with a phase).
    """
    rss_file = None
    if Path(GNU_TIME).exists():
        fd, name = tempfile.mkstemp(prefix="bench-rss-", suffix=".txt")
        os.close(fd)
        rss_file = Path(name)
        cmd = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *cmd]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
    waited: dict = {}

    def reap() -> None:
        _, status, usage = os.wait4(proc.pid, 0)  # includes the usage of the children it reaped
        waited["end"] = time.perf_counter()
        waited["status"], waited["usage"] = status, usage

    reaper = threading.Thread(target=reap, daemon=True)
    reaper.start()
    samples: list[tuple[float, int]] = []
    hwm = 0
    interval = sample_rss_every or (0.5 if rss_file else 0.02)
    deadline = start + timeout
    timed_out = False
    try:
        while reaper.is_alive():
            target = _target_pid(proc.pid) if rss_file else proc.pid
            if target is not None:
                rss, peak = _vm_kb(target)
                hwm = max(hwm, peak or 0)
                if sample_rss_every and rss is not None:
                    samples.append((round(time.perf_counter() - start, 3), rss, probe() if probe else ""))
            reaper.join(interval)
            if reaper.is_alive() and time.perf_counter() > deadline:
                timed_out = True
                _kill_session(proc.pid)
                reaper.join(30)
                break
    except BaseException:  # Ctrl-C or SIGTERM (see stop_on_sigterm): do not leave the command running
        _kill_session(proc.pid)
        reaper.join(30)
        if rss_file is not None:
            rss_file.unlink(missing_ok=True)
        raise
    status, usage = waited["status"], waited["usage"]
    proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    max_rss, method = hwm, "VmHWM sampled every 20 ms"
    if rss_file is not None:
        try:
            max_rss, method = int(rss_file.read_text().split()[-1]), "GNU time %M"
        except (OSError, ValueError, IndexError):
            method = "VmHWM sampled every 0.5 s (GNU time gave nothing)"
        rss_file.unlink(missing_ok=True)
    return Measured(cmd=[str(c) for c in cmd], returncode=proc.returncode, wall_s=waited["end"] - start,
                    user_s=usage.ru_utime, sys_s=usage.ru_stime, max_rss_kb=max_rss, rss_method=method,
                    timed_out=timed_out, rss_samples=samples)


def _kill_session(pid: int) -> None:
    """SIGKILL the session that the command we started leads (it and its children only)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _target_pid(pid: int) -> int | None:
    """The command GNU time runs: its only child."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def _vm_kb(pid: int) -> tuple[int | None, int | None]:
    """(VmRSS, VmHWM) of pid in kB."""
    rss = hwm = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return rss, hwm


def proc_tree_cpu_s(pid: int) -> float:
    """user+sys CPU seconds of pid and all its descendants (e.g. timeout -> nginx master -> workers)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK)
    tree, grew = {pid}, True
    while grew:
        grew = False
        for p, (ppid, _) in stats.items():
            if ppid in tree and p not in tree:
                tree.add(p)
                grew = True
    return sum(stats[p][1] for p in tree if p in stats)


def system_busy_s() -> float:
    """CPU seconds spent busy on all cores since boot (from /proc/stat), to see other load."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def file_create_us(folder: Path, files: int = 200) -> float:
    """Microseconds to create (and close) one empty file in folder, averaged over a few
    hundred: how slow the file system's metadata is right now. On this project's VM it
    ranged from 8 to 350 us within an hour (ext4, online discard), and a tool that
    writes a file per URL (wget's mirror) is slowed by it far more than one that writes
    a few WARC files."""
    probe = Path(tempfile.mkdtemp(prefix="create-probe-", dir=folder))
    try:
        start = time.perf_counter()
        for i in range(files):
            os.close(os.open(probe / f"f{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        return (time.perf_counter() - start) / files * 1e6
    finally:
        shutil.rmtree(probe, ignore_errors=True)


# ---- local servers ----------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def nginx_http_common(workdir: Path) -> str:
    """The http-block lines every benchmark's nginx shares: long-lived keep-alive, no gzip,
    and its temporary files in the benchmark's folder (made here), not in /var/lib/nginx."""
    temp_paths = []
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / "nginx-tmp" / sub).mkdir(parents=True, exist_ok=True)
        temp_paths.append(f"    {sub}_temp_path {workdir}/nginx-tmp/{sub};")
    return ("    keepalive_timeout 60;\n    keepalive_requests 100000;\n    tcp_nodelay on;\n    gzip off;\n"
            + "\n".join(temp_paths))


class OneBody(ThreadingHTTPServer):
    """A local server answering every GET with ``body`` (HTML), whatever the benchmark set
    there last: one page it edits between captures. Serves from a thread until
    shutdown()."""

    def __init__(self, body: bytes = b""):
        super().__init__(("127.0.0.1", 0), _OneBodyHandler)
        self.body = body
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _OneBodyHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = self.server.body  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class StaticServer:
    """Serve a folder on 127.0.0.1 from a subprocess: nginx if installed, else Python's
    ThreadingHTTPServer (``python -m http.server``). ``kind`` says which one runs."""

    def __init__(self, root: Path, workdir: Path, prefer: str = "auto", nginx_workers: int = 1,
                 lifetime: float = 3600.0):
        self.root, self.workdir, self.lifetime = root, workdir, lifetime
        self.port = free_port()
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if prefer == "nginx" and not nginx:
            raise SystemExit("nginx not found: apt-get install nginx (see bench/README.md)")
        self.kind = "nginx" if nginx and prefer in ("auto", "nginx") else "python"
        self.nginx, self.nginx_workers = nginx, nginx_workers
        self.proc: subprocess.Popen | None = None
        self.version = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "StaticServer":
        log = open(self.workdir / f"{self.kind}-server.log", "wb")
        if self.kind == "nginx":
            conf = self._nginx_conf()
            cmd = [self.nginx, "-p", str(self.workdir), "-c", str(conf), "-e", str(self.workdir / "nginx-error.log")]
            self.version = subprocess.run([self.nginx, "-v"], capture_output=True, text=True).stderr.strip()
        else:
            cmd = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(self.root),
                   str(self.port)]
            self.version = f"python {platform.python_version()} http.server (ThreadingHTTPServer, HTTP/1.0)"
        # Under coreutils `timeout`, the server stops by itself after `lifetime` seconds even if
        # this process is killed; a signal sent to `timeout` is passed on to the server.
        if shutil.which("timeout"):
            cmd = ["timeout", "--kill-after=10", str(int(self.lifetime)), *cmd]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
        log.close()
        wait_for_port(self.port, self.proc)
        return self

    def _nginx_conf(self) -> Path:
        w = self.workdir
        common = nginx_http_common(w)
        # Workers drop to an unprivileged user when started as root: the site must be readable.
        for p in (w, self.root):
            p.chmod(0o755)
        user = "user nobody nogroup;" if os.geteuid() == 0 else ""
        conf = w / "nginx.conf"
        conf.write_text(f"""
{user}
worker_processes {self.nginx_workers};
daemon off;
pid {w}/nginx.pid;
error_log {w}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    etag on;
{common}
    server {{
        listen 127.0.0.1:{self.port};
        root {self.root};
        index index.html;
    }}
}}
""")
        return conf

    def cpu_s(self) -> float:
        return proc_tree_cpu_s(self.proc.pid) if self.proc else 0.0

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT if self.kind == "nginx" else signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session only
                self.proc.wait(10)


# ---- results ----------------------------------------------------------------------------

@contextmanager
def scratch(prefix: str, keep: bool) -> Iterator[Path]:
    """A work folder for one benchmark run, removed at the end unless kept (--keep)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield work
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so `finally` and `with` blocks stop servers and delete
    temporary folders."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def environment() -> dict:
    def out(cmd: list[str]) -> str:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            return ""
    return {
        "python": sys.executable, "python_version": platform.python_version(),
        "cpus": os.cpu_count(), "kernel": platform.release(),
        "archiver_commit": out(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        "archiver_dirty": bool(out(["git", "-C", str(REPO), "status", "--porcelain", "--", "archiver"])),
    }


def write_results(name: str, data: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return path


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])
