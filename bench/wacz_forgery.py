#!/usr/bin/env python3
"""Forged exports against ``archiver verify OUT.wacz``, before and after a change.

For every archiver source given with --archiver-src (default: this repository), in a
child process of its own: a genuine evidence packet is made by that source (tests/forge.py,
loaded from this repository onto that source's tests package: a keyed archive, a local
news site, two captures of an article, ``archiver export --article``), forged as an
adversary would (every hash that needs no key recomputed; tests/test_forgery.py runs the
same forgeries), and each package verified by that source. A source that knows ``--key``
is given ``--key archive.key.pub``; an older one is run as it was used, without it.

Printed per forgery and source: exit status and the first line verify printed about a
problem (or its OK line). Exit status 0 on a forgery means it passed as genuine.

Usage: python bench/wacz_forgery.py [--archiver-src PATH ...]
Results: a table on stdout and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, environment, table, write_results  # noqa: E402


def load(src: Path):
    """The forge helpers over the archiver and tests package of src."""
    import importlib.util

    sys.path.insert(0, str(src))
    importlib.import_module("tests")  # src's, for forge.py's relative imports

    spec = importlib.util.spec_from_file_location("tests.forge", REPO / "tests" / "forge.py")
    forge = importlib.util.module_from_spec(spec)
    sys.modules["tests.forge"] = forge
    spec.loader.exec_module(forge)
    return forge


ORIGINAL, FORGED = b"The office will employ 12 people", b"The office will employ 95 people"


def _report(members):
    members["report/provenance.html"] = members["report/provenance.html"].replace(b"A changed headline",
                                                                                  b"An innocent headline")


def forgeries(forge, archive_key, fresh):
    """name -> members -> forged members."""
    WARC, resign, rewrite_records = forge.WARC, forge.resign, forge.rewrite_records

    def _text(members, ledger: str = "kept"):
        rewrite_records(members, lambda record: record.replace(ORIGINAL, FORGED))
        if ledger != "kept":
            forge.rehash_ledger(members, relink=ledger == "relinked")

    return {
        "genuine export": lambda m: m,
        "(a) report edited, hashes recomputed, signature dropped": lambda m: (_report(m), resign(m, None))[1],
        "(b) report edited, signed with a fresh key": lambda m: (_report(m), resign(m, fresh))[1],
        "(c) article text edited, digests/index/ledger entries rehashed, signed with a fresh key":
            lambda m: (_text(m, "rehashed"), resign(m, fresh))[1],
        "(c) the same, signed with the archive's own key": lambda m: (_text(m, "rehashed"), resign(m, archive_key))[1],
        "(c') text edited, ledger untouched, archive's key": lambda m: (_text(m, "kept"), resign(m, archive_key))[1],
        "(c'') text edited, whole chain relinked, archive's key":
            lambda m: (_text(m, "relinked"), resign(m, archive_key))[1],
        "(d) no WARC, signed with a fresh key": lambda m: (m.pop(WARC), resign(m, fresh))[1],
        "(d) no WARC, signed with the archive's own key": lambda m: (m.pop(WARC), resign(m, archive_key))[1],
        "(e) response WARC-Date changed, index rebuilt, archive's key":
            lambda m: (rewrite_records(m, forge.redated), resign(m, archive_key))[1],
    }


def verify(path: Path, src: Path, root: Path) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-m", "archiver", "verify", str(path)]
    done = subprocess.run(cmd + ["--key", "archive.key.pub"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=600)
    how = "--key archive.key.pub"
    if done.returncode == 2 and "unrecognized arguments" in done.stderr:
        done, how = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600), "(no --key)"
    lines = done.stdout.splitlines() or done.stderr.splitlines() or [""]
    return done.returncode, how, lines[0][:150]


def run_one(src: Path) -> list[dict]:
    forge = load(src)
    from archiver.archive.keys import generate_key, load_key

    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-forgery-") as tmp:
        config, out = forge.build_evidence(Path(tmp))
        fresh = generate_key(Path(tmp) / "fresh.key")
        for name, make in forgeries(forge, load_key(config.evidence.key), fresh).items():
            path = Path(tmp) / "forged.wacz"
            forge.write_members(path, make(forge.read_members(out)))
            code, how, first = verify(path, src, config.root)
            runs.append({"forgery": name, "src": str(src), "verify": how, "exit": code, "first_line": first})
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archiver-src", action="append", type=Path, metavar="PATH",
                        help="a folder holding the archiver package to verify with (repeatable; default: this repo)")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # the child's run over one source
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one)))
        return
    results = {"environment": environment(), "runs": []}
    for src in [p.resolve() for p in (args.archiver_src or [REPO])]:
        child = subprocess.run([sys.executable, __file__, "--one", str(src)], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(src)}, timeout=1800)
        if child.returncode != 0:
            sys.exit(f"the run over {src} failed:\n{child.stderr[-2000:]}")
        results["runs"] += json.loads(child.stdout.splitlines()[-1])
    rows = [[r["forgery"], r["src"], r["verify"], str(r["exit"]), r["first_line"]] for r in results["runs"]]
    print(table(rows, ["package", "archiver source", "verify", "exit", "first line"]))
    print(f"results: {write_results('wacz_forgery', results)}")


if __name__ == "__main__":
    main()
