"""seeds/*.txt -> Seed values, and URL normalisation. Pure: no network, no catalog.

A seed line is ``URL [key=value ...]``; ``#`` starts a comment. Options are kept as
strings here; the scheduler gives meaning to ``every``, ``cron`` and ``tag`` (follow.py to
``follow``, ``match`` and ``max``, of a followed feed, sitemap or front page), and any
other option is refused (a misspelt ``evry=1h`` would silently leave a seed on the
default schedule).
"""

from __future__ import annotations

import ipaddress
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
import re
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import idna

from archiver.errors import ConfigError, UsageError, os_error_text

log = logging.getLogger("archiver")

DEFAULT_PORTS = {"http": 80, "https": 443}
SEED_OPTIONS = ("every", "cron", "tag", "follow", "match", "max")  # follow, match, max: follow.py
# A lowercase host name of letters, digits and hyphens (or a dotted IPv4 address): what
# normalisation leaves as it is; the SURT fast path (index.SIMPLE_URL) takes the same.
PLAIN_HOST = r"[a-z0-9-]+(?:\.[a-z0-9-]+)*"
# What normalize_url would return unchanged: lowercase host, path of unreserved characters.
ALREADY_NORMAL = re.compile(rf"https?://({PLAIN_HOST})(:[1-9][0-9]{{0,4}})?/[A-Za-z0-9._~/-]*")
# A root-relative link of the same characters, without "//" or dot segments: joined to a
# normal base it is normal, and needs no urljoin (most links on a page; 3 us less each).
PLAIN_ROOT_PATH = re.compile(r"/(?![/.])(?:[A-Za-z0-9_~-]|/(?!/|\.)|\.)*")
# A host name after IDNA encoding: labels of letters, digits, hyphens and underscores
# (which DNS names such as _dmarc use); a space, %, <, ... is never part of one.
HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")


@dataclass(frozen=True)
class Seed:
    url: str
    options: tuple[tuple[str, str], ...] = ()
    source: str = ""
    line: int = 0

    def option(self, name: str) -> str | None:
        return dict(self.options).get(name)


def normalize_url(url: str, base: str | None = None) -> str:
    """An absolute, percent-encoded http(s) URL without fragment; UsageError otherwise."""
    raw = url.strip()
    if base is not None and PLAIN_ROOT_PATH.fullmatch(raw) and _is_normal(base):
        return base[:base.index("/", base.index("//") + 2)] + raw
    try:
        if base is not None:
            raw = urljoin(base, raw)
    except ValueError as e:
        raise UsageError(f"invalid URL {url!r}: {e}") from e
    if _is_normal(raw):
        return raw  # most links on a page: nothing to change, at a tenth of the cost
    return _normalized(raw, url)


def _is_normal(url: str) -> bool:
    """normalize_url would return url unchanged."""
    m = ALREADY_NORMAL.fullmatch(url)
    return m is not None and m.group(2) not in (":80", ":443") and int((m.group(2) or ":0")[1:]) < 65536


def _normalized(raw: str, url: str) -> str:
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as e:
        raise UsageError(f"invalid URL {url!r}: {e}") from e
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UsageError(f"unsupported URL scheme {scheme or '(none)'!r} in {url!r}: use http or https")
    if not parts.hostname:
        raise UsageError(f"invalid URL {url!r}: no host")
    host = _idna_host(parts.hostname, url)
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = parts.path or "/"
    return requote_uri(urlunsplit((scheme, netloc, path, parts.query, "")))


UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def requote_uri(uri: str) -> str:
    """Percent-encode what must be, keep existing escapes, decode escaped unreserved
    characters (the same rules as requests.utils.requote_uri, so we match what is sent)."""
    def unescape(m: re.Match[str]) -> str:
        char = chr(int(m.group(1), 16))
        return char if char in UNRESERVED else m.group(0).upper()
    uri = re.sub(r"%([0-9A-Fa-f]{2})", unescape, uri)
    safe = "!#$%&'()*+,/:;=?@[]~" if not re.search(r"%(?![0-9A-Fa-f]{2})", uri) else "!#$&'()*+,/:;=?@[]~"
    return quote(uri, safe=safe)


def _idna_host(hostname: str, url: str) -> str:
    """The host as sent: IDNA 2008 with UTS 46 mapping, as requests and browsers encode
    it (faß.de is xn--fa-hia.de; Python's "idna" codec, IDNA 2003, makes it fass.de)."""
    try:
        if hostname.isascii():
            host = hostname.encode("idna").decode("ascii").lower()
        else:
            host = idna.encode(hostname, uts46=True).decode("ascii")
    except (UnicodeError, ValueError) as e:  # idna.IDNAError is a UnicodeError
        raise UsageError(f"invalid host in URL {url!r}") from e
    if ":" in host:  # IPv6, from a bracketed [...] host
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UsageError(f"invalid host {hostname!r} in URL {url!r}") from None
    elif not HOST_NAME.fullmatch(host):
        raise UsageError(f"invalid host {hostname!r} in URL {url!r}: a host name has only letters, digits, "
                         "hyphens and dots")
    return host


