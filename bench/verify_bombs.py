#!/usr/bin/env python3
"""``archiver verify OUT.wacz`` on crafted packages: peak memory, time and temporary disk,
before and after a change.

The packages (tests/hostile.py; small on disk, huge once expanded) are made from one
genuine evidence packet (tests/forge.py): a 2 GiB datapackage.json deflated to 2 MB; a
zip bomb (the WARC member deflated, 2 GiB of zeros); a gzip bomb (the WARC stored, with a
valid record of 2 GiB of zeros, digest and CRC right); a WARC head that is one 1 GiB line;
a central directory of 200,000 files. Each is verified by every archiver source given
with --archiver-src (default: this repository) as

    /usr/bin/time -f %M python -m archiver verify FILE [--key archive.key.pub]

(--key only where the source knows it), with TMPDIR a fresh folder whose size is sampled
every 0.2 s. Printed per package and source: exit status, wall time, peak RSS (GNU time's
%M), peak size of the temporary folder, and the first line verify printed.

Usage: python bench/verify_bombs.py [--archiver-src PATH ...] [--timeout SECONDS]
Results: a table on stdout and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, environment, run_measured, stop_on_sigterm, table, write_results  # noqa: E402

sys.path.insert(0, str(REPO))
from tests import hostile  # noqa: E402
from tests.forge import build_evidence, read_members  # noqa: E402

CRAFTS = {
    "genuine export": lambda path, members: shutil.copy(members["__path__"], path),
    "datapackage.json of 2 GiB (deflated)": hostile.huge_datapackage,
    "zip bomb: WARC member deflated, 2 GiB": hostile.zip_bomb,
    "gzip bomb: WARC record of 2 GiB zeros": hostile.gzip_bomb,
    "WARC head: one line of 1 GiB": hostile.endless_head,
    "central directory of 200,000 files": hostile.many_files,
}


def folder_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def knows_key(src: Path) -> bool:
    return (src / "archiver" / "wacz.py").exists()


def verify(path: Path, src: Path, root: Path, timeout: float, work: Path) -> dict:
    tmpdir = Path(tempfile.mkdtemp(dir=work, prefix="tmpdir-"))
    peak = [0]

    def probe() -> str:
        peak[0] = max(peak[0], folder_size(tmpdir))
        return ""

    cmd = [sys.executable, "-m", "archiver", "verify", str(path)] + (["--key", "archive.key.pub"]
                                                                      if knows_key(src) else [])
    out = work / "verify.out"
    with open(out, "wb") as f:
        m = run_measured(cmd, cwd=root, env={**os.environ, "PYTHONPATH": str(src), "TMPDIR": str(tmpdir)},
                         timeout=timeout, stdout=f, sample_rss_every=0.2, probe=probe)
    probe()
    shutil.rmtree(tmpdir, ignore_errors=True)
    first = (out.read_text(errors="replace").splitlines() or [""])[0][:140]
    return {"src": str(src), "exit": m.returncode, "timed_out": m.timed_out, "wall_s": round(m.wall_s, 2),
            "max_rss_mb": round(m.max_rss_kb / 1024, 1), "rss_method": m.rss_method,
            "temp_peak_mb": round(peak[0] / 2**20, 1), "first_line": first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archiver-src", action="append", type=Path, metavar="PATH",
                        help="a folder holding the archiver package to verify with (repeatable; default: this repo)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one verify may take")
    args = parser.parse_args()
    stop_on_sigterm()
    sources = [p.resolve() for p in (args.archiver_src or [REPO])]
    results, rows = {"environment": environment(), "runs": []}, []
    os.environ["PYTHONPATH"] = str(REPO)  # the packet is made by this repository's archiver (run_cli's children)
    with tempfile.TemporaryDirectory(prefix="bench-bombs-") as tmp:
        work = Path(tmp)
        config, genuine = build_evidence(work / "evidence")
        members = {**read_members(genuine), "__path__": genuine}
        for name, craft in CRAFTS.items():
            path = work / "crafted.wacz"
            craft(path, {k: v for k, v in members.items() if k != "__path__"} if name != "genuine export" else members)
            size = path.stat().st_size
            for src in sources:
                run = {"package": name, "file_mb": round(size / 2**20, 2), **verify(path, src, config.root,
                                                                                      args.timeout, work)}
                results["runs"].append(run)
                rows.append([name, f"{run['file_mb']:.2f}", src.name or str(src), str(run["exit"]) +
                             (" (killed)" if run["timed_out"] else ""), f"{run['wall_s']:.1f}",
                             f"{run['max_rss_mb']:.0f}", f"{run['temp_peak_mb']:.0f}", run["first_line"]])
                print(rows[-1], file=sys.stderr, flush=True)
    print(table(rows, ["package", "file MB", "source", "exit", "wall s", "peak RSS MB", "peak TMPDIR MB",
                       "first line"]))
    print(f"results: {write_results('verify_bombs', results)}")


if __name__ == "__main__":
    main()
