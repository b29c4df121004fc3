#!/usr/bin/env python3
"""archiver captures one 1 GiB response: peak RSS of the capturing process, wall time, and
a check that the WARC record holds exactly the bytes that were sent.

A Python server in a subprocess on 127.0.0.1 sends SIZE bytes (default 1 GiB =
1,073,741,824) with a Content-Length, generated on the fly from a 1 MiB pseudo-random
block repeated (nothing stored; the block is longer than gzip's 32 KiB window, so the
WARC's gzip cannot shrink it). archiver runs in its own process:

    python -m archiver --config ROOT/config.toml snapshot --quiet URL

with ``[capture] max_bytes`` raised above SIZE (2,000,000,000 by default) and TMPDIR
pointing into the benchmark's temporary folder (the response is spooled to a temporary
file there). Measured: wall time, CPU, peak RSS of the archiver process (GNU time's %M),
and a VmRSS timeline labelled with the phase (start-up and fetching into the spool file
before the WARC file exists; writing records while it is ``.open``; CDXJ indexing and
exit after it was closed), to show where the peak happens.

Then the WARC is read back with warcio's ArchiveIterator(check_digests=True): the
response record's payload is hashed (SHA-1, 1 MiB at a time) and compared with its
WARC-Payload-Digest and with the SHA-1 of the stream the server generated; its length
must be exactly SIZE and it must not be marked WARC-Truncated. The CDXJ line's digest
is checked too. Everything (several GB) is deleted at the end.

Usage: python bench/stream_1gb.py [--size BYTES] [--runs 1]
Results: a summary on stdout and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import (REPO, environment, free_port, run_measured, stop_on_sigterm, table, wait_for_port,  # noqa: E402
                   write_results)

BLOCK = 1 << 20
GOAL_RSS_MB = 150
PATH = "/big.bin"


def make_block(seed: int) -> bytes:
    return random.Random(seed).randbytes(BLOCK)


def expected_sha1(size: int, seed: int) -> str:
    """SHA-1 of the stream the server sends, in the WARC's form (sha1:BASE32)."""
    block, h, left = make_block(seed), hashlib.sha1(), size
    view = memoryview(block)
    while left:
        n = min(left, BLOCK)
        h.update(view[:n])
        left -= n
    return "sha1:" + base64.b32encode(h.digest()).decode()


# ---- the server (runs as: stream_1gb.py --serve PORT SIZE SEED) -------------------------

def serve(port: int, size: int, seed: int, lifetime: float) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    block = memoryview(make_block(seed))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path != PATH:
                body = b"not found"
                self.send_response(404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            left = size
            while left:
                n = min(left, BLOCK)
                self.wfile.write(block[:n])
                left -= n

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    # Stop by itself even if the benchmark dies: never outlive `lifetime` seconds.
    threading.Timer(lifetime, server.shutdown).start()
    server.serve_forever()
    server.server_close()


# ---- one capture ------------------------------------------------------------------------

def capture(work: Path, url: str, args: argparse.Namespace) -> dict:
    from archiver.archive.workdir import init_archive

    root = work / "archive"
    init_archive(root, overrides={
        "per_host_delay": "0.0", "max_bytes": str(args.max_bytes), "timeout": "60.0",
        "total_timeout": str(float(args.timeout))})
    spool = work / "tmp"
    spool.mkdir()
    env = dict(os.environ, TMPDIR=str(spool))
    if args.archiver_src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(args.archiver_src), env.get("PYTHONPATH", "")]))
    warc_dir = root / "warcs"

    def phase() -> str:
        names = [p.name for p in warc_dir.iterdir()] if warc_dir.exists() else []
        if any(n.endswith(".open") for n in names):
            return "2 write WARC (.open)"
        if any(n.endswith(".warc.gz") for n in names):
            return "3 closed: CDXJ, exit"
        return "1 start-up, fetch to spool"  # the WARC file is opened at the first write

    cmd = [sys.executable, "-m", "archiver", "--config", str(root / "config.toml"), "snapshot", "--quiet", url]
    os.sync()
    with open(root / "stdout.txt", "wb") as out, open(root / "stderr.txt", "wb") as err:
        m = run_measured(cmd, timeout=args.timeout + 120, cwd=root, env=env, stdout=out, stderr=err,
                         sample_rss_every=0.25, probe=phase)
    return {"measured": m, "root": root, "spool_left": sorted(p.name for p in spool.iterdir()),
            "stderr": (root / "stderr.txt").read_text(errors="replace")[-3000:],
            "stdout": (root / "stdout.txt").read_text(errors="replace")[-3000:]}


