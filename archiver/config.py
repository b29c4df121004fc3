"""config.toml -> one frozen Config value; the only module that reads settings.

Every setting is declared once in ``SETTINGS`` (section, name, default, help). That
registry drives validation, the commented ``config.toml`` written by ``archiver init``
and the README's configuration reference (a test checks they agree).
"""

from __future__ import annotations

import logging
import math
import re
import reprlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archiver.version import __version__
from archiver.errors import ConfigError

CONFIG_NAME = "config.toml"


log = logging.getLogger("archiver")


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
    # English
    "READ", "READ ALSO", "READ MORE", "ALSO READ", "SEE ALSO", "Related", "Related stories", "Related articles",
    "Related content", "Read next", "More on this", "More on this story", "Further reading", "Recommended",
    # Spanish, Portuguese, French, Italian, German, Dutch
    "Lea también", "Lee también", "También puede leer", "Leer más", "Vea también", "Ver también", "Te puede interesar",
    "Leia também", "Leia mais", "Veja também", "Lire aussi", "À lire aussi", "Lisez aussi", "Voir aussi",
    "Leggi anche", "Vedi anche", "Lesen Sie auch", "Mehr zum Thema", "Weiterlesen", "Lees ook",
    # Slavic languages, Romanian, Hungarian, Greek, Turkish, Arabic
    "Читайте также", "Читайте еще", "Читайте також", "Прочитајте још", "Прочитајте и", "Pročitajte još",
    "Pročitajte i", "Pročitajte još i", "Прочетете още", "Czytaj też", "Czytaj także", "Přečtěte si také",
    "Čítajte aj", "Citește și", "Olvassa el", "Διαβάστε επίσης", "Διαβάστε ακόμη", "Ayrıca okuyun",
    "İlginizi çekebilir", "اقرأ أيضا", "اقرأ أيضاً",
]

