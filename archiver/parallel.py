"""One snapshot of many seeds captured by several processes at once.

Python runs one thread at a time, and on a fast network a capture is bound by the CPU
(building records, digests, deflate, the catalog, article extraction), not by the
network. So a snapshot of several seeds is shared out among worker processes, one per
CPU core. Each worker is a whole crawler on its share of the seeds, writing its own WARC
file; they share the catalog (SQLite WAL), the ledger (flock) and a claim folder. No URL
is fetched twice in the snapshot: a worker never fetches another worker's seed, and
fetches a cross-reference or requisite only if it is the first to create its claim file.

Only with per_host_delay = 0: the politeness delay is kept per process, so with a delay
one process captures (and the network, not the CPU, is what bounds it anyway).
"""

from __future__ import annotations

import ctypes
import fcntl
import gc
import hashlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import stat
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from .archive import Archive, FetchResult, SnapshotSummary, repair_abandoned
from .config import Config
from .crawl import Crawler
from .errors import ArchiverError

log = logging.getLogger("archiver")

MAX_PROCESSES = 8
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def process_count(config: Config, seeds: int) -> int:
    """How many processes capture a snapshot of this many seeds."""
    cap = config.capture
    if cap.per_host_delay > 0 or seeds < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    wanted = cap.processes or min(os.cpu_count() or 1, MAX_PROCESSES)
    return max(1, min(wanted, seeds))


CLAIMS_PREFIX = "archiver-claims-"
# Left in the lock folder by versions before 2026-11-27, and a folder being made (killed
# before its rename): removed as stale like claim folders, once their owner lock is free.
OLD_CLAIMS_PREFIXES = ("claims-", ".making-", f".{CLAIMS_PREFIX}")
OWNER_FILE = ".owner"  # flock-ed by the snapshot that made the folder, for as long as it runs
SHARED_MEMORY = Path("/dev/shm")
MAKING_GRACE = 60.0  # seconds: a folder still being made has no owner lock yet


def claims_dir(lock_dir: Path) -> Path:
    """Where a snapshot's claim folder goes: this user's folder in memory,
    /dev/shm/archiver-<uid> (mode 0700: claim files are named by URL digests, which other
    users must not probe), as a file is made there in 7 us against 32 on a journalled disk
    (a 200-article snapshot makes 1,400); else the archive's lock folder."""
    private = SHARED_MEMORY / f"archiver-{os.getuid()}"
    try:
        private.mkdir(mode=0o700, exist_ok=True)
        found = private.lstat()  # a symbolic link or someone else's folder is not ours
    except OSError:
        return lock_dir
    if stat.S_ISDIR(found.st_mode) and found.st_uid == os.getuid() and not found.st_mode & 0o077:
        return private
    return lock_dir


