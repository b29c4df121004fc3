"""Where the stages meet: fetch -> discover -> WARC records -> catalog -> history.

``snapshot`` captures seeds, their cross-references and requisites once (one batch of
the crawler, run until idle). ``reindex`` rebuilds the catalog, the CDXJ index and the
article history from the WARC files alone.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable

from .archive import Archive, FetchResult, SnapshotSummary, open_catalog, repair_abandoned
from .history import History
from .catalog import Catalog
from .config import Config
from .crawl import Batch, Crawler
from .index import warc_captures, write_cdxj
from .ledger import Ledger
from .parallel import parallel_snapshot, process_count
from .locks import UrlLocks, WriterLock
from .seeds import normalize_url
from .tracking import load_history, observe_from_warcs, rebuild_histories
from .warcfile import WARC_SUFFIX

log = logging.getLogger("archiver")


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
        capture_id = catalog.capture_id(warc, offset)
        if capture_id is not None:
            pairs.append((capture_id, seq))
    if pairs:
        catalog.mark_ledgered(pairs, ledger.head())


def snapshot(archive: Archive, urls: Iterable[str],
             on_result: Callable[[FetchResult], None] = lambda r: None) -> SnapshotSummary:
    """Capture each URL, its cross-references and requisites, once; close the WARC file."""
    seeds = list(dict.fromkeys(normalize_url(u) for u in urls))
    locks = UrlLocks(archive.config.storage.lock_dir)
    try:
        for seed in sorted(seeds):  # one order for every process: no deadlock between two snapshots
            if not locks.acquire(seed):
                log.info("waiting: another process is capturing %s", seed)
                locks.acquire(seed, wait=True)
        processes = process_count(archive.config, len(seeds))
        if processes > 1:
            return parallel_snapshot(archive, seeds, processes, on_result)
        return _crawl(archive, seeds, on_result)
    finally:
        locks.release_all()


def _crawl(archive: Archive, seeds: list[str], on_result: Callable[[FetchResult], None]) -> SnapshotSummary:
    done: list[Batch] = []
    crawler = Crawler(archive, on_result, on_batch_done=done.append)
    try:
        crawler.submit(seeds)
        crawler.run()
    finally:
        crawler.close()
        archive.writer.close()
    [batch] = done
    return batch.summary


def reindex(config: Config, on_file: Callable[[str], None] = lambda name: None) -> tuple[int, int]:
    """Rebuild captures, cross-references and CDXJ files from the WARC files alone.
    Returns (files, captures)."""
    alone = WriterLock(config.storage.lock_dir)
    alone.take_alone("reindex")  # a writer's captures still in an open file would be cleared for good
    catalog = Catalog(config.storage.catalog)
    try:
        repair_abandoned(config, catalog)
        catalog.clear_captured()
        files = sorted(config.storage.warc_dir.glob("*" + WARC_SUFFIX))
        count = 0
        for path in files:
            on_file(path.name)
            for row, xrefs in warc_captures(path):
                count += catalog.add_capture(row, xrefs) is not None
            write_cdxj(path, config.storage.index_dir)
        relink_ledger(catalog, Ledger(config.evidence.ledger))
        rebuild_histories(catalog, observe_from_warcs(catalog, config, only_missing=False), config.detect.confirm)
        return len(files), count
    finally:
        catalog.close()
        alone.close()
