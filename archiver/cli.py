"""Thin command line: parse arguments, call the library, print, map errors to exit codes.

Data goes to stdout, progress and logs to stderr. Exit 0 success, 1 failure,
2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import signal
import sqlite3
import threading
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, NoReturn

from archiver import library
from archiver.version import __version__
from archiver.archive.keys import fingerprint
from archiver.archive.workdir import apply_storage_mode
from archiver.archive.writer import FetchResult, SnapshotSummary
from archiver.catalog import iter_rows
from archiver.config import CONFIG_NAME
from archiver.demo import run_demo
from archiver.edits.report import (LAYOUT, change_text, diff_html, diff_json, diff_text,
                                   history_json, history_text, json_text, replay_url, visible)
from archiver.errors import ArchiverError, ConfigError, UsageError, os_error_text
from archiver.page.article import EXTRACTOR_VERSION
from archiver.replay.pywb import COLLECTION
from archiver.seeds import normalize_url

log = logging.getLogger("archiver")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXTRACTOR = f"archiver/{EXTRACTOR_VERSION}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:  # as logging.basicConfig, with server text made inert
        setup_logging("text")
    apply_storage_mode()  # the default until a config says otherwise: archiver init, demo
    try:
        return args.func(args)
    except (UsageError, ConfigError) as e:
        print(f"archiver: error: {visible(str(e), LAYOUT)}", file=sys.stderr)
        return EXIT_USAGE
    except ArchiverError as e:
        print(f"archiver: error: {visible(str(e), LAYOUT)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("archiver: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head or less that quit early
        sys.stderr.close()
        return EXIT_OK
    except OSError as e:  # the disk failed under us, or a file named is not there: one line, not a traceback
        print(f"archiver: error: {visible(os_error_text(e), LAYOUT)}", file=sys.stderr)
        return EXIT_FAILURE
    except sqlite3.Error as e:  # the catalog failed under us
        print(f"archiver: error: catalog: {type(e).__name__}: {visible(str(e))}", file=sys.stderr)
        return EXIT_FAILURE


def open_archive(args: argparse.Namespace) -> library.Archive:
    """The archive --config names (default: ./config.toml), its [storage] mode applied to
    what this process creates."""
    return library.open(args.config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archiver",
        description="Evidence-grade web archiver: capture articles, their READ cross-references "
                    "and page requisites into WARC files. An archive is a folder holding config.toml.")
    parser.add_argument("--version", action="version", version=f"archiver {__version__}")
    parser.add_argument("--config", type=Path, metavar="PATH",
                        help="config file (default: ./config.toml; relative paths in it resolve against its folder)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, **kwargs) -> argparse.ArgumentParser:
        """A subcommand whose --help starts with its one-line help when it has no longer description."""
        kwargs.setdefault("description", help[0].upper() + help[1:] + ".")
        return sub.add_parser(name, help=help, **kwargs)

    p = command("init", help="create an archive folder (config.toml, seeds/, warcs/)")
    p.add_argument("dir", nargs="?", type=Path, default=Path("."), help="folder to create (default: .)")
    p.set_defaults(func=cmd_init)

    p = command("snapshot", help="capture URLs now, with their cross-references and requisites",
                description="Capture each URL (default: every URL in seeds/*.txt), the pages its "
                            "article body cross-references (READ boxes, editorial links) and every "
                            "page's requisites, into a new WARC file. Exit 1 if no response could be "
                            "obtained for a seed.")
    p.add_argument("urls", nargs="*", metavar="URL", help="http(s) URLs to capture (default: all seeds)")
    _output_flags(p, "one JSON line per fetched URL on stdout")
    p.set_defaults(func=cmd_snapshot)

    p = command("captures", help="list captures in the catalog")
    p.add_argument("url", nargs="?", help="only captures of this URL or of this seed")
    _output_flags(p, "one JSON object per capture, as a JSON array")
    p.set_defaults(func=cmd_captures)

    p = command("reindex", help="rebuild the catalog and CDXJ index from the WARC files")
    _output_flags(p, "print the counts as JSON")
    p.set_defaults(func=cmd_reindex)

    p = command("history", help="versions of a tracked article, oldest first, with suspect captures",
                description="Versions of a tracked URL (keyed on the URL you track, whatever it "
                            "redirects to), with what changed in each and the suspect captures "
                            "(errors, bot challenges, empty pages) that were not taken as versions.")
    p.add_argument("url", metavar="URL")
    p.add_argument("--json", action="store_true", help="a JSON array of versions and suspect captures")
    p.set_defaults(func=cmd_history)

    p = command("diff", help="what changed between two versions of an article",
                description="Compare two versions (default: the last two). Text output is a "
                            "coloured word-level diff on a terminal.")
    p.add_argument("url", metavar="URL")
    p.add_argument("--from", dest="old", type=int, metavar="N", help="older version number")
    p.add_argument("--to", dest="new", type=int, metavar="N", help="newer version number")
    p.add_argument("--format", choices=("text", "json", "html"), default="text")
    p.add_argument("--json", action="store_const", const="json", dest="format", help="same as --format json")
    p.set_defaults(func=cmd_diff)

    p = command("changes", help="feed of change events across all tracked articles",
                description="Change events (edits, deletions, restorations, redirects) since WHEN; "
                            "also rewrites the Atom feed file named in config.toml.")
    p.add_argument("--since", metavar="WHEN", default="7d",
                   help="an ISO date-time or a duration back from now such as 7d, 12h (default: 7d)")
    p.add_argument("--json", action="store_true", help="one JSON line per change event")
    p.set_defaults(func=cmd_changes)

    p = command("reextract", help="re-run the article extractor over stored captures and rebuild versions",
                description="Re-run the current extractor over the WARC payloads (no network) and "
                            "rebuild versions and change events, so an improved extractor never "
                            "shows up as edits.")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_reextract)

    p = command("add", help="track a URL: append it to a seed file",
                description="Append URL to seeds/added.txt (or --to FILE); archiver run picks it up.")
    p.add_argument("url", metavar="URL")
    p.add_argument("--every", metavar="INTERVAL", help="recapture interval such as 30m, 6h, 1d (default: adaptive)")
    p.add_argument("--cron", metavar="EXPR", help='a crontab expression such as "0 */6 * * *" instead of --every')
    p.add_argument("--tag", action="append", default=[], metavar="TAG", help="a tag (repeatable)")
    p.add_argument("--to", type=Path, metavar="FILE", help="seed file to append to (default: seeds/added.txt)")
    p.set_defaults(func=cmd_add)

    p = command("follow", help="follow a site: its feed, sitemap or front page brings new articles in",
                description="Find the feeds and sitemaps of URL (a page or a site: <link rel=alternate>, robots.txt "
                            "Sitemap lines, the usual paths), or take URL as --kind says, and append it to "
                            "seeds/follow.txt with follow=KIND; archiver run then tracks every new article it lists.")
    p.add_argument("url", metavar="URL")
    p.add_argument("--kind", choices=("auto", "feed", "sitemap", "front"), default="auto",
                   help="what URL is (default: auto, found by discovery)")
    p.add_argument("--every", metavar="INTERVAL", help="how often the source is read (default: [follow] every)")
    p.add_argument("--tag", action="append", default=[], metavar="TAG",
                   help="a tag, given to its articles too (repeatable)")
    p.add_argument("--match", metavar="REGEX", help="track only article URLs this regular expression finds")
    p.add_argument("--max-per-run", type=int, metavar="N",
                   help="most new articles per reading (default: [follow] max_per_run)")
    p.add_argument("--to", type=Path, metavar="FILE", help="seed file to append to (default: seeds/follow.txt)")
    p.add_argument("--json", action="store_true", help="a JSON array of the sources followed")
    p.set_defaults(func=cmd_follow)

    p = command("notify", help="notification targets: archiver notify test sends a sample event to each")
    p.add_argument("action", choices=("test",), help="test: send a sample change event to every [notify] target")
    p.add_argument("--json", action="store_true", help="one JSON object per target")
    p.set_defaults(func=cmd_notify)

    p = command("remove", help="stop tracking a URL: remove it from the seed file that holds it")
    p.add_argument("url", metavar="URL")
    p.set_defaults(func=cmd_remove)

    p = command("list", help="tracked URLs with their schedule, next due time and last result")
    p.add_argument("--json", action="store_true", help="a JSON array")
    p.set_defaults(func=cmd_list)

    p = command("run", help="the recapture service: capture every tracked URL when it is due",
                description="Run in the foreground (for systemd, a container or a terminal) until "
                            "SIGTERM or SIGINT. Due times are kept in the catalog: after a restart, "
                            "whatever is overdue is captured once, soon after start.")
    p.add_argument("--once", action="store_true", help="capture everything due now, then exit (for cron and tests)")
    p.add_argument("--json", action="store_true", help="one JSON line per fetched URL on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-URL progress on stderr")
    p.set_defaults(func=cmd_run)

    p = command("status", help="tracked and due URLs, running captures, failing hosts, WARC disk use")
    p.add_argument("--json", action="store_true", help="a JSON object")
    p.set_defaults(func=cmd_status)

    p = command("keygen", help="create the archive's signing key (ECDSA P-256, file mode 0600)")
    p.set_defaults(func=cmd_keygen)

    p = command("export", help="a signed WACZ of selected captures, or an article's evidence packet",
                description="archiver export --wacz OUT.wacz [URL...] [--since WHEN]: the captures of "
                            "these URLs (all when none), with the originals of their revisits, a CDXJ "
                            "index, pages.jsonl and the ledger entries with the latest checkpoint. "
                            "archiver export --article URL OUT.wacz: all captures of one tracked "
                            "article and its cross-referenced pages, with a provenance report (HTML).")
    p.add_argument("--wacz", type=Path, metavar="OUT", help="the WACZ file to write")
    p.add_argument("--article", metavar="URL", help="one tracked article's evidence packet")
    p.add_argument("--since", metavar="WHEN", help="only captures since an ISO date-time or a duration (7d)")
    p.add_argument("args", nargs="*", metavar="URL|OUT", help="URLs to export (with --wacz), or OUT (with --article)")
    p.set_defaults(func=cmd_export)

    p = command("verify", help="check digests, record pairs, revisits, catalog, ledger chain and signatures",
                description="Check every WARC record's digests, that requests and responses pair up, that "
                            "revisits resolve, that the catalog points at matching records, the ledger "
                            "chain and its signed checkpoints. Exit 1 with file and offset of each problem. "
                            "With FILE.wacz: check an export on its own, against the key given with --key.")
    p.add_argument("wacz", nargs="?", type=Path, metavar="FILE.wacz",
                   help="check an exported WACZ on its own instead of the archive")
    p.add_argument("--key", metavar="PATH|FINGERPRINT",
                   help="the key FILE.wacz must be signed with: archive.key.pub, or its sha256: fingerprint")
    p.add_argument("--any-key", action="store_true",
                   help="accept FILE.wacz signed by any key (the result names it)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=cmd_verify)

    p = command("replay", help="serve the archive with pywb and print replay links (extra: replay)",
                description="Start pywb over warcs/ and indexes/ (pip install 'archiver[replay]') and "
                            "print, for each tracked article, the replay URL of its latest capture. "
                            "Runs until Ctrl-C or SIGTERM. Files still being written (.open) are not "
                            "replayable until they are closed.")
    p.add_argument("--port", type=int, help="port to listen on (default: [replay] port)")
    p.add_argument("--host", help="address to listen on (default: [replay] host)")
    p.set_defaults(func=cmd_replay)

    p = command("serve", help="web interface: tracked articles, histories, diffs, changes, replay",
                description="Serve a web interface over the archive (server-rendered, no JavaScript) and, "
                            "on [serve] replay_port, its captures replayed by pywb (pip install "
                            "'archiver[web]'). Runs until Ctrl-C or SIGTERM. A non-loopback --host needs "
                            "[serve] token, which every request must then carry.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, help="port of the interface (default: [serve] port, 8000)")
    p.set_defaults(func=cmd_serve)

    p = command("demo", help="offline demo: capture a built-in local site, edit it, capture again")
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
            print(visible(f"  {status} {r.record:8} {r.role:9} {r.url}{extra}"), file=sys.stderr, flush=True)
    return report


def cmd_init(args: argparse.Namespace) -> int:
    library.init(args.dir)
    print(f"created archive in {args.dir.resolve()} ({CONFIG_NAME}, seeds/, warcs/)")
    return EXIT_OK


def cmd_snapshot(args: argparse.Namespace) -> int:
    summary = open_archive(args).snapshot(args.urls or None, _progress(args))
    if not args.json:
        _print_summary(summary)
    for seed in summary.failed_seeds:
        print(f"archiver: no response for seed {seed}", file=sys.stderr)
    return EXIT_FAILURE if summary.failed_seeds else EXIT_OK


def _print_summary(summary: SnapshotSummary) -> None:
    last = summary.last_fetches()
    by_record: dict[str, int] = {}
    for r in last.values():
        by_record[r.record] = by_record.get(r.record, 0) + 1
    counts = ", ".join(f"{n} {k}" for k, n in sorted(by_record.items()))
    fetches = len(summary.results) - summary.confirmations
    attempts = f" ({fetches} attempts)" if fetches > len(last) else ""
    confirmed = summary.confirmations
    confirming = f"; {confirmed} page(s) fetched again to confirm a change" if confirmed else ""
    print(f"captured {len(last)} URL{'' if len(last) == 1 else 's'} for {len(summary.seeds_ok)} seed(s): "
          f"{counts}{attempts}{confirming}")
    for warc in summary.warcs:
        print(f"  {warc}")


def cmd_captures(args: argparse.Namespace) -> int:
    rows = open_archive(args).captures(args.url)
    if args.json:
        print(json.dumps(list(iter_rows(rows)), indent=1))
        return EXIT_OK
    for r in rows:
        status = r.status if r.status is not None else "---"
        print(visible(f"{r.fetched_at}  {status}  {r.record:8} {r.role:9} {r.url}  {r.warc}@{r.offset}"))
    return EXIT_OK


def cmd_reindex(args: argparse.Namespace) -> int:
    on_file = (lambda name: None) if args.quiet else (lambda name: print(f"  indexing {name}", file=sys.stderr))
    result = open_archive(args).reindex(on_file)
    for d in result.damaged:
        print(f"archiver: {d.warc}: damaged (truncated or corrupt) from byte {d.readable} of {d.size}: read "
              f"{d.records} whole records, kept their {d.captures} captures; the rest cannot be read", file=sys.stderr)
    if args.json:
        print(json.dumps({"warc_files": result.files, "captures": result.captures,
                          "damaged": [vars(d) for d in result.damaged]}))
    else:
        print(f"reindexed {result.captures} captures from {result.files} WARC files"
              + (f"; {len(result.damaged)} damaged" if result.damaged else ""))
    return EXIT_FAILURE if result.damaged else EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    archive = open_archive(args)
    url = normalize_url(args.url)
    history, base = archive.history(url), archive.config.replay.base
    print(json.dumps(history_json(history, url, base), indent=1) if args.json else history_text(url, history, base))
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    archive = open_archive(args)
    d = archive.diff(args.url, args.old, args.new)
    if args.format == "json":
        print(json_text(diff_json(d, archive.config.replay.base), indent=1))
    elif args.format == "html":
        sys.stdout.write(diff_html(d))
    else:
        print(diff_text(d, color=sys.stdout.isatty()))
    return EXIT_OK


def cmd_changes(args: argparse.Namespace) -> int:
    events = open_archive(args).changes(args.since)
    for event in events:
        print(json_text(event) if args.json else change_text(event))
    if not events and not args.json:
        print(f"no changes since {args.since}", file=sys.stderr)
    return EXIT_OK


def cmd_reextract(args: argparse.Namespace) -> int:
    on_url = (lambda url: None) if args.quiet else (lambda url: print(f"  {url}", file=sys.stderr))
    count = open_archive(args).reextract(on_url)
    print(f"re-extracted {count} tracked URL(s) with {EXTRACTOR}")
    return EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    added = open_archive(args).add(args.url, args.every, args.cron, args.tag, args.to)
    print(f"tracking {added.seed.url} ({added.schedule.describe()}) in {added.file}")
    return EXIT_OK


def cmd_follow(args: argparse.Namespace) -> int:
    archive = open_archive(args)
    found = archive.follow(args.url, args.kind, args.every, args.tag, args.match, args.max_per_run, args.to)
    if args.json:
        print(json.dumps([{"url": url, "follow": kind} for url, kind in found]))
    every = args.every or archive.config.follow.every
    for url, kind in found:
        print(visible(f"following {url} ({kind}, every {every})"), file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


def cmd_notify(args: argparse.Namespace) -> int:
    results = open_archive(args).notify_test()
    for target, error in results:
        if args.json:
            print(json_text({"target": target.label, "ok": not error, "error": error}))
        else:
            print(f"{target.label}: {'sent' if not error else 'FAILED: ' + error}")
    return EXIT_FAILURE if any(error for _, error in results) else EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    changed = open_archive(args).remove(args.url)
    print(f"removed {normalize_url(args.url)} from {', '.join(str(p) for p in changed)}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    archive = open_archive(args)
    rows = archive.tracked()
    if args.json:
        print(json.dumps(rows, indent=1))
        return EXIT_OK
    for r in rows:
        print(visible(f"{r['url']}\n    {r['schedule']}; next due {r['next_due'] or 'now'}; "
                      f"last capture {r['last_capture'] or 'never'} ({r['last_result'] or '-'})"
                      + (f"; tags {', '.join(r['tags'])}" if r["tags"] else "")
                      + (f"; follows it as a {r['follow']} source" if r["follow"] else ""), LAYOUT))
    if not rows:
        print(f"no tracked URLs: add some with archiver add URL (or list them in {archive.config.seeds_dir}/*.txt)",
              file=sys.stderr)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    archive = open_archive(args)
    config = archive.config
    setup_logging(config.schedule.log_format)
    runner = archive.runner(on_result=_progress(args))
    if args.once:
        count = runner.run_once()
        print(f"dispatched {count} due URL(s)", file=sys.stderr)
        return EXIT_OK
    log.info("archiver %s running on %s (tick %ss); stop with SIGTERM or Ctrl-C",
             __version__, config.root, config.schedule.tick)
    runner.run_forever()
    log.info("stopped after dispatching %d URL(s); WARC files closed", runner.dispatched)
    # Everything is stored and closed: leave without waiting for what may still run in
    # other threads (a DNS lookup that never answered, APScheduler's).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_OK)


def cmd_status(args: argparse.Namespace) -> int:
    status = open_archive(args).status()
    if args.json:
        print(json.dumps(status, indent=1))
        return EXIT_OK
    print(f"tracked {status['tracked']}, due now {status['due_now']}, running {status['running']}")
    print(f"WARC files: {status['warc_files']} ({status['warc_bytes'] / 1e6:.1f} MB)")
    for h in status["failing_hosts"]:
        until = f", backed off until {h['backoff_until']}" if h["backoff_until"] else ""
        print(visible(f"  failing host {h['host']}: {h['failures']} failure(s) in a row ({h['last_error']}){until}"))
    for f in status["following"]:
        if f["error"] or f["retraction_signals"]:
            print(visible(f"  followed {f['source']}: {f['error'] or 'read'}; "
                          f"{f['retraction_signals']} entries gone while older ones stayed"))
    n = status["notifications"]
    if n["pending"] or n["failed"]:
        print(f"notifications: {n['pending']} pending, {n['failed']} failed (given up)")
    for f in n["failures"]:
        print(visible(f"  {f['state']} after {f['attempts']} tries: {f['url']} ({f['error']})"))
    return EXIT_OK


def setup_logging(log_format: str) -> None:
    """JSON lines on stderr when it is not a terminal (or when asked), text otherwise."""
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else VisibleFormatter("archiver: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # APScheduler warns each tick a look for due URLs is still running; that is expected.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)


class VisibleFormatter(logging.Formatter):
    """Log lines for a terminal: a server's text in a message cannot act on it."""
    def format(self, record: logging.LogRecord) -> str:
        return visible(super().format(record), LAYOUT)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
                "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if record.exc_info and record.exc_info[1] is not None:
            line["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json_text(line)


def cmd_keygen(args: argparse.Namespace) -> int:
    archive = open_archive(args)
    key, path = archive.keygen(), archive.config.evidence.key
    print(f"created {path} (private, mode 0600) and {path}.pub")
    print(f"public key: {key.public_b64}")
    print(f"fingerprint: {fingerprint(key.public_b64)} (give it, or {path}.pub, to verify --key)")
    print("its creation is recorded in the ledger, signed; checkpoints from now on are signed with it")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    archive = open_archive(args)
    if args.article:
        if len(args.args) != 1 or args.wacz or args.since:
            raise UsageError("use: archiver export --article URL OUT.wacz")
        result = archive.export_article(args.article, args.args[0])
    elif args.wacz:
        result = archive.export(args.wacz, args.args, args.since)
    else:
        raise UsageError("give --wacz OUT.wacz [URL...] or --article URL OUT.wacz")
    print(f"wrote {result.path}: {result.captures} captures, {result.pages} pages, "
          + ("signed" if result.signed else "unsigned (create a key with archiver keygen)"))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    if not args.wacz and (args.key or args.any_key):
        raise UsageError("--key and --any-key are for checking an exported FILE.wacz")
    if args.key and args.any_key:
        raise UsageError("give --key or --any-key, not both")
    if args.wacz:  # a WACZ stands alone
        report = library.verify_export(args.wacz, args.key, args.any_key)
    else:
        report = open_archive(args).verify()
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print_report(report)
    return EXIT_OK if report.ok else EXIT_FAILURE


def print_report(report) -> None:
    for problem in report.problems:
        print(problem)
    if report.unlisted:
        print(f"... and {report.unlisted} more problem(s)")
    counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in report.counts.items())
    total = len(report.problems) + report.unlisted
    print(("OK: " if report.ok else f"FAILED: {total} problem(s); ") + counts)
    if report.signature:
        s = report.signature
        print(f"signed {s['created']} by {s['signer']} {s['fingerprint']}")
    for note in report.notes:
        print(f"note: {note}")
    if report.key:
        k = report.key
        print(f"key {k['public_key'][:24]}... created {k['time']} (ledger entry {k['seq']}), signing the "
              f"{k['count']} entries before it; {report.counts.get('checkpoints_before_key', 0)} "
              "checkpoint(s) before it are unsigned")
    if report.checkpoint:
        c = report.checkpoint
        print(f"latest checkpoint: entry {c['seq']} at {c['time']}, head {c['head']}"
              + (f", signed by {c['public_key'][:24]}..." if c.get("public_key") else ", unsigned"))


