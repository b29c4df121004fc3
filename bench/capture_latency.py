#!/usr/bin/env python3
"""archiver snapshot vs. wget on slow servers: what a user waits for, against the politeness floor.

The capture goal. On loopback (capture_vs_wget.py) a capture costs CPU and nothing else;
on the web it waits: for each response head, then for the body. Here a local server adds
``--latency`` (80 ms) before every response head and sends every body at ``--rate``
(2 MB/s = 2,000,000 bytes/s, paced writes), and the site is spread over ``--hosts`` (5)
host names, so politeness (a delay between two requests to one host) decides the time.

The site: capture_vs_wget.py's generator (``site_files``), ``--articles`` (50) articles,
article n on host (n - 1) mod H, so its READ boxes point to articles on other hosts
(absolute links). Each host serves its articles (page + 6 requisites each), the 5 shared
requisites and an index page listing its articles. Host names without DNS: loopback
addresses 127.0.0.2 ... 127.0.0.(H+1) (Linux routes 127.0.0.0/8 to ``lo``), one
ThreadingHTTPServer each, same port, HTTP/1.1 keep-alive, all in this process's threads
(they stop with it, and by themselves after a bounded lifetime).

Per run, in a fresh folder each:
  archiver        python -m archiver --config ROOT/config.toml snapshot --quiet ARTICLE_URL...
                  (the 50 articles as seeds; every setting at its default: per_host_delay 1.0,
                  per_host_concurrency 1, concurrency 4, depth 1, follow read+body, requisites)
  wget            wget --recursive --level=1 --page-requisites -e robots=off --warc-file=...
                  INDEX_URL... (one index page per host: level 1 = its articles and their
                  requisites; a READ target on another host is an article of that host's index)
  wget --wait=1   the same with one second between two retrievals

The politeness floor, from the server's log of what the tool fetched: per host,
requests x latency + body bytes / rate + (requests - 1) x per_host_delay (one request at
a time per host, ``per_host_delay`` from the end of one to the start of the next, as
archiver's HostSlots does); hosts run in parallel, at most ``concurrency`` requests in
flight in all, so no schedule beats the larger of (the slowest host's chain) and (all
hosts' busy time / concurrency). wget fetches one URL at a time: its floor is the sum of
all requests' latency and transfer plus (requests - 1) x wait.

Measured per tool: wall time, CPU (user+sys of the process tree, os.wait4 on GNU time),
CPU as % of wall, peak RSS (GNU time %M), requests per host (server log), the gaps
between two requests to one host, launch -> first request and last response -> exit;
from the WARC files: distinct response URLs, statuses, payload SHA-1s, compared between
the tools (each host's index page, wget's starting point, left out).

Usage: python bench/capture_latency.py [--runs 1] [--articles 50] [--hosts 5]
       [--latency 80] [--rate 2.0] [--skip-wait1]
Results: tables on stdout and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import mimetypes
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, environment, scratch, stop_on_sigterm, system_busy_s, table, write_results  # noqa: E402
from capture_vs_wget import (compare, compile_archiver, run_snapshot, run_wget, site_files,  # noqa: E402
                             warc_responses)

TOOLS = ("archiver", "wget", "wget --wait=1")
CHUNK = 8192  # bytes per paced write: 4 ms at 2 MB/s


# ---- the slow site ----------------------------------------------------------------------

def host_sites(bases: list[str], total: int, paragraphs: int) -> list[dict[str, bytes]]:
    """Per host (one base URL each): URL path -> body. Article n lives on host (n-1) mod H."""
    href = lambda n: f"{bases[(n - 1) % len(bases)]}/articles/{n}/"  # noqa: E731
    sites = []
    for i in range(len(bases)):
        files = site_files(range(i + 1, total + 1, len(bases)), total, paragraphs, href)
        sites.append({path.removesuffix("index.html"): body for path, body in files.items()})
    return sites


def expected_urls(bases: list[str], sites: list[dict[str, bytes]]) -> list[str]:
    """What a faithful capture of the articles holds: everything but the index pages."""
    return sorted(base + path for base, site in zip(bases, sites) for path in site if path != "/")


def send_paced(wfile, body: bytes, rate: float) -> None:
    """Write body so that its last byte leaves at start + len(body) / rate."""
    view, start = memoryview(body), time.perf_counter()
    for offset in range(0, len(body), CHUNK):
        end = min(offset + CHUNK, len(body))
        wait = start + end / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        wfile.write(view[offset:end])


class SlowSite:
    """One ThreadingHTTPServer per address (same port) serving its files from memory:
    ``latency`` seconds before each response head, the body at ``rate`` bytes/s. Every
    request is logged as (host, path, status, body bytes, arrived, done) in perf_counter
    seconds. The servers stop after ``lifetime`` seconds whatever happens."""

    def __init__(self, addresses: list[str], latency: float, rate: float, lifetime: float):
        self.latency, self.rate = latency, rate
        self.lock = threading.Lock()
        self.log: list[tuple] = []
        self.servers = self._bind(addresses)
        self.port = self.servers[0].server_address[1]
        self.bases = [f"http://{a}:{self.port}" for a in addresses]
        self.files: list[dict[str, bytes]] = [{} for _ in addresses]
        self.lifetime = lifetime

    def _bind(self, addresses: list[str]) -> list[ThreadingHTTPServer]:
        """Servers on one port free on every address (a few tries)."""
        handler = self._handler()
        for _ in range(20):
            first = ThreadingHTTPServer((addresses[0], 0), handler)
            servers = [first]
            try:
                servers += [ThreadingHTTPServer((a, first.server_address[1]), handler) for a in addresses[1:]]
            except OSError:
                for s in servers:
                    s.server_close()
                continue
            for i, s in enumerate(servers):
                s.daemon_threads, s.site_index = True, i
            return servers
        raise SystemExit(f"no port free on all of {addresses}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as both tools use it
            timeout = 60  # an idle kept-alive connection's thread ends after this
            # TCP_NODELAY: else the first body write waits for the ACK of the head, which the
            # client delays by up to 40 ms (Nagle + delayed ACK), as nginx's tcp_nodelay avoids.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                site.respond(self)

            def log_message(self, *args) -> None:
                pass

        return Handler

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        arrived = time.perf_counter()
        index = handler.server.site_index
        path = urlsplit(handler.path).path
        body = self.files[index].get(path)
        status = 200 if body is not None else 404
        body = body if body is not None else b"not found\n"
        time.sleep(self.latency)
        handler.send_response(status)
        handler.send_header("Content-Type", content_type(path) if status == 200 else "text/plain")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        send_paced(handler.wfile, body, self.rate)
        with self.lock:
            self.log.append((self.bases[index], path, status, len(body), arrived, time.perf_counter()))

    def take_log(self) -> list[tuple]:
        with self.lock:
            log, self.log = self.log, []
        return log

    def __enter__(self) -> "SlowSite":
        for s in self.servers:
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        self.timer = threading.Timer(self.lifetime, self.stop)
        self.timer.daemon = True
        self.timer.start()
        return self

    def stop(self) -> None:
        for s in self.servers:
            s.shutdown()
            s.server_close()

    def __exit__(self, *exc) -> None:
        self.timer.cancel()
        self.stop()


def content_type(path: str) -> str:
    if path.endswith("/"):
        return "text/html; charset=utf-8"
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


# ---- floors, from what was fetched ------------------------------------------------------

def per_host(log: list[tuple], latency: float, rate: float, delay: float) -> dict[str, dict]:
    """Per host: requests, body bytes, busy time (latency + transfer), the chain with the
    politeness delay between requests, and the gaps the tool actually left between them."""
    hosts: dict[str, list[tuple]] = {}
    for entry in sorted(log, key=lambda e: e[4]):
        hosts.setdefault(entry[0], []).append(entry)
    out = {}
    for host, entries in sorted(hosts.items()):
        n, body = len(entries), sum(e[3] for e in entries)
        busy = n * latency + body / rate
        gaps = [b[4] - a[5] for a, b in zip(entries, entries[1:])]
        out[host] = {"requests": n, "body_bytes": body, "busy_s": busy, "chain_s": busy + (n - 1) * delay,
                     "gap_mean_s": statistics.fmean(gaps) if gaps else 0.0, "gap_min_s": min(gaps, default=0.0),
                     "first_s": entries[0][4], "last_s": entries[-1][5]}
    return out


def politeness_floor(hosts: dict[str, dict], concurrency: int) -> dict:
    """No schedule with one request at a time per host and at most ``concurrency`` in
    all beats either bound: the slowest host's chain, or all busy time shared out."""
    chain = max(h["chain_s"] for h in hosts.values())
    shared = sum(h["busy_s"] for h in hosts.values()) / concurrency
    return {"floor_s": max(chain, shared), "slowest_host_chain_s": chain, "busy_over_concurrency_s": shared}


