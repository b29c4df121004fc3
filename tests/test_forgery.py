"""Forged exports, made as an adversary would (tests/forge.py: every hash that needs no
key recomputed), must fail ``archiver verify OUT.wacz`` with exit 1 and a line saying what
is wrong; the genuine export passes, against the archive's key only.

The issue's four forgeries: (a) the provenance report edited, hashes recomputed, the
signature dropped; (b) the same, signed with a fresh key; (c) the article text changed in
the WARC, record digests, index and ledger entries recomputed, the genuine signed
checkpoint kept; (d) a package without its WARC. (c) is also signed here with the
archive's own key, as its holder could: only the capture-time checkpoints catch it.
"""

from __future__ import annotations

import json
import shutil

import pytest

from archiver.archive.keys import fingerprint, generate_key, load_key
from archiver.evidence.wacz import Trust, verify_wacz

from .conftest import run_cli
from .forge import (WARC, build_evidence, gzip, gzip_members, read_members, redated, rehash_ledger, resign,
                    rewrite_records, write_members)

ORIGINAL, FORGED = b"The office will employ 12 people", b"The office will employ 95 people"


@pytest.fixture(scope="module")
def evidence(tmp_path_factory):
    return build_evidence(tmp_path_factory.mktemp("forgery"))


@pytest.fixture
def package(evidence, tmp_path):
    """A copy of the genuine export, its members, the archive's key and a fresh one."""
    config, out = evidence
    copy = tmp_path / "forged.wacz"
    shutil.copy(out, copy)
    return copy, read_members(copy), load_key(config.evidence.key), generate_key(tmp_path / "fresh.key")


def cli_verify(config, path, *args):
    result = run_cli("verify", str(path), *args, cwd=config.root)
    assert not result.stderr, result.stderr
    return result.returncode, result.stdout


def problems(path, trust) -> str:
    return "\n".join(str(p) for p in verify_wacz(path, trust).problems)


def trusted(config) -> Trust:
    return Trust.of(str(config.root / "archive.key.pub"), False)


def test_the_genuine_export_verifies_against_the_archive_key_only(evidence):
    config, out = evidence
    key = load_key(config.evidence.key)
    for given in ("archive.key.pub", fingerprint(key.public_b64)):
        code, text = cli_verify(config, out, "--key", given)
        assert code == 0 and text.startswith("OK: "), text
        assert f"by the trusted key {fingerprint(key.public_b64)}" in text
    code, text = cli_verify(config, out)
    assert code == 1 and f"signed by an unknown key {fingerprint(key.public_b64)}" in text
    code, text = cli_verify(config, out, "--any-key")
    assert code == 0 and f"accepted unchecked (--any-key) {fingerprint(key.public_b64)}" in text


def test_the_proof_leaves_out_what_the_export_does_not_hold(evidence):
    """Another seed's capture between the article's entries and their checkpoint is in the
    proof as its hash and body digest only."""
    _, out = evidence
    ledger = read_members(out)["ledger/ledger.jsonl"].decode()
    entries = [json.loads(line) for line in ledger.splitlines()]
    assert any("omitted" in e for e in entries) and "unrelated-investigation" not in ledger
    assert [e["type"] for e in entries if "omitted" not in e][-1] == "checkpoint"


def test_a_edited_report_without_signature_fails(evidence, package):
    config, _ = evidence
    path, members, _, _ = package
    members["report/provenance.html"] = members["report/provenance.html"].replace(b"A changed headline",
                                                                                  b"An innocent headline")
    write_members(path, resign(members, None))
    for args in (["--key", "archive.key.pub"], [], ["--any-key"]):
        code, text = cli_verify(config, path, *args)
        assert code == 1 and "datapackage-digest.json: not signed: nothing ties this package to an archive's key" \
            in text, (args, text)


def test_b_edited_report_signed_with_a_fresh_key_fails(evidence, package):
    config, _ = evidence
    path, members, archive_key, fresh = package
    members["report/provenance.html"] = members["report/provenance.html"].replace(b"A changed headline",
                                                                                  b"An innocent headline")
    write_members(path, resign(members, fresh))
    theirs, ours = fingerprint(fresh.public_b64), fingerprint(archive_key.public_b64)
    code, text = cli_verify(config, path, "--key", "archive.key.pub")
    assert code == 1 and f"signed by key {theirs}, not by the trusted key {ours}" in text
    code, text = cli_verify(config, path)
    assert code == 1 and f"signed by an unknown key {theirs}" in text
    code, text = cli_verify(config, path, "--any-key")  # any signer, but the checkpoints are not theirs
    assert code == 1 and f"checkpoint signed by key {ours}, not by the key this package is checked against" in text


