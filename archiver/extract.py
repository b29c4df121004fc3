"""Pure discovery: page bytes + URL -> what the page references.

``page_links`` finds a page's cross-references (READ boxes and editorial links in the
article body) and its page requisites; ``css_links`` finds what a stylesheet pulls in.
Nothing here touches the network, the catalog or the disk.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from urllib.parse import urljoin

import lxml.html
from lxml import etree

from .errors import UsageError
from .seeds import normalize_url

MAX_DECODED_BYTES = 20_000_000  # decoding a gzip bomb stops here; the raw bytes stay archived

READ, BODY, REQUISITE = "read", "body", "requisite"

BLOCK_TAGS = {"p", "div", "li", "h2", "h3", "h4", "h5", "h6", "blockquote", "section", "td", "strong", "b", "em"}
EXCLUDED_TAGS = {"nav", "aside", "footer", "header", "form", "menu", "noscript", "script", "style", "template"}
EXCLUDED_NAMES = re.compile(
    r"comment|share|sharing|social|sidebar|widget|related|advert|\bads?\b|\bad[-_]|sponsor|promo|"
    r"newsletter|subscribe|breadcrumb|\btags?\b|author-box|\bmenu\b|\bnav|footer|masthead|cookie|popup",
    re.I)
CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]+)\1\s*\)|@import\s+(['"])([^'"]+)\3""", re.I)
REQUISITE_LINK_RELS = {"stylesheet", "icon", "shortcut", "apple-touch-icon", "apple-touch-icon-precomposed",
                       "preload", "modulepreload", "manifest", "mask-icon"}


@dataclass(frozen=True)
class Link:
    """One reference from a page: its target, kind (read, body, requisite), text and order."""
    url: str
    kind: str
    text: str = ""
    position: int = 0


def decode_body(body: bytes, content_encoding: str = "") -> bytes:
    """The body with gzip/deflate/br undone, capped at MAX_DECODED_BYTES; raw if it can't be."""
    for coding in reversed([c.strip().lower() for c in content_encoding.split(",") if c.strip()]):
        try:
            body = _undo_coding(body, coding)
        except (OSError, EOFError, zlib.error, ValueError):
            return body
    return body


def _undo_coding(body: bytes, coding: str) -> bytes:
    if coding in ("gzip", "x-gzip", "deflate"):
        wbits = 47 if coding != "deflate" else (15 if body[:1] == b"\x78" else -15)
        d = zlib.decompressobj(wbits)
        return d.decompress(body, MAX_DECODED_BYTES)
    # br is not decoded: we do not ask for it (see fetch.DEFAULT_HEADERS), and no brotli
    # binding we can rely on decodes with an output cap, which a bomb would need.
    if coding == "identity":
        return body
    raise ValueError(coding)


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
    text = re.sub(r"^\s*<\?xml[^>]*>", "", text)
    if not text.strip():
        return None
    try:
        return lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        return None


def page_links(body: bytes, url: str, content_type: str = "", cta_texts: tuple[str, ...] = ()) -> list[Link]:
    """Cross-references (read, body) in article order, then requisites, of one HTML page."""
    doc = parse_html(decode_text(body, content_type))
    if doc is None:
        return []
    base = _base_url(doc, url)
    return _dedupe(cross_refs(doc, base, cta_texts) + requisites(doc, base))


def page_requisites(body: bytes, url: str, content_type: str = "") -> list[Link]:
    """Only the requisites of an HTML page (what the crawler fetches so it replays)."""
    doc = parse_html(decode_text(body, content_type))
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


# ---- cross-references -------------------------------------------------------------------

def cross_refs(doc: etree._Element, base: str, cta_texts: tuple[str, ...]) -> list[Link]:
    body = article_body(doc)
    cta = _cta_pattern(cta_texts)
    found: list[Link] = []
    for a in _iter_links(doc):
        kind = READ if _in_read_box(a, body, cta) else (BODY if _is_editorial(a, body) else None)
        target = _absolute(base, a.get("href")) if kind else None
        if kind and target:
            found.append(Link(target, kind, _link_title(a, kind), len(found)))
    return found


def _iter_links(doc: etree._Element):
    return (a for a in doc.iter("a") if a.get("href"))