def serial_floor(hosts: dict[str, dict], wait: float) -> dict:
    """One request at a time over all hosts (wget): all busy time plus the waits."""
    n = sum(h["requests"] for h in hosts.values())
    return {"floor_s": sum(h["busy_s"] for h in hosts.values()) + (n - 1) * wait}


# ---- one run ----------------------------------------------------------------------------

def archiver_settings(root: Path) -> dict:
    """The [capture] settings the snapshot ran with, read back from its config.toml."""
    with open(root / "config.toml", "rb") as f:
        capture = tomllib.load(f)["capture"]
    return {k: capture[k] for k in ("per_host_delay", "per_host_concurrency", "concurrency", "depth",
                                    "requisites", "follow", "robots")}


def run_tool(tool: str, folder: Path, site: SlowSite, seeds: list[str], args: argparse.Namespace) -> dict:
    if tool == "archiver":
        res = run_snapshot(folder, seeds, {}, args)
        res["settings"] = archiver_settings(folder)
        return res
    folder.mkdir(parents=True)
    options = ("--wait=1",) if tool == "wget --wait=1" else ()
    return run_wget(folder, [f"{base}/" for base in site.bases], args, options)


def measure_tool(tool: str, folder: Path, site: SlowSite, seeds: list[str], args: argparse.Namespace) -> dict:
    os.sync()
    site.take_log()
    busy0, own0, launched = system_busy_s(), time.process_time(), time.perf_counter()
    res = run_tool(tool, folder, site, seeds, args)
    m = res["measured"]
    own = time.process_time() - own0  # the servers' threads and this process's polling
    log = site.take_log()
    latency, rate = args.latency / 1000, args.rate * 1e6
    if tool == "archiver":
        settings = res["settings"]
        hosts = per_host(log, latency, rate, settings["per_host_delay"])
        floor = politeness_floor(hosts, settings["concurrency"])
    else:
        hosts = per_host(log, latency, rate, 0.0)
        floor = serial_floor(hosts, 1.0 if "--wait=1" in tool else 0.0)
    responses = warc_responses(res["warcs"])
    return {
        **m.to_json(), **floor, "settings": res.get("settings", {}),
        "wall_over_floor": m.wall_s / floor["floor_s"] if log else None,
        "cpu_pct_of_wall": 100 * m.cpu_s / m.wall_s,
        "server_and_bench_cpu_s": own,
        "other_cpu_s": system_busy_s() - busy0 - m.cpu_s - own,
        "requests": len(log), "distinct_requests": len({(e[0], e[1]) for e in log}),
        "non_200_requests": sorted(e[0] + e[1] for e in log if e[2] != 200)[:50],
        "body_bytes": sum(e[3] for e in log),
        "first_request_after_launch_s": min(e[4] for e in log) - launched if log else None,
        "exit_after_last_response_s": launched + m.wall_s - max(e[5] for e in log) if log else None,
        "hosts": hosts,
        "distinct_response_urls": len(responses["urls"]), "record_types": responses["record_types"],
        "duplicate_responses": responses["duplicate_responses"], "warc_bytes": responses["warc_bytes"],
        "_urls": responses["urls"],
        **({"log_tail": res["log"]} if m.returncode not in (0, 8) or m.timed_out else {}),
    }


