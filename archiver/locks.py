"""Per-URL locks across processes: a ``snapshot`` next to an ``archiver run`` never
captures the same tracked URL at the same time. flock locks vanish with their process,
so a killed process never leaves a URL locked."""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path


class UrlLocks:
    def __init__(self, lock_dir: Path):
        self.lock_dir = lock_dir
        self.held: dict[str, int] = {}

    def _path(self, url: str) -> Path:
        return self.lock_dir / (hashlib.sha1(url.encode()).hexdigest() + ".lock")

    def acquire(self, url: str, wait: bool = False) -> bool:
        """Take the URL's lock; False if another process holds it (and wait is False)."""
        if url in self.held:
            return False
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(url), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self.held[url] = fd
        return True

    def is_locked_elsewhere(self, url: str) -> bool:
        if url in self.held or not self._path(url).exists():
            return False
        fd = os.open(self._path(url), os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def release(self, url: str) -> None:
        fd = self.held.pop(url, None)
        if fd is not None:
            os.close(fd)  # closing drops the flock

    def release_all(self) -> None:
        for url in list(self.held):
            self.release(url)
