"""``archiver verify OUT.wacz`` on hostile and malformed packages: memory bounded whatever
the input (the issue's 2 GiB datapackage.json compressed to 2 MB, zip and gzip bombs,
endless header lines, huge directories), one line per problem, never a traceback; and
hypothesis over the package's structure: nothing but the genuine content passes.
"""

from __future__ import annotations

import base64
import json
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from archiver.evidence.wacz import Trust, verify_wacz

from . import hostile
from .conftest import make_archive, run_cli, run_snapshot
from .forge import WARC, read_members, resign
from .site import Site

MEMORY_BOUND = 40 << 20  # bytes of Python heap a verify may peak at on any of these


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    """A small genuine export, its members, and the trust that verifies it."""
    site = Site()
    site.page("/a/", "<html><body><p>" + "An article's words. " * 50 + "</p></body></html>")
    root = tmp_path_factory.mktemp("bounds")
    config = make_archive(root / "a", requisites="false")
    assert run_cli("keygen", cwd=config.root).returncode == 0
    try:
        run_snapshot(config, site.url("/a/"))
    finally:
        site.stop()
    out = root / "genuine.wacz"
    assert run_cli("export", "--wacz", str(out), cwd=config.root).returncode == 0
    trust = Trust.of(str(config.root / "archive.key.pub"), False)
    assert verify_wacz(out, trust).ok
    return config, out, read_members(out), trust


def verified(path, trust):
    """The report, the Python heap verify peaked at, and its problems as text."""
    tracemalloc.start()
    try:
        report = verify_wacz(path, trust)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert all("\n" not in p.where + p.message for p in report.problems)
    return report, peak, "\n".join(map(str, report.problems))


@pytest.mark.parametrize("craft, expected", [
    (hostile.huge_datapackage, "datapackage.json: 2,147,483,650 bytes: more than the 1,048,576 it may have"),
    (hostile.zip_bomb, "archive/data.warc.gz: is compressed in the zip: a WACZ stores its WARC files as they are"),
    (lambda path, members: hostile.gzip_bomb(path, members, 512 << 20), "refused as a decompression bomb"),
    (hostile.endless_head, "WARC head longer than 256 KiB, or not ended by a blank line"),
    (hostile.many_files, "-byte directory: an export holds at most 16 files"),
], ids=["2GiB-datapackage", "zip-bomb", "gzip-bomb-record", "endless-head-line", "200k-files"])
def test_crafted_packages_are_refused_with_bounded_memory(genuine, tmp_path, craft, expected):
    _, _, members, trust = genuine
    path = tmp_path / "crafted.wacz"
    craft(path, members)
    assert path.stat().st_size < 20 << 20  # small on disk: the size is in what it expands to
    report, peak, text = verified(path, trust)
    assert not report.ok and expected in text, text
    assert peak < MEMORY_BOUND, peak


def test_deeply_nested_json_is_refused(genuine, tmp_path):
    _, _, members, trust = genuine
    path = tmp_path / "nested.wacz"
    members = dict(members, **{"datapackage.json": b"[" * 200_000 + b"]" * 200_000})
    hostile.write_raw_zip(path, [hostile.entry(n, d) for n, d in members.items()])
    _, _, text = verified(path, trust)
    assert "datapackage.json: JSON nested more than 32 deep" in text


def test_a_key_on_an_unknown_curve_verifies_nothing_and_raises_nothing(genuine):
    """Found by the fuzz below: a public key whose curve OID was changed made cryptography
    raise UnsupportedAlgorithm out of verify."""
    from archiver.archive.keys import load_key, verify_signature

    config = genuine[0]
    key = load_key(config.evidence.key)
    der = bytearray(base64.b64decode(key.public_b64))
    der[der.index(bytes.fromhex("2a8648ce3d030107"))] ^= 0x10  # 1.2.840.10045.3.1.7 (P-256) no more
    assert not verify_signature(base64.b64encode(der).decode(), "message", key.sign("message"))


def malformed(members: dict[str, bytes]) -> dict[str, dict[str, bytes] | bytes]:
    """Name -> package members (or the raw file) of a malformed package."""
    ledger = members["ledger/ledger.jsonl"].decode().splitlines()
    first = json.loads(ledger[0])
    return {
        "empty file": b"",
        "not a zip": b"PK\x03\x04 this is not a zip file at all",
        "truncated zip": None,
        "datapackage not JSON": {**members, "datapackage.json": b"\xff\xfe{not json"},
        "datapackage a list": {**members, "datapackage.json": b"[1, 2, 3]"},
        "resources not a list": {**members, "datapackage.json": b'{"resources": {"a": 1}}'},
        "resource of wrong types": {**members, "datapackage.json": b'{"resources": [{"path": 1, "hash": [], "bytes": "x"}]}'},
        "digest a string": {**members, "datapackage-digest.json": b'"sha256:00"'},
        "signedData a list": {**members, "datapackage-digest.json": b'{"hash": "x", "signedData": [1]}'},
        "ledger line not JSON": {**members, "ledger/ledger.jsonl": b"{" + members["ledger/ledger.jsonl"]},
        "ledger seq a string": {**members, "ledger/ledger.jsonl": json.dumps({**first, "seq": "1"}).encode()},
        "ledger records a dict": {**members, "ledger/ledger.jsonl": json.dumps({**first, "records": {}}).encode()},
        "ledger omitted not hex": {**members, "ledger/ledger.jsonl": (ledger[0] + "\n" + json.dumps(
            {"seq": first["seq"] + 1, "omitted": 5}) + "\n").encode()},
        "index garbage": {**members, "indexes/index.cdx": b"\x00\xff garbage\n\n"},
        "pages garbage": {**members, "pages/pages.jsonl": b"[]\n{\"id\": []}\n"},
        "WARC not gzip": {**members, WARC: b"WARC/1.1\r\n\r\n"},
        "WARC gzip of no record": {**members, WARC: zlib.compress(b"hello", wbits=31)},
        "WARC record without length": {**members, WARC: zlib.compress(b"WARC/1.1\r\nWARC-Type: x\r\n\r\n", wbits=31)},
        "WARC two records in a member": {**members, WARC: zlib.compress(
            b"WARC/1.1\r\nContent-Length: 0\r\n\r\n\r\n\r\nWARC/1.1\r\nContent-Length: 0\r\n\r\n\r\n\r\n", wbits=31)},
    }


