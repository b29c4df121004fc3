"""What ``archiver list`` and ``archiver status`` show: read-only views of the seeds,
the schedule table and the WARC folder."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from archiver.pipeline import open_catalog
from archiver.config import Config
from archiver.archive.locks import UrlLocks
from archiver.follower import FollowStore
from archiver.notify import NotifyStore
from archiver.schedule.runner import tracked_seeds


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds") if ts else None


def tracking_list(config: Config) -> list[dict[str, Any]]:
    tracked = tracked_seeds(config)
    catalog = open_catalog(config)
    try:
        state = {r["url"]: r for r in catalog.schedule.rows()}
        last = catalog.history.last_observed()
        published = FollowStore(catalog).published_all()
    finally:
        catalog.close()
    rows = []
    for url, t in tracked.items():
        s = state.get(url)
        rows.append({"url": url, "schedule": t.schedule.describe(), "tags": [v for k, v in t.seed.options if k == "tag"],
                     "source": f"{t.seed.source}:{t.seed.line}", "next_due": _iso(s["next_due"]) if s else None,
                     "last_capture": last.get(url), "last_result": s["last_result"] if s else "",
                     "follow": t.seed.option("follow"), "published": published.get(url)})
    return rows


def archive_status(config: Config, now: datetime) -> dict[str, Any]:
    tracked = tracked_seeds(config)
    locks = UrlLocks(config.storage.lock_dir)
    catalog = open_catalog(config)
    try:
        scheduled = {r["url"]: r["next_due"] for r in catalog.schedule.rows()}
        due = sum(1 for url, at in scheduled.items() if url in tracked and at <= now.timestamp())
        new = sum(1 for url in tracked if url not in scheduled)  # due at the first look of archiver run
        hosts = [{"host": r["host"], "failures": r["failures"], "last_error": r["last_error"],
                  "backoff_until": _iso(r["backoff_until"]) if r["backoff_until"] > now.timestamp() else None}
                 for r in catalog.schedule.host_rows()]
        following = [dict(s, last_read=_iso(s["last_read"])) for s in FollowStore(catalog).sources()]
        queue = NotifyStore(catalog)
        notifications = dict(queue.counts(), failures=queue.failures())
    finally:
        catalog.close()
    sizes = [_size(p) for p in config.storage.warc_dir.glob("*.warc.gz*")]
    return {"tracked": len(tracked), "due_now": due + new,
            "running": sum(1 for url in tracked if locks.is_locked_elsewhere(url)),
            "failing_hosts": hosts, "warc_files": len(sizes), "warc_bytes": sum(sizes),
            "following": following, "notifications": notifications}


def _size(path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # an .open file renamed by its writer just now
        return path.with_name(path.name.removesuffix(".open")).stat().st_size


def latest_captures(catalog) -> list:
    """The newest end-of-chain capture of every tracked URL that got a response."""
    latest: dict[str, Any] = {}
    for row in catalog.captures.rows():
        if row.chain and row.status is not None and row.record != "failed":
            latest[row.seed] = row
    return [latest[seed] for seed in sorted(latest)]
