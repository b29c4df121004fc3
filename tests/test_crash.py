"""kill -9 in the middle of a capture never leaves an unreadable archive."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import astuple

import pytest

from archiver.catalog import COLUMNS, Catalog
from archiver.archive.index import warc_captures
from archiver.archive.writer import Writer, open_catalog
from archiver.errors import ArchiverError
from archiver.pipeline import reindex, snapshot
from archiver.evidence.verify import verify_archive
from archiver.archive.locks import WriterLock
from archiver.archive.warcfile import is_live

from .conftest import reported, make_archive, run_cli, run_snapshot, warc_files, warcio_check
from .site import Site

STALL_TIMEOUT = 30


def stalling_handler(stalled: threading.Event, release: threading.Event):
    """Send half of a large body, tell the test, then hang until released."""
    def handler(h):
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(8_000_000))
        h.end_headers()
        h.wfile.write(b"z" * 4_000_000)
        h.wfile.flush()
        stalled.set()
        release.wait(STALL_TIMEOUT)
    return handler


def start_snapshot(config, *urls) -> subprocess.Popen:
    """``archiver snapshot --json``: read its stdout (see ``reported``) or it may block."""
    return subprocess.Popen([sys.executable, "-m", "archiver", "--config", str(config.root / "config.toml"),
                             "snapshot", "--quiet", "--json", *urls],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_catalog_matches_warcs(config):
    catalog = Catalog(config.storage.catalog)
    caps, refs = catalog.captures.dump()
    catalog.close()
    rebuilt = [astuple(row) for path in warc_files(config) for row, _ in warc_captures(path)]
    warc, offset = COLUMNS.index("warc"), COLUMNS.index("offset")
    assert caps == sorted(rebuilt, key=lambda r: (r[warc], r[offset]))
    return caps


@pytest.mark.slow
def test_kill_during_a_stalled_body_then_next_command_repairs(tmp_path):
    site = Site()
    stalled, release = threading.Event(), threading.Event()
    try:
        site.page("/first/", "<html><body><p>first page, captured whole</p></body></html>")
        site.routes["/big"] = stalling_handler(stalled, release)
        config = make_archive(tmp_path / "a", concurrency="1")  # one writer, one torn file
        proc = start_snapshot(config, site.url("/first/"), site.url("/big"))
        first_stored = reported(proc, site.url("/first/"))
        assert stalled.wait(STALL_TIMEOUT), proc.stderr.read() if proc.poll() is not None else "no stall"
        assert first_stored.wait(STALL_TIMEOUT)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        [left_open] = list(config.storage.warc_dir.glob("*.warc.gz.open"))
        result = run_cli("--config", str(config.root / "config.toml"), "captures", "--json")
        assert result.returncode == 0, result.stderr
        assert not list(config.storage.warc_dir.glob("*.open"))
        assert f"repaired {left_open.name.removesuffix('.open')}" in result.stderr
        for path in warc_files(config):
            assert warcio_check(path).returncode == 0
        caps = assert_catalog_matches_warcs(config)
        assert [row[0] for row in caps] == [site.url("/first/")]
    finally:
        release.set()
        site.stop()


def test_torn_tail_record_is_cut_back_to_the_last_whole_group(site, tmp_path):
    """A kill while a record is being written leaves a prefix of its bytes: cut the file
    at points inside the last group and check repair keeps exactly the whole groups."""
    for i in range(3):
        site.page(f"/p{i}", f"<html><body>{'page %d ' % i * 500}</body></html>")
    source = make_archive(tmp_path / "src")  # one file holding every group
    run_snapshot(source, *[site.url(f"/p{i}") for i in range(3)])
    [path] = warc_files(source)
    groups = warc_captures(path)
    last_group_start = groups[-1][0].metadata_offset - 1
    size = path.stat().st_size
    whole_before_last = groups[-2][0].metadata_offset
    for cut in (last_group_start - 600, last_group_start, size - 3):
        config = make_archive(tmp_path / f"cut{cut}")
        torn = config.storage.warc_dir / (path.name + ".open")
        torn.write_bytes(path.read_bytes()[:cut])
        catalog = open_catalog(config)
        rows = catalog.captures.rows()
        catalog.close()
        [repaired] = warc_files(config)
        assert warcio_check(repaired).returncode == 0
        assert repaired.stat().st_size <= cut
        assert len(rows) in (2, 3) and {r.url for r in rows} <= {site.url(f"/p{i}") for i in range(3)}
        assert all(r.metadata_offset < repaired.stat().st_size for r in rows)
        assert repaired.stat().st_size > whole_before_last
        assert_catalog_matches_warcs(config)


@pytest.mark.slow
def test_two_processes_write_the_same_archive_at_once(tmp_path):
    site = Site()
    stalled, release = threading.Event(), threading.Event()
    try:
        site.page("/a/", "<html><body><p>a</p></body></html>")
        site.page("/b/", "<html><body><p>b</p></body></html>")
        site.routes["/slow"] = stalling_handler(stalled, release)
        config = make_archive(tmp_path / "a", concurrency="1")  # one writer, one torn file
        first = start_snapshot(config, site.url("/a/"), site.url("/slow"))
        a_stored = reported(first, site.url("/a/"))
        assert stalled.wait(STALL_TIMEOUT) and a_stored.wait(STALL_TIMEOUT)
        # The first process holds an .open file; a second one must neither touch it nor fail.
        second = run_cli("--config", str(config.root / "config.toml"), "snapshot", "--json", site.url("/b/"))
        assert second.returncode == 0, second.stderr
        assert len(list(config.storage.warc_dir.glob("*.open"))) == 1
        release.set()
        _, err = first.communicate(timeout=STALL_TIMEOUT)
        assert first.returncode == 0, err
        assert not list(config.storage.warc_dir.glob("*.open"))
        assert len(warc_files(config)) == 2
        for path in warc_files(config):
            assert warcio_check(path).returncode == 0
        assert_catalog_matches_warcs(config)
    finally:
        release.set()
        site.stop()


def other_process_opens_between_catalog_and_ledger(writer: Writer, opening) -> list:
    """Run opening(), as another process starting on the archive would, in the moment
    a live writer's batch is in the catalog but not yet in the ledger (store() commits
    the rows, then appends the ledger entries); what it raised, if anything."""
    raised: list = []
    append = writer.ledger.append

    def append_after_the_other_opened(payloads):
        try:
            opening()
        except Exception as e:  # noqa: BLE001 - reported to the test
            raised.append(e)
        writer.ledger.append = append
        return append(payloads)

    writer.ledger.append = append_after_the_other_opened
    return raised


def test_opening_the_archive_while_another_writer_stores_leaves_its_captures_to_it(site, tmp_path):
    """The other command must neither fail on the writer's still-open WARC file nor
    ledger its captures as lost in a crash, while it repairs a crashed process's file."""
    site.page("/earlier/", "<html><body><p>an earlier capture</p></body></html>")
    site.page("/live/", "<html><body><p>the live writer's page</p></body></html>")
    config = make_archive(tmp_path / "a", requisites="false")
    elsewhere = make_archive(tmp_path / "b", requisites="false")
    run_snapshot(elsewhere, site.url("/earlier/"))
    [earlier] = warc_files(elsewhere)
    config.storage.warc_dir.mkdir(exist_ok=True)
    abandoned = config.storage.warc_dir / (earlier.name + ".open")
    shutil.move(earlier, abandoned)  # as a killed process leaves its file: captured, never committed

    writer = Writer(config)
    raised = other_process_opens_between_catalog_and_ledger(writer, lambda: Writer(config).close())
    try:
        snapshot(writer, [site.url("/live/")])
    finally:
        writer.close()

    assert raised == []
    assert not abandoned.exists() and abandoned.with_name(abandoned.name[:-5]).exists()  # repaired
    entries = [json.loads(line) for line in config.evidence.ledger.read_text().splitlines()]
    recovered = {e["warc"] for e in entries if e.get("recovered")}
    assert recovered == {abandoned.name[:-5]}  # the crashed file's captures; the live writer's were its own
    records = [(e["warc"], r["offset"]) for e in entries if e["type"] == "capture" for r in e["records"]]
    assert len(records) == len(set(records))  # each record in the ledger once
    report = verify_archive(config)
    assert report.ok, report.problems


