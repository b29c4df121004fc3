"""Shared fixtures: a local site, an initialised archive folder, and WARC helpers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import settings


from archiver.config import Config, load_config
from archiver.archive.writer import Writer
from archiver.pipeline import snapshot
from archiver.archive.workdir import init_archive

from .site import Site
from .tls import TlsSite, make_ca_and_leaf

# No per-example deadline: a busy machine must not fail a property test.
settings.register_profile("archiver", deadline=None)
settings.load_profile("archiver")

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
# Real pages and WARCs written by others, kept beside the repository and not in it: a clone
# alone skips the tests that read them (mark them, or their module, with needs_corpus).
needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(), reason="needs ../shared/corpus (the project's test corpus beside the repository), absent here")


@pytest.fixture
def site():
    s = Site()
    yield s
    s.stop()


@pytest.fixture
def tls_site(tmp_path):
    """(an https://localhost site, the CA file that trusts it, its leaf certificate in DER)."""
    ca, chain, key, leaf_der = make_ca_and_leaf(tmp_path)
    site = TlsSite(chain, key)
    yield site, ca, leaf_der
    site.stop()


def make_archive(root: Path, **overrides: str) -> Config:
    """An archive for a test. Confirmation (a second fetch of a first capture and of each
    change) is off unless asked for: tests of capture count fetches and records; the tests
    of edit detection (test_confirm, test_edits) turn it on."""
    settings = {"per_host_delay": "0.0", "confirm_delay": "0.0", "timeout": "5.0", "retries": "0",
                "confirm": "false", **overrides}
    init_archive(root, overrides=settings)
    return load_config(root / "config.toml")


@pytest.fixture
def config(tmp_path) -> Config:
    return make_archive(tmp_path / "archive")


def run_snapshot(config: Config, *urls: str):
    archive = Writer(config)
    try:
        return snapshot(archive, urls)
    finally:
        archive.close()


def warc_files(config: Config) -> list[Path]:
    return sorted(config.storage.warc_dir.glob("*.warc.gz"))


def warcio_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "warcio.cli", "check", "-v", str(path)],
                          capture_output=True, text=True)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archiver", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def reported(proc: subprocess.Popen, url: str) -> threading.Event:
    """Set once a ``--json`` snapshot or run has reported url on stdout: it is stored,
    and its seed's bookkeeping (schedule, history) done."""
    seen = threading.Event()

    def read() -> None:
        try:
            for line in proc.stdout:
                if json.loads(line).get("url") == url:
                    seen.set()
        except (ValueError, OSError):  # the test's communicate() closed stdout once it had waited
            pass
    threading.Thread(target=read, daemon=True).start()
    return seen
