"""archiver verify: a clean archive passes; each kind of tampering is reported with its
place (file and offset, or ledger line) and exit status 1."""

from __future__ import annotations

import json
import shutil
import sys
import threading
import zlib

import pytest

from archiver.archive.index import warc_captures
from archiver.archive.ledger import Ledger, canonical, chained, check_chain, entry_hash

from .conftest import make_archive, run_cli, run_snapshot, warc_files

ARTICLE = ("<html><body><div class='entry-content'><p>" + "Words of the article. " * 20 +
           "<a href='/source/'>source</a></p></div><img src='/img.png'></body></html>")


@pytest.fixture
def archive(site, tmp_path):
    site.page("/a/", ARTICLE)
    site.page("/source/", "<html><body><p>the source</p></body></html>")
    site.page("/img.png", b"\x89PNG image bytes", "image/png")
    config = make_archive(tmp_path / "a")
    assert run_cli("keygen", cwd=config.root).returncode == 0
    run_snapshot(config, site.url("/a/"))
    run_snapshot(config, site.url("/a/"))  # revisits
    return config


def verify(config) -> tuple[int, dict]:
    result = run_cli("verify", "--json", cwd=config.root)
    return result.returncode, json.loads(result.stdout)


def places(report: dict) -> list[str]:
    return [p["where"] for p in report["problems"]]


def members(path) -> list[tuple[int, int]]:
    data, out, start = path.read_bytes(), [], 0
    while start < len(data):
        d = zlib.decompressobj(31)
        d.decompress(data[start:])
        end = len(data) - len(d.unused_data)
        out.append((start, end))
        start = end
    return out


def response_offset(config, path) -> int:
    return next(row.offset for row, _ in warc_captures(path) if row.record == "response")


def test_clean_archive_verifies(archive):
    code, report = verify(archive)
    assert code == 0 and report["ok"], report["problems"]
    assert report["counts"]["captures"] == 6 and report["counts"]["checkpoints"] == 2
    assert report["latest_checkpoint"]["signature"]
    text = run_cli("verify", cwd=archive.root).stdout
    assert text.startswith("OK: ") and "signed by" in text


def test_flipped_byte_in_compressed_data_is_reported_at_its_record(archive):
    path = warc_files(archive)[0]
    offset = response_offset(archive, path)
    data = bytearray(path.read_bytes())
    data[offset + 40] ^= 0x01
    path.write_bytes(bytes(data))
    code, report = verify(archive)
    assert code == 1 and f"{path.name}@{offset}" in places(report)


def test_recompressed_edited_payload_fails_its_digest(archive):
    path = warc_files(archive)[0]
    offset = response_offset(archive, path)
    start, end = next(m for m in members(path) if m[0] == offset)
    data = path.read_bytes()
    record = zlib.decompress(data[start:end], 31)
    assert b"Words of the article." in record
    forged = record.replace(b"Words of the article.", b"Words of the articlX.", 1)
    path.write_bytes(data[:start] + _gzip(forged) + data[end:])
    code, report = verify(archive)
    assert code == 1
    assert any(p["where"] == f"{path.name}@{offset}" and "digest" in p["message"] for p in report["problems"])


