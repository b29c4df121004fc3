"""A write-protected copy of an archive (every file and folder without write permission,
as on read-only media) can be verified, listed, its history read and exported from, and
nothing in it changes.

The commands run as a user the permissions apply to: when the tests run as root (whom
chmod does not stop, through CAP_DAC_OVERRIDE), as root without any capability (setpriv),
for whom the permission bits hold; so any write archiver attempted in the copy would fail
with "Permission denied", and the command with it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import make_archive, run_cli, run_snapshot

WITHOUT_CAPABILITIES = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]


def as_reader(cmd: list[str]) -> list[str]:
    """cmd run by a user the copy's permission bits bind."""
    return WITHOUT_CAPABILITIES + cmd if os.geteuid() == 0 else cmd


def run_as_reader(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(as_reader([sys.executable, "-m", "archiver", *args]), capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def tree(root: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(root)): (p.stat().st_mode, hashlib.sha256(p.read_bytes()).hexdigest()
                                       if p.is_file() else "")
            for p in sorted(root.rglob("*"))}


def write_protect(root: Path, protect: bool) -> None:
    """chmod -R a-w (or u+w to undo it)."""
    for p in [root, *root.rglob("*")]:
        mode = p.stat().st_mode & 0o7777
        p.chmod(mode & ~0o222 if protect else mode | 0o200)


@pytest.fixture
def protected(site, tmp_path):
    """(a write-protected copy of a keyed archive with captures, a folder for exports, the
    captured URL)."""
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root, and no setpriv to drop the capabilities that ignore permissions")
    site.page("/a/", "<html><body><div class='entry-content'><p>" + "Evidence words. " * 30 + "</p></div></body></html>")
    config = make_archive(tmp_path / "a", requisites="false")
    assert run_cli("keygen", cwd=config.root).returncode == 0
    run_snapshot(config, site.url("/a/"))
    copy, out = tmp_path / "evidence", tmp_path / "out"
    shutil.copytree(config.root, copy)
    out.mkdir()
    write_protect(copy, True)
    try:
        yield copy, out, site.url("/a/")
    finally:
        write_protect(copy, False)


def test_a_write_protected_copy_is_verified_listed_and_exported_unchanged(protected):
    copy, out, url = protected
    before = tree(copy)
    config = str(copy / "config.toml")
    denied = subprocess.run(as_reader(["touch", str(copy / "probe")]), capture_output=True)
    assert denied.returncode != 0  # the copy really cannot be written by the commands below
    verified = run_as_reader("--config", config, "verify", cwd=out)
    assert verified.returncode == 0 and verified.stdout.startswith("OK: "), verified.stdout + verified.stderr
    listed = run_as_reader("--config", config, "captures", "--json", cwd=out)
    assert listed.returncode == 0 and url in listed.stdout, listed.stderr
    history = run_as_reader("--config", config, "history", url, cwd=out)
    assert history.returncode == 0, history.stderr
    exported = run_as_reader("--config", config, "export", "--wacz", str(out / "evidence.wacz"), cwd=out)
    assert exported.returncode == 0 and "signed" in exported.stdout, exported.stderr
    checked = run_as_reader("verify", str(out / "evidence.wacz"), "--key", str(copy / "archive.key.pub"), cwd=out)
    assert checked.returncode == 0, checked.stdout
    writing = run_as_reader("--config", config, "snapshot", url, cwd=out)  # refused, in one line
    assert writing.returncode == 1 and len(writing.stderr.strip().splitlines()) == 1, writing.stderr
    assert tree(copy) == before
