"""Pure article extraction: page bytes + URL -> Article (the editorial content of a page).

The diff stage compares the Articles of two captures of one URL and must report only
editorial edits, so an Article holds what an editor writes (title, byline, dates, the
body's paragraphs, its links) and leaves out what the site renders around it: navigation,
sidebars, share and newsletter boxes, ads, comments, and the READ boxes that plugins such
as Inline Related Posts pick anew on every render (those go to ``read_refs``).

Nothing here touches the network, the catalog or the disk.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from lxml import etree

from .extract import EXCLUDED_TAGS, _absolute, _base_url, _cta_pattern, _is_inside, _names, _own_text_length, \
    _text, decode_text, parse_html

EXTRACTOR_VERSION = "1"


@dataclass(frozen=True)
class Ref:
    """A link in the article: target URL and its anchor text (or READ box title)."""
    url: str
    text: str


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
    extractor: str = field(default=f"archiver/{EXTRACTOR_VERSION}")


def extract_article(body: bytes, url: str, content_type: str = "",
                    cta_texts: tuple[str, ...] = ()) -> Article:
    """Never raises: a page that is not an article gives an Article with empty fields."""
    doc = parse_html(decode_text(body, content_type))
    if doc is None:
        return Article(url=url)
    base = _base_url(doc, url)
    meta = _Meta.of(doc)
    title = _title(doc, meta, url)
    _drop_code(doc)
    content = _Content(base, _cta_pattern(cta_texts), title)
    roots = _content_roots(doc)
    for root in roots:
        content.walk(root)
    lede = _lede(doc, roots[0], meta) if roots else ""
    if lede and lede not in content.paragraphs[:3]:
        content.paragraphs.insert(0, lede)
    return Article(url=url, canonical_url=_canonical(doc, meta, base), title=title, byline=_byline(doc, meta),
                   published=_date(doc, meta, PUBLISHED), modified=_date(doc, meta, MODIFIED),
                   paragraphs=tuple(content.paragraphs), links=tuple(content.links),
                   read_refs=tuple(content.read_refs))


def _drop_code(doc: etree._Element) -> None:
    """Scripts and styles hold no article text but would count as text below."""
    for node in doc.xpath("//script | //style | //noscript | //template"):
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


# ---- metadata: <meta>, JSON-LD, microdata ------------------------------------------------

ARTICLE_TYPES = {"article", "newsarticle", "blogposting", "reportagenews", "analysisnewsarticle", "opinionnewsarticle",
                 "reviewnewsarticle", "backgroundnewsarticle", "liveblogposting", "scholarlyarticle", "techarticle",
                 "report", "socialmediaposting", "webpage", "medicalwebpage", "creativework"}


@dataclass(frozen=True)
class _Meta:
    """<meta> values by lower-cased name/property (first wins) and the page's JSON-LD article."""
    tags: dict[str, str]
    ld: dict[str, Any]

    @classmethod
    def of(cls, doc: etree._Element) -> "_Meta":
        return cls(_meta_tags(doc), _ld_article(doc))

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
        if key and m.get("content") and key not in tags:
            tags[key] = m.get("content")
    return tags


def _ld_article(doc: etree._Element) -> dict[str, Any]:
    """The first JSON-LD object of an article type (most specific type first)."""
    found = [obj for script in doc.xpath("//script[contains(@type,'ld+json')]")
             for obj in _ld_objects(_ld_load(script.text or ""))]
    for types in (ARTICLE_TYPES - {"webpage", "creativework", "medicalwebpage"}, ARTICLE_TYPES):
        for obj in found:
            if _ld_types(obj) & types:
                return obj
    return {}


def _ld_load(text: str) -> Any:
    try:
        return json.loads(text.strip().rstrip(";"))
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


def _ld_text(value: Any) -> str:
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, dict):
        return _ld_text(value.get("name") or value.get("@value"))
    return ""