def one_run(run: int, order: list[str], site: SlowSite, work: Path, seeds: list[str], expected: list[str],
            args: argparse.Namespace) -> dict:
    out: dict = {"run": run, "order": order}
    for tool in order:
        out[tool] = measure_tool(tool, work / f"run{run}" / tool.replace(" --wait=", "-wait"), site, seeds, args)
        print(f"run {run}: {tool} {out[tool]['wall_s']:.1f} s (floor {out[tool]['floor_s']:.1f} s)", flush=True)
    indexes = {f"{base}/" for base in site.bases}
    urls = {tool: out[tool].pop("_urls") for tool in order}
    out["comparison"] = {tool: compare(urls["archiver"], urls[tool], "", {"expected_paths": expected}, indexes)
                         for tool in order if tool != "archiver"}
    return out


# ---- report -----------------------------------------------------------------------------

METRICS = [("wall s", "wall_s", "{:.1f}"), ("floor s (see below)", "floor_s", "{:.1f}"),
           ("wall / floor", "wall_over_floor", "{:.3f}"),
           ("CPU s (user+sys)", "cpu_s", "{:.2f}"), ("CPU % of wall", "cpu_pct_of_wall", "{:.1f}"),
           ("peak RSS MB", "max_rss_mb", "{:.1f}"), ("requests (server log)", "requests", "{}"),
           ("distinct requests", "distinct_requests", "{}"), ("response URLs (WARC)", "distinct_response_urls", "{}"),
           ("body MB served", "body_bytes", "{:.2f}"),
           ("launch -> first request s", "first_request_after_launch_s", "{:.2f}"),
           ("last response -> exit s", "exit_after_last_response_s", "{:.2f}"),
           ("server+bench CPU s", "server_and_bench_cpu_s", "{:.2f}"), ("other CPU s", "other_cpu_s", "{:.2f}"),
           ("exit", "returncode", "{}")]


