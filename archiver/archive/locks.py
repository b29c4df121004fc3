"""Locks across processes. Per URL: a ``snapshot`` next to an ``archiver run`` never
captures the same tracked URL at the same time. Per archive: ``reindex`` never runs
while another process writes.

One lock file, one byte-range lock per URL (at an offset taken from the URL's hash):
POSIX record locks conflict between processes, vanish with their process (a killed
process never leaves a URL locked), and cost no file descriptor per URL, so a service
with thousands of URLs in flight cannot run out of them.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from pathlib import Path

from archiver.errors import ArchiverError

log = logging.getLogger(__name__)

LOCK_FILE = "urls.lock"
OFFSET_BITS = 40  # 2**40 slots: two URLs sharing one is a (harmless) false conflict


def _offset(url: str) -> int:
    return int.from_bytes(hashlib.sha1(url.encode()).digest()[:8], "big") >> (64 - OFFSET_BITS)


class UrlLocks:
    def __init__(self, lock_dir: Path):
        self.lock_dir = lock_dir
        self.held: set[str] = set()
        self._fd: int | None = None

    def _file(self) -> int:
        if self._fd is None:
            self.lock_dir.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.lock_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    def acquire(self, url: str, wait: bool = False) -> bool:
        """Take the URL's lock; False if another process holds it (and wait is False)."""
        if url in self.held:
            return False
        try:
            fcntl.lockf(self._file(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB), 1, _offset(url))
        except (BlockingIOError, PermissionError):
            return False
        self.held.add(url)
        return True

    def is_locked_elsewhere(self, url: str) -> bool:
        """True if another process holds the URL's lock (this process's own locks do not count)."""
        if url in self.held or not (self.lock_dir / LOCK_FILE).exists():
            return False
        try:
            fcntl.lockf(self._file(), fcntl.LOCK_SH | fcntl.LOCK_NB, 1, _offset(url))
        except (BlockingIOError, PermissionError):
            return True
        fcntl.lockf(self._file(), fcntl.LOCK_UN, 1, _offset(url))
        return False

    def release(self, url: str) -> None:
        if url in self.held:
            self.held.discard(url)
            fcntl.lockf(self._file(), fcntl.LOCK_UN, 1, _offset(url))

    def release_all(self) -> None:
        """Release every lock and close the file (closing drops all of this process's
        locks on it: one UrlLocks per process)."""
        for url in list(self.held):
            self.release(url)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class WriterLock:
    """Held shared by every process that writes the archive (a snapshot, archiver run),
    exclusive by reindex and reextract, which clear and rebuild
    what they write into: a writer's captures still in an open WARC file would be lost to
    them."""

    def __init__(self, lock_dir: Path):
        lock_dir.mkdir(parents=True, exist_ok=True)
        self.file = open(lock_dir / "writers.lock", "a+b")

    def share(self) -> None:
        """Take the lock beside other writers; waits while a reindex runs."""
        try:
            fcntl.flock(self.file, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting: archiver reindex is running on this archive")
            fcntl.flock(self.file, fcntl.LOCK_SH)

    def take_alone(self, command: str) -> None:
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise ArchiverError("another process is writing this archive (archiver run or a snapshot): "
                                f"stop it, then {command}") from None

    def close(self) -> None:
        self.file.close()  # lets the lock go


def reading(lock_dir: Path) -> WriterLock | None:
    """The writer lock taken shared by a command that reads the catalog, so that it never
    reads one half rebuilt by reindex; None where the lock file cannot be opened (a copy
    of an archive on read-only media, where no reindex can run either)."""
    try:
        lock = WriterLock(lock_dir)
    except OSError:
        return None
    lock.share()
    return lock

