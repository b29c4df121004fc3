"""Pure: what a followed source lists (bytes + URL -> Listing), and where a site keeps
its feeds and sitemaps (discovery, given a function that fetches).

A followed source is a feed (RSS, Atom), a sitemap (news sitemaps, indexes, .xml.gz) or a
front page. Sources are untrusted XML: they are parsed with size caps, no entities, no
DTD, no network (``parse_source``), and a hostile one gives a Listing with an error,
never an exception. follower.py reads captured sources with this, in ``archiver run``.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable
from urllib.parse import urlsplit

import feedparser

from archiver.config import FollowConfig
from archiver.errors import UsageError
from archiver.page.extract import decode_text, parse_html
from archiver.seeds import normalize_url, url_host

KINDS = ("auto", "feed", "sitemap", "front")
MAX_INDEX_DEPTH = 3  # a sitemap index of indexes of indexes; deeper is refused
FEED_ROOTS = (b"<rss", b"<feed", b"<rdf:rdf", b"<rdf")
SITEMAP_ROOTS = (b"<urlset", b"<sitemapindex")
PROLOG = re.compile(rb"<\?[^>]*\?>|<!--.*?-->|<!DOCTYPE[^\[>]*(?:\[.*?\])?\s*>", re.S)  # before the root element
SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
NEWS_NS = "{http://www.google.com/schemas/sitemap-news/0.9}"
# What a front page's navigation is inside: its links are not articles.
NAVIGATION = re.compile(r"\b(nav|menu|header|footer|breadcrumb|sidebar|masthead|topbar|social|share)\b", re.I)
NAV_TAGS = frozenset({"nav", "header", "footer", "aside", "menu", "form"})
NAV_ROLES = frozenset({"navigation", "banner", "contentinfo", "menu", "menubar", "search", "complementary"})
HEADLINE_WORDS = 3  # a link of fewer words outside a heading is navigation ("World", "Read more")


@dataclass(frozen=True)
class Entry:
    url: str
    published: str = ""  # ISO 8601 UTC, as the source dated it; "" when it did not
    title: str = ""


@dataclass(frozen=True)
class Listing:
    """What one capture of a source lists (or why it could not be read)."""
    kind: str  # feed | sitemap | index | front
    entries: tuple[Entry, ...] = ()
    sitemaps: tuple[str, ...] = ()  # a sitemap index's children
    error: str = ""


# ---- parsing (pure) ---------------------------------------------------------------------

def parse_source(body: bytes, url: str, kind: str, content_type: str, limits: FollowConfig) -> Listing:
    """The article URLs a source lists. Never raises on what a server sends: a hostile
    or broken body gives a Listing with an error."""
    if len(body) > limits.max_bytes:
        return Listing(kind, error=f"larger than {limits.max_bytes} bytes (max_bytes)")
    data = _gunzipped(body, limits.max_bytes) if body[:2] == b"\x1f\x8b" else body
    if data is None:
        return Listing(kind, error=f"not gzip, or larger than {limits.max_bytes} bytes uncompressed (max_bytes)")
    actual = sniff_kind(data, content_type) if kind == "auto" else kind
    if actual != "front" and _declares_entities(data):
        return Listing(actual, error="declares XML entities (refused: entity expansion)")
    try:
        listing = _parse(data, url, actual, content_type)
    except Exception as e:  # noqa: BLE001 - a parser's bug on a stranger's bytes must not stop archiver run
        return Listing(actual, error=f"parser failed: {type(e).__name__}")
    if len(listing.entries) > limits.max_entries:
        note = f"{len(listing.entries)} entries, the first {limits.max_entries} kept (max_entries)"
        return Listing(listing.kind, listing.entries[:limits.max_entries], listing.sitemaps, note)
    return listing


def _parse(data: bytes, url: str, kind: str, content_type: str) -> Listing:
    if kind == "feed":
        return parse_feed(data, url)
    if kind == "sitemap":
        return parse_sitemap(data, url)
    return front_page_links(data, url, content_type)


def sniff_kind(body: bytes, content_type: str) -> str:
    """feed, sitemap or front, from the first bytes of the body (then the media type)."""
    head = PROLOG.sub(b"", body[:4096]).lstrip().lower()
    if head.startswith(SITEMAP_ROOTS):
        return "sitemap"
    if head.startswith(FEED_ROOTS):
        return "feed"
    ctype = content_type.lower()
    return "feed" if ("rss" in ctype or "atom" in ctype) else "front"


def _declares_entities(data: bytes) -> bool:
    """An internal DTD subset declaring entities: the billion-laughs shape. No feed or
    sitemap needs one (their entities are the five predefined ones)."""
    return re.search(rb"<!ENTITY", data[:1_000_000], re.I) is not None


def _gunzipped(data: bytes, limit: int) -> bytes | None:
    """A .xml.gz body, uncompressed up to limit bytes; None past it (a gzip bomb) or if broken."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        return None
    return None if len(out) > limit else out