def url_host(url: str) -> str:
    return urlsplit(url).netloc


def parse_seed_line(text: str, source: str = "", line: int = 0) -> Seed | None:
    """One seed line -> Seed, or None for blank and comment lines."""
    body = text if "#" not in text else "" if text.lstrip().startswith("#") else _strip_comment(text)
    try:  # shlex only where quoting is used: 100,000 seed lines must load in a second or two
        words = shlex.split(body) if any(q in body for q in "\"'\\") else body.split()
    except ValueError as e:
        raise ConfigError(f"{source}:{line}: {e}") from e
    if not words:
        return None
    try:
        url = normalize_url(words[0])
    except UsageError as e:
        raise ConfigError(f"{source}:{line}: {e}") from e
    options = []
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ConfigError(f"{source}:{line}: option {word!r} is not key=value")
        if key not in SEED_OPTIONS:
            raise ConfigError(f"{source}:{line}: unknown option {key!r} (options: {', '.join(SEED_OPTIONS)})")
        options.append((key, value))
    return Seed(url, tuple(options), source, line)


def _strip_comment(text: str) -> str:
    # A '#' that starts a word begins a comment; one inside a URL (a fragment) does not.
    out = []
    for word in text.split():
        if word.startswith("#"):
            break
        out.append(word)
    return " ".join(out)


def read_seed_file(path: Path) -> list[Seed]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read seed file: {os_error_text(e, with_path=False)}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: cannot read seed file: not UTF-8 ({e.reason} at byte {e.start})") from e
    seeds = (parse_seed_line(t, str(path), n) for n, t in enumerate(lines, 1))
    return [s for s in seeds if s is not None]


def load_seeds(seeds_dir: Path) -> list[Seed]:
    """All seeds in seeds_dir/*.txt, in file-name order, first occurrence of a URL wins;
    a later one with other options is warned about (both places named)."""
    seen: dict[str, Seed] = {}
    for path in sorted(seeds_dir.glob("*.txt")):
        for seed in read_seed_file(path):
            first = seen.setdefault(seed.url, seed)
            if first is not seed and sorted(first.options) != sorted(seed.options):
                log.warning("%s is listed twice with different options: %s:%d (%s) is used, %s:%d (%s) is ignored",
                            seed.url, first.source, first.line, _options_text(first), seed.source, seed.line,
                            _options_text(seed))
    return list(seen.values())


def _options_text(seed: Seed) -> str:
    return " ".join(f"{k}={v}" for k, v in seed.options) or "no options"


def seed_line(url: str, options: list[tuple[str, str]]) -> str:
    return " ".join([url] + [f"{k}={shlex.quote(v)}" for k, v in options])


def add_seed(seeds_dir: Path, target: Path, url: str, options: list[tuple[str, str]]) -> Seed:
    """Append a seed line to target; UsageError if some seed file already tracks the URL."""
    url = normalize_url(url)
    for existing in load_seeds(seeds_dir):
        if existing.url == url:
            raise UsageError(f"{url} is already tracked ({existing.source}:{existing.line})")
    line = seed_line(url, options)
    seed = parse_seed_line(line, str(target))
    assert seed is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    text = target.read_text(encoding="utf-8") if target.exists() else ""
    target.write_text(text + ("" if not text or text.endswith("\n") else "\n") + line + "\n", encoding="utf-8")
    return seed


def append_seed_lines(target: Path, lines: list[str]) -> None:
    """Append lines to a seed file in one write (a feed may bring thousands at once);
    the caller has checked that none is tracked yet."""
    if not lines:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "ab+") as f:
        size = f.seek(0, 2)
        if size:
            f.seek(size - 1)
        needs_break = size > 0 and f.read(1) != b"\n"
        f.write((("\n" if needs_break else "") + "\n".join(lines) + "\n").encode("utf-8"))


def remove_seed(seeds_dir: Path, url: str) -> list[Path]:
    """Remove the URL's lines from every seed file holding it; the files changed."""
    url = normalize_url(url)
    changed = []
    for path in sorted(seeds_dir.glob("*.txt")):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [t for n, t in enumerate(lines, 1) if not _is_seed_for(t, url, path, n)]
        if len(kept) != len(lines):
            path.write_text("".join(kept), encoding="utf-8")
            changed.append(path)
    return changed


def _is_seed_for(text: str, url: str, path: Path, line: int) -> bool:
    try:
        seed = parse_seed_line(text, str(path), line)
    except ConfigError:
        return False
    return seed is not None and seed.url == url
