"""Pure discovery: page bytes + URL -> what the page needs to render.

``page_requisites`` finds an HTML page's requisites (stylesheets, scripts, images with
srcset, icons, fonts, inline CSS); ``css_links`` finds what a stylesheet pulls in. A
page's cross-references come from the article extractor (``article.py``), so what the
crawler follows is what edit detection tracks. Nothing here touches the network, the
catalog or the disk.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from urllib.parse import urljoin

import brotlicffi
from lxml import etree

from archiver.errors import UsageError
from archiver.seeds import normalize_url

MAX_DECODED_BYTES = 20_000_000  # decoding a gzip bomb stops here; the raw bytes stay archived
PARSE_LIMIT = 20_000_000  # bytes of a page read for extraction and link discovery

READ, BODY, REQUISITE = "read", "body", "requisite"

EXCLUDED_TAGS = {"nav", "aside", "footer", "header", "form", "menu", "noscript", "script", "style", "template"}
CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]+)\1\s*\)|@import\s+(['"])([^'"]+)\3""", re.I)
STYLED = etree.XPath("//*[@style]")
REQUISITE_LINK_RELS = {"stylesheet", "icon", "shortcut", "apple-touch-icon", "apple-touch-icon-precomposed",
                       "preload", "modulepreload", "manifest", "mask-icon"}


@dataclass(frozen=True)
class Link:
    """One reference from a page: its target, kind (read, body, requisite), text and order."""
    url: str
    kind: str
    text: str = ""
    position: int = 0


def is_html(content_type: str, body: bytes) -> bool:
    ctype = content_type.lower()
    return "html" in ctype or (not ctype and b"<html" in body[:1024].lower())


def decode_body(body: bytes, content_encoding: str = "") -> bytes:
    """The body with gzip/deflate/br undone, capped at MAX_DECODED_BYTES; raw if it can't be."""
    for coding in reversed([c.strip().lower() for c in content_encoding.split(",") if c.strip()]):
        try:
            body = _undo_coding(body, coding)
        except (OSError, EOFError, zlib.error, ValueError, BrotliError):
            return body
    return body


def _undo_coding(body: bytes, coding: str) -> bytes:
    if coding in ("gzip", "x-gzip", "deflate"):
        wbits = 47 if coding != "deflate" else (15 if body[:1] == b"\x78" else -15)
        d = zlib.decompressobj(wbits)
        return d.decompress(body, MAX_DECODED_BYTES)
    if coding == "br":
        return _unbrotli(body)
    if coding == "identity":
        return body
    raise ValueError(coding)


class BrotliError(Exception):
    """Not brotli data (brotlicffi's own error, translated)."""


def _unbrotli(body: bytes) -> bytes:
    """Brotli undone, its output capped like gzip's: brotlicffi from 1.2 stops growing its
    output buffer at the limit, so a brotli bomb costs no more memory than the cap."""

    try:
        return brotlicffi.Decompressor().process(body, output_buffer_limit=MAX_DECODED_BYTES)[:MAX_DECODED_BYTES]
    except brotlicffi.error as e:
        raise BrotliError(str(e)) from e


def decode_text(body: bytes, content_type: str = "") -> str:
    """Bytes -> text using the HTTP charset, then <meta charset>, then UTF-8, never raising."""
    for charset in (_charset(content_type), _meta_charset(body[:4096]), "utf-8"):
        if not charset:
            continue
        try:
            return body.decode(charset)
        except (LookupError, UnicodeError):  # unknown names, and codecs such as punycode or "undefined"
            continue
    return body.decode("cp1252", errors="replace")


def _charset(content_type: str) -> str:
    m = re.search(r"charset=[\"']?([\w.:-]+)", content_type, re.I)
    return m.group(1) if m else ""


def _meta_charset(head: bytes) -> str:
    m = re.search(rb"""<meta[^>]+charset=["']?([\w.:-]+)""", head, re.I)
    return m.group(1).decode("ascii", "ignore") if m else ""


