"""One snapshot of many seeds captured by several processes at once.

Python runs one thread at a time, and on a fast network a capture is bound by the CPU
(building records, digests, deflate, the catalog, article extraction), not by the
network. So a snapshot of several seeds is shared out among worker processes, one per
CPU core. Each worker is a whole crawler writing its own WARC file; they share the
catalog (SQLite WAL), the ledger (flock) and a table of claimed URLs in shared memory.
Every worker is given every seed, each starting at its own point of the list, and
captures a seed only if it is the first to claim it when the seed's turn comes: a worker
that finishes early takes seeds the others have not reached, instead of waiting for
them. No URL is fetched twice in the snapshot: a cross-reference or requisite, too, is
fetched by the first worker to claim it, and a seed never as a cross-reference.

Only with per_host_delay = 0: the politeness delay is kept per process, so with a delay
one process captures (and the network, not the CPU, is what bounds it anyway).
"""

from __future__ import annotations

import ctypes
import encodings.idna  # noqa: F401 - socket's name lookups load it: once here, not in every forked process
import functools
import gc
import hashlib
import logging
import mmap
import multiprocessing
import multiprocessing.connection
import os
import signal
from dataclasses import replace
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
    if cap.per_host_delay > 0 or seeds < 2 or not _can_fork_and_share_a_lock():
        return 1
    wanted = cap.processes or min(os.cpu_count() or 1, MAX_PROCESSES)
    return max(1, min(wanted, seeds))