def test_reindex_refuses_while_a_writer_is_storing(site, tmp_path):
    site.page("/live/", "<html><body><p>the live writer's page</p></body></html>")
    config = make_archive(tmp_path / "a", requisites="false")
    writer = Writer(config)
    raised = other_process_opens_between_catalog_and_ledger(writer, lambda: reindex(config))
    try:
        snapshot(writer, [site.url("/live/")])
    finally:
        writer.close()
    assert len(raised) == 1 and isinstance(raised[0], ArchiverError)
    assert "another process is writing this archive" in str(raised[0])
    assert_catalog_matches_warcs(config)


def test_a_snapshot_started_during_a_reindex_waits_for_it(site, tmp_path):
    site.page("/p/", "<html><body><p>a page</p></body></html>")
    config = make_archive(tmp_path / "a", requisites="false")
    reindexing = WriterLock(config.storage.lock_dir)
    reindexing.take_alone("reindex")  # as archiver reindex holds it
    proc = start_snapshot(config, site.url("/p/"))
    try:
        assert "waiting: archiver reindex is running" in proc.stderr.readline()
        assert site.hits["/p/"] == 0
    finally:
        reindexing.close()
    out, err = proc.communicate(timeout=STALL_TIMEOUT)
    assert proc.returncode == 0, err
    assert site.hits["/p/"] == 1