def fmt(key: str, spec: str, value) -> str:
    if value is None:
        return "-"
    if spec == "{}" and isinstance(value, float) and value.is_integer():
        value = int(value)  # a median of counts
    return spec.format(value / 1e6 if key == "body_bytes" else value)


def run_report(r: dict, tools: list[str]) -> list[str]:
    rows = [[label] + [fmt(key, spec, r[t][key]) for t in tools] for label, key, spec in METRICS]
    lines = [f"\nrun {r['run']} (order: {' then '.join(r['order'])})", table(rows, [""] + tools)]
    a = r["archiver"]
    lines.append(f"floor: archiver = politeness floor, max(slowest host's chain {a['slowest_host_chain_s']:.2f} s, "
                 f"busy time / concurrency {a['busy_over_concurrency_s']:.2f} s); wget = serial floor "
                 f"(one request at a time, with its wait)")
    host_rows = [[host, str(h["requests"]), f"{h['body_bytes'] / 1e6:.2f}", f"{h['busy_s']:.2f}", f"{h['chain_s']:.2f}",
                  f"{h['gap_mean_s']:.3f}", f"{h['gap_min_s']:.3f}", f"{h['last_s'] - h['first_s']:.2f}"]
                 for host, h in a["hosts"].items()]
    lines.append(table(host_rows, ["archiver, per host", "requests", "body MB", "busy s", "chain s",
                                   "gap mean s", "gap min s", "first->last s"]))
    for tool, c in r["comparison"].items():
        lines.append(f"URL sets archiver vs {tool}: equal {c['url_sets_equal']} (archiver {c['archiver_urls']}, "
                     f"{tool} {c['wget_urls']}, expected {c['expected_urls']}; left out: {len(c['normalised_out'])} "
                     f"index pages); payload SHA-1 mismatches {len(c['payload_sha1_mismatches'])}; non-200: "
                     f"archiver {len(c['non_200']['archiver'])}, {tool} {len(c['non_200']['wget'])}")
        for k in ("only_archiver", "only_wget", "archiver_missing_expected", "wget_missing_expected",
                  "payload_sha1_mismatches"):
            if c[k]:
                lines.append(f"  {k.replace('wget', tool)}: {c[k][:10]}{' ...' if len(c[k]) > 10 else ''}")
    return lines


def medians(runs: list[dict], tools: list[str]) -> dict:
    keys = [key for _, key, _ in METRICS if key != "returncode"]
    return {t: {k: statistics.median(r[t][k] for r in runs) if all(r[t][k] is not None for r in runs) else None
                for k in keys} for t in tools}


def report(runs: list[dict], tools: list[str]) -> tuple[str, dict]:
    lines = [line for r in runs for line in run_report(r, tools)]
    median = medians(runs, tools)
    if len(runs) > 1:
        rows = [[label] + [fmt(key, spec, median[t][key]) for t in tools]
                for label, key, spec in METRICS if key != "returncode"]
        lines += [f"\nmedian of {len(runs)} runs", table(rows, [""] + tools)]
    a = median["archiver"]
    lines.append(f"\ngoal: archiver wall within 2% of the politeness floor: {a['wall_over_floor']:.3f} "
                 f"({'met' if a['wall_over_floor'] <= 1.02 else 'NOT met'}); CPU under 5% of wall: "
                 f"{a['cpu_pct_of_wall']:.1f}% ({'met' if a['cpu_pct_of_wall'] < 5 else 'NOT met'})")
    return "\n".join(lines), median