def _gzip(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def test_deleted_record_is_reported(archive):
    path = warc_files(archive)[0]
    offset = response_offset(archive, path)
    start, end = next(m for m in members(path) if m[0] == offset)
    data = path.read_bytes()
    path.write_bytes(data[:start] + data[end:])
    code, report = verify(archive)
    assert code == 1
    messages = " ".join(p["message"] for p in report["problems"])
    assert "has no response" in messages and "missing from the archive" in messages


def test_swapped_warc_file_is_reported(archive, site, tmp_path):
    other = make_archive(tmp_path / "other")
    run_snapshot(other, site.url("/a/"))
    target = warc_files(archive)[0]
    shutil.copy(warc_files(other)[0], target)
    code, report = verify(archive)
    assert code == 1
    assert any(p["where"].startswith(target.name) and "missing from the archive" in p["message"]
               for p in report["problems"])


def ledger_lines(config) -> list[str]:
    return config.evidence.ledger.read_text().splitlines()


def write_ledger(config, lines: list[str]) -> None:
    config.evidence.ledger.write_text("".join(line + "\n" for line in lines))


def test_edited_ledger_line_is_reported(archive):
    lines = ledger_lines(archive)
    entry = json.loads(lines[1])
    entry["url"] = "https://elsewhere.example/"
    lines[1] = canonical(entry)
    write_ledger(archive, lines)
    code, report = verify(archive)
    assert code == 1 and "ledger.jsonl:2" in places(report)


def test_reordered_ledger_is_reported(archive):
    lines = ledger_lines(archive)
    lines[1], lines[2] = lines[2], lines[1]
    write_ledger(archive, lines)
    code, report = verify(archive)
    assert code == 1 and {"ledger.jsonl:2", "ledger.jsonl:3"} <= set(places(report))


def test_truncated_ledger_tail_is_reported(archive):
    write_ledger(archive, ledger_lines(archive)[:-2])
    code, report = verify(archive)
    assert code == 1
    assert any("tail was removed" in p["message"] for p in report["problems"])


def test_consistently_rewritten_chain_is_reported(archive):
    """An edit whose hashes are all recomputed still breaks the signed checkpoints and
    the copies kept in the catalog."""
    entries = [json.loads(line) for line in ledger_lines(archive)]
    entries[0]["url"] = "https://elsewhere.example/"
    prev = "0" * 64
    for entry in entries:
        entry["prev"] = prev
        if entry["type"] == "checkpoint":
            entry["head"] = prev
        entry["hash"] = prev = entry_hash(entry)
    write_ledger(archive, [canonical(e) for e in entries])
    code, report = verify(archive)
    assert code == 1
    messages = " ".join(p["message"] for p in report["problems"])
    assert "signature does not verify" in messages and "rewritten" in messages


def test_catalog_row_pointing_elsewhere_is_reported(archive):
    import sqlite3
    db = sqlite3.connect(archive.storage.catalog)
    db.execute("UPDATE captures SET offset = offset + 1 WHERE id = 1")
    db.commit()
    db.close()
    code, report = verify(archive)
    assert code == 1 and any("points at no record" in p["message"] for p in report["problems"])


def test_reordered_records_are_reported(archive):
    path = warc_files(archive)[0]
    spans = members(path)
    data = path.read_bytes()
    (a0, a1), (b0, b1) = spans[1], spans[2]  # the first request and its response
    path.write_bytes(data[:a0] + data[b0:b1] + data[a0:a1] + data[b1:])
    code, report = verify(archive)
    assert code == 1
    assert any("has moved to" in p["message"] for p in report["problems"])
    assert any("points at no record" in p["message"] or "does not match" in p["message"]
               for p in report["problems"])


def test_ledger_lines_are_the_canonical_json_of_their_entries():
    """chained() writes a capture entry's line without encoding it twice; it must be the
    very text canonical() gives, with the hash entry_hash() recomputes."""
    capture = {"type": "capture", "time": "2026-11-27T08:00:00.000000Z", "url": "https://a.example/é\u2028",
               "warc": "x.warc.gz", "records": [{"id": "<urn:uuid:1>", "offset": 0, "length": 10}]}
    checkpoint = {"type": "checkpoint", "time": "2026-11-27T08:00:00.000000Z", "count": 3, "head": "ab" * 32}
    for payload in (capture, {**capture, "recovered": True}, checkpoint):
        entry, line = chained(payload, 7, "cd" * 32)
        assert line == canonical(entry) and json.loads(line) == entry
        assert entry["hash"] == entry_hash(entry)


def test_checkpoints_racing_other_writers_always_match_the_chain_before_them(tmp_path):
    """Capture processes append to one ledger while one of them checkpoints it: a
    checkpoint's count and head must be read under the lock its entry is written under,
    or verify reports a sound archive as tampered with."""
    path = tmp_path / "ledger.jsonl"
    entry = {"type": "capture", "time": "2026-11-27T08:00:00.000000Z", "url": "https://a.example/"}

    def appender() -> None:
        ledger = Ledger(path)
        for _ in range(300):
            ledger.append([entry])
        ledger.close()

    def checkpointer() -> None:
        ledger = Ledger(path)
        for _ in range(100):
            ledger.checkpoint(None, "2026-11-27T08:00:00.000000Z")
        ledger.close()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # the threads take turns every few bytecodes, as processes would
    try:
        threads = [threading.Thread(target=f) for f in (appender, appender, checkpointer)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    chain = check_chain(Ledger(path), None)
    assert (chain.problems, chain.checkpoints, chain.count) == ([], 100, 700)


# ---- a key made after captures -------------------------------------------------------------

@pytest.fixture
def keyed_late(site, tmp_path):
    """Captured without a key, then keygen (as the README's order of commands has it),
    then captured again."""
    site.page("/a/", ARTICLE)
    config = make_archive(tmp_path / "late", requisites="false")
    run_snapshot(config, site.url("/a/"))
    keygen = run_cli("keygen", cwd=config.root)
    assert keygen.returncode == 0, keygen.stderr
    run_snapshot(config, site.url("/a/"))
    return config


def test_checkpoints_made_before_the_key_existed_verify_as_unsigned_before_key(keyed_late):
    code, report = verify(keyed_late)
    assert code == 0 and report["ok"], report["problems"]
    assert report["counts"]["checkpoints"] == 2 and report["counts"]["checkpoints_before_key"] == 1
    key_entry = json.loads(ledger_lines(keyed_late)[report["key"]["seq"] - 1])
    assert key_entry["type"] == "key" and key_entry["count"] == report["key"]["count"] == key_entry["seq"] - 1 > 1
    assert key_entry["public_key"] == (keyed_late.root / "archive.key.pub").read_text().strip()
    assert report["latest_checkpoint"]["signature"]
    assert "1 checkpoint(s) before it are unsigned" in run_cli("verify", cwd=keyed_late.root).stdout


def test_deleting_the_key_does_not_make_later_checkpoints_pre_key(keyed_late):
    keyed_late.evidence.key.unlink()
    # captures refuse to go on unsigned, and keygen to make a second key
    refused = run_cli("snapshot", "http://127.0.0.1:9/", cwd=keyed_late.root)
    assert refused.returncode == 1 and "restore the key file" in refused.stderr
    again = run_cli("keygen", cwd=keyed_late.root)
    assert again.returncode == 2 and "an archive keeps its key" in again.stderr
    assert not keyed_late.evidence.key.exists()
    # an unsigned checkpoint appended after the key's entry is reported
    ledger = Ledger(keyed_late.evidence.ledger)
    ledger.checkpoint(None, "2026-11-27T08:00:00.000000Z")
    ledger.close()
    code, report = verify(keyed_late)
    assert code == 1
    assert any("not signed although the archive's key was created before it" in p["message"]
               for p in report["problems"])


def test_removing_the_key_entry_from_the_ledger_is_reported(keyed_late):
    lines = ledger_lines(keyed_late)
    [key_line] = [n for n, line in enumerate(lines) if json.loads(line)["type"] == "key"]
    write_ledger(keyed_late, lines[:key_line] + lines[key_line + 1:])
    code, report = verify(keyed_late)
    assert code == 1
    messages = " ".join(p["message"] for p in report["problems"])
    assert "is missing from the ledger" in messages and "where" in messages


def test_a_key_made_while_an_archive_is_open_signs_its_next_checkpoint(tmp_path):
    from archiver.archive.writer import Writer, create_key

    config = make_archive(tmp_path / "open")
    archive = Writer(config)
    try:
        create_key(config, "2026-11-27T08:00:00.000000Z")
        archive.checkpoint()
    finally:
        archive.close()
    chain = check_chain(Ledger(config.evidence.ledger), None)
    assert [e["type"] for e in map(json.loads, ledger_lines(config))] == ["key", "checkpoint"]
    assert chain.problems == [] and chain.last_checkpoint["signature"]


def test_verify_holds_no_per_capture_state_in_memory(site, tmp_path):
    """verify streams: the Python heap it peaks at is the same for 150 and 750 captures
    (it held about 6 kB per capture in memory before; bench/verify_memory.py measures
    the whole process)."""
    import tracemalloc

    from archiver.evidence.verify import verify_archive

    for i in range(750):
        site.page(f"/p/{i}", f"<html><body><p>page {i} " + "text " * 50 + "</p></body></html>")
    config = make_archive(tmp_path / "big", depth="0", requisites="false")

    def peak() -> int:
        tracemalloc.start()
        try:
            report = verify_archive(config)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            assert report.ok, report.problems[:3]

    run_snapshot(config, *(site.url(f"/p/{i}") for i in range(150)))
    small = peak()
    run_snapshot(config, *(site.url(f"/p/{i}") for i in range(150, 750)))
    large = peak()
    assert large - small < 600 * 1024, (small, large)  # 600 captures more: under 1 kB each


def test_an_edited_warc_header_is_reported_though_the_block_is_untouched(archive):
    """WARC-Date (the capture time) lies outside the block digests: the ledger holds the
    head's digest."""
    path = warc_files(archive)[0]
    offset = response_offset(archive, path)
    start, end = next(m for m in members(path) if m[0] == offset)
    data = path.read_bytes()
    record = zlib.decompress(data[start:end], 31)
    head, sep, rest = record.partition(b"\r\n\r\n")
    lines = [b"WARC-Date: 2020-01-01T00:00:00.000000Z" if line.startswith(b"WARC-Date:") else line
             for line in head.split(b"\r\n")]
    path.write_bytes(data[:start] + _gzip(b"\r\n".join(lines) + sep + rest) + data[end:])
    code, report = verify(archive)
    assert code == 1
    assert any(p["where"] == f"{path.name}@{offset}" and "WARC head" in p["message"] for p in report["problems"])
