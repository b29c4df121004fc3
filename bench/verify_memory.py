#!/usr/bin/env python3
"""Peak RSS of ``archiver verify`` as an archive grows: it must stay bounded.

For each size N (default 10,000 and 50,000): a local site of N small article pages
(distinct bodies, a few links each) served by nginx (or Python's http.server) on
127.0.0.1; an archive made with ``archiver init``, ``archiver keygen`` and
``archiver snapshot`` of the N URLs listed in seeds/, 10,000 per snapshot (politeness
off, depth 0, no requisites: one capture per URL, each a request, a response and a
metadata record, with a ledger entry); then

    /usr/bin/time -f %M python -m archiver verify --json

in the archive, once per archiver source given with --archiver-src (default: this
repository), so the same archive is verified by the code before and after a change.
Printed per size and source: captures, records, wall time and peak RSS of verify (GNU
time's %M), and whether it found the archive sound. The archives are deleted at the end.

Usage: python bench/verify_memory.py [--sizes 10000,50000] [--archiver-src PATH ...]
Results: a table on stdout and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, StaticServer, environment, run_measured, stop_on_sigterm, table, write_results  # noqa: E402

PAGE = ("<!doctype html><html><head><title>Article {n}</title></head><body><nav><a href='/'>home</a></nav>"
        "<article><h1>Article {n}</h1><p>{text}</p><p>See <a href='/p/{m}.html'>article {m}</a> and "
        "<a href='/p/{k}.html'>article {k}</a>.</p></article></body></html>")
# Seeds per snapshot: one snapshot of 50,000 seeds took 333 s here, five of 10,000 take
# about 18 s each.
SNAPSHOT_SEEDS = 10_000
SETTINGS = {"per_host_delay": "0.0", "per_host_concurrency": "8", "concurrency": "8", "depth": "0", "requisites": "false", "retries": "0", "timeout": "10.0"}


def write_site(root: Path, n: int) -> None:
    (root / "p").mkdir(parents=True)
    for i in range(n):
        text = f"Paragraph of article {i}. " * 40
        (root / "p" / f"{i}.html").write_text(PAGE.format(n=i, text=text, m=(i * 7 + 1) % n, k=(i * 13 + 5) % n))


def env_for(src: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(src)}


def build_archive(work: Path, base: str, n: int) -> tuple[Path, float]:
    """An archive of n captures, made by this repository's archiver; (root, seconds)."""
    sys.path.insert(0, str(REPO))
    from archiver.archive.workdir import init_archive

    root = work / f"archive-{n}"
    init_archive(root, overrides=SETTINGS)
    start = time.perf_counter()
    archiver(root, "keygen")
    for first in range(0, n, SNAPSHOT_SEEDS):
        (root / "seeds" / "example.txt").write_text(
            "".join(f"{base}/p/{i}.html\n" for i in range(first, min(n, first + SNAPSHOT_SEEDS))))
        archiver(root, "snapshot", "--quiet")
    return root, time.perf_counter() - start


def archiver(root: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "archiver", *args], cwd=root, env=env_for(REPO), check=True,
                   stdout=subprocess.DEVNULL, timeout=600)


def verify(root: Path, src: Path, timeout: float) -> dict:
    out = root / "verify.json"
    with open(out, "wb") as f:
        m = run_measured([sys.executable, "-m", "archiver", "verify", "--json"], cwd=root, env=env_for(src),
                         timeout=timeout, stdout=f)
    try:
        report = json.loads(out.read_text())
    except ValueError:
        report = {"ok": False, "counts": {}, "problems": []}
    return {"src": str(src), "returncode": m.returncode, "wall_s": round(m.wall_s, 2), "cpu_s": round(m.cpu_s, 2),
            "max_rss_mb": round(m.max_rss_kb / 1024, 1), "rss_method": m.rss_method, "timed_out": m.timed_out,
            "ok": report.get("ok"), "counts": report.get("counts"), "problems": len(report.get("problems", []))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,50000", help="captures per archive, comma-separated")
    parser.add_argument("--archiver-src", action="append", type=Path, metavar="PATH",
                        help="a folder holding the archiver package to verify with (repeatable; default: this repo)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one verify may take")
    args = parser.parse_args()
    stop_on_sigterm()
    sources = [p.resolve() for p in (args.archiver_src or [REPO])]
    sizes = [int(s) for s in args.sizes.split(",")]
    rows, results = [], {"environment": environment(), "sizes": sizes, "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        work = Path(tmp)
        for n in sizes:
            site = work / f"site-{n}"
            write_site(site, n)
            with StaticServer(site, work) as server:
                root, build_s = build_archive(work, server.base, n)
            for src in sources:
                run = {"n": n, "build_s": round(build_s, 1), **verify(root, src, args.timeout)}
                results["runs"].append(run)
                counts = run["counts"] or {}
                rows.append([f"{n:,}", f"{counts.get('captures', '?'):,}", f"{counts.get('records', '?'):,}",
                             str(src), f"{run['wall_s']:.1f}", f"{run['max_rss_mb']:.0f}",
                             "ok" if run["ok"] else f"FAILED ({run['problems']} problems, exit {run['returncode']})"])
                print(rows[-1], file=sys.stderr, flush=True)
    print(table(rows, ["N", "captures", "records", "archiver source", "verify s", "peak RSS MB", "result"]))
    print(f"results: {write_results('verify_memory', results)}")


if __name__ == "__main__":
    main()