# ---- main -------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=1, help="runs of all tools (default 1; ~1.5 min archiver, "
                   "~7 min wget --wait=1 each)")
    p.add_argument("--articles", type=int, default=50, help="articles on the site (default 50)")
    p.add_argument("--hosts", type=int, default=5, help="host names, 127.0.0.2 ... (default 5, at most 200)")
    p.add_argument("--latency", type=float, default=80.0, help="ms before every response head (default 80)")
    p.add_argument("--rate", type=float, default=2.0, help="body rate, MB/s of 10^6 bytes (default 2.0)")
    p.add_argument("--paragraphs", type=int, default=8, help="paragraphs per article (default 8)")
    p.add_argument("--skip-wait1", action="store_true", help="leave out wget --wait=1 (the long one)")
    p.add_argument("--timeout", type=float, default=1200.0, help="kill a capture after this many seconds")
    p.add_argument("--archiver-src", type=Path, help="run archiver from this source tree (see capture_vs_wget.py)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (WARCs, logs) and print it")
    p.set_defaults(wget_cdx=True)  # as in capture_vs_wget.py: wget writes a CDX, archiver its CDXJ
    args = p.parse_args()
    if not (1 <= args.runs <= 10 and 1 <= args.hosts <= 200 and args.articles >= 2 * args.hosts
            and args.latency >= 0 and args.rate > 0):
        p.error("--runs 1..10, --hosts 1..200, --articles at least 2 per host, --latency >= 0, --rate > 0")
    if args.archiver_src:
        args.archiver_src = args.archiver_src.resolve()
        sys.path.insert(0, str(args.archiver_src))
    if not shutil.which("wget"):
        p.error("wget not found: apt-get install wget (see bench/README.md)")
    return args


def run_all(args: argparse.Namespace, work: Path) -> dict:
    tools = [t for t in TOOLS if not (args.skip_wait1 and t == "wget --wait=1")]
    addresses = [f"127.0.0.{i + 2}" for i in range(args.hosts)]
    lifetime = 300 + args.runs * len(tools) * (args.timeout + 30)
    with SlowSite(addresses, args.latency / 1000, args.rate * 1e6, lifetime) as site:
        sites = host_sites(site.bases, args.articles, args.paragraphs)
        site.files[:] = sites
        expected = expected_urls(site.bases, sites)
        seeds = [f"{site.bases[(n - 1) % args.hosts]}/articles/{n}/" for n in range(1, args.articles + 1)]
        wget_version = subprocess.run(["wget", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        info = {"hosts": site.bases, "articles": args.articles, "expected_urls": len(expected),
                "bytes": sum(len(b) for s in sites for b in s.values()), "wget_version": wget_version}
        print(f"site: {args.articles} articles on {args.hosts} hosts ({site.bases[0]} ...), {len(expected)} URLs "
              f"expected, {info['bytes'] / 1e6:.1f} MB; {args.latency:g} ms before each head, bodies at "
              f"{args.rate:g} MB/s; {wget_version}", flush=True)
        info["archiver_module"] = compile_archiver(work, args)
        runs = []
        for i in range(1, args.runs + 1):
            pair = ["archiver", "wget"] if i % 2 else ["wget", "archiver"]
            runs.append(one_run(i, pair + tools[2:], site, work, seeds, expected, args))
    return {"tools": tools, "site": info, "runs": runs}


def main() -> int:
    args = parse_args()
    stop_on_sigterm()
    with scratch("archiver-latency-", args.keep) as work:
        done = run_all(args, work)
        text, median = report(done["runs"], done["tools"])
        print(text)
        path = write_results("capture_latency", {
            "benchmark": "capture_latency", "environment": environment(),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "archiver_src": str(args.archiver_src or REPO), **done, "median": median,
            "time": time.strftime("%Y-%m-%d %H:%M:%S %z")})
        print(f"\nJSON: {path}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