SETTINGS: tuple[Setting, ...] = (
    Setting("storage", "warc_dir", "warcs", "Folder for WARC files (relative to config.toml)."),
    Setting("storage", "index_dir", "indexes", "Folder for the CDXJ replay index, one file per closed WARC."),
    Setting("storage", "catalog", "archive.sqlite", "SQLite catalog of captures and cross-references."),
    Setting("storage", "lock_dir", "locks", "Lock files: one URL captured by one process at a time; reindex and reextract run alone."),
    Setting("storage", "warc_prefix", "archiver", "First part of every WARC file name."),
    Setting("storage", "warc_max_bytes", 1_000_000_000, "Start a new WARC file once one reaches this size (checked between records)."),
    Setting("storage", "warc_idle_close", 60.0, "Seconds a long-running process keeps an idle WARC file open before closing it (used by the scheduler)."),
    Setting("storage", "mode", "0600", "Permissions (octal) of the files archiver creates; folders get the same plus x where r is given (0600: files 0600, folders 0700, the owner's only). Files that exist keep theirs."),
    Setting("capture", "user_agent", f"archiver/{__version__} (evidence web archiver)", "User-Agent header sent with every request."),
    Setting("capture", "timeout", 30.0, "Seconds to wait for a connection or for the next bytes of a response."),
    Setting("capture", "head_timeout", 60.0, "Seconds from the start of a fetch until the whole response head has arrived (connection and TLS handshake included); a server that sends its head slower is cut off, and what it sent is kept."),
    Setting("capture", "total_timeout", 600.0, "Seconds one URL may take in all (connection, TLS handshake, response head and body, retries included); a slower body is kept truncated."),
    Setting("capture", "per_host_delay", 1.0, "Seconds between two requests to the same host (0 turns politeness off)."),
    Setting("capture", "per_host_concurrency", 1, "Requests in flight at once to one host."),
    Setting("capture", "concurrency", 4, "Requests in flight at once across all hosts."),
    Setting("capture", "follow", ["read", "body"], "Cross-references to follow from a seed: read (READ boxes), body (editorial links)."),
    Setting("capture", "depth", 1, "How many cross-reference hops to follow from a seed (0 = the seed alone)."),
    Setting("capture", "requisites", True, "Fetch page requisites (CSS, JS, images, fonts, icons) of every captured page."),
    Setting("capture", "max_bytes", 100_000_000, "Largest response body kept; a longer one is kept up to this size with WARC-Truncated."),
    Setting("capture", "retries", 2, "Retries of a 429, a 503 or a failed connection (each response is kept), with back-off honouring Retry-After."),
    Setting("capture", "max_redirects", 10, "Redirect hops followed from one URL before giving up."),
    Setting("capture", "max_links_per_page", 3000, "Most new URLs one page or stylesheet leads to, of each kind (cross-references, requisites); the rest are listed in its capture metadata, not fetched, and its error says how many."),
    Setting("capture", "max_urls_per_snapshot", 100_000, "Most URLs one snapshot fetches; seeds and their redirects are always fetched, links past the limit are listed, not fetched."),
    Setting("capture", "allow_private_addresses", False, "Let redirects, cross-references and requisites reach private, loopback, link-local and other non-public addresses (checked on the address connected to). Seeds may always name one, and a page served from such an address may lead to that same address."),
    Setting("capture", "robots", "ignore", "ignore robots.txt, or obey it.", choices=("ignore", "obey")),
    Setting("capture", "operator", "", "Who runs this archive; written into every warcinfo record."),
    Setting("capture", "headers", {}, "Extra request headers, e.g. { Accept-Language = \"en\" }."),
    Setting("capture", "cookies_file", "", "Netscape cookies.txt sent with requests (e.g. to pass consent walls)."),
    Setting("capture", "secret_headers", [], "Request headers besides Authorization and Proxy-Authorization whose values are credentials (an API key in headers, say): redacted in request records, left out of warcinfo."),
    Setting("capture", "keep_secrets", False, "Keep Authorization, cookies_file's cookies and secret_headers in clear in request records instead of a redaction marker (Proxy-Authorization is redacted regardless)."),
    Setting("capture", "proxy", "", "Proxy URL for all requests: http://, https://, socks5:// or socks5h:// (the proxy resolves host names), with user:password@ if it asks for them (sent to the proxy only). \"\" = the environment's HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY."),
    Setting("capture", "verify_tls", True, "Check TLS certificates."),
    Setting("capture", "ca_bundle", "", "PEM file of CA certificates to trust instead of the default bundle (\"\" = REQUESTS_CA_BUNDLE if set, else the default)."),
    Setting("capture", "client_cert", "", "PEM file with the TLS client certificate to present (and its key, unless client_key names it)."),
    Setting("capture", "client_key", "", "PEM file with the client certificate's private key (\"\" = in client_cert)."),
    Setting("capture", "cta_texts", DEFAULT_CTA_TEXTS, "Call-to-action texts that open a READ box (\"READ\", \"READ ALSO\", ...)."),
    Setting("detect", "confirm", True, "Fetch a page once more after its first capture and before reporting a change: only what both renders show is an edit; what differs between them is learned as the site's per-render noise."),
    Setting("detect", "confirm_delay", 2.0, "Seconds between a capture that shows a change and its confirming fetch (never less than per_host_delay)."),
    Setting("schedule", "default", "adaptive", "Schedule of seeds without every= or cron=: adaptive, or an interval such as 6h."),
    Setting("schedule", "adaptive", ["3h=15m", "1d=1h", "7d=3h", "30d=1d", "365d=7d"],
            "Adaptive policy: AGE=INTERVAL steps; while the article last changed less than AGE ago, recapture every INTERVAL."),
    Setting("schedule", "adaptive_max", "30d", "Adaptive interval once an article has been quiet longer than the last step."),
    Setting("schedule", "jitter", 0.1, "Random spread of each interval (0.1 = plus or minus 10%)."),
    Setting("schedule", "tick", 1.0, "Seconds between two looks for due URLs in archiver run."),
    Setting("schedule", "batch", 200, "Most seeds handed to the crawler at one look."),
    Setting("schedule", "host_failures", 5, "Consecutive failures (no response, 5xx, 429) that back a host off."),
    Setting("schedule", "host_backoff", "5m", "First back-off of a failing host; doubles while it keeps failing."),
    Setting("schedule", "host_backoff_max", "6h", "Longest back-off of a failing host."),
    Setting("schedule", "shutdown_grace", 10.0, "Seconds in-flight fetches may take to finish after SIGTERM or SIGINT."),
    Setting("schedule", "log_format", "auto", "Log lines on stderr: json, text, or auto (JSON unless stderr is a terminal).",
            choices=("auto", "json", "text")),
    Setting("evidence", "key", "archive.key", "The archive's ECDSA P-256 signing key (made by archiver keygen; mode 0600)."),
    Setting("evidence", "ledger", "ledger.jsonl", "The hash-chained, append-only ledger of every capture."),
    Setting("evidence", "checkpoint_every", 1000, "Ledger entries between two signed checkpoints (one is also written at the end of every snapshot)."),
    Setting("replay", "host", "127.0.0.1", "Address archiver replay listens on, and that replay links name."),
    Setting("replay", "port", 8080, "Port of archiver replay, and of the replay links in history and diff output."),
    Setting("serve", "port", 8000, "Port of archiver serve's web interface (--port overrides it)."),
    Setting("serve", "replay_port", 8001, "Port archiver serve replays captures on (its own origin, apart from the interface; 0 = any free port)."),
    Setting("serve", "token", "", "Access token every request to archiver serve must carry (Authorization: Bearer, or ?token= once, which sets a cookie); required to serve on a non-loopback --host."),
    Setting("report", "feed", "changes.atom", "Atom feed of change events, rewritten after every snapshot (\"\" = none)."),
    Setting("report", "feed_entries", 200, "How many of the latest change events the Atom feed holds."),
    Setting("follow", "every", "30m", "Recapture interval of a followed feed, sitemap or front page when archiver follow is not given --every."),
    Setting("follow", "max_per_run", 100, "Most new articles one capture of a followed source brings in (max= on its seed line overrides it); the rest come with its next captures."),
    Setting("follow", "max_bytes", 50_000_000, "Largest feed or sitemap read (after gunzip); a larger one is recorded as failed."),
    Setting("follow", "max_entries", 50_000, "Most entries read from one feed or sitemap (the sitemap protocol's own limit)."),
    Setting("follow", "max_sitemaps", 100, "Most child sitemaps of a sitemap index read per capture of the index (an endless index stops there; nesting stops at 3 levels)."),
    Setting("notify", "webhooks", [], "URLs that get a JSON POST of each change event, signed with HMAC-SHA256 (X-Archiver-Signature) when secret is set. Never logged or archived."),
    Setting("notify", "apprise", [], "Apprise URLs (Slack, Telegram, Matrix, e-mail, json://, ...), one message per change event or digest. Never logged or archived."),
    Setting("notify", "secret", "", "Key of the X-Archiver-Signature HMAC-SHA256 over each webhook body (\"\" = unsigned). Never logged or archived."),
    Setting("notify", "tags", [], "Notify only of URLs with one of these tags (empty = all)."),
    Setting("notify", "sites", [], "Notify only of URLs on these hosts (a host also covers its subdomains; empty = all)."),
    Setting("notify", "kinds", [], "Notify only of these change kinds: title, byline, published, modified, body, links, cross_refs, gone, restored, redirected (empty = all)."),
    Setting("notify", "digest", 0, "Minutes over which a target's events are gathered into one message (0 = one message per event)."),
    Setting("notify", "timeout", 10.0, "Seconds one delivery may take before it counts as failed."),
    Setting("notify", "retry", "1m", "First wait before a failed delivery is tried again; doubles with each failure."),
    Setting("notify", "retry_max", "6h", "Longest wait between two tries of a delivery."),
    Setting("notify", "diff_link", "", "Address of archiver serve as the readers of the messages reach it (such as http://archive.example:8000): each message then links to its change page there (\"\" = to the replay of the newer capture)."),
    Setting("notify", "attempts", 20, "Tries of one delivery before it is given up (kept, shown by archiver status as failed)."),
)


