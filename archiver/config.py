"""config.toml -> one frozen Config value; the only module that reads settings.

Every setting is declared once in ``SETTINGS`` (section, name, default, help). That
registry drives validation, the commented ``config.toml`` written by ``archiver init``
and the README's configuration reference (a test checks they agree).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConfigError

CONFIG_NAME = "config.toml"


@dataclass(frozen=True)
class Setting:
    section: str
    name: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"[{self.section}] {self.name}"


DEFAULT_CTA_TEXTS = [
    "READ", "READ ALSO", "READ MORE", "ALSO READ", "SEE ALSO", "Related",
    "Related:", "RELATED", "Lea también", "Lee también", "También puede leer",
    "Leer más", "Lire aussi", "Читайте также", "Lesen Sie auch",
]

SETTINGS: tuple[Setting, ...] = (
    Setting("storage", "warc_dir", "warcs", "Folder for WARC files (relative to config.toml)."),
    Setting("storage", "index_dir", "indexes", "Folder for the CDXJ replay index, one file per closed WARC."),
    Setting("storage", "catalog", "archive.sqlite", "SQLite catalog of captures and cross-references."),
    Setting("storage", "warc_prefix", "archiver", "First part of every WARC file name."),
    Setting("storage", "warc_max_bytes", 1_000_000_000, "Start a new WARC file once one reaches this size (checked between records)."),
    Setting("storage", "warc_idle_close", 60.0, "Seconds a long-running process keeps an idle WARC file open before closing it (used by the scheduler)."),
    Setting("capture", "user_agent", f"archiver/{__version__} (evidence web archiver)", "User-Agent header sent with every request."),
    Setting("capture", "timeout", 30.0, "Seconds to wait for a connection or for the next bytes of a response."),
    Setting("capture", "total_timeout", 600.0, "Seconds one response body may take in all; a slower body is kept truncated."),
    Setting("capture", "per_host_delay", 1.0, "Seconds between two requests to the same host (0 turns politeness off)."),
    Setting("capture", "per_host_concurrency", 1, "Requests in flight at once to one host."),
    Setting("capture", "concurrency", 4, "Requests in flight at once across all hosts."),
    Setting("capture", "follow", ["read", "body"], "Cross-references to follow from a seed: read (READ boxes), body (editorial links)."),
    Setting("capture", "depth", 1, "How many cross-reference hops to follow from a seed (0 = the seed alone)."),
    Setting("capture", "requisites", True, "Fetch page requisites (CSS, JS, images, fonts, icons) of every captured page."),
    Setting("capture", "max_bytes", 100_000_000, "Largest response body kept; a longer one is kept up to this size with WARC-Truncated."),
    Setting("capture", "retries", 2, "Retries of a 429, a 503 or a failed connection (each response is kept), with back-off honouring Retry-After."),
    Setting("capture", "max_redirects", 10, "Redirect hops followed from one URL before giving up."),
    Setting("capture", "robots", "ignore", "ignore robots.txt, or obey it.", choices=("ignore", "obey")),
    Setting("capture", "operator", "", "Who runs this archive; written into every warcinfo record."),
    Setting("capture", "headers", {}, "Extra request headers, e.g. { Accept-Language = \"en\" }."),
    Setting("capture", "cookies_file", "", "Netscape cookies.txt sent with requests (e.g. to pass consent walls)."),
    Setting("capture", "proxy", "", "HTTP(S) proxy URL for all requests."),
    Setting("capture", "verify_tls", True, "Check TLS certificates."),
    Setting("capture", "cta_texts", DEFAULT_CTA_TEXTS, "Call-to-action texts that open a READ box (\"READ\", \"READ ALSO\", ...)."),
    Setting("report", "feed", "changes.atom", "Atom feed of change events, rewritten after every snapshot (\"\" = none)."),
    Setting("report", "feed_entries", 200, "How many of the latest change events the Atom feed holds."),
)


@dataclass(frozen=True)
class StorageConfig:
    warc_dir: Path
    index_dir: Path
    catalog: Path
    warc_prefix: str
    warc_max_bytes: int
    warc_idle_close: float


@dataclass(frozen=True)
class CaptureConfig:
    user_agent: str
    timeout: float
    total_timeout: float
    per_host_delay: float
    per_host_concurrency: int
    concurrency: int
    follow: tuple[str, ...]
    depth: int
    requisites: bool
    max_bytes: int
    retries: int
    max_redirects: int
    robots: str
    operator: str
    headers: tuple[tuple[str, str], ...]
    cookies_file: Path | None
    proxy: str
    verify_tls: bool
    cta_texts: tuple[str, ...]


@dataclass(frozen=True)
class ReportConfig:
    feed: Path | None
    feed_entries: int


@dataclass(frozen=True)
class Config:
    root: Path
    storage: StorageConfig
    capture: CaptureConfig
    report: ReportConfig
    seeds_dir: Path = field(default=Path("seeds"))

    def public_dict(self) -> dict[str, dict[str, Any]]:
        """The settings in effect, for warcinfo; cookies and proxy credentials left out."""
        out: dict[str, dict[str, Any]] = {}
        for s in SETTINGS:
            if s.name in ("cookies_file", "proxy"):
                continue
            value = getattr(getattr(self, s.section), s.name)
            if isinstance(value, Path):
                value = str(value.relative_to(self.root)) if value.is_relative_to(self.root) else str(value)
            elif isinstance(value, tuple):
                value = dict(value) if s.name == "headers" else list(value)
            out.setdefault(s.section, {})[s.name] = value
        out["capture"]["headers"] = {k: v for k, v in out["capture"]["headers"].items()
                                     if k.lower() not in ("cookie", "authorization")}
        return out


def load_config(path: Path | None = None) -> Config:
    """Read, validate and resolve config.toml; a missing default file means all defaults."""
    explicit = path is not None
    path = Path(path) if path is not None else Path.cwd() / CONFIG_NAME
    raw: dict[str, Any] = {}
    if path.exists() or explicit:
        raw = _read_toml(path)
    return build_config(raw, path.resolve().parent)


def build_config(raw: dict[str, Any], root: Path) -> Config:
    values = _validated(raw)
    st, cap, rep = values["storage"], values["capture"], values["report"]
    return Config(
        report=ReportConfig(feed=(root / rep["feed"]) if rep["feed"] else None, feed_entries=rep["feed_entries"]),
        root=root,
        seeds_dir=root / "seeds",
        storage=StorageConfig(
            warc_dir=root / st["warc_dir"], index_dir=root / st["index_dir"],
            catalog=root / st["catalog"], warc_prefix=st["warc_prefix"],
            warc_max_bytes=st["warc_max_bytes"], warc_idle_close=st["warc_idle_close"]),
        capture=CaptureConfig(
            **{k: v for k, v in cap.items() if k not in ("follow", "headers", "cookies_file", "cta_texts")},
            follow=tuple(cap["follow"]), headers=tuple(cap["headers"].items()),
            cookies_file=(root / cap["cookies_file"]) if cap["cookies_file"] else None,
            cta_texts=tuple(cap["cta_texts"])),
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from e


def _validated(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sections = {s.section for s in SETTINGS}
    for name, table in raw.items():
        if name not in sections:
            raise ConfigError(f"config: unknown section [{name}]")
        if not isinstance(table, dict):
            raise ConfigError(f"config: [{name}] must be a table")
        known = {s.name for s in SETTINGS if s.section == name}
        for key in table:
            if key not in known:
                raise ConfigError(f"config: unknown key [{name}] {key}")
    values: dict[str, dict[str, Any]] = {s: {} for s in sections}
    for s in SETTINGS:
        value = raw.get(s.section, {}).get(s.name, s.default)
        values[s.section][s.name] = _checked(s, value)
    return values


def _checked(s: Setting, value: Any) -> Any:
    expected = type(s.default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        raise ConfigError(f"config: {s.key} must be {_type_name(expected)}, got {value!r}")
    if s.choices and value not in s.choices:
        raise ConfigError(f"config: {s.key} must be one of {', '.join(s.choices)}, got {value!r}")
    if expected is list and not all(isinstance(v, str) for v in value):
        raise ConfigError(f"config: {s.key} must be a list of strings")
    if expected is dict and not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"config: {s.key} values must be strings")
    if expected in (int, float) and value < 0:
        raise ConfigError(f"config: {s.key} must not be negative, got {value!r}")
    if s.name == "follow" and not set(value) <= {"read", "body"}:
        raise ConfigError(f"config: {s.key} may only name read and body, got {value!r}")
    if s.name in ("concurrency", "per_host_concurrency") and value < 1:
        raise ConfigError(f"config: {s.key} must be at least 1, got {value!r}")
    return value


DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """'30s', '15m', '6h', '1d', '2w' -> seconds; ValueError otherwise."""
    m = DURATION.match(text.strip().lower())
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 6h, 1d)")
    return float(m.group(1)) * DURATION_SECONDS[m.group(2)]


def _type_name(t: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            list: "a list", dict: "a table"}[t]


def default_config_text() -> str:
    """config.toml with every setting at its default, each with its help as a comment."""
    lines = ["# archiver configuration. Relative paths resolve against this file's folder.",
             "# Every setting is shown with its default value."]
    section = None
    for s in SETTINGS:
        if s.section != section:
            section = s.section
            lines += ["", f"[{section}]"]
        lines += [f"# {s.help}", f"{s.name} = {_toml_value(s.default)}"]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + " }" if value else "{}"
    return repr(value)