def forge_article_text(members) -> set[str]:
    assert any(ORIGINAL in record for record in gzip_members(members[WARC]))
    return rewrite_records(members, lambda record: record.replace(ORIGINAL, FORGED))


@pytest.mark.parametrize("ledger, expected", [
    ("kept", "is not, as it is, in a ledger entry that a signed checkpoint covers"),
    ("rehashed", "prev does not match the hash of the entry before it"),
    ("relinked", "checkpoint signature does not verify"),
])
def test_c_edited_article_text_fails_against_the_signed_checkpoint(evidence, package, ledger, expected):
    """Signed with the archive's own key (its holder forging after the fact), or a fresh one."""
    config, _ = evidence
    path, members, archive_key, fresh = package
    changed = forge_article_text(members)
    assert changed  # every capture of the article that holds the sentence
    if ledger != "kept":
        rehash_ledger(members, relink=ledger == "relinked")
    write_members(path, resign(members, archive_key))
    code, text = cli_verify(config, path, "--key", "archive.key.pub")
    assert code == 1 and expected in text, text
    assert "response record for " in text and "is not, as it is, in a ledger entry" in text
    write_members(path, resign(members, fresh))
    assert "not by the trusted key" in problems(path, trusted(config))


def test_d_package_without_its_warc_fails(evidence, package):
    config, _ = evidence
    path, members, archive_key, _ = package
    del members[WARC]
    write_members(path, resign(members, archive_key))
    code, text = cli_verify(config, path, "--key", "archive.key.pub")
    assert code == 1 and "archive/data.warc.gz: missing: every archiver export holds it" in text


def test_changed_warc_headers_fail_though_the_block_is_untouched(evidence, package):
    """The capture date and URL are WARC headers, outside the block digests: the ledger
    holds the head's digest."""
    config, _ = evidence
    path, members, archive_key, _ = package
    rewrite_records(members, redated)
    write_members(path, resign(members, archive_key))
    text = problems(path, trusted(config))
    assert "is not, as it is, in a ledger entry" in text and "digest" not in text


def test_unlisted_missing_and_foreign_files_fail(evidence, package):
    config, _ = evidence
    path, members, archive_key, _ = package
    trust = trusted(config)
    members["archive/more.warc.gz"] = members[WARC]
    write_members(path, members)  # not listed
    assert "archive/more.warc.gz: file is not listed in datapackage.json" in problems(path, trust)
    write_members(path, resign(dict(members), archive_key))  # listed and signed: still not an export's
    assert "archive/more.warc.gz: not a file an archiver export holds" in problems(path, trust)
    del members["archive/more.warc.gz"]
    del members["pages/pages.jsonl"]
    write_members(path, members)  # listed, not there
    text = problems(path, trust)
    assert "pages/pages.jsonl: listed in datapackage.json but missing" in text
    assert "pages/pages.jsonl: missing: every archiver export holds it" in text


def test_edited_index_and_pages_fail(evidence, package):
    config, _ = evidence
    path, members, archive_key, _ = package
    index = members["indexes/index.cdx"].decode().splitlines()
    index[0] = index[0].replace('"status": "200"', '"status": "404"')
    members["indexes/index.cdx"] = "".join(line + "\n" for line in index).encode()
    pages = members["pages/pages.jsonl"].decode().splitlines()
    page = json.loads(pages[1])
    page["ts"] = "2020-01-01T00:00:00Z"
    pages[1] = json.dumps(page)
    members["pages/pages.jsonl"] = "".join(line + "\n" for line in pages).encode()
    write_members(path, resign(members, archive_key))
    text = problems(path, trusted(config))
    assert "indexes/index.cdx:1: not a line the WARC's records give" in text
    assert "indexes/index.cdx: no line for the record at archive/data.warc.gz@" in text
    assert "pages/pages.jsonl:2: names no capture in the WARC" in text


def test_a_record_added_to_the_warc_fails(evidence, package):
    """A record the ledger never listed (a copy of a response under a new id) is not covered."""
    config, _ = evidence
    path, members, archive_key, _ = package
    response = next(r for r in gzip_members(members[WARC]) if b"WARC-Type: response" in r)
    members[WARC] += gzip(response.replace(b"<urn:uuid:", b"<urn:uuid:0", 1))
    write_members(path, resign(members, archive_key))
    text = problems(path, trusted(config))
    assert "is not, as it is, in a ledger entry that a signed checkpoint covers" in text