@dataclass(frozen=True)
class StorageConfig:
    warc_dir: Path
    index_dir: Path
    lock_dir: Path
    catalog: Path
    warc_prefix: str
    warc_max_bytes: int
    warc_idle_close: float
    mode: int  # of the files created (folders: workdir.storage_umask)


@dataclass(frozen=True)
class CaptureConfig:
    user_agent: str
    timeout: float
    head_timeout: float
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
    max_links_per_page: int
    max_urls_per_snapshot: int
    allow_private_addresses: bool
    robots: str
    operator: str
    headers: tuple[tuple[str, str], ...]
    cookies_file: Path | None
    proxy: str
    verify_tls: bool
    ca_bundle: Path | None
    client_cert: Path | None
    client_key: Path | None
    cta_texts: tuple[str, ...]
    secret_headers: tuple[str, ...]
    keep_secrets: bool


@dataclass(frozen=True)
class DetectConfig:
    confirm: bool
    confirm_delay: float


@dataclass(frozen=True)
class ScheduleConfig:
    default: str
    adaptive_steps: tuple[tuple[float, float], ...]  # (quiet for less than, interval) in seconds
    adaptive_max: float
    jitter: float
    tick: float
    batch: int
    host_failures: int
    host_backoff: float
    host_backoff_max: float
    shutdown_grace: float
    log_format: str