def parse_html(text: str) -> etree._Element | None:
    """Plain lxml elements (not lxml.html's): a third faster to walk, and all we need.
    A parser per call, since lxml parsers must not be shared between threads."""
    text = re.sub(r"^\s*<\?xml[^>]*>", "", text)
    if not text.strip():
        return None
    try:
        return etree.fromstring(text, etree.HTMLParser(remove_pis=True))
    except (etree.ParserError, etree.XMLSyntaxError, ValueError):
        return None


def page_requisites(body: bytes, url: str, content_type: str = "") -> list[Link]:
    """Only the requisites of an HTML page (what the crawler fetches so it replays)."""
    return requisites_of(parse_html(decode_text(body, content_type)), url)


def requisites_of(doc: etree._Element | None, url: str) -> list[Link]:
    """page_requisites of a page already parsed (the crawler parses a page once, for
    this and then for its article)."""
    return _dedupe(requisites(doc, _base_url(doc, url))) if doc is not None else []


def css_links(body: bytes, url: str, content_type: str = "") -> list[Link]:
    """url() and @import targets of a stylesheet, as requisites."""
    return _dedupe([Link(u, REQUISITE) for u in _css_urls(decode_text(body, content_type), url)])


def _dedupe(links: list[Link]) -> list[Link]:
    seen: set[str] = set()
    out = []
    for link in links:
        if link.url not in seen:
            seen.add(link.url)
            out.append(link)
    return out


def _base_url(doc: etree._Element, url: str) -> str:
    base = doc.find(".//base[@href]")
    return urljoin(url, base.get("href").strip()) if base is not None else url


def _absolute(base: str, href: str | None) -> str | None:
    if not href or href.strip().lower().startswith(("javascript:", "mailto:", "tel:", "data:", "#")):
        return None
    try:
        return normalize_url(href.strip(), base)
    except UsageError:
        return None


# ---- helpers shared with article.py --------------------------------------------------------

def _cta_pattern(cta_texts: tuple[str, ...]) -> re.Pattern[str] | None:
    texts = sorted({t.strip().rstrip(":").strip() for t in cta_texts if t.strip()}, key=len, reverse=True)
    if not texts:
        return None
    return re.compile(r"^\W{0,3}(?:" + "|".join(re.escape(t) for t in texts) + r")\s*(?::|\s|$)", re.I)


def _is_inside(node: etree._Element, ancestor: etree._Element) -> bool:
    while node is not None:
        if node is ancestor:
            return True
        node = node.getparent()
    return False


def _names(node: etree._Element) -> str:
    return f"{node.get('class', '')} {node.get('id', '')}"


# ---- requisites -------------------------------------------------------------------------

def requisites(doc: etree._Element, base: str) -> list[Link]:
    urls: list[str] = []
    for link in doc.iter("link"):
        rels = set((link.get("rel") or "").lower().split())
        if rels & REQUISITE_LINK_RELS:
            urls.append(link.get("href"))
    for el in doc.iter("script", "img", "source", "video", "audio", "input", "embed", "track"):
        urls += [el.get("src"), el.get("data-src"), el.get("data-lazy-src"), el.get("poster")]
        urls += _srcset(el.get("srcset")) + _srcset(el.get("data-srcset"))
    for el in doc.iter("object"):
        urls.append(el.get("data"))
    for el in STYLED(doc):
        urls += _css_urls(el.get("style"), base, resolve=False)
    for style in doc.iter("style"):
        urls += _css_urls(style.text or "", base, resolve=False)
    out = (_absolute(base, u) for u in urls)
    return [Link(u, REQUISITE) for u in out if u]


def _srcset(value: str | None) -> list[str]:
    if not value:
        return []
    return [part.strip().split()[0] for part in value.split(",") if part.strip()]


def _css_urls(css: str, base: str, resolve: bool = True) -> list[str]:
    found = [m.group(2) or m.group(4) for m in CSS_URL.finditer(css)]
    if not resolve:
        return found
    return [u for u in (_absolute(base, f) for f in found) if u]
