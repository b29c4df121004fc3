"""Thin command line: parse arguments, call the library, print, map errors to exit codes.

Data goes to stdout, progress and logs to stderr. Exit 0 success, 1 failure,
2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Callable

from . import __version__
from .catalog import iter_rows
from .config import load_config
from .errors import ArchiverError, ConfigError, UsageError
from .pipeline import Archive, FetchResult, SnapshotSummary, open_catalog, reindex, snapshot
from .seeds import load_seeds

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="archiver: %(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except (UsageError, ConfigError) as e:
        print(f"archiver: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ArchiverError as e:
        print(f"archiver: error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("archiver: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archiver",
        description="Evidence-grade web archiver: capture articles, their READ cross-references "
                    "and page requisites into WARC files. An archive is a folder holding config.toml.")
    parser.add_argument("--version", action="version", version=f"archiver {__version__}")
    parser.add_argument("--config", type=Path, metavar="PATH",
                        help="config file (default: ./config.toml; relative paths in it resolve against its folder)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="create an archive folder (config.toml, seeds/, warcs/)")
    p.add_argument("dir", nargs="?", type=Path, default=Path("."), help="folder to create (default: .)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("snapshot", help="capture URLs now, with their cross-references and requisites",
                       description="Capture each URL (default: every URL in seeds/*.txt), the pages its "
                                   "article body cross-references (READ boxes, editorial links) and every "
                                   "page's requisites, into a new WARC file. Exit 1 if no response could be "
                                   "obtained for a seed.")
    p.add_argument("urls", nargs="*", metavar="URL", help="http(s) URLs to capture (default: all seeds)")
    _output_flags(p, "one JSON line per fetched URL on stdout")
    p.set_defaults(func=cmd_snapshot)

    p = sub.add_parser("captures", help="list captures in the catalog")
    p.add_argument("url", nargs="?", help="only captures of this URL or of this seed")
    _output_flags(p, "one JSON object per capture, as a JSON array")
    p.set_defaults(func=cmd_captures)

    p = sub.add_parser("reindex", help="rebuild the catalog and CDXJ index from the WARC files")
    _output_flags(p, "print the counts as JSON")
    p.set_defaults(func=cmd_reindex)

    p = sub.add_parser("demo", help="offline demo: capture a built-in local site, edit it, capture again")
    p.add_argument("--dir", type=Path, help="archive folder to create (default: a new temporary folder)")
    _output_flags(p, "one JSON line per fetched URL on stdout")
    p.set_defaults(func=cmd_demo)
    return parser


def _output_flags(p: argparse.ArgumentParser, json_help: str) -> None:
    p.add_argument("--json", action="store_true", help=json_help)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _progress(args: argparse.Namespace) -> Callable[[FetchResult], None]:
    def report(r: FetchResult) -> None:
        if args.json:
            print(json.dumps(r.to_json()), flush=True)
        if not args.quiet:
            status = r.status if r.status is not None else "---"
            extra = f"  ({r.error})" if r.error else ""
            print(f"  {status} {r.record:8} {r.role:9} {r.url}{extra}", file=sys.stderr, flush=True)
    return report


def cmd_init(args: argparse.Namespace) -> int:
    from .workdir import init_archive
    path = init_archive(args.dir)
    print(f"created archive in {args.dir.resolve()} ({path.name}, seeds/, warcs/)")
    return EXIT_OK


def cmd_snapshot(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    urls = args.urls or [s.url for s in load_seeds(config.seeds_dir)]
    if not urls:
        raise UsageError(f"no URL given and no seeds in {config.seeds_dir}")
    archive = Archive(config)
    try:
        summary = snapshot(archive, urls, _progress(args))
    finally:
        archive.close()
    if not args.json:
        _print_summary(summary)
    for seed in summary.failed_seeds:
        print(f"archiver: no response for seed {seed}", file=sys.stderr)
    return EXIT_FAILURE if summary.failed_seeds else EXIT_OK


def _print_summary(summary: SnapshotSummary) -> None:
    by_record: dict[str, int] = {}
    for r in summary.results:
        by_record[r.record] = by_record.get(r.record, 0) + 1
    counts = ", ".join(f"{n} {k}" for k, n in sorted(by_record.items()))
    print(f"captured {len(summary.results)} URLs for {len(summary.seeds_ok)} seed(s): {counts}")
    for warc in summary.warcs:
        print(f"  {warc}")


def cmd_captures(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    catalog = open_catalog(config)
    try:
        rows = catalog.captures(args.url)
    finally:
        catalog.close()
    if args.json:
        print(json.dumps(list(iter_rows(rows)), indent=1))
        return EXIT_OK
    for r in rows:
        status = r.status if r.status is not None else "---"
        print(f"{r.fetched_at}  {status}  {r.record:8} {r.role:9} {r.url}  {r.warc}@{r.offset}")
    return EXIT_OK


def cmd_reindex(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    on_file = (lambda name: None) if args.quiet else (lambda name: print(f"  indexing {name}", file=sys.stderr))
    files, captures = reindex(config, on_file)
    if args.json:
        print(json.dumps({"warc_files": files, "captures": captures}))
    else:
        print(f"reindexed {captures} captures from {files} WARC files")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    directory = args.dir or Path(tempfile.mkdtemp(prefix="archiver-demo-"))
    if not args.quiet:
        print(f"demo archive: {directory}", file=sys.stderr)
    first, second = run_demo(directory, _progress(args))
    if args.json:
        return EXIT_OK
    for label, summary in (("first capture", first), ("after the edit", second)):
        print(f"{label}:")
        _print_summary(summary)
    warc_dir = directory.resolve() / "warcs"
    print(f"\nWARC files are in {warc_dir}\nReplay them with pywb (pip install 'archiver[replay]'):\n"
          f"  wb-manager init demo && wb-manager add demo {warc_dir}/*.warc.gz && wayback\n"
          f"  then open http://localhost:8080/demo/  -- or drop a .warc.gz on https://replayweb.page")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