def test_malformed_packages_give_one_line_problems_and_exit_1(genuine, tmp_path):
    config, out, members, trust = genuine
    for name, content in malformed(members).items():
        path = tmp_path / (name.replace(" ", "-") + ".wacz")
        if content is None:
            path.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            hostile.write_raw_zip(path, [hostile.entry(n, d) for n, d in resign(dict(content), None).items()]
                                  if name.startswith("WARC") else [hostile.entry(n, d) for n, d in content.items()])
        report, _, text = verified(path, trust)
        assert not report.ok and text, name
        if name in ("not a zip", "datapackage not JSON", "WARC two records in a member"):
            result = run_cli("verify", str(path), "--key", "archive.key.pub", cwd=config.root)
            assert result.returncode == 1 and not result.stderr, (name, result.stderr)
            assert result.stdout.startswith(text.splitlines()[0]) and "FAILED: " in result.stdout


# ---- hypothesis over the package's structure -------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
NAMES = st.sampled_from(["archive/data.warc.gz", "indexes/index.cdx", "pages/pages.jsonl", "ledger/ledger.jsonl",
                         "datapackage.json", "datapackage-digest.json", "report/provenance.html", "x/../../etc",
                         "archive/other.warc.gz"])


@st.composite
def mutation(draw, members: dict[str, bytes]):
    """One change to a package's members: drop, replace, truncate, flip a byte, change a
    line or a JSON field to any JSON, or add a member."""
    kind = draw(st.sampled_from(["drop", "bytes", "truncate", "flip", "line", "field", "add"]))
    name = draw(NAMES) if kind == "add" else draw(st.sampled_from(sorted(members)))
    data = members.get(name, b"")
    if kind == "drop":
        return name, None
    if kind in ("bytes", "add"):
        return name, draw(st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
    if kind == "truncate":
        return name, data[:draw(st.integers(0, max(0, len(data) - 1)))]
    if kind == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        return name, data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
    if kind == "line":
        lines = data.split(b"\n")
        lines[draw(st.integers(0, len(lines) - 1))] = json.dumps(draw(JSON)).encode()
        return name, b"\n".join(lines)
    try:
        value = json.loads(data)
    except ValueError:
        return name, data
    if isinstance(value, dict) and value:
        value[draw(st.sampled_from(sorted(value)))] = draw(JSON)
    return name, json.dumps(value).encode()


@st.composite
def packages(draw, members: dict[str, bytes]):
    changed = dict(members)
    for _ in range(draw(st.integers(1, 3))):
        name, data = draw(mutation(changed))
        if data is None:
            changed.pop(name, None)
        else:
            changed[name] = data
    if draw(st.booleans()) and _is_object(changed.get("datapackage.json", b"")):
        changed = resign(changed, None)  # the hashes made to match, so the checks behind them run
    entries = [(n, draw(st.sampled_from([hostile.STORED, hostile.DEFLATED])), d) for n, d in changed.items()]
    if draw(st.booleans()) and entries:
        entries.append(draw(st.sampled_from(entries)))  # a name twice in the zip
    return changed, entries


def _is_object(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except ValueError:
        return False


def _zip_entry(name: str, method: int, data: bytes):
    if method == hostile.STORED:
        return hostile.entry(name, data)
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return name, method, c.compress(data) + c.flush(), zlib.crc32(data), len(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_packages_never_crash_and_only_the_genuine_content_passes(genuine, tmp_path, data):
    _, _, members, trust = genuine
    changed, entries = data.draw(packages(members))
    path = tmp_path / "fuzzed.wacz"
    hostile.write_raw_zip(path, [_zip_entry(*e) for e in entries])
    if data.draw(st.booleans()):  # damage the zip itself
        raw = bytearray(path.read_bytes())
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
        path.write_bytes(bytes(raw[:data.draw(st.integers(i + 1, len(raw)))]))
    report = verify_wacz(path, trust)  # never raises
    assert all("\n" not in p.where + p.message for p in report.problems)
    if report.ok:
        kept = {n: d for n, d in changed.items() if not n.startswith("datapackage")}
        assert kept == {n: d for n, d in members.items() if not n.startswith("datapackage")}