def test_verify_started_during_a_reindex_waits_for_the_rebuilt_catalog(site, tmp_path):
    site.page("/p/", "<html><body><p>a page</p></body></html>")
    config = make_archive(tmp_path / "a", requisites="false")
    run_snapshot(config, site.url("/p/"))
    reindexing = WriterLock(config.storage.lock_dir)
    reindexing.take_alone("reindex")
    proc = subprocess.Popen([sys.executable, "-m", "archiver", "--config", str(config.root / "config.toml"), "verify"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "waiting: archiver reindex is running" in proc.stderr.readline()
    finally:
        reindexing.close()
    out, err = proc.communicate(timeout=STALL_TIMEOUT)
    assert proc.returncode == 0, err


def test_an_open_file_renamed_by_its_writer_while_listed_is_not_abandoned(tmp_path):
    assert is_live(tmp_path / "closed-meanwhile.warc.gz.open")


def captured_then_catalog_edited(site, tmp_path, *statements: str):
    """An archive with one page captured, then its catalog changed by statements (in one
    transaction) as a crash or a failed write would have left it."""
    site.page("/p/", "<html><body><p>a page</p></body></html>")
    config = make_archive(tmp_path / "a", requisites="false")
    run_snapshot(config, site.url("/p/"))
    catalog = Catalog(config.storage.catalog)
    with catalog.transaction():
        for statement in statements:
            catalog.db.execute(statement)
    catalog.close()
    return config


def test_captures_in_the_ledger_but_not_marked_in_the_catalog_are_linked_not_ledgered_again(site, tmp_path):
    """A crash (or a failed catalog write) after the ledger append, before the catalog
    marked the captures ledgered: the next command links them to their entries."""
    config = captured_then_catalog_edited(site, tmp_path, "DELETE FROM ledgered")
    before = config.evidence.ledger.read_text()

    Writer(config).close()

    assert config.evidence.ledger.read_text().startswith(before)
    added = [json.loads(line) for line in config.evidence.ledger.read_text()[len(before):].splitlines()]
    assert [e["type"] for e in added] in ([], ["checkpoint"])  # no capture ledgered twice
    catalog = Catalog(config.storage.catalog)
    assert catalog.ledger.unledgered() == []
    catalog.close()
    assert verify_archive(config).ok


def test_an_unreadable_capture_left_out_of_the_ledger_does_not_keep_the_archive_shut(site, tmp_path, caplog):
    config = captured_then_catalog_edited(site, tmp_path, "DELETE FROM ledgered",
                                          "UPDATE captures SET offset = offset + 10000000")  # past the file's end

    Writer(config).close()  # opens, with a warning, twice
    Writer(config).close()

    assert "not readable, left out of the ledger; run archiver verify" in caplog.text
    assert not verify_archive(config).ok


def test_a_page_left_in_a_crashed_file_becomes_part_of_its_history(site, tmp_path):
    """Repair catalogs the whole captures of a file a crash left open; the page of a
    tracked URL among them is observed too, so its history does not miss that capture."""
    site.page("/article/", "<html><body><article><h1>Title</h1><p>" + "Words of the article. " * 30
              + "</p></article></body></html>")
    source = make_archive(tmp_path / "src", requisites="false")
    run_snapshot(source, site.url("/article/"))
    [path] = warc_files(source)
    config = make_archive(tmp_path / "a")
    (config.storage.warc_dir / (path.name + ".open")).write_bytes(path.read_bytes())
    result = run_cli("--config", str(config.root / "config.toml"), "history", "--json", site.url("/article/"))
    assert result.returncode == 0, result.stderr
    [version] = [v for v in json.loads(result.stdout) if v.get("version")]
    assert version["title"] == "Title"