@functools.cache
def _can_fork_and_share_a_lock() -> bool:
    """Forking, and a lock the forked processes share (a POSIX semaphore: some systems,
    and containers without /dev/shm, have none)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    try:
        multiprocessing.get_context("fork").Lock()
    except (OSError, ImportError) as e:
        log.info("one capture process: no lock can be shared between processes here (%s)", e)
        return False
    return True


class Claims:
    """First come, first served among the forked capture processes of one snapshot: a
    hash table of URL digests in memory they share (an anonymous mapping made before the
    fork, so nothing is left behind if the snapshot is killed), behind one lock. A claim
    takes 1.5 us; a claim file in /dev/shm took 6.4, and its folder had to be made,
    removed (6 ms for 1,400 files at the end of a snapshot) and cleaned up after killed
    snapshots."""

    SLOTS = 1 << 18  # 4 MiB of keys; the kernel gives a page only when a URL lands in it
    FULL_AT = SLOTS * 3 // 4  # past this, probing gets long: URLs are then fetched, not claimed
    KEY = 16  # bytes of BLAKE2b per URL: two URLs taken for one would have one of them lost
    LOCK_WAIT = 10.0  # seconds; the lock is held for microseconds, unless its holder was killed

    def __init__(self) -> None:
        self.table = mmap.mmap(-1, self.KEY * (self.SLOTS + 1))  # slot 0: the count of claims
        self.lock = multiprocessing.get_context("fork").Lock()
        self.failed = False
        self.seeds: frozenset[str] = frozenset()  # the snapshot's
        self.own_seeds: frozenset[str] = frozenset()  # this process's share, once claims fail

    def fall_back_to_share(self, seeds: list[str], share: list[str]) -> None:
        """Should claims fail in this process, it takes the seeds of its share (those it
        starts with) and every other URL it reaches, but no other seed. A seed is then
        fetched by its share's owner, or claimed by a process whose claims still work:
        none is left out, though some may be fetched twice."""
        self.seeds, self.own_seeds = frozenset(seeds), frozenset(share)

    def claim(self, url: str) -> bool:
        """True: this process fetches the URL. If the table cannot take it (full, or the
        lock is held by a process that was killed holding it), this process falls back to
        its share (fall_back_to_share) from then on: a URL fetched twice rather than a
        snapshot lost or stuck."""
        claimed = None if self.failed else self._claim_in_table(url)
        if claimed is None:
            return url in self.own_seeds or url not in self.seeds
        return claimed

    def _claim_in_table(self, url: str) -> bool | None:
        """Whether the URL was not claimed yet (it is now); None if the table failed."""
        key = hashlib.blake2b(url.encode(), digest_size=self.KEY).digest()
        if not self.lock.acquire(timeout=self.LOCK_WAIT):
            self._fail("its lock was not released")
            return None
        try:
            return self._claim_locked(key)
        finally:
            self.lock.release()

    def _claim_locked(self, key: bytes) -> bool | None:
        """Whether the key was new, and is now in the table; None if the table is full."""
        table, size = self.table, self.KEY
        slot = int.from_bytes(key[:4], "little") % self.SLOTS + 1
        while (held := table[slot * size:(slot + 1) * size]) != EMPTY_KEY:  # linear probing
            if held == key:
                return False
            slot = slot % self.SLOTS + 1
        count = int.from_bytes(table[:size], "little")
        if count >= self.FULL_AT:
            self._fail(f"it holds {count:,} URLs")
            return None
        table[slot * size:(slot + 1) * size] = key
        table[:size] = (count + 1).to_bytes(size, "little")
        return True

    def _fail(self, why: str) -> None:
        self.failed = True
        log.warning("the snapshot's URL claims stopped working (%s): this capture process now takes its "
                    "share of the seeds and may fetch URLs another one fetches too", why)


EMPTY_KEY = bytes(Claims.KEY)


def parallel_snapshot(archive: Archive, seeds: list[str], processes: int,
                      on_result: Callable[[FetchResult], None]) -> SnapshotSummary:
    """Capture the seeds with ``processes`` forked workers; report each result as it is
    stored. A worker that fails or dies is reported after the others have finished, and
    its open WARC file is repaired (what it had stored stays stored)."""
    config = archive.config
    snapshot_id = os.urandom(16).hex()
    claims = Claims()
    workers: dict[multiprocessing.connection.Connection, multiprocessing.Process] = {}
    summary = SnapshotSummary()
    failures: list[str] = []
    try:
        _start_workers(workers, config, seeds, processes, snapshot_id, claims)
        while workers:
            for conn in multiprocessing.connection.wait(list(workers)):
                process = workers[conn]
                done = _receive(conn, summary, on_result, failures, process.name)
                if done:
                    del workers[conn]
                    conn.close()
                    process.join()
    finally:
        for process in workers.values():
            process.kill()
            process.join()
    if failures:
        repair_abandoned(config, archive.catalog)
        raise ArchiverError("; ".join(failures))
    for seed in seeds:
        if seed not in summary.seeds_ok:  # every worker goes through every seed: a bug if so
            log.warning("no capture process took the seed %s", seed)
            summary.seeds_ok[seed] = False
    summary.warcs = sorted({r.warc for r in summary.results})
    return summary


def _start_workers(workers: dict, config: Config, seeds: list[str], processes: int, snapshot_id: str,
                   claims: Claims) -> None:
    """Fork the workers into ``workers`` (pipe -> process). Python's objects are frozen
    meanwhile, as its gc documentation advises: the workers' garbage collections then
    skip everything made before the fork."""
    context = multiprocessing.get_context("fork")
    frozen_by_caller = gc.get_freeze_count() > 0  # (archiver used as a library): left as it is
    gc.freeze()
    try:
        for i in range(processes):
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_worker, name=f"archiver-capture-{i + 1}", daemon=True,
                                      args=(config, seeds, i, snapshot_id, claims, processes, os.getpid(), send))
            process.start()
            send.close()
            workers[receive] = process
    finally:
        if not frozen_by_caller:
            gc.unfreeze()


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
        for seed, ok in seeds_ok.items():  # a seed two processes fetched (claims failed) is ok if either got it
            summary.seeds_ok[seed] = summary.seeds_ok.get(seed, False) or ok
        summary.histories.update(histories)
    else:
        failures.append(f"capture process {name}: {payload}")
    return True


def _worker(config: Config, seeds: list[str], index: int, snapshot_id: str, claims: Claims,
            processes: int, parent: int, conn: multiprocessing.connection.Connection) -> None:
    """In a forked process: crawl the seeds this process claims, send the results of each
    batch once it is stored, then the seeds' outcomes. Never returns into the parent's code."""
    code = 0
    try:
        _die_with_parent(parent)
        cap = config.capture
        share = replace(cap, concurrency=max(1, cap.concurrency // processes),
                        per_host_concurrency=max(1, cap.per_host_concurrency // processes),
                        max_urls_per_snapshot=max(1, cap.max_urls_per_snapshot // processes))
        archive = Archive(config, repair=False)  # the parent repaired before forking
        stored: list[FetchResult] = []  # sent once per stored batch: a message per URL costs more
        crawler = Crawler(archive, on_result=stored.append, on_stored=lambda: _send_results(conn, stored),
                          claim=claims.claim, cfg=share)
        done = []
        crawler.on_batch_done = done.append
        try:
            start, end = (len(seeds) * i // processes for i in (index, index + 1))
            claims.fall_back_to_share(seeds, seeds[start:end])
            crawler.submit(seeds[start:] + seeds[:start], snapshot_id, shared=True)  # each at its own point
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
