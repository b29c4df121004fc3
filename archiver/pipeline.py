"""Where the stages meet: fetch -> discover -> WARC records -> catalog -> history.

``snapshot`` captures seeds, their cross-references and requisites once (one batch of
the crawler, run until idle). ``reindex`` rebuilds the catalog, the CDXJ index and the
article history from the WARC files alone.
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Iterator

from archiver.archive import writer as _archive
from archiver.archive.writer import Writer, FetchResult, SnapshotSummary, repair_abandoned
from archiver.edits.history import History
from archiver.catalog import Catalog
from archiver.config import Config
from archiver.crawl import Batch, Crawler
from archiver.capture.fetch import utcnow
from archiver.archive.index import warc_captures, write_cdxj
from archiver.archive.ledger import Ledger
from archiver.archive.locks import UrlLocks, WriterLock
from archiver.seeds import normalize_url
from archiver.edits.observe import Observer, load_history, observe_from_warcs, observe_repaired, rebuild_histories
from archiver.archive.warcfile import WARC_SUFFIX, iter_gzip_members

log = logging.getLogger("archiver")


def open_archive(config: Config, clock: Callable[[], datetime] = utcnow) -> Writer:
    """The archive opened for capture, a crashed writer's files repaired and observed."""
    return Writer(config, clock, on_repaired=functools.partial(observe_repaired, config))


def open_catalog(config: Config) -> Catalog:
    """The catalog for reading, a crashed writer's files repaired and observed."""
    return _archive.open_catalog(config, functools.partial(observe_repaired, config))


def crawler(archive: Writer, on_result: Callable[[FetchResult], None] = lambda r: None, **kwargs) -> Crawler:
    """The capture stage, telling the observe stage what it stores."""
    observer = Observer(archive.catalog, archive.config, archive.clock)
    return Crawler(archive, on_result, observer=observer, **kwargs)


def history_of(config: Config, url: str) -> History:
    """A tracked URL's versions and suspect captures (after any crash repair)."""
    catalog = open_catalog(config)
    try:
        return load_history(catalog, url, config.detect.confirm)
    finally:
        catalog.close()


def relink_ledger(catalog: Catalog, ledger: Ledger) -> None:
    """Which ledger entry holds each capture, read back from the ledger file."""
    pairs = []
    for warc, offset, seq in ledger.capture_records():
        capture_id = catalog.captures.id_at(warc, offset)
        if capture_id is not None:
            pairs.append((capture_id, seq))
    if pairs:
        catalog.ledger.mark(pairs, ledger.head())


def snapshot(archive: Writer, urls: Iterable[str],
             on_result: Callable[[FetchResult], None] = lambda r: None) -> SnapshotSummary:
    """Capture each URL, its cross-references and requisites, once; close the WARC file."""
    seeds = list(dict.fromkeys(normalize_url(u) for u in urls))
    locks = UrlLocks(archive.config.storage.lock_dir)
    try:
        for seed in sorted(seeds):  # one order for every snapshot: no deadlock between two of them
            if not locks.acquire(seed):
                log.info("waiting: another process is capturing %s", seed)
                locks.acquire(seed, wait=True)
        return _crawl(archive, seeds, on_result)
    finally:
        locks.release_all()


def _crawl(archive: Writer, seeds: list[str], on_result: Callable[[FetchResult], None]) -> SnapshotSummary:
    done: list[Batch] = []
    crawl = crawler(archive, on_result, on_batch_done=done.append)
    try:
        crawl.submit(seeds)
        crawl.run()
    finally:
        crawl.close()
        archive.writer.close()
    [batch] = done
    return batch.summary


@dataclass(frozen=True)
class Damaged:
    """A WARC file that cannot be read to its end (truncated, or a corrupt gzip member)."""
    warc: str
    readable: int  # bytes up to the end of its last whole record
    size: int
    records: int   # whole records before that point (warcinfo included)
    captures: int  # captures indexed from them


@dataclass
class Reindexed:
    files: int = 0
    captures: int = 0
    damaged: list[Damaged] = field(default_factory=list)


def reindex(config: Config, on_file: Callable[[str], None] = lambda name: None) -> Reindexed:
    """Rebuild captures, cross-references and CDXJ files from the WARC files alone. A
    damaged file's whole records are indexed and the file is reported."""
    alone = WriterLock(config.storage.lock_dir)
    alone.take_alone("reindex")  # a writer's captures still in an open file would be cleared for good
    catalog = Catalog(config.storage.catalog)
    try:
        repair_abandoned(config, catalog)  # its captures are observed with all the others below
        catalog.clear_captured()
        files = sorted(config.storage.warc_dir.glob("*" + WARC_SUFFIX))
        result = Reindexed(files=len(files))
        for path in files:
            on_file(path.name)
            captures, damaged = _index_file(catalog, path, config.storage.index_dir)
            result.captures += captures
            if damaged is not None:
                result.damaged.append(damaged)
        relink_ledger(catalog, Ledger(config.evidence.ledger))
        rebuild_histories(catalog, observe_from_warcs(catalog, config, only_missing=False), config.detect.confirm)
        return result
    finally:
        catalog.close()
        alone.close()


def _index_file(catalog: Catalog, path: Path, index_dir: Path) -> tuple[int, Damaged | None]:
    """Catalog rows and the CDXJ index of one file's whole records: (captures, damage)."""
    records, readable = _whole_records(path)
    size = path.stat().st_size
    with _readable_part(path, readable if readable < size else None) as whole:
        count = sum(catalog.captures.add(row, xrefs) is not None for row, xrefs in warc_captures(whole, path.name))
        write_cdxj(whole, index_dir)
    return count, (Damaged(path.name, readable, size, records, count) if readable < size else None)


def _whole_records(path: Path) -> tuple[int, int]:
    """(records, end of the last): every record is its own gzip member, checked to its CRC."""
    records = end = 0
    with open(path, "rb") as f:
        for _, end in iter_gzip_members(f):
            records += 1
    return records, end


@contextmanager
def _readable_part(path: Path, limit: int | None) -> Iterator[Path]:
    """path itself, or (limit given) a copy of its first limit bytes under the same name,
    beside it: a torn record is never parsed, so a damaged file gives its whole records."""
    if limit is None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=".reindex-", dir=path.parent) as tmp:
        copy = Path(tmp) / path.name
        with open(path, "rb") as src, open(copy, "wb") as dst:
            shutil.copyfileobj(_Limited(src, limit), dst)
        yield copy


class _Limited:
    """The first n bytes of a file object."""

    def __init__(self, f, n: int):
        self.f, self.left = f, n

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(self.left if size < 0 else min(size, self.left))
        self.left -= len(data)
        return data