def cmd_replay(args: argparse.Namespace) -> int:
    archive = open_archive(args)
    latest = archive.latest()
    with archive.replay(args.host, args.port) as server:
        print(f"pywb is serving {archive.config.storage.warc_dir} at {server.base}/{COLLECTION}/  (Ctrl-C to stop)")
        for row in latest:
            print(f"  {row.seed}\n    {replay_url(server.base, row.fetched_at, row.url)}")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    config = open_archive(args).config
    missing = [name for name in ("flask", "waitress", "pywb") if importlib.util.find_spec(name) is None]
    if missing:
        raise ArchiverError(f"the web interface needs {', '.join(missing)}: pip install 'archiver[web]'")
    from archiver.web import running  # the web extra: its imports only where it is installed
    port = args.port if args.port is not None else config.serve.port
    with running(config, args.host, port) as addresses:
        print(f"archiver serve: {addresses.interface}/  (captures replayed at {addresses.replay}/; Ctrl-C to stop)",
              flush=True)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
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
          f"  then open http://localhost:8080/demo/  -- or drop a .warc.gz on https://replayweb.page\n"
          f"or, with pywb installed: archiver --config {directory.resolve()}/config.toml replay\n"
          f"Check the archive (digests, ledger, signed checkpoints): "
          f"archiver --config {directory.resolve()}/config.toml verify")
    [url] = second.histories
    print(f"\nThe edit, as `archiver diff {url}` shows it:\n")
    print(diff_text(library.open(directory).diff(url), color=sys.stdout.isatty()))
    print(f"\nRead it in a browser (pip install 'archiver[web]'):\n"
          f"  archiver --config {directory.resolve()}/config.toml serve\n"
          f"  then open http://127.0.0.1:8000/")
    return EXIT_OK


def run() -> NoReturn:
    """The console script."""
    sys.exit(main())