def parse_feed(data: bytes, url: str) -> Listing:
    """An RSS or Atom feed, through feedparser (its sanitising, date and encoding handling)."""
    parsed = feedparser.parse(data, response_headers={"content-location": url})
    entries = []
    for e in parsed.entries:
        link = _entry_url(e, url)
        if link:
            entries.append(Entry(link, _feed_time(e), str(e.get("title", ""))[:500]))
    if not entries and parsed.get("bozo") and not parsed.get("feed"):
        return Listing("feed", error=f"not a feed: {type(parsed.get('bozo_exception')).__name__}")
    return Listing("feed", tuple(_unique(entries)))


def _entry_url(entry, base: str) -> str:
    for candidate in (entry.get("link"), entry.get("id")):
        if isinstance(candidate, str) and candidate:
            try:
                return normalize_url(candidate, base)
            except UsageError:
                continue
    return ""


def _feed_time(entry) -> str:
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    if not stamp:
        return ""
    try:
        return datetime(*stamp[:6], tzinfo=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (TypeError, ValueError):
        return ""


def _xml_parser():
    """lxml hardened for what strangers send: no entities resolved, no DTD loaded, no
    network, no huge-tree mode (lxml's own depth and text-size limits stay on)."""
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                           remove_comments=True, remove_pis=True)


def parse_sitemap(data: bytes, url: str) -> Listing:
    """A sitemap (urlset, news sitemaps included) or a sitemap index (its children)."""
    from lxml import etree

    try:
        root = etree.fromstring(data, _xml_parser())
    except (etree.XMLSyntaxError, ValueError) as e:
        return Listing("sitemap", error=f"not a sitemap: {_first_line(e)}")
    if root is None:
        return Listing("sitemap", error="not a sitemap: empty")
    tag = etree.QName(root).localname
    if tag == "sitemapindex":
        children = [_absolute(_child_text(s, "loc"), url) for s in root if _local(s) == "sitemap"]
        return Listing("index", sitemaps=tuple(dict.fromkeys(c for c in children if c)))
    if tag != "urlset":
        return Listing("sitemap", error=f"not a sitemap: root element {tag[:40]!r}")
    entries = []
    for node in root:
        if _local(node) == "url" and (loc := _absolute(_child_text(node, "loc"), url)):
            entries.append(Entry(loc, _iso(_news_date(node) or _child_text(node, "lastmod")), _news_title(node)))
    return Listing("sitemap", tuple(_unique(entries)))


def _local(node) -> str:
    return node.tag.rsplit("}", 1)[-1] if isinstance(node.tag, str) else ""


def _child_text(node, name: str) -> str:
    for child in node:
        if _local(child) == name:
            return (child.text or "").strip()
    return ""


def _news_date(node) -> str:
    found = node.find(f"{NEWS_NS}news/{NEWS_NS}publication_date")
    return (found.text or "").strip() if found is not None else ""


def _news_title(node) -> str:
    found = node.find(f"{NEWS_NS}news/{NEWS_NS}title")
    return (found.text or "").strip()[:500] if found is not None else ""


def _iso(text: str) -> str:
    """A W3C datetime (2026-11-27, 2026-11-27T12:00:00+01:00) in UTC; "" if it is not one."""
    if not text:
        return ""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return ""
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _absolute(link: str, base: str) -> str:
    try:
        return normalize_url(link, base) if link else ""
    except UsageError:
        return ""