def _ld_names(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [n for n in (_ld_text(item) for item in items) if n]


# ---- title -------------------------------------------------------------------------------

TITLE_SEPARATORS = re.compile(r"\s+(?:[|\-–—:·•»«/]|::)\s+")


def _title(doc: etree._Element, meta: _Meta, url: str) -> str:
    """The headline: a heading the page's titles agree with, else the cleaned meta/<title>."""
    site = meta.first("og:site_name", "application-name")
    declared = [t for t in (_ld_text(meta.ld.get("headline")), meta.first("og:title", "twitter:title", "dc.title"),
                            _text_of(doc.find(".//title"))) if t]
    if not declared:
        return _first_heading(doc)
    heading = _matching_heading(doc, declared, site)
    return heading or _strip_site(declared[0], site, url)


def _text_of(node: etree._Element | None) -> str:
    return _text(node) if node is not None else ""


def _first_heading(doc: etree._Element) -> str:
    for h in doc.iter("h1"):
        text = _text(h)
        if text:
            return text
    return ""


def _matching_heading(doc: etree._Element, declared: list[str], site: str) -> str:
    """The longest h1/h2 whose text is one of the declared titles or contained in one.

    Old layouts put the site name in <h1> and the headline in a lower heading; the
    declared titles (<title>, og:title) name the headline, so the match finds it."""
    wanted = [t.casefold() for t in declared]
    best = ""
    for h in doc.iter("h1", "h2"):
        text = _text(h)
        folded = text.casefold()
        if len(text) > len(best) and len(folded.split()) >= 2 and folded != site.casefold() \
                and any(folded in w for w in wanted) and not _links_home(h):
            best = text
    return best


def _links_home(h: etree._Element) -> bool:
    links = [a.get("href", "") for a in h.iter("a")]
    return any(href.rstrip("/").count("/") <= 2 for href in links)


def _strip_site(title: str, site: str, url: str) -> str:
    """'Headline | Site' -> 'Headline': drop a part naming the site, else a short last part."""
    parts = TITLE_SEPARATORS.split(title)
    if len(parts) < 2:
        return title
    seps = TITLE_SEPARATORS.findall(title)
    host = re.sub(r"^www\.", "", url.split("/")[2] if url.count("/") >= 2 else "").split(".")[0].casefold()
    if _names_site(parts[-1], site, host) or (len(parts[-1].split()) <= 4 < len(" ".join(parts[:-1]).split())
                                               and seps[-1].strip() != ":"):
        return title[:title.rfind(seps[-1])]
    if _names_site(parts[0], site, host):
        return title[title.find(seps[0]) + len(seps[0]):]
    return title


def _names_site(part: str, site: str, host: str) -> bool:
    folded = part.casefold().strip()
    squashed = re.sub(r"\W", "", folded)
    return bool(folded) and (folded == site.casefold().strip() or (len(host) > 2 and host in squashed))


# ---- byline, dates, canonical URL --------------------------------------------------------

BYLINE_NAMES = re.compile(r"byline|\bauthor|writer|\bcredit", re.I)
PUBLISHED, MODIFIED = "published", "modified"
DATE_META = {
    PUBLISHED: ("article:published_time", "og:article:published_time", "datepublished", "pubdate", "publishdate",
                "publish-date", "dc.date.issued", "dcterms.created", "dc.date", "date", "sailthru.date",
                "parsely-pub-date"),
    MODIFIED: ("article:modified_time", "og:article:modified_time", "datemodified", "og:updated_time",
               "dcterms.modified", "last-modified", "lastmod"),
}
DATE_LD = {PUBLISHED: "datePublished", MODIFIED: "dateModified"}


def _byline(doc: etree._Element, meta: _Meta) -> str:
    names = _ld_names(meta.ld.get("author"))
    if names:
        return ", ".join(dict.fromkeys(names))
    author = meta.first("author", "article:author", "dc.creator", "parsely-author", "sailthru.author")
    if author and not re.match(r"https?://", author):
        return author
    return _byline_element(doc)


def _byline_element(doc: etree._Element) -> str:
    for node in doc.xpath("//*[@itemprop='author'] | //a[@rel='author'] | //*[@class or @id]"):
        if node.tag in ("meta", "link", "script", "style", "body", "html"):
            continue
        if node.get("itemprop") != "author" and node.get("rel") != "author" and not BYLINE_NAMES.search(_names(node)):
            continue
        name = node.find(".//*[@itemprop='name']")
        text = _text(name if name is not None else node)
        if 2 < len(text) < 100:
            return text
    return ""


def _date(doc: etree._Element, meta: _Meta, which: str) -> str:
    found = meta.first(*DATE_META[which]) or _ld_text(meta.ld.get(DATE_LD[which]))
    if found:
        return found
    prop = DATE_LD[which]
    for node in doc.xpath(f"//*[@itemprop='{prop}']"):
        value = node.get("content") or node.get("datetime") or _text(node)
        if value:
            return " ".join(value.split())
    if which == PUBLISHED:
        times = doc.xpath("//time[@datetime]")
        return times[0].get("datetime").strip() if times else ""
    return ""


def _canonical(doc: etree._Element, meta: _Meta, base: str) -> str:
    links = doc.xpath("//link[@href][contains(concat(' ', normalize-space(@rel), ' '), ' canonical ')]")
    href = links[0].get("href") if links else meta.first("og:url")
    return _absolute(base, href) or ""


# ---- body --------------------------------------------------------------------------------

INLINE_TAGS = {"a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn", "em", "font", "i",
               "ins", "kbd", "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "time",
               "tt", "u", "var", "wbr", "label", "img", "nobr", "br"}
SKIP_TAGS = EXCLUDED_TAGS | {"button", "select", "option", "textarea", "input", "svg", "iframe", "object", "embed",
                             "video", "audio", "canvas", "map", "head", "title", "link", "meta", "dialog", "h1"}
# Class/id words of page furniture. Like extract.EXCLUDED_NAMES, plus bylines, meta
# lines, screen-reader text and recommendation widgets; "nav" only as a whole word,
# since generated heading ids such as "nav_the_heading_1" are article text.
NOISE_NAMES = re.compile(
    r"comment|share|sharing|social|sidebar|widget|related|advert|\bads?\b|\bad[-_]|sponsor|promo|newsletter|"
    r"subscribe|signup|paywall|breadcrumb|\btags?\b|tag-?links|author-?box|\bmenu\b|\bnav\b|navbar|navigation|"
    r"footer|masthead|cookie|popup|byline|dateline|timestamp|post-?meta|entry-?meta|article-?meta|screen-reader|"
    r"sr-only|visually-?hidden|recirc|outbrain|taboola|popular|trending|more-stories|most-read|print-only|"
    r"toolbar|pagination|skip-link|\bcredit|aside", re.I)
IRP_MARKERS = ("//*[contains(@class,'ctaText') or contains(@class,'postTitle') "
               "or starts-with(@class,'IRPP_') or contains(@class,' IRPP_')]")
PART_SHARE = 0.2  # a container scoring this share of the best one holds part of the article too
WRAPPER_SHARE = 1 / 3
CONTENT_TAGS = {"html", "body", "main", "article"}
HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
AD_LABEL = re.compile(r"^(?:advertisement|advertising|anzeige|werbung|publicidad|publicité|pubblicità|sponsored|"
                      r"ad|reklama|реклама)\W*$", re.I)
COUNTER = re.compile(
    r"^(?:\d[\d,.\s]*[km]?\s*(?:views?|reads?|shares?|comments?|likes?)|"
    r"(?:updated|posted|published)?\s*(?:\d+|an?)\s*(?:seconds?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?)"
    r"\s+ago|\d+\s*min(?:ute)?s?\s+read)$", re.I)
INVISIBLE = str.maketrans("", "", "\u200b\u200c\u200d\u2060\ufeff\xad")


def _content_roots(doc: etree._Element) -> list[etree._Element]:
    """The elements holding the article text, in document order.

    schema.org articleBody when the page marks it; else readability's idea: every text
    block scores its parent fully and its further ancestors less, and the best-scoring
    element (less its link text) wins. Many layouts split one article over several
    containers, so containers of the same kind (tag and class) scoring close to the
    winner join it, and so do paragraphs standing next to it."""
    marked = _marked_bodies(doc)
    if marked:
        return marked
    scores = _scores(doc)
    if not scores:
        body = doc.find("body")
        return [body] if body is not None else []
    ranked = sorted(scores, key=scores.__getitem__, reverse=True)
    roots = _with_siblings(ranked[0], scores)
    for node in ranked[1:]:
        if scores[node] >= scores[ranked[0]] * PART_SHARE and _same_kind(node, ranked[0]) \
                and not any(_overlaps(node, r) for r in roots):
            roots.append(node)
    return _in_document_order(doc, roots)


def _same_kind(a: etree._Element, b: etree._Element) -> bool:
    classes_a, classes_b = set(a.get("class", "").split()), set(b.get("class", "").split())
    return a.tag == b.tag and (bool(classes_a & classes_b) or not (classes_a or classes_b))


def _overlaps(a: etree._Element, b: etree._Element) -> bool:
    return a is b or _is_inside(a, b) or _is_inside(b, a)


def _in_document_order(doc: etree._Element, nodes: list[etree._Element]) -> list[etree._Element]:
    wanted = set(nodes)
    return [node for node in doc.iter() if node in wanted]


def _marked_bodies(doc: etree._Element) -> list[etree._Element]:
    marked = doc.xpath("//*[contains(concat(' ', normalize-space(@itemprop), ' '), ' articleBody ')]")
    outer = [m for m in marked if not any(a in marked for a in m.iterancestors())]
    return outer if sum(len(_text(m)) for m in outer) > 200 else []


def _scores(doc: etree._Element) -> dict[etree._Element, float]:
    raw: dict[etree._Element, float] = {}
    for node, own in _text_blocks(doc):
        points = 1 + own / 100
        for level, anc in enumerate(_ancestors(node, 5)):
            raw[anc] = raw.get(anc, 0.0) + points / (1 if level == 0 else 2 if level == 1 else level * 3)
    best = sorted(raw, key=raw.__getitem__, reverse=True)[:10]
    return {node: raw[node] * (1 - _link_density(node)) for node in best}


def _ancestors(node: etree._Element, n: int) -> list[etree._Element]:
    out = []
    for anc in node.iterancestors():
        if anc.tag in ("body", "html") or len(out) == n:
            break
        out.append(anc)
    return out


def _text_blocks(doc: etree._Element) -> Iterator[tuple[etree._Element, int]]:
    """(element, length of its own text) for elements outside noise with a sentence of text."""
    noise: set[etree._Element] = set()
    body = doc.find("body")
    whole = len(_text(body if body is not None else doc))
    for node in doc.iter():
        if node.getparent() in noise or _is_noise(node, whole):
            noise.add(node)
        elif node.tag not in INLINE_TAGS:
            own = _own_text_length(node)
            if own >= 25:
                yield node, own


def _is_noise(el: etree._Element, whole: int) -> bool:
    """Not article text: code, forms, hidden elements, and widgets named so (share,
    sidebar, ad, comments...). A name alone does not condemn an element holding a third
    of ``whole`` (the text around it): that is a wrapper with an unlucky class, such as
    "js-social-anchor-start" or "c-fixed-sidebar-layout"."""
    if not isinstance(el.tag, str) or el.tag in SKIP_TAGS:
        return True
    if el.get("hidden") is not None or el.get("aria-hidden") == "true" or HIDDEN_STYLE.search(el.get("style", "")):
        return True
    if el.tag in CONTENT_TAGS or not _noise_named(el):
        return False
    return len(_text(el)) < whole * WRAPPER_SHARE


def _noise_named(node: etree._Element) -> bool:
    names = _names(node)
    return bool(names.strip()) and bool(NOISE_NAMES.search(names))


def _link_density(node: etree._Element) -> float:
    total = len(_text(node))
    links = sum(len(_text(a)) for a in node.iter("a"))
    return min(1.0, links / total) if total else 1.0


def _with_siblings(top: etree._Element, scores: dict[etree._Element, float]) -> list[etree._Element]:
    parent = top.getparent()
    if parent is None:
        return [top]
    threshold = max(10.0, scores[top] * PART_SHARE)
    return [s for s in parent if s is top or (scores.get(s, 0.0) >= threshold and _same_kind(s, top))
            or _lone_paragraph(s)]


def _lone_paragraph(node: etree._Element) -> bool:
    return node.tag == "p" and len(_text(node)) > 80 and _link_density(node) < 0.25


def _lede(doc: etree._Element, first_root: etree._Element, meta: _Meta) -> str:
    """The standfirst that many layouts print above the body, outside its container: an
    element before the body whose text is the page's description (or starts with it,
    since descriptions are often cut short)."""
    described = meta.first("og:description", "description", "twitter:description").casefold().rstrip(".…")
    if len(described) < 40:
        return ""
    for el in doc.iter():
        if el is first_root:
            break
        lead = " ".join((el.text or "").split()).casefold()
        if len(lead) >= 10 and described.startswith(lead[:20]):
            text = _text(el)
            folded = text.casefold()
            if folded.startswith(described) or (described.startswith(folded) and len(folded) >= 0.8 * len(described)):
                return text
    return ""


class _Content:
    """Walks the body in document order into paragraphs, editorial links and READ refs."""

    def __init__(self, base: str, cta: re.Pattern[str] | None, title: str):
        self.base, self.cta, self.title = base, cta, title.casefold()
        self.paragraphs: list[str] = []
        self.links: list[Ref] = []
        self.read_refs: list[Ref] = []
        self._pieces: list[str] = []
        self._pending: list[Ref] = []
        self._brs = 0
        self._boxes: dict[etree._Element, list[Ref]] = {}
        self._whole = 0

    def walk(self, root: etree._Element) -> None:
        self._boxes = _read_boxes(root, self.base)
        self._whole = len(_text(root))
        self._visit(root, is_root=True)
        self._flush()

    def _visit(self, el: etree._Element, is_root: bool = False) -> None:
        if el in self._boxes:
            self._flush()
            self.read_refs += self._boxes[el]
            return
        if not is_root and _is_noise(el, self._whole):
            return
        block = el.tag not in INLINE_TAGS
        if block:
            self._flush()
        if el.tag == "br":
            self._line_break()
        elif el.tag == "a":
            self._link(el)
        self._add(el.text)
        for child in el:
            if isinstance(child.tag, str):
                self._visit(child)
            self._add(child.tail)
        if block:
            self._flush()

    def _add(self, text: str | None) -> None:
        if text and text.strip():
            self._brs = 0
        if text:
            self._pieces.append(text)

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
        text = " ".join("".join(self._pieces).translate(INVISIBLE).split())
        pending, self._pieces, self._pending, self._brs = self._pending, [], [], 0
        if text and self.cta is not None and pending and len(text) < 300 and self.cta.match(text):
            self.read_refs += pending
        elif text and (COUNTER.match(text) or AD_LABEL.match(text) or text.casefold() == self.title):
            return
        else:
            self.links += pending
            if text:
                self.paragraphs.append(text)


def _read_boxes(root: etree._Element, base: str) -> dict[etree._Element, list[Ref]]:
    """Inline Related Posts boxes under root: the outermost element that holds only the box."""
    boxes: dict[etree._Element, list[Ref]] = {}
    for marker in root.xpath("." + IRP_MARKERS):
        box = _box_of(marker, root)
        if box is not None and box not in boxes and not any(b in boxes for b in box.iterancestors()):
            boxes[box] = _box_refs(box, base)
    return boxes


def _box_of(marker: etree._Element, root: etree._Element) -> etree._Element | None:
    anchors = [marker] if "IRPP_" in marker.get("class", "") else list(marker.iterancestors("a"))[:1]
    box = anchors[0] if anchors else marker.getparent()
    if box is None:
        return None
    text = _text(box)
    parent = box.getparent()
    while parent is not None and parent is not root and _text(parent) == text:
        box, parent = parent, parent.getparent()
    return box


def _box_refs(box: etree._Element, base: str) -> list[Ref]:
    refs = []
    for a in box.iter("a"):
        target = _absolute(base, a.get("href"))
        titles = a.xpath(".//*[contains(@class,'postTitle')]") or box.xpath(".//*[contains(@class,'postTitle')]")
        if target:
            refs.append(Ref(target, _text(titles[0]) if titles else _text(a)))
    return refs
