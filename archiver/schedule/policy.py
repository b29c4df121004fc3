"""Pure: when is a tracked URL next due? Per-seed interval or cron, else adaptive.

The adaptive policy looks again often while an article is fresh or was recently edited
and rarely once it has been quiet: the interval is picked by the time since the article
last changed (or since it was first tracked). Jitter spreads captures so URLs added
together do not stay in lockstep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from archiver.config import ScheduleConfig, parse_duration
from archiver.errors import ConfigError
from archiver.seeds import Seed


@dataclass(frozen=True)
class Schedule:
    kind: str  # every | cron | adaptive
    every: float = 0.0  # seconds, for kind every
    cron: str = ""

    def describe(self) -> str:
        if self.kind == "every":
            return f"every {format_duration(self.every)}"
        return f"cron {self.cron}" if self.kind == "cron" else "adaptive"


def schedule_of(seed: Seed, cfg: ScheduleConfig) -> Schedule:
    """The seed's own every=/cron= option, else the configured default."""
    every, cron = seed.option("every"), seed.option("cron")
    where = f"{seed.source}:{seed.line}" if seed.source else seed.url
    if every and cron:
        raise ConfigError(f"{where}: give every= or cron=, not both")
    if cron:
        try:
            CronTrigger.from_crontab(cron)
        except ValueError as e:
            raise ConfigError(f"{where}: invalid cron expression {cron!r}: {e}") from e
        return Schedule("cron", cron=cron)
    text = every or cfg.default
    if text == "adaptive":
        return Schedule("adaptive")
    try:
        return Schedule("every", every=parse_duration(text))
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from e


def next_due(schedule: Schedule, cfg: ScheduleConfig, now: datetime, quiet_since: datetime,
             rng: random.Random) -> datetime:
    """When to capture again after a capture finished at ``now``."""
    if schedule.kind == "cron":
        fire = CronTrigger.from_crontab(schedule.cron, timezone=now.tzinfo).get_next_fire_time(None, now)
        return fire if fire is not None else now + timedelta(days=365)
    seconds = schedule.every if schedule.kind == "every" else adaptive_interval(cfg, now - quiet_since)
    return now + timedelta(seconds=seconds * (1 + rng.uniform(-cfg.jitter, cfg.jitter)))


def adaptive_interval(cfg: ScheduleConfig, quiet_for: timedelta) -> float:
    age = quiet_for.total_seconds()
    for under, interval in cfg.adaptive_steps:
        if age < under:
            return interval
    return cfg.adaptive_max


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
