"""Where captures become article history: extract -> observations -> versions and changes.

Each capture that ends a tracked URL's redirect chain is an *observation*: the article
extracted from it (stored as JSON with the extractor's version). A tracked URL's versions
and change events are recomputed from its observations by the pure ``history`` stage and
stored in the catalog. ``reextract`` re-runs the extractor over the WARC payloads.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from archiver.page.article import EXTRACTOR_VERSION, Article, Ref, extract_article
from archiver.catalog import Catalog
from archiver.config import Config
from archiver.page.extract import PARSE_LIMIT, decode_body, is_html
from archiver.errors import UsageError
from archiver.archive.locks import WriterLock
from archiver.edits.history import CaptureRef, History, Observation, build_history, diff_versions, stored_digest
from archiver.edits.report import VersionDiff, atom_feed, change_event_json
from archiver.seeds import url_host
from archiver.archive.warcfile import read_response, warc_date

def challenge_of(header: Callable[[str], str]) -> str:
    """A bot challenge announced in the response headers."""
    if header("cf-mitigated").lower() == "challenge":
        return "cf-mitigated: challenge"
    return ""

log = logging.getLogger("archiver")


class Observer:
    """The observe stage as the crawl meets it (crawl.Observer): a tracked URL's page,
    once stored, is an observation; once all its seed reached is stored, the history is
    rebuilt and says whether a second render must confirm a change; each finished
    snapshot rewrites the Atom feed."""

    def __init__(self, catalog: Catalog, config: Config, clock: Callable[[], datetime]):
        self.catalog, self.config, self.clock = catalog, config, clock

    def observe(self, capture_id: int, tracked_url: str, final_url: str, header: Callable[[str], str],
                article: Article | None) -> None:
        record_observation(self.catalog, capture_id, tracked_url, final_url, challenge_of(header), article)

    def settle(self, tracked_url: str) -> tuple[History, bool]:
        reobserve_stale(self.catalog, self.config, tracked_url)
        history = update_history(self.catalog, tracked_url, self.config.detect.confirm)
        return history, history.awaiting_confirm is not None

    def snapshot_done(self) -> None:
        write_feed(self.catalog, self.config, warc_date(self.clock()))


def observe_repaired(config: Config, catalog: Catalog, warc: str) -> None:
    """Observations for a repaired file's chain ends (not other files': a live writer's
    redirect chain may still be waiting for its end), and their histories."""
    for url in observe_from_warcs(catalog, config, only_warc=warc):
        update_history(catalog, url, config.detect.confirm)


def reobserve_stale(catalog: Catalog, config: Config, tracked_url: str) -> int:
    """The observations of a tracked URL that an older extractor made, made again from
    their WARC records, before its history is rebuilt: after an upgrade, an improved
    extractor never shows up as an edit (``archiver reextract`` does the whole archive at
    once; this does one URL at its next capture). Returns how many."""
    stale = catalog.history.made_by_other(tracked_url, f"archiver/{EXTRACTOR_VERSION}")
    if stale:
        log.info("re-extracting %d capture(s) of %s made by an older extractor", len(stale), tracked_url)
        observe_from_warcs(catalog, config, only_missing=False, only_ids=stale)
    return len(stale)


def article_for(status: int | None, content_type: str, body: bytes | None, url: str,
                cta_texts: tuple[str, ...]) -> Article | None:
    """The article of a 2xx HTML response; None for anything else (404 included)."""
    if status is None or not 200 <= status < 300 or body is None or not is_html(content_type, body):
        return None
    return extract_article(body, url, content_type, cta_texts)


def record_observation(catalog: Catalog, capture_id: int, tracked_url: str, final_url: str,
                       challenge: str, article: Article | None) -> None:
    catalog.history.add_observation(capture_id, tracked_url, final_url, challenge,
                            article.extractor if article else f"archiver/{EXTRACTOR_VERSION}",
                            json.dumps(asdict(article), ensure_ascii=False) if article else None)


def article_from_json(text: str | None) -> Article | None:
    if text is None:
        return None
    data: dict[str, Any] = json.loads(text)
    for name in ("links", "read_refs"):
        data[name] = tuple(Ref(**r) for r in data[name])
    data["paragraphs"] = tuple(data["paragraphs"])
    data["blocks"] = tuple(data.get("blocks", ()))
    return Article(**data)


def load_history(catalog: Catalog, tracked_url: str, confirm: bool = True) -> History:
    """The history of a tracked URL, with the noise learned on its site; ``confirm``
    ([detect] confirm): changes are edits once a second render shows them too."""
    observations = [
        Observation(CaptureRef(r["warc"], r["offset"], r["fetched_at"]), r["status"], r["final_url"],
                    article_from_json(r["article"]), r["error"], r["challenge"], r["content_digest"] or "",
                    confirm=r["role"] == "confirm")
        for r in catalog.history.observations(tracked_url)]
    return build_history(observations, catalog.history.noise(url_host(tracked_url)), confirm)


def update_history(catalog: Catalog, tracked_url: str, confirm: bool = True) -> History:
    """Recompute a tracked URL's versions and change events and store them, with the noise
    its confirming fetches taught about its site, in one transaction with the read: the
    content digests stored are of the observations read."""
    with catalog.transaction():
        history = load_history(catalog, tracked_url, confirm)
        catalog.history.add_noise(url_host(tracked_url), history.learned)
        versions, changes = [], []
        for v in history.versions:
            versions.append((tracked_url, v.number, v.first.fetched_at, v.last.fetched_at, v.captures,
                             v.article.title if v.article else "", v.text_sha256, json.dumps(list(v.kinds)),
                             v.revert_of, int(v.gone), v.article.extractor if v.article else ""))
            since = v.since or v.first
            changes += [(tracked_url, v.since_version, v.number, c.kind, c.before, c.after, since.warc, since.offset,
                         since.fetched_at, v.first.warc, v.first.offset, v.first.fetched_at, int(v.unconfirmed))
                        for c in v.changes]
        digests = [(stored_digest(history, capture, digest), capture.warc, capture.offset)
                   for capture, digest in history.computed.items()]
        catalog.history.replace(tracked_url, versions, changes, digests)
    return history


def rebuild_histories(catalog: Catalog, urls: set[str], confirm: bool,
                      on_url: Callable[[str], None] = lambda url: None) -> None:
    """Every history of urls: once to learn the noise of each site from all its pages'
    confirming fetches, then again with all of it."""
    for url in sorted(urls):
        on_url(url)
        update_history(catalog, url, confirm)
    if catalog.history.has_noise():
        for url in sorted(urls):
            update_history(catalog, url, confirm)


def observe_from_warcs(catalog: Catalog, config: Config, only_missing: bool = True,
                       only_warc: str | None = None, only_ids: set[int] | None = None) -> set[str]:
    """Extract an observation for every chain-end capture (without one, if only_missing;
    in one WARC file, if only_warc; of these captures, if only_ids) from the WARC
    payloads; returns the tracked URLs touched."""
    touched = set()
    have = catalog.history.observed_capture_ids() if only_missing else set()
    for row in catalog.captures.chain_ends():
        if row["id"] in have or (only_warc is not None and row["warc"] != only_warc) or \
                (only_ids is not None and row["id"] not in only_ids):
            continue
        headers, body = _payload(catalog, config.storage.warc_dir, row)
        get = (lambda name: (headers.get_header(name) or "") if headers else "")
        article = article_for(row["status"], get("Content-Type"), body, row["url"], config.capture.cta_texts)
        record_observation(catalog, row["id"], row["seed"], row["url"], challenge_of(get), article)
        touched.add(row["seed"])
    return touched


def _payload(catalog: Catalog, warc_dir: Path, row) -> tuple[Any, bytes | None]:
    """Response headers and decoded body of a capture; a revisit reads its original."""
    if row["record"] == "failed":
        return None, None
    headers, _ = read_response(warc_dir / row["warc"], row["offset"], 0)
    if row["record"] == "revisit":
        location = catalog.captures.location_of(row["refers_to"])
        if location is None:
            return headers, None
        original_headers, body = read_response(warc_dir / location[0], location[1], PARSE_LIMIT)
        return headers, decode_body(body, original_headers.get_header("Content-Encoding") or "")
    _, body = read_response(warc_dir / row["warc"], row["offset"], PARSE_LIMIT)
    return headers, decode_body(body, headers.get_header("Content-Encoding") or "")


def reextract(config: Config, on_url: Callable[[str], None] = lambda url: None) -> int:
    """Re-run the current extractor over every stored capture of every tracked URL and
    rebuild versions; returns the number of tracked URLs. Alone, as reindex: a writer's
    observations and its captures in open files would be lost or unreadable to it."""
    alone = WriterLock(config.storage.lock_dir)
    alone.take_alone("reextract")
    catalog = Catalog(config.storage.catalog)
    try:
        catalog.history.clear()
        urls = observe_from_warcs(catalog, config, only_missing=False)
        rebuild_histories(catalog, urls, config.detect.confirm, on_url)
        return len(urls)
    finally:
        catalog.close()
        alone.close()


def write_feed(catalog: Catalog, config: Config, now: str) -> Path | None:
    """Rewrite the Atom feed of the latest change events (atomically)."""
    if config.report.feed is None:
        return None
    events = [change_event_json(r) for r in catalog.history.latest_changes(config.report.feed_entries)]
    target = config.report.feed
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")  # several processes may write it
    tmp.write_text(atom_feed(events, now), encoding="utf-8")
    tmp.replace(target)
    return target


def version_diff(url: str, history: History, old: int | None, new: int | None) -> VersionDiff:
    """The diff between versions old and new (default: the last two)."""
    versions = history.versions
    if not versions:
        raise UsageError(f"no versions of {url} in the catalog (capture it with: archiver snapshot {url})")
    new = new if new is not None else versions[-1].number
    old = old if old is not None else max(new - 1, 1)
    for n in (old, new):
        if not 1 <= n <= len(versions):
            raise UsageError(f"{url} has versions 1 to {len(versions)}, not {n}")
    changes, ops = diff_versions(versions[old - 1], versions[new - 1])
    return VersionDiff(url, versions[old - 1], versions[new - 1], changes, ops)
