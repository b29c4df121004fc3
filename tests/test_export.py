"""archiver export: WACZ packages that validate, verify on their own, detect tampering,
and replay in pywb; an article's evidence packet with its provenance report."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from datetime import datetime, timedelta, timezone

from archiver.archive.writer import Writer
from archiver.archive.keys import generate_key
from archiver.pipeline import snapshot

from .conftest import make_archive, run_cli, run_snapshot
from .newssite import NewsSite


@pytest.fixture
def exported(site, tmp_path):
    news = NewsSite(site)
    for path in ("/2026/10/pipeline-deal/", "/2026/09/airbase-rumours/", "/docs/ministry-statement",
                 "/docs/parliament-motion"):
        site.page(path, f"<html><body><p>Page {path} with its own text.</p></body></html>")
    config = make_archive(tmp_path / "a", requisites="false", confirm="true")
    assert run_cli("keygen", cwd=config.root).returncode == 0
    url = news.url("wordpress")
    run_snapshot(config, url)
    news.story.title = "A changed headline"
    later = Writer(config, clock=lambda: datetime.now(timezone.utc) + timedelta(hours=1))
    try:  # an hour later, so replay can tell the two captures apart by their timestamps
        snapshot(later, [url])
    finally:
        later.close()
    out = tmp_path / "export.wacz"
    result = run_cli("export", "--wacz", str(out), cwd=config.root)
    assert result.returncode == 0, result.stderr
    assert "signed" in result.stdout and "unsigned" not in result.stdout
    return config, out, url, site


def wacz_validate(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wacz", "validate", "-f", str(path)], capture_output=True, text=True)


def test_export_validates_and_verifies(exported):
    config, out, url, _ = exported
    validated = wacz_validate(out)
    assert validated.returncode == 0 and "passed WACZ is valid" in validated.stdout, validated.stdout
    result = run_cli("verify", str(out), "--key", "archive.key.pub", "--json", cwd=config.root)
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["ok"], report["problems"]
    assert report["counts"]["signed"] == 1 and report["signature"]["trusted"]
    assert report["counts"]["records_proven"] == report["counts"]["records"] - 2  # all but two warcinfo records
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        assert {"archive/data.warc.gz", "indexes/index.cdx", "pages/pages.jsonl", "ledger/ledger.jsonl",
                "datapackage.json", "datapackage-digest.json"} <= names
        pages = [json.loads(line) for line in z.read("pages/pages.jsonl").decode().splitlines()]
        assert pages[0]["format"] == "json-pages-1.0"
        assert [p["url"] for p in pages[1:]] == [url] * 4  # each capture confirmed by a second render
        assert "archive.key" not in " ".join(names)
        assert b"PRIVATE KEY" not in z.read("archive/data.warc.gz")
        ledger = z.read("ledger/ledger.jsonl").decode().splitlines()
        assert json.loads(ledger[-1])["type"] == "checkpoint"


def rewrite_member(path, name: str, change) -> None:
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members[name] = change(members[name])
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)


def test_a_changed_byte_fails_verify(exported):
    config, out, _, _ = exported
    def flip(data: bytes) -> bytes:
        i = len(data) // 2
        return data[:i] + bytes([data[i] ^ 1]) + data[i + 1:]
    rewrite_member(out, "archive/data.warc.gz", flip)
    result = run_cli("verify", str(out), "--key", "archive.key.pub", cwd=config.root)
    assert result.returncode == 1 and "archive/data.warc.gz: hash or size differs" in result.stdout
    validated = wacz_validate(out)  # wacz prints its verdict and exits 0, or crashes on some damage
    assert "Validation failed" in validated.stdout or validated.returncode != 0


def test_a_forged_signature_fails_verify(exported, tmp_path):
    config, out, _, _ = exported
    forger = generate_key(tmp_path / "forger.key")
    def forge(data: bytes) -> bytes:
        digest = json.loads(data)
        digest["signedData"]["signature"] = forger.sign(digest["hash"])
        return json.dumps(digest).encode()
    rewrite_member(out, "datapackage-digest.json", forge)
    result = run_cli("verify", str(out), "--key", "archive.key.pub", cwd=config.root)
    assert result.returncode == 1 and "signature does not verify" in result.stdout


def test_article_evidence_packet_has_a_provenance_report(exported, tmp_path):
    config, _, url, _ = exported
    out = tmp_path / "article.wacz"
    result = run_cli("export", "--article", url, str(out), cwd=config.root)
    assert result.returncode == 0, result.stderr
    verified = run_cli("verify", str(out), "--key", "archive.key.pub", cwd=config.root)
    assert verified.returncode == 0, verified.stdout
    with zipfile.ZipFile(out) as z:
        report = z.read("report/provenance.html").decode()
    assert "A changed headline" in report and "title" in report
    assert "Verification of the archive at export time: passed" in report
    assert "127.0.0.1" in report and "sha1:" in report


@pytest.mark.slow
def test_export_replays_in_pywb(exported, tmp_path):
    from archiver.replay.pywb import Collection, running_pywb
    from .test_replay import get
    config, out, url, site = exported
    site.stop()
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(out) as z:
        z.extractall(unpacked)
    with zipfile.ZipFile(out) as z:
        first = json.loads(z.read("pages/pages.jsonl").decode().splitlines()[1])
    timestamp = "".join(c for c in first["ts"] if c.isdigit())[:14]
    collection = {"exp": Collection(unpacked / "archive", unpacked / "indexes")}
    with running_pywb(collection, tmp_path / "pywb") as pywb:
        reply = get(pywb, pywb.url("exp", timestamp, "id_", url))
    assert reply.status == 200 and b"Defence Office Opens in Marenburg Amid Protests" in reply.body


@pytest.mark.slow
def test_replay_command_serves_the_archive_and_prints_replay_links(exported):
    import signal
    import urllib.request
    from archiver.replay.pywb import listen
    config, _, url, site = exported
    site.stop()
    probe = listen()
    port = probe.getsockname()[1]  # a free port
    probe.close()
    proc = subprocess.Popen([sys.executable, "-m", "archiver", "replay", "--port", str(port)], cwd=config.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("pywb is serving")
        assert proc.stdout.readline().strip() == url
        link = proc.stdout.readline().strip()
        assert link.startswith(f"http://127.0.0.1:{port}/archive/") and link.endswith(url)
        timestamp = link.split("/archive/", 1)[1].split("/", 1)[0]
        raw = link.replace(f"/{timestamp}/", f"/{timestamp}id_/", 1)  # the page itself, not the frame
        with urllib.request.urlopen(raw, timeout=30) as reply:
            assert reply.status == 200 and b"A changed headline" in reply.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.communicate()


def test_export_never_writes_through_a_link_planted_where_it_writes(exported, tmp_path):
    """A link at the temporary name export used to write to (OUT.tmp), or at OUT itself,
    is never followed: what it points to stays as it was."""
    config, _, _, _ = exported
    folder = tmp_path / "out"
    folder.mkdir()
    victims = {name: tmp_path / f"victim-{name}" for name in ("evidence.wacz.tmp", "evidence.wacz")}
    for name, victim in victims.items():
        victim.write_bytes(b"precious")
        (folder / name).symlink_to(victim)
    out = folder / "evidence.wacz"
    result = run_cli("export", "--wacz", str(out), cwd=config.root)
    assert result.returncode == 0, result.stderr
    assert all(victim.read_bytes() == b"precious" for victim in victims.values())
    assert not out.is_symlink() and zipfile.is_zipfile(out)
    assert sorted(p.name for p in folder.iterdir()) == ["evidence.wacz", "evidence.wacz.tmp"]  # nothing left behind


def test_a_capture_no_signed_checkpoint_covers_yet_is_not_exported(site, tmp_path):
    """An archive that signs exports a capture only once a signed checkpoint covers it.
    Here the article is stored and ledgered while the page it links to is still being
    fetched (the snapshot's checkpoint comes when it ends): export refuses, in one line."""
    import threading

    from .site import send

    release, stored = threading.Event(), threading.Event()
    site.page("/a/", "<html><body><div class='entry-content'><p>" + "Words. " * 40 +
              "<a href='/b/'>b</a></p></div></body></html>")
    site.routes["/b/"] = lambda h: (release.wait(60), send(h, 200, b"<html><body>b</body></html>", "text/html"))
    config = make_archive(tmp_path / "a", requisites="false")
    assert run_cli("keygen", cwd=config.root).returncode == 0
    out = tmp_path / "early.wacz"
    archive = Writer(config)
    capturing = threading.Thread(target=snapshot, args=(archive, [site.url("/a/")]),
                                 kwargs={"on_result": lambda r: stored.set() if r.url.endswith("/a/") else None})
    capturing.start()
    try:
        assert stored.wait(60)
        early = run_cli("export", "--wacz", str(out), site.url("/a/"), cwd=config.root)
    finally:
        release.set()
        capturing.join(60)
        archive.close()
    assert early.returncode == 1 and "not yet covered by a signed checkpoint" in early.stderr, early.stderr
    assert not out.exists()
    assert run_cli("export", "--wacz", str(out), site.url("/a/"), cwd=config.root).returncode == 0
    assert run_cli("verify", str(out), "--key", "archive.key.pub", cwd=config.root).returncode == 0


def test_captures_made_before_the_key_are_proven_by_the_key_entry(site, tmp_path):
    """Captured before keygen: their checkpoint is unsigned, and the signed entry that
    covers them is the key entry keygen writes over the chain as it stood."""
    site.page("/a/", "<html><body><p>Captured before the key.</p></body></html>")
    config = make_archive(tmp_path / "a", requisites="false")
    run_snapshot(config, site.url("/a/"))
    assert run_cli("keygen", cwd=config.root).returncode == 0
    out = tmp_path / "early.wacz"
    assert run_cli("export", "--wacz", str(out), cwd=config.root).returncode == 0
    with zipfile.ZipFile(out) as z:
        proof = [json.loads(line) for line in z.read("ledger/ledger.jsonl").decode().splitlines()]
    assert [e["type"] for e in proof] == ["capture", "checkpoint", "key"] and "signature" not in proof[1]
    verified = run_cli("verify", str(out), "--key", "archive.key.pub", cwd=config.root)
    assert verified.returncode == 0, verified.stdout
    for args in (["verify", "--key", "archive.key.pub"], ["verify", str(out), "--key", "archive.key.pub", "--any-key"],
                 ["verify", str(out), "--key", "no-such-key"]):
        refused = run_cli(*args, cwd=config.root)
        assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, (args, refused.stderr)
