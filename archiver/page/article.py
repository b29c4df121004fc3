"""Pure article extraction: page bytes + URL -> Article (the editorial content of a page).

The diff stage compares the Articles of two captures of one URL and must report only
editorial edits, so an Article holds what an editor writes (title, byline, dates, the
body's paragraphs and links, the standfirst) and leaves out what the site renders around
it: navigation, sidebars, share and newsletter boxes, ads, comments, counters, and the
READ boxes that plugins such as Inline Related Posts pick anew on every render (their
targets go to ``read_refs``, apart from the paragraphs).

How the body is found (measured against trafilatura and readability-lxml on real pages,
see bench/extract_quality.py): schema.org ``articleBody`` where a page marks it, else
readability's scoring of text blocks, extended to every container of the same kind,
since many layouts split one article over several. Nothing depends on one theme's
class names; class and id words only mark furniture (share, sidebar, comments, ...).

Nothing here touches the network, the catalog or the disk.
"""

from __future__ import annotations

import functools
import json
import re
from statistics import median
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from lxml import etree

from archiver.page.extract import EXCLUDED_TAGS, _absolute, _base_url, _cta_pattern, _is_inside, _names, decode_text, parse_html

EXTRACTOR_VERSION = "5"


@dataclass(frozen=True)
class Ref:
    """A link in the article: target URL, its anchor text (or READ box title), and the
    signature of the block it stands in (see ``signature``)."""
    url: str
    text: str
    block: str = field(default="", compare=False)  # where it stands, not what it says


@dataclass(frozen=True)
class Article:
    url: str
    canonical_url: str = ""
    title: str = ""
    byline: str = ""
    published: str = ""      # as found (ISO 8601 where the page gives it)
    modified: str = ""
    paragraphs: tuple[str, ...] = ()
    links: tuple[Ref, ...] = ()       # editorial links in the body, in order
    read_refs: tuple[Ref, ...] = ()   # READ-box cross-references, in order
    blocks: tuple[str, ...] = ()      # the signature of each paragraph's block (see ``signature``)
    extractor: str = field(default=f"archiver/{EXTRACTOR_VERSION}")


def extract_article(body: bytes, url: str, content_type: str = "",
                    cta_texts: tuple[str, ...] = ()) -> Article:
    """Never raises: a page that is not an article gives an Article with empty fields."""
    doc = parse_html(decode_text(body, content_type)) if may_be_html(body, content_type) else None
    return article_of(doc, url, cta_texts)


def article_of(doc: etree._Element | None, url: str, cta_texts: tuple[str, ...] = ()) -> Article:
    """extract_article of a page parsed with extract.parse_html. It changes doc (scripts
    and styles are dropped): find the page's requisites first."""
    if doc is None:
        return Article(url=url)
    base = _base_url(doc, url)
    meta = _Meta.of(doc)  # before _drop_code: JSON-LD lives in <script>
    _drop_code(doc)
    roots = _content_roots(doc)
    scopes = _scopes(doc, roots)
    date_scopes = scopes if _ANY_DATE_NODE(doc) else []
    title = _title(doc, meta, url)
    content = _Content(base, _cta_pattern(cta_texts), title)
    for root in roots:
        content.walk(root)
    content.finish()
    lede = _lede(doc, roots[0], meta) if roots else ""
    if lede and lede not in content.paragraphs[:3]:
        content.paragraphs.insert(0, lede)
        content.blocks.insert(0, "lede")
    return Article(url=url, canonical_url=_canonical(doc, meta, base), title=title, byline=_byline(scopes, meta),
                   published=_date(date_scopes, meta, PUBLISHED), modified=_date(date_scopes, meta, MODIFIED),
                   paragraphs=tuple(content.paragraphs), links=tuple(content.links),
                   read_refs=tuple(content.read_refs), blocks=tuple(content.blocks))


# ---- parsing -----------------------------------------------------------------------------

_STRING = etree.XPath("string()", smart_strings=False)
_LENGTH = etree.XPath("string-length(normalize-space(string()))")  # in libxml2: no Python string
# Compiled once: an XPath given as a string to .xpath() is compiled at every call.
_CODE = etree.XPath("//script | //style | //noscript | //template")
_DESCRIPTIONS = etree.XPath("//meta[@content][@name='description' or @property='og:description' "
                            "or @name='twitter:description' or @property='twitter:description']/@content")
_LD_SCRIPTS = etree.XPath("//script[contains(@type,'ld+json')]")
_CANONICAL = etree.XPath("//link[@href][contains(concat(' ', normalize-space(@rel), ' '), ' canonical ')]")
_ITEMPROPS = etree.XPath("//*[@itemprop]")
_TIMES = etree.XPath(".//time[@datetime]")
_TEXT_STARTING = etree.XPath("//text()[contains(., $start)]")
_CTA_TEXT = etree.XPath("descendant-or-self::*[contains(@class,'ctaText')]")
_POST_TITLE = etree.XPath(".//*[contains(@class,'postTitle')]")
_TEXT_NODES = etree.XPath("descendant::text()[normalize-space()]")
_LINKS = etree.XPath("descendant-or-self::a[@href]")


HTML_TYPES = {"", "text/html", "application/xhtml+xml", "application/xml", "text/xml", "application/octet-stream"}


def may_be_html(body: bytes, content_type: str) -> bool:
    """Not when the server says it is something else (an image, a PDF, JSON), nor for
    binary bytes (NUL bytes early on), which would decode to a paragraph of noise."""
    mime = content_type.split(";")[0].strip().lower()
    starts_as_markup = body.lstrip()[:1] == b"<"
    return mime in HTML_TYPES and (starts_as_markup or b"\x00" not in body[:1024])


def _text(node: etree._Element) -> str:
    return " ".join(_STRING(node).split()) if isinstance(node.tag, str) else ""


def _length(node: etree._Element) -> float:
    """len(_text(node)), without making the string (XML whitespace only)."""
    return _LENGTH(node) if isinstance(node.tag, str) else 0.0


def _drop_code(doc: etree._Element) -> None:
    """Scripts and styles hold no article text but would count as text below."""
    for node in _CODE(doc):
        _remove(node)