def _cta_pattern(cta_texts: tuple[str, ...]) -> re.Pattern[str] | None:
    texts = sorted({t.strip().rstrip(":").strip() for t in cta_texts if t.strip()}, key=len, reverse=True)
    if not texts:
        return None
    return re.compile(r"^\W{0,3}(?:" + "|".join(re.escape(t) for t in texts) + r")\s*(?::|\s|$)", re.I)


def _in_read_box(a: etree._Element, body: etree._Element | None, cta: re.Pattern[str] | None) -> bool:
    """Inline Related Posts markup anywhere, or a short block in the body opening with a CTA."""
    if _irp_box(a) is not None:
        return True
    if cta is None or body is None or not _is_inside(a, body):
        return False
    block = _block_of(a)
    text = _text(block)
    return len(text) < 300 and bool(cta.match(text))


def _irp_box(a: etree._Element) -> etree._Element | None:
    if a.xpath("descendant-or-self::*[contains(@class,'ctaText') or contains(@class,'postTitle')]"):
        return a
    boxes = a.xpath("ancestor::*[starts-with(@class,'IRPP_') or contains(@class,' IRPP_')][1]")
    if boxes:
        return boxes[0]
    parent = a.getparent()
    if parent is not None and parent.xpath("./*[contains(@class,'ctaText')]"):
        return parent
    return None


def _link_title(a: etree._Element, kind: str) -> str:
    if kind == READ:
        box = _irp_box(a)
        titles = box.xpath(".//*[contains(@class,'postTitle')]") if box is not None else []
        if titles:
            return _text(titles[0])
    return _text(a)


def _block_of(a: etree._Element) -> etree._Element:
    node = a.getparent()
    while node is not None and node.tag not in BLOCK_TAGS - {"strong", "b", "em"}:
        node = node.getparent()
    return node if node is not None else a


def _is_editorial(a: etree._Element, body: etree._Element | None) -> bool:
    if body is None or not _is_inside(a, body):
        return False
    node = a
    while node is not None and node is not body:
        if node.tag in EXCLUDED_TAGS or EXCLUDED_NAMES.search(_names(node)):
            return False
        node = node.getparent()
    return True


def _is_inside(node: etree._Element, ancestor: etree._Element) -> bool:
    while node is not None:
        if node is ancestor:
            return True
        node = node.getparent()
    return False


def _names(node: etree._Element) -> str:
    return f"{node.get('class', '')} {node.get('id', '')}"


def _text(node: etree._Element) -> str:
    return " ".join(node.text_content().split())


def article_body(doc: etree._Element) -> etree._Element | None:
    """The element holding the article text: schema.org articleBody, else the densest text block."""
    marked = doc.xpath("//*[contains(concat(' ', normalize-space(@itemprop), ' '), ' articleBody ')]")
    if marked and len(_text(marked[0])) > 200:
        return marked[0]
    scores: dict[etree._Element, float] = {}
    for node in doc.iter("p", "div", "td", "section", "article"):
        if node.getparent() is None or _is_boilerplate(node):
            continue
        own = _own_text_length(node)
        if own < 25:
            continue
        target = node.getparent() if node.tag == "p" else node
        scores[target] = scores.get(target, 0) + own
    return max(scores, key=scores.__getitem__) if scores else doc.find("body")


def _own_text_length(node: etree._Element) -> int:
    """Text directly in the node (text + children's tails), i.e. not inside child elements,
    plus inline children; this sees both <p> paragraphs and <br>-separated layouts."""
    parts = [node.text or ""]
    for child in node:
        if child.tag in ("a", "em", "strong", "b", "i", "span", "br", "sup", "sub", "abbr", "q", "mark"):
            parts.append(child.text_content() if child.tag != "a" else "")
        parts.append(child.tail or "")
    return len(" ".join("".join(parts).split()))


def _is_boilerplate(node: etree._Element) -> bool:
    for anc in node.iterancestors():
        if anc.tag in EXCLUDED_TAGS or EXCLUDED_NAMES.search(_names(anc)):
            return True
    return node.tag in EXCLUDED_TAGS or bool(EXCLUDED_NAMES.search(_names(node)))


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
    for el in doc.xpath("//*[@style]"):
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
