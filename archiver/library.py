"""The library: an archive folder as a Python object, with what each command does.

    import archiver
    archive = archiver.open("my-archive")            # the folder holding config.toml
    archive.snapshot(["https://example.org/news/article"])
    history = archive.history("https://example.org/news/article")
    change = archive.diff("https://example.org/news/article")   # the last two versions

The CLI (cli.py) parses arguments, calls these and prints; nothing else. Errors are
``archiver.ArchiverError`` (``UsageError`` and ``ConfigError`` for what the caller asked).
"""

from __future__ import annotations

import importlib.util
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from archiver.archive.keys import SigningKey
from archiver.archive.warcfile import warc_date
from archiver.archive.workdir import apply_storage_mode, init_archive
from archiver.archive.writer import FetchResult, SnapshotSummary, create_key
from archiver.catalog import CaptureRow
from archiver.config import Config, load_config, parse_duration
from archiver.edits.history import History
from archiver.edits.observe import reextract, version_diff, write_feed
from archiver.edits.report import VersionDiff, change_event_json, provenance_html
from archiver.errors import ArchiverError, UsageError
from archiver.evidence.export import Exported, export_wacz, tls_certificates
from archiver.evidence.verify import Report, verify_archive
from archiver.evidence.wacz import Trust, verify_wacz
from archiver.replay.pywb import COLLECTION, Collection, running_pywb
from archiver.follower import follow_site
from archiver.notify import Target, send_samples, targets
from archiver.pipeline import Reindexed, history_of, open_archive, open_catalog, reindex, snapshot
from archiver.schedule.policy import Schedule, schedule_of
from archiver.schedule.runner import Runner
from archiver.schedule.status import archive_status, latest_captures, tracking_list
from archiver.seeds import Seed, add_seed, load_seeds, normalize_url, remove_seed

OnResult = Callable[[FetchResult], None]


def open(path: str | Path | None = None) -> Archive:  # noqa: A001 - archiver.open, as tarfile.open
    """The archive in ``path`` (a folder holding config.toml, or the config file itself;
    by default the current folder). Files it creates from now on take its
    ``[storage] mode`` (the process umask)."""
    config = load_config(None if path is None else Path(path))
    apply_storage_mode(config.storage.mode)
    return Archive(config)


def init(path: str | Path, overrides: dict[str, str] | None = None) -> Archive:
    """Create an archive folder (config.toml, seeds/, warcs/) and open it."""
    apply_storage_mode()
    return open(init_archive(Path(path), overrides))


def verify_export(path: str | Path, key: str | None = None, any_key: bool = False) -> Report:
    """Check an exported WACZ on its own: signed by ``key`` (a public key file or its
    sha256: fingerprint), or by any key if ``any_key``."""
    if key and any_key:
        raise UsageError("give a key or any_key, not both")
    return verify_wacz(Path(path), Trust.of(key, any_key))


@dataclass(frozen=True)
class Tracking:
    """What ``add`` wrote: the seed and the file it went to."""
    seed: Seed
    schedule: Schedule
    file: Path