def _unique(entries: Iterable[Entry]) -> list[Entry]:
    return list({e.url: e for e in reversed(list(entries))}.values())[::-1]


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


def front_page_links(data: bytes, url: str, content_type: str) -> Listing:
    """The article links of a front page: same-site links in its content, not in its
    navigation (nav, header, footer, aside, menus), with headline-like text."""
    doc = parse_html(decode_text(data, content_type))
    if doc is None:
        return Listing("front", error="not an HTML page")
    host = url_host(url)
    entries = []
    for a in doc.iter("a"):
        link = _absolute(a.get("href") or "", url)
        if link and url_host(link) == host and link != url and _is_headline(a):
            entries.append(Entry(link, "", " ".join(a.itertext()).strip()[:500]))
    return Listing("front", tuple(_unique(entries)))


def _is_headline(a) -> bool:
    """Inside a heading, or of HEADLINE_WORDS words or more, and not in navigation."""
    in_heading = False
    for node in a.iterancestors():
        tag = node.tag if isinstance(node.tag, str) else ""
        if tag in NAV_TAGS or node.get("role", "") in NAV_ROLES:
            return False
        if NAVIGATION.search(f"{node.get('class', '')} {node.get('id', '')}"):
            return False
        in_heading = in_heading or tag in ("h1", "h2", "h3", "h4")
    return in_heading or len(" ".join(a.itertext()).split()) >= HEADLINE_WORDS


# ---- discovery --------------------------------------------------------------------------

USUAL_PATHS = ("/feed", "/rss", "/rss.xml", "/feed.xml", "/atom.xml", "/index.xml", "/sitemap.xml",
               "/news-sitemap.xml", "/sitemap_index.xml")
ALTERNATE_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json")


def feed_links(data: bytes, url: str, content_type: str = "") -> list[str]:
    """The feeds a page announces: <link rel=alternate type=application/rss+xml|atom+xml>."""
    doc = parse_html(decode_text(data, content_type))
    if doc is None:
        return []
    found = []
    for link in doc.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        if "alternate" in rel and (link.get("type") or "").lower().strip() in ALTERNATE_TYPES[:2]:
            found.append(_absolute(link.get("href") or "", url))
    return list(dict.fromkeys(f for f in found if f))


def robots_sitemaps(text: str, url: str) -> list[str]:
    """The Sitemap: lines of a robots.txt."""
    found = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == "sitemap":
            found.append(_absolute(value.strip(), url))
    return list(dict.fromkeys(f for f in found if f))


@dataclass(frozen=True)
class Fetched:
    status: int | None
    content_type: str
    body: bytes


def discover(url: str, get: Callable[[str], Fetched], limits: FollowConfig) -> list[tuple[str, str]]:
    """(URL, kind) of the feeds and sitemaps of the site of url: url itself if it is
    one; else what its page announces, its robots.txt Sitemap lines, then the usual
    paths (those only when nothing else was found). ``get`` fetches (fetch.Fetcher)."""
    page = get(url)
    if _ok(page):
        kind = _kind_of(page, url, limits)
        if kind != "front":
            return [(url, kind)]
    found = [(f, "feed") for f in feed_links(page.body, url, page.content_type)] if _ok(page) else []
    root = f"{urlsplit(url).scheme}://{url_host(url)}"
    robots = get(root + "/robots.txt")
    if _ok(robots):
        found += [(s, "sitemap") for s in robots_sitemaps(robots.body.decode("utf-8", "replace"), root)]
    if not found:
        for path in USUAL_PATHS:
            candidate = get(root + path)
            if _ok(candidate) and (kind := _kind_of(candidate, root + path, limits)) != "front":
                found.append((root + path, kind))
    return list(dict.fromkeys(found))


def _ok(f: Fetched) -> bool:
    return f.status is not None and 200 <= f.status < 300


def _kind_of(f: Fetched, url: str, limits: FollowConfig) -> str:
    data = _gunzipped(f.body, limits.max_bytes) if f.body[:2] == b"\x1f\x8b" else f.body
    return sniff_kind(data or b"", f.content_type)