class Claims:
    """First come, first served across processes: creating a file with O_EXCL is atomic."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.failed = False

    @classmethod
    def create(cls, parent: Path, snapshot_id: str) -> tuple[Claims, int]:
        """A new claim folder in parent, and the descriptor of its owner lock (held until
        closed; forked workers share it, so it is held while any of them runs)."""
        making = parent / f".{CLAIMS_PREFIX}{snapshot_id}"  # renamed once locked: a claim folder always has its lock
        making.mkdir(mode=0o700, parents=True)
        fd = os.open(making / OWNER_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        folder = making.rename(parent / f"{CLAIMS_PREFIX}{snapshot_id}")
        return cls(folder), fd

    def claim(self, url: str) -> bool:
        """True: this process fetches the URL. If the folder fails (removed under us, as
        systemd's RemoveIPC does to /dev/shm at logout, or memory full), every URL is
        this process's from then on: a URL fetched twice rather than a snapshot lost."""
        if self.failed:
            return True
        name = hashlib.sha1(url.encode()).hexdigest()
        try:
            os.close(os.open(self.folder / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return False
        except OSError as e:
            self.failed = True
            log.warning("claim folder %s failed (%s): this capture process may now fetch URLs another "
                        "one fetches too", self.folder, e)
        return True


def parallel_snapshot(archive: Archive, seeds: list[str], processes: int,
                      on_result: Callable[[FetchResult], None]) -> SnapshotSummary:
    """Capture the seeds with ``processes`` forked workers; report each result as it is
    stored. A worker that fails or dies is reported after the others have finished, and
    its open WARC file is repaired (what it had stored stays stored)."""
    config = archive.config
    snapshot_id = os.urandom(16).hex()
    parent = claims_dir(config.storage.lock_dir)
    remove_stale_claims(config.storage.lock_dir, parent)
    claims, owner = Claims.create(parent, snapshot_id)
    workers: dict[multiprocessing.connection.Connection, tuple[multiprocessing.Process, list[str]]] = {}
    summary = SnapshotSummary()
    failures: list[str] = []
    try:
        _start_workers(workers, config, seeds, processes, snapshot_id, claims.folder)
        while workers:
            for conn in multiprocessing.connection.wait(list(workers)):
                process, part = workers[conn]
                done = _receive(conn, summary, on_result, failures, process.name)
                if done:
                    del workers[conn]
                    conn.close()
                    process.join()
    finally:
        for process, _ in workers.values():
            process.kill()
            process.join()
        shutil.rmtree(claims.folder, ignore_errors=True)
        os.close(owner)
    if failures:
        repair_abandoned(config, archive.catalog)
        raise ArchiverError("; ".join(failures))
    summary.warcs = sorted({r.warc for r in summary.results})
    return summary


def _start_workers(workers: dict, config: Config, seeds: list[str], processes: int, snapshot_id: str,
                   claims: Path) -> None:
    """Fork the workers, each with its share of the seeds, into ``workers`` (pipe ->
    process and share). Python's objects are frozen meanwhile, as its gc documentation
    advises: the workers' garbage collections then skip everything made before the fork."""
    context = multiprocessing.get_context("fork")
    frozen_by_caller = gc.get_freeze_count() > 0  # (archiver used as a library): left as it is
    gc.freeze()
    try:
        for i in range(processes):
            part = seeds[i::processes]
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_worker, name=f"archiver-capture-{i + 1}", daemon=True,
                                      args=(config, part, frozenset(seeds) - set(part), snapshot_id,
                                            claims, processes, os.getpid(), send))
            process.start()
            send.close()
            workers[receive] = (process, part)
    finally:
        if not frozen_by_caller:
            gc.unfreeze()


def remove_stale_claims(lock_dir: Path, claims_parent: Path) -> None:
    """Claim folders, in lock_dir or in claims_parent (claims_dir's answer), of snapshots
    that were killed (kill -9 leaves them): their owner lock is free. Those in /dev/shm may be other archives' of this user: the test is the
    same. A folder still being made is left alone for MAKING_GRACE seconds."""
    folders = {p for parent in {lock_dir, claims_parent} if parent.is_dir()
               for p in parent.iterdir() if p.name.startswith((CLAIMS_PREFIX, *OLD_CLAIMS_PREFIXES))}
    for folder in folders:
        if not _owner_running(folder) and not _being_made(folder):
            shutil.rmtree(folder, ignore_errors=True)
            log.info("removed %s, left by a snapshot that did not finish", folder.name)


def _being_made(folder: Path) -> bool:
    try:
        return folder.name.startswith(".") and time.time() - folder.stat().st_mtime < MAKING_GRACE
    except OSError:
        return False


def _owner_running(folder: Path) -> bool:
    try:
        fd = os.open(folder / OWNER_FILE, os.O_RDWR)
    except FileNotFoundError:  # made by a version without owner files
        return False
    except OSError:  # cannot tell: leave the folder
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _receive(conn, summary: SnapshotSummary, on_result: Callable[[FetchResult], None],
             failures: list[str], name: str) -> bool:
    """Take one message from a worker; True when that worker has finished."""
    try:
        kind, payload = conn.recv()
    except EOFError:
        failures.append(f"capture process {name} died before finishing its seeds")
        return True
    if kind == "results":
        for result in payload:
            summary.results.append(result)
            on_result(result)
        return False
    if kind == "done":
        seeds_ok, histories = payload
        summary.seeds_ok.update(seeds_ok)
        summary.histories.update(histories)
    else:
        failures.append(f"capture process {name}: {payload}")
    return True


def _worker(config: Config, seeds: list[str], others: frozenset[str], snapshot_id: str, claims: Path,
            processes: int, parent: int, conn: multiprocessing.connection.Connection) -> None:
    """In a forked process: crawl this share of the seeds, send the results of each
    batch once it is stored, then the seeds' outcomes. Never returns into the parent's code."""
    code = 0
    try:
        _die_with_parent(parent)
        cap = config.capture
        share = replace(cap, concurrency=max(1, cap.concurrency // processes),
                        per_host_concurrency=max(1, cap.per_host_concurrency // processes))
        archive = Archive(config, repair=False)  # the parent repaired before forking
        stored: list[FetchResult] = []  # sent once per stored batch: a message per URL costs more
        crawler = Crawler(archive, on_result=stored.append, on_stored=lambda: _send_results(conn, stored),
                          claim=Claims(claims).claim, cfg=share)
        done = []
        crawler.on_batch_done = done.append
        try:
            crawler.submit(seeds, snapshot_id, others)
            crawler.run()
            archive.catalog.copy_log_back()  # while the other workers still capture
        finally:
            crawler.close()
            archive.close()
        [batch] = done
        conn.send(("done", (batch.summary.seeds_ok, batch.summary.histories)))
    except BaseException as e:  # noqa: BLE001 - reported by the parent, in one line
        code = 1
        try:
            conn.send(("error", f"{type(e).__name__}: {e}"))
        except OSError:
            pass
    finally:
        conn.close()
        os._exit(code)  # skip the parent's atexit handlers and inherited objects


def _send_results(conn: multiprocessing.connection.Connection, results: list[FetchResult]) -> None:
    if results:
        conn.send(("results", results[:]))
        results.clear()


def _die_with_parent(parent: int) -> None:
    """On Linux, have the kernel kill this worker if the snapshot process dies (kill -9
    included), as the capture it was part of is over: its open WARC file is repaired by
    the next command, as after any crash. Elsewhere a worker stops at its next result,
    when the pipe to the parent is broken."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