class Archive:
    """An archive folder: capture into it, read what it holds, check it, export from it."""

    def __init__(self, config: Config):
        self.config = config

    # ---- capture -------------------------------------------------------------------

    def snapshot(self, urls: Iterable[str] | None = None, on_result: OnResult = lambda r: None) -> SnapshotSummary:
        """Capture each URL (default: every seed) with its cross-references and requisites,
        once, into a new WARC file. ``on_result`` hears of each fetch as it is stored."""
        urls = list(urls) if urls is not None else [s.url for s in load_seeds(self.config.seeds_dir)]
        if not urls:
            raise UsageError(f"no URL given and no seeds in {self.config.seeds_dir}")
        archive = open_archive(self.config)
        try:
            return snapshot(archive, urls, on_result)
        finally:
            archive.close()

    def runner(self, on_result: OnResult = lambda r: None) -> Runner:
        """The recapture service (``archiver run``): ``run_once()`` or ``run_forever()``."""
        return Runner(self.config, on_result=on_result)

    def add(self, url: str, every: str | None = None, cron: str | None = None, tags: Iterable[str] = (),
            to: Path | None = None) -> Tracking:
        """Track a URL: append it to a seed file (default seeds/added.txt)."""
        if every and cron:
            raise UsageError("give every or cron, not both")
        options = [(k, v) for k, v in (("every", every), ("cron", cron)) if v] + [("tag", t) for t in tags]
        target = to or self.config.seeds_dir / "added.txt"
        try:  # a bad interval or cron expression is refused before anything is written
            schedule = schedule_of(Seed(normalize_url(url), tuple(options)), self.config.schedule)
        except ArchiverError as e:
            raise UsageError(str(e)) from None
        return Tracking(add_seed(self.config.seeds_dir, target, url, options), schedule, target)

    def follow(self, url: str, kind: str = "auto", every: str | None = None, tags: Iterable[str] = (),
               match: str | None = None, max_per_run: int | None = None,
               to: Path | None = None) -> list[tuple[str, str]]:
        """Follow a site: its feeds and sitemaps (discovery, with kind "auto") or url as
        the kind given, appended to a seed file (default seeds/follow.txt) with
        follow=KIND; (source URL, kind) of each."""
        every = every or self.config.follow.every
        try:
            parse_duration(every)
        except ValueError as e:
            raise UsageError(f"every: {e}") from None
        if max_per_run is not None and max_per_run < 1:
            raise UsageError("max_per_run must be at least 1")
        options = [("every", every)] + [("tag", t) for t in tags]
        options += [("match", match)] if match is not None else []
        options += [("max", str(max_per_run))] if max_per_run is not None else []
        return follow_site(self.config, url, kind, options, to)

    def notify_test(self) -> list[tuple[Target, str]]:
        """A sample change event sent to every [notify] target now: (target, error) each."""
        if not targets(self.config.notify):
            raise UsageError("no notification targets: set [notify] webhooks or apprise in config.toml")
        return send_samples(self.config.notify, self.config.replay.base)

    def remove(self, url: str) -> list[Path]:
        """Stop tracking a URL: the seed files it was removed from."""
        changed = remove_seed(self.config.seeds_dir, url)
        if not changed:
            raise UsageError(f"{normalize_url(url)} is not in any seed file in {self.config.seeds_dir}")
        return changed

    # ---- read ----------------------------------------------------------------------

    def captures(self, url: str | None = None) -> list[CaptureRow]:
        """Every capture (of one URL, or reached from one seed), oldest first."""
        catalog = open_catalog(self.config)
        try:
            return catalog.captures.rows(url and normalize_url(url))
        finally:
            catalog.close()

    def history(self, url: str) -> History:
        """A tracked URL's versions, oldest first, and its suspect captures."""
        url = normalize_url(url)
        history = history_of(self.config, url)
        if not history.versions and not history.suspects:
            raise UsageError(f"{url} has no captures in the catalog (capture it with: archiver snapshot {url})")
        return history

    def diff(self, url: str, old: int | None = None, new: int | None = None) -> VersionDiff:
        """What changed between versions old and new (default: the last two)."""
        url = normalize_url(url)
        return version_diff(url, history_of(self.config, url), old, new)

    def changes(self, since: str | datetime = "7d") -> list[dict[str, Any]]:
        """Change events across all tracked URLs since a time (or a duration back from
        now, such as "7d"), oldest first; the Atom feed file is rewritten too."""
        now = datetime.now(timezone.utc)
        catalog = open_catalog(self.config)
        try:
            events = [change_event_json(r) for r in catalog.history.changes_since(since_date(since, now))]
            write_feed(catalog, self.config, warc_date(now))
        finally:
            catalog.close()
        return events

    def tracked(self) -> list[dict[str, Any]]:
        """Tracked URLs with their schedule, next due time and last result."""
        return tracking_list(self.config)

    def status(self) -> dict[str, Any]:
        """Tracked and due URLs, running captures, failing hosts, WARC disk use."""
        return archive_status(self.config, datetime.now(timezone.utc))

    def latest(self) -> list[CaptureRow]:
        """The newest capture of each tracked URL that got a response."""
        catalog = open_catalog(self.config)
        try:
            return latest_captures(catalog)
        finally:
            catalog.close()

    # ---- keep ----------------------------------------------------------------------

    def reindex(self, on_file: Callable[[str], None] = lambda name: None) -> Reindexed:
        """Rebuild the catalog and CDXJ index from the WARC files alone."""
        return reindex(self.config, on_file)

    def reextract(self, on_url: Callable[[str], None] = lambda url: None) -> int:
        """Re-run the article extractor over stored captures and rebuild versions."""
        return reextract(self.config, on_url)

    def keygen(self) -> SigningKey:
        """Create the archive's signing key; its creation is recorded in the ledger."""
        return create_key(self.config, warc_date(datetime.now(timezone.utc)))

    # ---- evidence ------------------------------------------------------------------

    def verify(self) -> Report:
        """Digests, record pairs, revisits, catalog, ledger chain and signatures."""
        return verify_archive(self.config)

    def export(self, out: str | Path, urls: Iterable[str] = (), since: str | datetime | None = None) -> Exported:
        """A signed WACZ of the captures of these URLs (all when none)."""
        now = datetime.now(timezone.utc)
        return export_wacz(self.config, Path(out), [normalize_url(u) for u in urls],
                           since_date(since, now) if since else None)

    def export_article(self, url: str, out: str | Path) -> Exported:
        """An article's evidence packet: all its captures and its cross-referenced pages,
        with a provenance report."""
        url, now = normalize_url(url), datetime.now(timezone.utc)

        def report(rows: list[CaptureRow], warc: Path) -> str:
            history = self.history(url)
            return provenance_html(url, history, rows, tls_certificates(warc), self.verify().to_json(), warc_date(now))
        return export_wacz(self.config, Path(out), [url], None, report=report)

    # ---- replay --------------------------------------------------------------------

    @contextmanager
    def replay(self, host: str | None = None, port: int | None = None) -> Iterator[Any]:
        """pywb serving the archive (the ``replay`` extra), until the block ends."""
        if importlib.util.find_spec("pywb") is None:  # pywb is an extra, run in a child process
            raise ArchiverError("pywb is not installed: pip install 'archiver[replay]'")
        storage, settings = self.config.storage, self.config.replay
        collection = {COLLECTION: Collection(storage.warc_dir, storage.index_dir)}
        with running_pywb(collection, self.config.root / ".replay", host or settings.host,
                          settings.port if port is None else port) as server:
            yield server



def since_date(since: str | datetime, now: datetime) -> str:
    """A datetime, an ISO date-time or a duration back from now (7d) -> a WARC-Date."""
    if isinstance(since, datetime):
        return warc_date(since if since.tzinfo else since.replace(tzinfo=timezone.utc))
    try:
        return warc_date(now - timedelta(seconds=parse_duration(since)))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {since!r}: use an ISO date-time (2026-11-01T00:00) or a duration (7d)") from None
    return warc_date(when.astimezone(timezone.utc) if when.tzinfo else when.replace(tzinfo=timezone.utc))