@dataclass(frozen=True)
class EvidenceConfig:
    key: Path
    ledger: Path
    checkpoint_every: int


@dataclass(frozen=True)
class ReplayConfig:
    host: str
    port: int

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class ServeConfig:
    port: int
    replay_port: int
    token: str


@dataclass(frozen=True)
class ReportConfig:
    feed: Path | None
    feed_entries: int


@dataclass(frozen=True)
class FollowConfig:
    every: str
    max_per_run: int
    max_bytes: int
    max_entries: int
    max_sitemaps: int


@dataclass(frozen=True)
class NotifyConfig:
    webhooks: tuple[str, ...] = field(default=(), repr=False)  # URLs with tokens: never in a repr, a log
    apprise: tuple[str, ...] = field(default=(), repr=False)
    secret: str = field(default="", repr=False)
    tags: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    digest: float = 0.0  # seconds
    timeout: float = 10.0
    retry: float = 60.0
    retry_max: float = 21600.0
    attempts: int = 20
    diff_link: str = ""  # archiver serve's address, for links to a change page


@dataclass(frozen=True)
class Config:
    root: Path
    storage: StorageConfig
    capture: CaptureConfig
    detect: DetectConfig
    schedule: ScheduleConfig
    evidence: EvidenceConfig
    replay: ReplayConfig
    report: ReportConfig
    follow: FollowConfig
    notify: NotifyConfig
    serve: ServeConfig = ServeConfig(8000, 8001, "")
    seeds_dir: Path = field(default=Path("seeds"))
    values: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)  # as validated, for warcinfo

    def public_dict(self) -> dict[str, dict[str, Any]]:
        """The settings in effect, for warcinfo; cookies, proxy, credentials and the serve token left out."""
        out = {section: dict(table) for section, table in self.values.items()}
        for name in ("cookies_file", "proxy"):
            out["capture"].pop(name, None)
        out.get("serve", {}).pop("token", None)
        secret = {"cookie", "authorization", "proxy-authorization", *(h.lower() for h in self.capture.secret_headers)}
        out["capture"]["headers"] = {k: v for k, v in out["capture"]["headers"].items() if k.lower() not in secret}
        for name in ("webhooks", "apprise", "secret"):  # URLs with tokens in them, and the signing key
            out.get("notify", {}).pop(name, None)
        return out