def _remove(node: etree._Element) -> None:
    """Remove node but keep its tail text in place."""
    parent, prev = node.getparent(), node.getprevious()
    if parent is None:
        return
    if node.tail and prev is not None:
        prev.tail = (prev.tail or "") + node.tail
    elif node.tail:
        parent.text = (parent.text or "") + node.tail
    parent.remove(node)


def _ancestors(node: etree._Element, n: int) -> list[etree._Element]:
    """Up to n ancestors, nearest first, below <body>."""
    out: list[etree._Element] = []
    for anc in node.iterancestors():
        if anc.tag in ("body", "html") or len(out) == n:
            break
        out.append(anc)
    return out


def _scopes(doc: etree._Element, roots: list[etree._Element]) -> list[etree._Element]:
    """Where to look for a byline or date, nearest to the body first: a page also shows
    the bylines and dates of other articles (teasers, related lists, comments)."""
    return (_ancestors(roots[0], 4) if roots else []) + [doc]


# ---- metadata: <meta>, JSON-LD -----------------------------------------------------------

PAGE_TYPES = {"webpage", "creativework", "report"}  # less specific than *Article / *Posting


@dataclass(frozen=True)
class _Meta:
    """<meta> values by lower-cased name/property (first wins) and the page's JSON-LD article."""
    tags: dict[str, str]
    ld: dict[str, Any]
    descriptions: tuple[str, ...]  # all of them: a page may carry a stale one first

    @classmethod
    def of(cls, doc: etree._Element) -> "_Meta":
        return cls(_meta_tags(doc), _ld_article(doc), _descriptions(doc))

    def first(self, *names: str) -> str:
        for name in names:
            value = " ".join(self.tags.get(name, "").split())
            if value:
                return value
        return ""


def _meta_tags(doc: etree._Element) -> dict[str, str]:
    tags: dict[str, str] = {}
    for m in doc.iter("meta"):
        key = (m.get("property") or m.get("name") or m.get("itemprop") or "").strip().lower()
        content = m.get("content")
        if key and content and key not in tags:
            tags[key] = content
    return tags


def _descriptions(doc: etree._Element) -> tuple[str, ...]:
    found = _DESCRIPTIONS(doc)
    return tuple(dict.fromkeys(" ".join(str(d).split()) for d in found))


def _ld_article(doc: etree._Element) -> dict[str, Any]:
    """The first JSON-LD object of an article type (*Article, *Posting), else of a page type."""
    found = [obj for script in _LD_SCRIPTS(doc)
             for obj in _ld_objects(_ld_load(script.text or ""))]
    for obj in found:
        if any(t.endswith(("article", "posting")) for t in _ld_types(obj)):
            return obj
    return next((obj for obj in found if _ld_types(obj) & PAGE_TYPES), {})


def _ld_load(text: str) -> Any:
    text = re.sub(r"^\s*(?://\s*)?<!\[CDATA\[|(?://\s*)?\]\]>\s*$", "", text.strip())
    try:
        return json.loads(text.strip().rstrip(";"), strict=False)  # strict=False: raw newlines in strings
    except (ValueError, RecursionError):
        return None


def _ld_objects(data: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    if depth > 5:
        return
    if isinstance(data, list):
        for item in data:
            yield from _ld_objects(item, depth + 1)
    elif isinstance(data, dict):
        yield data
        yield from _ld_objects(data.get("@graph"), depth + 1)
        yield from _ld_objects(data.get("mainEntity"), depth + 1)


def _ld_types(obj: dict[str, Any]) -> set[str]:
    t = obj.get("@type")
    return {str(x).lower() for x in (t if isinstance(t, list) else [t]) if x}


def _ld_text(value: Any, depth: int = 0) -> str:
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, dict) and depth < 5:
        return _ld_text(value.get("name") or value.get("@value"), depth + 1)
    return ""