def phase_peaks(samples: list[tuple]) -> dict:
    out: dict[str, dict] = {}
    for t, rss, label in samples:
        p = out.setdefault(label, {"from_s": t, "to_s": t, "peak_rss_mb": 0.0})
        p["to_s"] = t
        p["peak_rss_mb"] = max(p["peak_rss_mb"], rss / 1024)
    return out


def verify(root: Path, url: str, size: int, expected: str) -> dict:
    """Read the WARC back: digests checked by warcio and recomputed here, length, truncation."""
    from warcio.archiveiterator import ArchiveIterator

    warcs = sorted((root / "warcs").glob("*.warc.gz"))
    found: dict = {"warc_files": [p.name for p in warcs], "warc_bytes": sum(p.stat().st_size for p in warcs)}
    started = time.perf_counter()
    for path in warcs:
        with open(path, "rb") as f:
            for record in ArchiveIterator(f, check_digests=True):
                if record.rec_type != "response" or record.rec_headers.get_header("WARC-Target-URI") != url:
                    continue
                h, length, stream = hashlib.sha1(), 0, record.raw_stream
                while chunk := stream.read(BLOCK):
                    h.update(chunk)
                    length += len(chunk)
                ours = "sha1:" + base64.b32encode(h.digest()).decode()
                header = record.rec_headers.get_header("WARC-Payload-Digest")
                found.update({
                    "payload_length": length,
                    "length_exact": length == size,
                    "http_content_length": record.http_headers.get_header("Content-Length"),
                    "warc_truncated": record.rec_headers.get_header("WARC-Truncated") or "",
                    "warc_payload_digest": header,
                    "recomputed_digest": ours,
                    "expected_digest": expected,
                    "digest_header_matches_payload": ours == header,
                    "payload_matches_what_server_sent": ours == expected,
                    "warcio_digest_check_passed": record.digest_checker.passed,
                    "warcio_digest_problems": list(record.digest_checker.problems),
                })
    found["verify_s"] = time.perf_counter() - started
    cdxj = [line for p in (root / "indexes").glob("*.cdxj") for line in p.read_text().splitlines()]
    digests = [json.loads(line.split(" ", 2)[2]).get("digest") for line in cdxj]
    found["cdxj_lines"] = len(cdxj)
    found["cdxj_digest_matches"] = bool(digests) and all("sha1:" + d == expected for d in digests)
    found["ok"] = bool(found.get("length_exact") and found.get("digest_header_matches_payload")
                       and found.get("payload_matches_what_server_sent")
                       and found.get("warcio_digest_check_passed") is True
                       and not found.get("warcio_digest_problems") and not found.get("warc_truncated"))
    return found


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=1 << 30, help="response size in bytes (default 1 GiB = 1073741824)")
    p.add_argument("--max-bytes", type=int, default=2_000_000_000, help="archiver [capture] max_bytes (default 2e9)")
    p.add_argument("--runs", type=int, default=1, help="captures in a row (default 1)")
    p.add_argument("--seed", type=int, default=20261127, help="seed of the pseudo-random block")
    p.add_argument("--timeout", type=float, default=1200.0, help="kill the capture after this many seconds")
    p.add_argument("--archiver-src", type=Path, help="run archiver from this source tree (folder holding archiver/)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (GBs!) and print it")
    p.add_argument("--serve", nargs=4, metavar=("PORT", "SIZE", "SEED", "LIFETIME"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(int(args.serve[0]), int(args.serve[1]), int(args.serve[2]), float(args.serve[3]))
        return 0
    if not 1 <= args.runs <= 5:
        p.error("--runs must be 1..5")
    if args.max_bytes <= args.size:
        p.error("--max-bytes must be above --size, or the capture is truncated on purpose")
    if args.archiver_src:
        args.archiver_src = args.archiver_src.resolve()
        sys.path.insert(0, str(args.archiver_src))

    stop_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix="archiver-stream-"))
    free = shutil.disk_usage(work).free
    if free < 3 * args.size:
        p.error(f"{work}: {free / 1e9:.1f} GB free, need about {3 * args.size / 1e9:.1f} GB")
    port = free_port()
    lifetime = args.runs * (args.timeout + 300)
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(args.size), str(args.seed),
                               str(lifetime)], start_new_session=True)
    runs = []
    try:
        wait_for_port(port, server)
        url = f"http://127.0.0.1:{port}{PATH}"
        print(f"server: python http.server (ThreadingHTTPServer, HTTP/1.1) at {url}, {args.size:,} bytes "
              f"generated from a {BLOCK:,}-byte pseudo-random block; archiver max_bytes {args.max_bytes:,}", flush=True)
        t = time.perf_counter()
        expected = expected_sha1(args.size, args.seed)
        print(f"expected payload digest {expected} ({time.perf_counter() - t:.1f} s to compute)", flush=True)
        for i in range(1, args.runs + 1):
            run_dir = work / f"run{i}"
            run_dir.mkdir()
            res = capture(run_dir, url, args)
            m = res["measured"]
            check = verify(res["root"], url, args.size, expected)
            runs.append({
                "run": i, **m.to_json(), "throughput_mb_s": args.size / 1e6 / m.wall_s,
                "peak_rss_goal_mb": GOAL_RSS_MB, "peak_rss_ok": m.max_rss_kb / 1024 < GOAL_RSS_MB,
                "phases": phase_peaks(m.rss_samples), "rss_timeline": m.rss_samples[::4],
                "spool_files_left": res["spool_left"], "verify": check,
                **({"stderr_tail": res["stderr"]} if m.returncode else {}),
            })
            r = runs[-1]
            print(f"\nrun {i}: exit {m.returncode}{' (TIMED OUT)' if m.timed_out else ''}")
            rows = [["wall s", f"{m.wall_s:.1f}"], ["throughput MB/s", f"{r['throughput_mb_s']:.0f}"],
                    ["CPU s (user+sys)", f"{m.cpu_s:.1f} ({m.user_s:.1f}+{m.sys_s:.1f})"],
                    ["peak RSS MB", f"{m.max_rss_kb / 1024:.0f} (goal < {GOAL_RSS_MB}: "
                                    f"{'met' if r['peak_rss_ok'] else 'NOT met'})"],
                    *[[f"  peak RSS in phase '{k}'", f"{v['peak_rss_mb']:.0f} MB ({v['from_s']:.1f}-{v['to_s']:.1f} s)"]
                      for k, v in r["phases"].items()],
                    ["WARC bytes", f"{check['warc_bytes']:,}"],
                    ["payload length", f"{check['payload_length']:,}" if "payload_length" in check else "NOT FOUND"],
                    ["length exactly --size", str(check.get("length_exact"))],
                    ["WARC-Truncated", check.get("warc_truncated") or "(none)"],
                    ["WARC-Payload-Digest = recomputed", str(check.get("digest_header_matches_payload"))],
                    ["payload = what the server sent", str(check.get("payload_matches_what_server_sent"))],
                    ["warcio check_digests passed", str(check.get("warcio_digest_check_passed"))],
                    ["CDXJ digest matches", str(check["cdxj_digest_matches"])],
                    ["read-back verify s", f"{check['verify_s']:.1f}"],
                    ["spool files left in TMPDIR", str(len(res["spool_left"]))],
                    ["record verified", "OK" if check["ok"] else "FAILED"]]
            print(table(rows, ["", "archiver"]))
            if m.returncode:
                print(res["stderr"][-1500:])
            if not args.keep:
                shutil.rmtree(run_dir, ignore_errors=True)
        result = {"benchmark": "stream_1gb", "environment": environment(),
                  "archiver_src": str(args.archiver_src or REPO),
                  "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                  "size": args.size, "expected_digest": expected, "runs": runs,
                  "time": time.strftime("%Y-%m-%d %H:%M:%S %z")}
        path = write_results("stream_1gb", result)
        print(f"\nJSON: {path}")
        return 0 if all(r["verify"]["ok"] and r["returncode"] == 0 for r in runs) else 1
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