def load_config(path: Path | None = None) -> Config:
    """Read, validate and resolve a config file, or the config.toml of a folder (by default
    the current one). A folder without one is not an archive: ConfigError, so that no
    command makes an archive by accident wherever it is run (``archiver init`` makes one)."""
    if path is None or Path(path).is_dir():
        folder = Path.cwd() if path is None else Path(path)
        path = folder / CONFIG_NAME
        if not path.is_file():
            raise ConfigError(f"no {CONFIG_NAME} in {folder}: this folder is not an archive "
                              f"(create one with archiver init, or pass --config PATH)")
    path = Path(path)
    return build_config(_read_toml(path), path.resolve().parent)


PATHS = ("ca_bundle", "client_cert", "client_key")  # [capture] file names, relative to the archive
# Settings whose values an error message must not repeat.
SECRET_VALUED = ("proxy", "headers", "webhooks", "apprise", "secret")
PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")


def build_config(raw: dict[str, Any], root: Path) -> Config:
    values = _validated(raw)
    st, cap, rep = values["storage"], values["capture"], values["report"]
    ev = values["evidence"]
    return Config(
        values=values,
        replay=ReplayConfig(**values["replay"]),
        serve=ServeConfig(**values["serve"]),
        detect=DetectConfig(**values["detect"]),
        evidence=EvidenceConfig(key=root / ev["key"], ledger=root / ev["ledger"], checkpoint_every=ev["checkpoint_every"]),
        schedule=_schedule_config(values["schedule"]),
        report=ReportConfig(feed=(root / rep["feed"]) if rep["feed"] else None, feed_entries=rep["feed_entries"]),
        follow=_follow_config(values["follow"]),
        notify=_notify_config(values["notify"]),
        root=root,
        seeds_dir=root / "seeds",
        storage=StorageConfig(
            warc_dir=root / st["warc_dir"], index_dir=root / st["index_dir"], lock_dir=root / st["lock_dir"],
            catalog=root / st["catalog"], warc_prefix=st["warc_prefix"],
            warc_max_bytes=st["warc_max_bytes"], warc_idle_close=st["warc_idle_close"], mode=int(st["mode"], 8)),
        capture=CaptureConfig(
            **{k: v for k, v in cap.items()
               if k not in ("follow", "headers", "cookies_file", "cta_texts", "secret_headers", *PATHS)},
            **{k: (root / cap[k]) if cap[k] else None for k in PATHS},
            follow=tuple(cap["follow"]), headers=tuple(cap["headers"].items()),
            cookies_file=(root / cap["cookies_file"]) if cap["cookies_file"] else None,
            cta_texts=tuple(cap["cta_texts"]), secret_headers=tuple(cap["secret_headers"])),
    )


def _schedule_config(sc: dict[str, Any]) -> ScheduleConfig:
    def seconds(name: str, text: str) -> float:
        try:
            return parse_duration(text)
        except ValueError as e:
            raise ConfigError(f"config: [schedule] {name}: {e}") from e
    if sc["default"] != "adaptive":
        seconds("default", sc["default"])
    steps = []
    for step in sc["adaptive"]:
        age, sep, interval = step.partition("=")
        if not sep:
            raise ConfigError(f"config: [schedule] adaptive: {_shown(step)} is not AGE=INTERVAL (e.g. 3h=15m)")
        steps.append((seconds("adaptive", age), seconds("adaptive", interval)))
    if steps != sorted(steps):
        raise ConfigError("config: [schedule] adaptive: steps must be in increasing AGE order")
    return ScheduleConfig(
        default=sc["default"], adaptive_steps=tuple(steps), adaptive_max=seconds("adaptive_max", sc["adaptive_max"]),
        jitter=sc["jitter"], tick=sc["tick"], batch=sc["batch"], host_failures=sc["host_failures"],
        host_backoff=seconds("host_backoff", sc["host_backoff"]),
        host_backoff_max=seconds("host_backoff_max", sc["host_backoff_max"]),
        shutdown_grace=sc["shutdown_grace"], log_format=sc["log_format"])


def _follow_config(fc: dict[str, Any]) -> FollowConfig:
    try:
        parse_duration(fc["every"])
    except ValueError as e:
        raise ConfigError(f"config: [follow] every: {e}") from e
    return FollowConfig(**fc)