def _ld_names(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [n for n in (_ld_text(item) for item in items) if n]


# ---- title -------------------------------------------------------------------------------

TITLE_SEPARATORS = re.compile(r"\s+(?:[|\-–—:·•»«/]|::)\s+")


def _title(doc: etree._Element, meta: _Meta, url: str) -> str:
    """The headline: a heading the page's declared titles agree with, else the first
    declared title (JSON-LD headline, og:title, <title>) less the site name."""
    site = meta.first("og:site_name", "application-name")
    declared = [t for t in (_ld_text(meta.ld.get("headline")), meta.first("og:title", "twitter:title", "dc.title"),
                            _text_of(doc.find(".//title"))) if t]
    if not declared:
        return _first_heading(doc)
    return _matching_heading(doc, declared, site) or _strip_site(declared[0], site, url)


def _text_of(node: etree._Element | None) -> str:
    return _text(node) if node is not None else ""


def _first_heading(doc: etree._Element) -> str:
    return next((t for t in (_text(h) for h in doc.iter("h1")) if t), "")


def _matching_heading(doc: etree._Element, declared: list[str], site: str) -> str:
    """The longest h1/h2 contained in a declared title and making up much of it.

    Old layouts put the site name in <h1> and the headline in a lower heading; the
    declared titles name the headline, so the match finds it."""
    wanted = [t.casefold() for t in declared]
    shortest = min(len(t) for t in wanted)
    best = ""
    for h in doc.iter("h1", "h2"):
        text = _text(h)
        folded = text.casefold()
        if len(text) > max(len(best), 0.4 * shortest) and folded != site.casefold() \
                and any(folded in w for w in wanted) and not _links_home(h):
            best = text
    return best


def _links_home(h: etree._Element) -> bool:
    """A heading linking to a site's front page names the site, not the article."""
    return any((a.get("href") or "").rstrip("/").count("/") <= 2 for a in h.iter("a"))


def _strip_site(title: str, site: str, url: str) -> str:
    """'Headline | Site' -> 'Headline': drop a part naming the site, else a short last part."""
    parts = TITLE_SEPARATORS.split(title)
    if len(parts) < 2:
        return title
    seps = TITLE_SEPARATORS.findall(title)
    host = re.sub(r"^www\.", "", url.split("/")[2] if url.count("/") >= 2 else "").split(".")[0].casefold()
    short_last = len(parts[-1].split()) <= 4 < len(" ".join(parts[:-1]).split()) and seps[-1].strip() != ":"
    if _names_site(parts[-1], site, host) or short_last:
        return title[:title.rfind(seps[-1])]
    if _names_site(parts[0], site, host):
        return title[title.find(seps[0]) + len(seps[0]):]
    return title


def _names_site(part: str, site: str, host: str) -> bool:
    folded = part.casefold().strip()
    squashed = re.sub(r"\W", "", folded)
    return bool(folded) and (folded == site.casefold().strip() or (len(host) > 2 and host in squashed))


# ---- byline, dates, canonical URL --------------------------------------------------------

BYLINE_XPATH = etree.XPath(".//*[@itemprop='author' or @rel='author' or contains(@class,'uthor') "
                           "or contains(@class,'yline') or contains(@id,'uthor') or contains(@id,'yline') "
                           "or contains(@class,'writer')]")
BYLINE_NAMES = re.compile(r"byline|author|writer", re.I)
NOT_BYLINE_NAMES = re.compile(r"comment|related|sidebar|widget|teaser|promo|popular|recirc|avatar|image|photo|"
                              r"\bbio|description", re.I)
AUTHOR_HREF = re.compile(r"/(?:authors?|autor(?:en|es|i)?|auteurs?|writers?|people|profiles?|staff|journalists?)/",
                         re.I)
DATE_NAMES = re.compile(r"date|time|ago|updated|publish", re.I)
BY_PREFIX = re.compile(r"^(?:by|par|von|por|door|di|av|af|autor|author|written by)\b\s*:?\s*", re.I)
PUBLISHED, MODIFIED = "published", "modified"
DATE_META = {
    PUBLISHED: ("article:published_time", "og:article:published_time", "datepublished", "pubdate", "publishdate",
                "publish-date", "dc.date.issued", "dcterms.created", "dc.date", "date", "sailthru.date",
                "parsely-pub-date"),
    MODIFIED: ("article:modified_time", "og:article:modified_time", "datemodified", "og:updated_time",
               "dcterms.modified", "last-modified", "lastmod"),
}
DATE_LD = {PUBLISHED: "datePublished", MODIFIED: "dateModified"}
_DATE_ITEMPROP = {which: etree.XPath(f".//*[@itemprop='{name}']") for which, name in DATE_LD.items()}
# Whether the page has any node _date_in looks for: most pages have none, and one look over
# the document costs less than one per scope and date.
_ANY_DATE_NODE = etree.XPath("boolean(" + " | ".join(f"//*[@itemprop='{name}']" for name in DATE_LD.values())
                             + " | //time[@datetime])")
ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d(?:T\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?$")


def _byline(scopes: list[etree._Element], meta: _Meta) -> str:
    """JSON-LD author names, else <meta name=author>, else a byline element near the body."""
    names = _ld_names(meta.ld.get("author"))
    if names:
        return ", ".join(dict.fromkeys(names))
    author = meta.first("author", "article:author", "dc.creator", "parsely-author", "sailthru.author")
    if author and not re.match(r"https?://", author):
        return author
    return next((found for found in map(_byline_in, scopes) if found), "")


def _byline_in(scope: etree._Element) -> str:
    for node in BYLINE_XPATH(scope):
        names = _names(node)
        if node.tag in ("meta", "link", "body", "html") or NOT_BYLINE_NAMES.search(names):
            continue
        if node.get("itemprop") != "author" and node.get("rel") != "author" and not BYLINE_NAMES.search(names):
            continue
        text = BY_PREFIX.sub("", _byline_text(node))
        if 2 < len(text) < 100:
            return text
    return ""


def _byline_text(node: etree._Element) -> str:
    """The names in a byline element: its schema.org name, its links to author pages,
    else its text less dates (bylines often carry a date, a time or a comment count)."""
    name = node.find(".//*[@itemprop='name']")
    if name is not None:
        return _text(name)
    links = [_text(a) for a in node.iter("a") if a.get("rel") == "author" or AUTHOR_HREF.search(a.get("href") or "")]
    if any(links):
        return ", ".join(dict.fromkeys(t for t in links if t))
    return _text_without_dates(node)


def _text_without_dates(node: etree._Element) -> str:
    parts = [node.text or ""]
    for child in node:
        if isinstance(child.tag, str) and child.tag != "time" and not DATE_NAMES.search(_names(child)):
            parts.append(_text_without_dates(child))
        parts.append(child.tail or "")
    return " ".join(" ".join(parts).split())


def _date(scopes: list[etree._Element], meta: _Meta, which: str) -> str:
    """JSON-LD (the most deliberate), <meta>, else itemprop or <time datetime> nearest to
    the body; the first ISO 8601 value of these, else the first value."""
    found = [_ld_text(meta.ld.get(DATE_LD[which])), meta.first(*DATE_META[which])]
    if not any(found):
        found = [next((d for d in (_date_in(s, which) for s in scopes) if d), "")]
    return next((d for d in found if ISO_DATE.match(d)), next((d for d in found if d), ""))


def _date_in(scope: etree._Element, which: str) -> str:
    for node in _DATE_ITEMPROP[which](scope):
        value = node.get("content") or node.get("datetime") or _text(node)
        if value.strip():
            return " ".join(value.split())
    times = _TIMES(scope) if which == PUBLISHED else []
    return " ".join(times[0].get("datetime").split()) if times else ""


def _canonical(doc: etree._Element, meta: _Meta, base: str) -> str:
    links = _CANONICAL(doc)
    href = links[0].get("href") if links else meta.first("og:url")
    return _absolute(base, href) or ""


# ---- where the body is ------------------------------------------------------------------

INLINE_TAGS = {"a", "abbr", "b", "bdi", "bdo", "big", "br", "cite", "code", "data", "del", "dfn", "em", "font",
               "i", "img", "ins", "kbd", "label", "mark", "nobr", "q", "s", "samp", "small", "span", "strike",
               "strong", "sub", "sup", "time", "tt", "u", "var", "wbr"}
CODE_TAGS = {"script", "style", "noscript", "template", "button", "select", "option", "textarea", "input", "svg",
             "iframe", "object", "embed", "video", "audio", "canvas", "map", "head", "title", "link", "meta", "dialog"}
FURNITURE_TAGS = EXCLUDED_TAGS - CODE_TAGS  # nav, aside, header, footer, form, menu
CONTENT_TAGS = {"html", "body", "main", "article"}  # never furniture, whatever their class
LIST_TAGS, LIST_ITEM_TAGS = {"ul", "ol", "dl"}, {"li", "dd", "dt"}
PARAGRAPH_TAGS = {"p", "li", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "dd", "dt", "figcaption"}
# Class/id words of page furniture: extract.EXCLUDED_NAMES plus bylines, meta lines,
# screen-reader text and recommendation widgets; "nav" only as a whole word, since
# generated heading ids such as "nav_the_heading_1" are article text; "tag" not as the
# "tag-<slug>" classes WordPress puts on the post itself (one per tag of the post); an
# author card or bio is about the writer, not the story.
NOISE_NAMES = re.compile(
    r"comment|share|sharing|social|sidebar|widget|related|advert|\bads?\b|\bad[-_]|sponsor|promo|newsletter|"
    r"subscribe|signup|paywall|breadcrumb|\btags?\b(?!-\w)|\btags?-(?:list|links?|cloud|box|wrap|area|group)|"
    r"tag-?links|author-?box|\bmenu\b|\bnav\b|navbar|navigation|"
    r"footer|masthead|cookie|popup|byline|dateline|timestamp|post-?meta|entry-?meta|article-?meta|screen-reader|"
    r"sr-only|visually-?hidden|recirc|outbrain|taboola|popular|trending|more-stories|most-read|print-only|"
    r"toolbar|pagination|skip-link|\bcredit|aside|teaser|"
    r"author-?(?:card|info|bio|profile|details)|\bbio\b", re.I)
SLOT_NAMES = re.compile(r"advert\w*|\bads?\b|\bad[-_]|sponsor\w*|promo\w*|widget\w*", re.I)
PROSE_PARAGRAPH = 300
NOT_STANDFIRST_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "header", "figure", "figcaption", "table", "ul", "ol"}
SENTENCE_END = ".!?…:\"'»«“”’"
STANDFIRST = (80, 600)  # characters of a standfirst: a sentence or a few  # characters of own text (not links) that make a paragraph of prose
HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
PART_SHARE = 0.2       # a container scoring this share of the best one holds part of the article too
WRAPPER_SHARE = 1 / 3  # furniture holding this share of the text around it is a wrapper, not furniture
LISTING_PARTS, LISTING_EXCERPT = 4, 300  # this many parts of a median length below this: a listing
ANCESTOR_SHARE = 0.75  # an ancestor scoring this share of the best element gathers more of the article
MARKED_CARDS = 3       # this many articleBody marks of a listing's length: teaser cards
MIN_BLOCK = 25         # characters of own text that make an element a text block worth scoring


def _content_roots(doc: etree._Element) -> list[etree._Element]:
    """The elements holding the article text, in document order.

    schema.org articleBody when the page marks it; else readability's idea: every text
    block scores its parent fully and its further ancestors less, and the best-scoring
    element (less its link text) wins. Containers of the same kind (tag and a class)
    scoring close to the winner join it, and so do paragraphs standing next to it."""
    marked = _marked_bodies(doc)
    if marked:
        return marked
    raw = _raw_scores(doc)
    scores = _best_scores(raw)
    if not scores:
        body = doc.find("body")
        return [body] if body is not None else []
    top, *others = sorted(scores, key=scores.__getitem__, reverse=True)
    parts = [top]
    for node in others:
        if scores[node] >= scores[top] * PART_SHARE and _same_kind(node, top) \
                and not any(_overlaps(node, p) for p in parts):
            parts.append(node)
    if _listing(parts):
        return []
    promoted = _promoted(top, scores[top], raw)
    if promoted is not top:
        scores[promoted] = scores[top]
        parts = [promoted] + [p for p in parts if not _overlaps(p, promoted)]
    siblings = [s for s in _with_siblings(promoted, scores) if not any(_overlaps(s, p) for p in parts)]
    return _in_document_order(doc, parts + siblings)


def _listing(parts: list[etree._Element]) -> bool:
    """Many containers of one kind each holding an excerpt: the cards of a home or
    section page, which has no article text to track."""
    return len(parts) >= LISTING_PARTS and median([_length(p) for p in parts]) < LISTING_EXCERPT


def _marked_bodies(doc: etree._Element) -> list[etree._Element]:
    """The outermost articleBody elements, unless they are the excerpts of teaser cards
    (a "more posts" list marked up as articles) rather than the page's own body."""
    marked = [m for m in _ITEMPROPS(doc)
              if "articleBody" in (m.get("itemprop") or "").split() and m.tag not in ("meta", "link")]
    outer = [m for m in marked if not any(a in marked for a in m.iterancestors())]
    lengths = [_length(m) for m in outer]
    cards = len(outer) >= MARKED_CARDS and median(lengths) < LISTING_EXCERPT
    return outer if sum(lengths) > 200 and not cards else []


def _raw_scores(doc: etree._Element) -> dict[etree._Element, float]:
    """Every text block scores its containers: the nearest fully, further ones less."""
    raw: dict[etree._Element, float] = {}
    for node, own in _scored_blocks(doc):
        points = 1 + own / 100
        for level, anc in enumerate(_containers(node)):
            raw[anc] = raw.get(anc, 0.0) + points / (1 if level == 0 else 2 if level == 1 else level * 3)
    return raw


def _best_scores(raw: dict[etree._Element, float]) -> dict[etree._Element, float]:
    """The ten best-scoring elements, each scaled down by its share of link text."""
    best = sorted(raw, key=raw.__getitem__, reverse=True)[:10]
    return {node: raw[node] * (1 - _link_density(node)) for node in best}


def _promoted(top: etree._Element, score: float, raw: dict[etree._Element, float]) -> etree._Element:
    """The ancestor of the best element that gathers more of the article (the best
    element was one section of it, or a fact box). Ancestors score less the further up
    they are, so one that scores nearly as much as the best, or (readability.js's walk
    up) more than the one below it before scores fall under a third of the best."""
    chain = [(anc, raw[anc] * (1 - _link_density(anc))) for anc in _ancestors(top, 10) if anc in raw]
    close = [anc for anc, value in chain if value >= score * ANCESTOR_SHARE]
    if close:
        return close[-1]
    last = score
    for anc, value in chain:
        if value < score / 3:
            break
        if value > last:
            return anc
        last = value
    return top


def _scored_blocks(doc: etree._Element) -> Iterator[tuple[etree._Element, int]]:
    """_text_blocks, with the items of a list counted as one block, the list: scored
    item by item, a list of short lines outscores the prose around it and wins alone
    (a fact box, a table of contents, nested <ol>s) instead of the container of both."""
    lists: dict[etree._Element, int] = {}
    for node, own in _text_blocks(doc):
        outer = _outer_list(node) if node.tag in LIST_ITEM_TAGS else None
        if outer is None:
            yield node, own
        else:
            lists[outer] = lists.get(outer, 0) + own
    yield from lists.items()


def _outer_list(item: etree._Element) -> etree._Element | None:
    found = None
    for anc in item.iterancestors():
        if anc.tag in LIST_TAGS:
            found = anc
        elif anc.tag not in LIST_ITEM_TAGS:
            break
    return found


def _containers(block: etree._Element) -> list[etree._Element]:
    """Who a text block scores for: a paragraph (or a list) its parent and further
    ancestors; a cell or div holding text itself (<br>-separated layouts) itself first,
    so that the table row around it, with its menu cell, does not win."""
    if block.tag in PARAGRAPH_TAGS or block.tag in LIST_TAGS:
        return _ancestors(block, 5)
    return ([block] if block.tag not in ("body", "html") else []) + _ancestors(block, 4)


def _text_blocks(doc: etree._Element) -> Iterator[tuple[etree._Element, int]]:
    """(element, length of its own text) for block elements outside furniture."""
    noise: set[etree._Element] = set()
    body = doc.find("body")
    whole = _prose(body if body is not None else doc)
    for node in doc.iter():
        if node.getparent() in noise or _is_noise(node, whole, _prose):
            noise.add(node)
        elif node.tag not in INLINE_TAGS:
            own = _own_text_length(node)
            if own >= MIN_BLOCK:
                yield node, own


def _own_text_length(node: etree._Element) -> int:
    """Text in the node itself and its inline children but not in links: this sees both
    <p> paragraphs and <br>-separated layouts, and not link lists."""
    parts = [node.text or ""]
    for child in node:
        if child.tag in INLINE_TAGS and child.tag != "a":
            parts.append(_STRING(child))
        parts.append(child.tail or "")
    return len(" ".join(" ".join(parts).split()))


def _is_noise(el: etree._Element, whole: float, measure: Callable[[etree._Element], float] = _length) -> bool:
    """Not article text: code and controls; furniture (nav, aside, footer...), hidden
    elements, and elements named as furniture (share, sidebar, ad, comments...).
    Furniture holding a third of ``whole`` (the text around it, as ``measure`` counts
    it) is a wrapper all the same: a page-wide <form>, a <header> left unclosed,
    "js-social-anchor-start", "c-fixed-sidebar-layout", a blog engine's "widget Blog"
    around the post, a page hidden until its scripts run."""
    if not isinstance(el.tag, str) or el.tag in CODE_TAGS:
        return True
    if el.tag in CONTENT_TAGS:
        return False
    if el.tag not in FURNITURE_TAGS and not _hidden(el) and not _noise_named(_names(el)):
        return False
    if el.tag not in FURNITURE_TAGS and _slot_named(_names(el)) and not _hidden(el) and _holds_prose(el):
        return False
    if el.tag in FURNITURE_TAGS and _noise_named(_names(el)):
        return True  # furniture by tag and by name: <aside class="sidebar">, whatever it holds
    return measure(el) < whole * WRAPPER_SHARE


def _prose(node: etree._Element) -> float:
    """Text outside links: what a wrapper around the article holds a share of, while
    menus and link lists, however long, hold little."""
    return _length(node) - sum(_length(a) for a in node.iter("a"))


def _hidden(el: etree._Element) -> bool:
    style = el.get("style")
    return el.get("hidden") is not None or el.get("aria-hidden") == "true" \
        or (style is not None and HIDDEN_STYLE.search(style) is not None)


@functools.lru_cache(maxsize=4096)
def _noise_named(names: str) -> bool:
    return bool(names.strip()) and bool(NOISE_NAMES.search(names))


@functools.lru_cache(maxsize=4096)
def _slot_named(names: str) -> bool:
    """Named as furniture only by words that mark where an ad or a widget may go
    ("TestReport__Section--Ads", "widget-area"), which layouts put on sections of the
    article too."""
    return not NOISE_NAMES.search(SLOT_NAMES.sub(" ", names))


def _holds_prose(el: etree._Element) -> bool:
    """A paragraph of prose inside: an ad or a widget is a few words and links."""
    return any(_own_text_length(node) >= PROSE_PARAGRAPH for node in el.iter()
               if isinstance(node.tag, str) and node.tag not in INLINE_TAGS)


def _link_density(node: etree._Element) -> float:
    total = _length(node)
    links = sum(_length(a) for a in node.iter("a"))
    return min(1.0, links / total) if total else 1.0


def _with_siblings(top: etree._Element, scores: dict[etree._Element, float]) -> list[etree._Element]:
    parent = top.getparent()
    if parent is None:
        return [top]
    threshold = max(10.0, scores[top] * PART_SHARE)
    return [s for s in parent if s is top or (scores.get(s, 0.0) >= threshold and _same_kind(s, top))
            or _lone_paragraph(s)]


def _lone_paragraph(node: etree._Element) -> bool:
    return node.tag == "p" and _length(node) > 80 and _link_density(node) < 0.25 \
        and not _hidden(node) and not _noise_named(_names(node))


def _same_kind(a: etree._Element, b: etree._Element) -> bool:
    """Same tag and a class in common; without classes, same tag and no ids (an id names
    one thing: id="story" and id="next-posts" are not two parts of one article)."""
    classes_a, classes_b = set((a.get("class") or "").split()), set((b.get("class") or "").split())
    if classes_a or classes_b:
        return a.tag == b.tag and bool(classes_a & classes_b)
    return a.tag == b.tag and not (a.get("id") or b.get("id"))


def _overlaps(a: etree._Element, b: etree._Element) -> bool:
    return a is b or _is_inside(a, b) or _is_inside(b, a)


def _in_document_order(doc: etree._Element, nodes: list[etree._Element]) -> list[etree._Element]:
    if len(nodes) == 1:
        return nodes
    wanted = set(nodes)
    return [node for node in doc.iter() if node in wanted]


def _lede(doc: etree._Element, first_root: etree._Element, meta: _Meta) -> str:
    """The standfirst that many layouts print above the body, outside its container: an
    element before the body whose text is a description of the page, or starts with it
    (descriptions are often cut short); else a paragraph of prose just before the body."""
    described = (_described(doc, first_root, d) for d in meta.descriptions)
    return next((found for found in described if found), "") or _standfirst(first_root)


def _standfirst(first_root: etree._Element) -> str:
    """The first element with text before the body, at its level or up to two levels
    up, when it is one paragraph of prose (not a heading, a byline or a link)."""
    for node in [first_root, *_ancestors(first_root, 2)]:
        for prev in node.itersiblings(preceding=True):
            if not isinstance(prev.tag, str) or _length(prev) == 0:
                continue
            text = _text(prev)
            return text if _one_paragraph(prev) and STANDFIRST[0] <= len(text) <= STANDFIRST[1] \
                and text[-1] in SENTENCE_END else ""
    return ""


def _one_paragraph(el: etree._Element) -> bool:
    """One block of prose: not a heading, a figure or furniture, little link text, and
    its text in a single element (not a header block of kicker, title and byline)."""
    if el.tag in NOT_STANDFIRST_TAGS or _is_noise(el, 0.0) or _link_density(el) >= 0.2:
        return False
    holders = [n for n in el.iter() if isinstance(n.tag, str) and n.tag not in INLINE_TAGS and _own_text_length(n)]
    return len(holders) == 1 and holders[0].tag not in NOT_STANDFIRST_TAGS


def _described(doc: etree._Element, first_root: etree._Element, described: str) -> str:
    wanted = described.casefold().rstrip(".…")
    if len(wanted) < 40:
        return ""
    for found in _TEXT_STARTING(doc, start=described[:20]):  # cheaper than normalize-space
        owner = found.getparent()
        el = owner.getparent() if found.is_tail and owner is not None else owner
        if el is None or not _precedes(el, first_root) or any(a.tag == "head" for a in el.iterancestors()):
            continue
        text = _text(el)
        folded = text.casefold()
        if folded.startswith(wanted) or (wanted.startswith(folded) and len(folded) >= 0.8 * len(wanted)):
            return text
    return ""


def _precedes(a: etree._Element, b: etree._Element) -> bool:
    """a starts before b in the document and does not contain it."""
    chain_a = [a, *a.iterancestors()][::-1]
    chain_b = [b, *b.iterancestors()][::-1]
    for x, y in zip(chain_a, chain_b):
        if x is not y:
            parent = x.getparent()
            return parent is not None and parent.index(x) < parent.index(y)
    return False


# ---- walking the body -------------------------------------------------------------------

IRP_MARKERS = etree.XPath(".//*[contains(@class,'ctaText') or contains(@class,'postTitle') "
                          "or starts-with(@class,'IRPP_') or contains(@class,' IRPP_')]")
AD_LABEL = re.compile(r"^(?:advertisement|advertising|anzeige|werbung|publicidad|publicité|pubblicità|sponsored|"
                      r"ad|reklama|реклама)\W*$", re.I)
# A control's caption standing alone: print, share, tag and comment buttons, in the
# languages of the corpora.
UI_LABEL = re.compile(
    r"^(?:print|drucken|imprimer|stampa|imprimir|share|teilen|partager|compartir|condividi|tags?|schlagw(?:ö|o)rter|"
    r"mots-clés|(?:write|leave|post|add) an? (?:comment|reply)|kommentare? schreiben|kommentieren|"
    r"laisser un commentaire|commenter)\W*$", re.I)
COUNTER = re.compile(
    r"^(?:\d[\d,.\s]*[km]?\s*(?:views?|reads?|shares?|comments?|likes?)|"
    r"(?:updated|posted|published)?\s*(?:\d+|an?)\s*(?:seconds?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?)"
    r"\s+ago|\d+\s*min(?:ute)?s?\s+read)$", re.I)
# A line that is only a date, with a weekday or a time: "23.10.2018", "Donnerstag, 31. Mai
# 2012", "May 31, 2012, 9:15 am", "2012-05-31".
DATE_LINE = re.compile(
    r"^(?:[^\W\d_]+,?\s+)?(?:\d{1,2}[./-]\s?\d{1,2}[./-]\s?\d{2,4}|\d{4}-\d\d-\d\d|"
    r"\d{1,2}\.?\s+[^\W\d_]{3,}\.?,?\s+\d{4}|[^\W\d_]{3,}\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4})"
    r"(?:,?\s+(?:um\s+|at\s+|à\s+)?\d{1,2}[:.]\d\d(?:\s*(?:uhr|h|[ap]\.?m\.?))?)?$", re.I)
INVISIBLE = str.maketrans("", "", "\u200b\u200c\u200d\u2060\ufeff\xad")
MAX_CTA_BLOCK = 300  # a READ box is a short block; a long paragraph opening with "Read" is text
MAX_LABEL = 60       # characters of a label over a box ("Explore further", "Das könnte dich interessieren:")
LABELLED_LINKS = 3   # this many links after a label, and nothing else: tags or a credit line, not a sentence
MAX_BOX_LINKS = 2    # link-only paragraphs after a label that make a box pointing elsewhere


class _Content:
    """Walks body elements in document order into paragraphs, editorial links and READ refs.

    Text accumulates until a block element starts or ends (or two <br> in a row), then
    becomes one paragraph, with the links met on the way and the signature of the block
    it started in. A READ box (a short block opening with a call to action, wherever it
    stands, or Inline Related Posts markup) is found up front and gives READ refs."""

    def __init__(self, base: str, cta: re.Pattern[str] | None, title: str):
        self.base, self.cta, self.title = base, cta, title.casefold()
        self.paragraphs: list[str] = []
        self.blocks: list[str] = []
        self.links: list[Ref] = []
        self.read_refs: list[Ref] = []
        self._owners: list[int] = []  # per link: the index of its paragraph (-1: none)
        self._only_links: list[bool] = []  # per paragraph: its text is its links' text
        self._pieces: list[str] = []
        self._pending: list[Ref] = []
        self._brs = 0
        self._boxes: dict[etree._Element, list[Ref]] = {}
        self._whole = 0.0
        self._root: etree._Element | None = None
        self._here: etree._Element | None = None  # the element whose text is being read
        self._start: etree._Element | None = None  # where the pending paragraph's text started

    def walk(self, root: etree._Element) -> None:
        self._root = root
        self._boxes = _read_boxes(root, self.base, self.cta)
        self._whole = _length(root)
        self._visit(root, is_root=True)
        self._flush()

    def _visit(self, el: etree._Element, is_root: bool = False) -> None:
        if el in self._boxes:
            self._flush()
            self.read_refs += self._boxes[el]
            return
        if not is_root and (_is_noise(el, self._whole) or self._is_headline(el)):
            return
        block = el.tag not in INLINE_TAGS
        if block:
            self._flush()
        if el.tag == "br":
            self._line_break()
        elif el.tag == "a":
            self._link(el)
        self._here = el
        self._add(el.text)
        for child in el:
            if isinstance(child.tag, str):
                self._visit(child)
            self._here = el
            self._add(child.tail)
        if block:
            self._flush()

    def _is_headline(self, el: etree._Element) -> bool:
        """The <h1> repeating the title (kept in Article.title), kicker or not."""
        return el.tag == "h1" and bool(self.title) and self.title in _text(el).casefold()

    def _add(self, text: str | None) -> None:
        if text:
            self._pieces.append(text)
            if not text.isspace():
                self._brs = 0
                if self._start is None:
                    self._start = self._here

    def _line_break(self) -> None:
        """One <br> is a line break inside a paragraph; two in a row end the paragraph."""
        self._brs += 1
        if self._brs >= 2:
            self._flush()
        else:
            self._pieces.append(" ")

    def _link(self, a: etree._Element) -> None:
        target = _absolute(self.base, a.get("href"))
        if target:
            self._pending.append(Ref(target, _text(a)))

    def _flush(self) -> None:
        text = "".join(self._pieces)
        text = " ".join((text if text.isascii() else text.translate(INVISIBLE)).split())
        start, self._start = (self._start if self._start is not None else self._here), None
        links, self._pieces, self._pending, self._brs = self._pending, [], [], 0
        if self._is_cta(text) and links:
            box = _read_signature(start, self._root, text, self.cta) if start is not None else ""
            self.read_refs += [Ref(r.url, r.text, box) for r in links]
            return
        block = signature(start, self._root, text) if start is not None else ""
        links = [Ref(r.url, r.text, block) for r in links]
        if not text or not (_per_render(text, self.title) or _link_list(text, links)):
            self.links += links
            self._owners += [len(self.paragraphs) if text else -1] * len(links)
            if text:
                self.paragraphs.append(text)
                self.blocks.append(block)
                self._only_links.append(_bare_links(text, links) and not _in_cell(start, self._root))

    def finish(self) -> None:
        """Drop the link boxes standing among the paragraphs (see ``_link_boxes``), with
        their links, keeping paragraphs, blocks and links parallel."""
        dropped = _link_boxes(self.paragraphs, self._only_links)
        if not dropped:
            return
        kept = [i for i in range(len(self.paragraphs)) if i not in dropped]
        self.paragraphs = [self.paragraphs[i] for i in kept]
        self.blocks = [self.blocks[i] for i in kept]
        self._only_links = [self._only_links[i] for i in kept]
        self.links = [r for r, owner in zip(self.links, self._owners) if owner not in dropped]
        new_index = {old: new for new, old in enumerate(kept)}
        self._owners = [new_index.get(o, -1) for o in self._owners if o not in dropped]

    def _is_cta(self, text: str) -> bool:
        return self.cta is not None and len(text) < MAX_CTA_BLOCK and bool(self.cta.match(text))


# ---- block signatures ----------------------------------------------------------------------

SIGNATURE_DEPTH = 2  # elements named, from the block up: where a plugin inserts it varies, what it is does not
LABEL = re.compile(r"^\W{0,3}([^\W\d_][^\W\d_ ]*(?: [^\W\d_]+){0,2})\s*:")
_NAME_PARTS = re.compile(r"[-_]+")


def signature(el: etree._Element, root: etree._Element | None, text: str = "") -> str:
    """Where a block stands in its page template, the same on every page of a site and in
    every render: its tag path up to the content root, each element with its class and
    id words less digits and hashes, and the label its text opens with ("Advertisement:").
    Blocks that differ between two renders of a page are learned as noise by this key
    (noise.learn_noise), whatever the site calls them."""
    parts = []
    node: etree._Element | None = el
    while node is not None and node is not root and node.tag in INLINE_TAGS:
        node = node.getparent()  # a block opening with a bold link stands where its element does
    while node is not None and node is not root and len(parts) < SIGNATURE_DEPTH:
        parts.append(node.tag + "".join("." + w for w in _stable_words(node.get("class") or "", node.get("id") or "")))
        node = node.getparent()
    path = ">".join(reversed(parts)) or (root.tag if root is not None else "")
    label = LABEL.match(text)
    return f"{path}|{label[1].casefold()}" if label else path


def _read_signature(el: etree._Element, root: etree._Element | None, text: str,
                    cta: re.Pattern[str] | None) -> str:
    """A READ box's signature, labelled by its call to action: a colon further on may be
    the linked title's ("READ Nutzerbasierte Abrechnung: ..."), which changes with a swap."""
    found = cta.match(text) if cta is not None else None
    label = " ".join(re.sub(r"[^\w\s]", " ", found[0]).split()).casefold() if found else ""
    path = signature(el, root)
    return f"{path}|{label}" if label else path


@functools.lru_cache(maxsize=4096)
def _stable_words(classes: str, ident: str) -> tuple[str, ...]:
    """Class and id words without the parts that change per render or per page: digits,
    hashes ("css-1x2y3z" -> "css", "code-block-3" -> "code-block", "div-gpt-ad-16051-0" ->
    "div-gpt-ad")."""
    words = set()
    for word in f"{classes} {ident}".split():
        kept = [p for p in _NAME_PARTS.split(word.casefold()) if p and p.isalpha()]
        if kept:
            words.add("-".join(kept))
    return tuple(sorted(words))


def _per_render(text: str, title: str) -> bool:
    """Text the site renders anew (a view counter, "5 minutes ago", an ad label, a button's
    caption such as "Drucken" or "Share") or repeats
    (the headline, kept in Article.title; a line of only the date, kept in Article.published)."""
    return bool(COUNTER.match(text) or AD_LABEL.match(text) or UI_LABEL.match(text)
                or (len(text) < 50 and DATE_LINE.match(text))) \
        or text.casefold() == title


def _all_link(text: str, links: list[Ref]) -> bool:
    """A paragraph that is one or more links and nothing else (a teaser's title, a list item)."""
    return bool(links) and sum(len(r.text) for r in links) >= 0.9 * len(text)


def _bare_links(text: str, links: list[Ref]) -> bool:
    """Links and nothing else, opening with a link: a teaser with a label of its own ("Up
    next", then a title) needs no label before it, so it takes none (a blog post's closing
    line) into a link box with it, whether its title is long or short this render."""
    return _all_link(text, links) and text.startswith(" ".join(links[0].text.split())[:20])


def _in_cell(el: etree._Element | None, root: etree._Element | None) -> bool:
    """Inside a table cell: a row of data, whose cells may each be one link."""
    for node in [el, *el.iterancestors()] if el is not None else []:
        if node is root:
            return False
        if node.tag in ("td", "th"):
            return True
    return False


def _label(text: str) -> bool:
    """A few words that name what follows ("Explore further", "Auch interessant:"), not a sentence."""
    return len(text) <= MAX_LABEL and len(text.split()) <= 8 and text[-1] not in ".!?…\"'»“”’)"


def _link_boxes(paragraphs: list[str], only_links: list[bool]) -> set[int]:
    """A label and the one or two bare links it introduces ("Explore further", "Weiterführender
    Link", "Das könnte dich auch interessieren:"): a pointer to another article that the
    site puts inside the body. Longer lists after a label stay: in the corpora as many of
    them are the article's own ("Read more:", a post of deals) as are the site's."""
    dropped: set[int] = set()
    for i in range(1, len(paragraphs)):
        if only_links[i] and not only_links[i - 1] and _label(paragraphs[i - 1]):
            end = i
            while end < len(paragraphs) and only_links[end]:
                end += 1
            if end - i <= MAX_BOX_LINKS:
                dropped.update(range(i - 1, end))
    return dropped


def _link_list(text: str, links: list[Ref]) -> bool:
    """Links and next to nothing else: a menu or a "view graphic | share" bar, not prose;
    or a label and its links ("Tags: python, docker, getting started")."""
    linked = sum(len(r.text) for r in links)
    if len(links) >= 2 and linked >= 0.9 * len(text):
        return True
    label = LABEL.match(text)
    rest = text[label.end():] if label else ""
    return len(links) >= LABELLED_LINKS and bool(label) and linked >= 0.9 * len(re.sub(r"[\s,;|/·•]+", "", rest))


def _read_boxes(root: etree._Element, base: str, cta: re.Pattern[str] | None) -> dict[etree._Element, list[Ref]]:
    """READ boxes under root, each the outermost element that holds only the box: Inline
    Related Posts markup, and short blocks opening with a call to action wherever they
    stand (a paragraph, a cell, an aside or a "related" box that would otherwise be
    dropped as furniture), the label and its links in one element or in several."""
    boxes: dict[etree._Element, list[Ref]] = {}
    found = [_box_of(marker, root) for marker in IRP_MARKERS(root)]
    if cta is not None:
        found += [_cta_box(t, root, cta) for t in _TEXT_NODES(root) if cta.match(t.lstrip())]
    for box in found:
        if box is not None and box not in boxes and not any(b in boxes for b in box.iterancestors()):
            for inner in [b for b in boxes if box in b.iterancestors()]:
                del boxes[inner]
            boxes[box] = _box_refs(box, base, _read_signature(box, root, _text(box), cta))
    return boxes


def _cta_box(text: Any, root: etree._Element, cta: re.Pattern[str]) -> etree._Element | None:
    """The outermost element around a call-to-action text that still opens with it, is
    short, and holds a link."""
    owner = text.getparent()
    el = owner.getparent() if text.is_tail else owner
    box = None
    while el is not None and el is not root:
        words = _text(el)
        if len(words) >= MAX_CTA_BLOCK or not cta.match(words):
            break
        if _LINKS(el):
            box = el
        el = el.getparent()
    return box


def _box_of(marker: etree._Element, root: etree._Element) -> etree._Element | None:
    """The IRPP_ element, else the link around the marker, else its parent; then the
    outermost ancestor with the same text. Only a box with a call to action (ctaText)
    or of the PRO version counts: a theme may call its own headline "postTitle"."""
    if "IRPP_" in (marker.get("class") or ""):
        box = marker
    else:
        anchors = list(marker.iterancestors("a"))[:1]
        box = anchors[0] if anchors else marker.getparent()
        if box is None or not _CTA_TEXT(box):
            return None
    text = _text(box)
    parent = box.getparent()
    while parent is not None and parent is not root and _text(parent) == text:
        box, parent = parent, parent.getparent()
    return box


def _box_refs(box: etree._Element, base: str, block: str) -> list[Ref]:
    refs = []
    for a in box.iter("a"):
        target = _absolute(base, a.get("href"))
        titles = _POST_TITLE(a) or _POST_TITLE(box)
        if target:
            refs.append(Ref(target, _text(titles[0]) if titles else _text(a), block))
    return refs
