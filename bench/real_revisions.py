#!/usr/bin/env python3
"""Real before/after revisions through archiver's history and diff, as a user sees them.

Each pair of ../shared/corpus/revisions/web-monitoring-diff/ (two captures of one real
page, days apart) is served from a local server at one URL: the older version, then the
newer one. archiver snapshots the URL once per version (with [detect] confirm on, the
newer version is fetched twice, as a changed page is), and the script prints what
``archiver history`` and ``archiver diff`` print for it, for a person to judge.

Usage: python bench/real_revisions.py [--corpus ../shared/corpus]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, OneBody  # noqa: E402

from archiver.archive.writer import Writer  # noqa: E402
from archiver.config import load_config  # noqa: E402
from archiver.pipeline import snapshot  # noqa: E402
from archiver.archive.workdir import init_archive  # noqa: E402


def pairs(corpus: Path) -> list[tuple[str, Path, Path]]:
    folder = corpus / "revisions" / "web-monitoring-diff"
    stems = sorted({p.name.split("_v")[0] for p in folder.glob("*_v1_*.html")})
    return [(s, next(folder.glob(f"{s}_v1_*")), next(folder.glob(f"{s}_v2_*"))) for s in stems]


def run_pair(stem: str, v1: Path, v2: Path, work: Path) -> str:
    server = OneBody()
    try:
        root = work / stem
        init_archive(root, overrides={"per_host_delay": "0.0", "confirm_delay": "0.5", "requisites": "false",
                                      "depth": "0"})
        config = load_config(root / "config.toml")
        url = f"{server.base}/{stem}/"
        for version in (v1, v2):
            server.body = version.read_bytes()
            archive = Writer(config)
            try:
                snapshot(archive, [url])
            finally:
                archive.close()
        cli = [sys.executable, "-m", "archiver", "--config", str(root / "config.toml")]
        history = subprocess.run([*cli, "history", url], capture_output=True, text=True).stdout
        diff = subprocess.run([*cli, "diff", url], capture_output=True, text=True).stdout
        return f"==== {stem}\n{history}\n{diff}"
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    args = parser.parse_args()
    if not (args.corpus / "revisions").is_dir():
        sys.exit(f"no corpus at {args.corpus} (see ../shared/corpus/README.md)")
    with tempfile.TemporaryDirectory() as work:
        for stem, v1, v2 in pairs(args.corpus):
            print(run_pair(stem, v1, v2, Path(work)))


if __name__ == "__main__":
    main()