def _notify_config(nc: dict[str, Any]) -> NotifyConfig:
    def seconds(name: str) -> float:
        try:
            return parse_duration(nc[name])
        except ValueError as e:
            raise ConfigError(f"config: [notify] {name}: {e}") from e
    for i, url in enumerate(nc["webhooks"], 1):
        if url.partition("://")[0].lower() not in ("http", "https"):
            raise ConfigError(f"config: [notify] webhooks: entry {i} must be an http:// or https:// URL")
    for i, url in enumerate(nc["apprise"], 1):
        if "://" not in url:
            raise ConfigError(f"config: [notify] apprise: entry {i} is not an Apprise URL (scheme://...)")
    return NotifyConfig(
        webhooks=tuple(nc["webhooks"]), apprise=tuple(nc["apprise"]), secret=nc["secret"], tags=tuple(nc["tags"]),
        sites=tuple(s.lower() for s in nc["sites"]), kinds=tuple(nc["kinds"]), digest=nc["digest"] * 60.0,
        timeout=nc["timeout"], retry=seconds("retry"), retry_max=seconds("retry_max"), attempts=nc["attempts"],
        diff_link=nc["diff_link"].rstrip("/"))


MAX_CONFIG_BYTES = 1 << 20  # a config file is a few KB; a larger one is not one


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: cannot read config: no such file (create an archive with archiver init)") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: not a config file: larger than {MAX_CONFIG_BYTES >> 20} MB")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a config file: not UTF-8 text (byte {e.start} is {data[e.start]:#04x})") from None
    except RecursionError:  # tomllib reads nested arrays and tables recursively
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    except ValueError as e:  # TOMLDecodeError, or an integer too long for int()
        raise ConfigError(f"{path}: invalid TOML: {_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


# Settings of earlier versions that archives created then still hold: accepted, said once.
RETIRED = {("capture", "processes"): "a snapshot is captured by one process"}


def _validated(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sections = {s.section for s in SETTINGS}
    for name, table in raw.items():
        if name not in sections:
            raise ConfigError(f"config: unknown section [{_name(name)}]")
        if not isinstance(table, dict):
            raise ConfigError(f"config: [{name}] must be a table")
        known = {s.name for s in SETTINGS if s.section == name}
        for key in table:
            if (name, key) in RETIRED:
                log.warning("config: [%s] %s is no longer used (%s); remove it", name, key, RETIRED[name, key])
            elif key not in known:
                raise ConfigError(f"config: unknown key [{name}] {_name(key)}")
    values: dict[str, dict[str, Any]] = {s: {} for s in sections}
    for s in SETTINGS:
        value = raw.get(s.section, {}).get(s.name, s.default)
        values[s.section][s.name] = _checked(s, value)
    return values


MAX_SECONDS = 1e9  # about 31 years: a longer wait overflows the platform's timers
MAX_INTEGER = 2 ** 63 - 1  # SQLite's integers, and C's
ONE_LINE = ("user_agent", "operator", "proxy", "host", "warc_prefix")  # sent as, or written into, a header line
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters, line breaks included; HTAB is allowed
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a header field name (RFC 9110 5.1)
AT_LEAST_ONE = ("concurrency", "per_host_concurrency", "batch", "checkpoint_every", "max_links_per_page",
                "max_urls_per_snapshot", "port", "max_per_run", "max_entries", "attempts")


def _checked(s: Setting, value: Any) -> Any:
    expected = type(s.default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= MAX_SECONDS:  # float() of a long integer would overflow
            raise ConfigError(f"config: {s.key} must be between 0 and {MAX_SECONDS:g}, got {_shown(value)}")
        value = float(value)
    if type(value) is not expected:
        shown = type(value).__name__ if s.name in SECRET_VALUED else _shown(value)
        raise ConfigError(f"config: {s.key} must be {_type_name(expected)}, got {shown}")
    if s.choices and value not in s.choices:
        raise ConfigError(f"config: {s.key} must be one of {', '.join(s.choices)}, got {_shown(value)}")
    if expected is list and not all(isinstance(v, str) for v in value):
        raise ConfigError(f"config: {s.key} must be a list of strings")
    if expected is dict and not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"config: {s.key} values must be strings")
    if expected in (int, float):
        _check_number(s, value)
    if expected is str:
        _check_text(s, value)
    if s.name == "headers":
        _check_headers(s, value)
    if s.name == "follow" and not set(value) <= {"read", "body"}:
        raise ConfigError(f"config: {s.key} may only name read and body, got {_shown(value)}")
    if s.name == "proxy" and value and value.partition("://")[0].lower() not in PROXY_SCHEMES:
        raise ConfigError(f"config: {s.key} must be a URL of scheme {', '.join(PROXY_SCHEMES)}, "
                          f"got {_shown(value.partition('://')[0])}")  # not the URL: it may hold a password
    if s.name == "secret_headers" and not all(HEADER_NAME.fullmatch(v) for v in value):
        raise ConfigError(f"config: {s.key} must list header names, got {_shown(value)}")
    if s.name == "mode" and not (FILE_MODE.fullmatch(value) and int(value, 8) & 0o600 == 0o600):
        raise ConfigError(f"config: {s.key} must be an octal mode that lets the owner read and write, "
                          f"such as \"0600\" or \"0640\", got {_shown(value)}")
    return value


def _check_number(s: Setting, value: float) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"config: {s.key} must be a finite number, got {value}")
    if value < 0:
        raise ConfigError(f"config: {s.key} must not be negative, got {_shown(value)}")
    if s.name in AT_LEAST_ONE and value < 1:
        raise ConfigError(f"config: {s.key} must be at least 1, got {_shown(value)}")
    if isinstance(value, float) and value > MAX_SECONDS:
        raise ConfigError(f"config: {s.key} must be between 0 and {MAX_SECONDS:g}, got {value!r}")
    if value > MAX_INTEGER or (s.name == "port" and value > 65535):
        raise ConfigError(f"config: {s.key} is too large, got {_shown(value)}")
    if s.name == "jitter" and value >= 1:
        raise ConfigError(f"config: {s.key} must be below 1 (it is a fraction of the interval), got {value!r}")
    if s.name == "tick" and value <= 0:
        raise ConfigError(f"config: {s.key} must be above 0, got {value!r}")


def _check_text(s: Setting, value: str) -> None:
    if "\x00" in value:
        raise ConfigError(f"config: {s.key} must not contain a NUL character")
    if s.name in ONE_LINE and CONTROL.search(value):
        raise ConfigError(f"config: {s.key} must not contain line breaks or other control characters")


def _check_headers(s: Setting, headers: dict[str, str]) -> None:
    """Names and values a request can carry as they are: a line break would end the
    header (and every fetch would fail, or carry a header nobody configured)."""
    for name, value in headers.items():
        if not TOKEN.fullmatch(name):
            raise ConfigError(f"config: {s.key}: {_shown(name)} is not a header name")
        if CONTROL.search(value):
            raise ConfigError(f"config: {s.key} {name}: the value must not contain line breaks "
                              "or other control characters")


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 2, 80, 80, 40


def _shown(value: Any) -> str:
    """A value as a message shows it: on one line and short, however long or deeply
    nested it is."""
    try:
        return _REPR.repr(value)
    except ValueError:  # an integer of more digits than int's str() allows
        return f"a {type(value).__name__} too long to show"


def _name(key: str) -> str:
    return key if key.isprintable() and len(key) <= 80 else _shown(key)


HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
FILE_MODE = re.compile(r"0?[0-7]{3}")


DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """'30s', '15m', '6h', '1d', '2w' -> seconds; ValueError otherwise."""
    m = DURATION.match(text.strip().lower())
    if not m:
        raise ValueError(f"not a duration: {_shown(text)} (use e.g. 30s, 15m, 6h, 1d)")
    seconds = float(m.group(1)) * DURATION_SECONDS[m.group(2)]
    if seconds > MAX_SECONDS:
        raise ValueError(f"{_shown(text)} is too long (at most {MAX_SECONDS:g} seconds)")
    return seconds


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
