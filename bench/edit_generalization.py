#!/usr/bin/env python3
"""Edit detection on real pages: noise-only recaptures must not alarm, edits must be found.

Design, in the order the data flows:

1. **Pages.** Real article pages from ../shared/corpus/html (trafilatura's cache and
   Mozilla Readability's test set) are parsed with lxml; their article content is found
   with our own rule (the element holding the most <p> text; its direct <p> children are
   "the paragraphs"). Pages with fewer than 5 distinct paragraphs or 1,000 characters of
   them are left out; ``--pages`` of the rest are drawn with ``--seed``. Each page gets a fixed READ box (one of three
   real markups, pointing to another page of the run) after its third paragraph.
2. **Plan.** Each page gets 1-3 noise families (cycling, so every family covers pages)
   and ``--edits`` edits (the least-used kinds that apply to the page, so every kind
   gets many cases). Its script: capture 0 is the baseline, then ``--captures``
   noise-only captures, then per edit one capture with the edit (a 404 is followed by
   a capture restoring the page) and one noise-only capture. Edits are permanent from
   their capture on; every page state is rendered to a template once, up front.
3. **Servers.** Each page is served by its own ThreadingHTTPServer on 127.0.0.1
   (port 0), so each page is its own host, as each corpus page comes from its own
   site (archiver learns per-render noise per host). Every request gets a fresh
   render: the page's noise families fill the template's slots (between paragraphs,
   before/after the content, sidebar, head, class and image attributes) with markup as
   real sites emit it: ads and inline related boxes move between renders, the site's
   other furniture stays where its template puts it. The randomness is seeded by (seed, page, capture, n-th request
   of that client), so every approach sees the same first render of a capture, and a
   second fetch (e.g. a confirmation) gets a fresh one. Clients name themselves in an
   X-Bench-Client header; requests are counted per client, page and capture.
4. **Approaches**, side by side on the same captures, one after the other: archiver
   through its library (a snapshot of the pages due, then each URL's history: a new
   version = an alarm, its kinds = the kinds reported); trafilatura's text with a line
   diff (changedetection.io-style: any changed line = an alarm, kind body);
   readability-lxml with diffengine's normalisation (title or text fingerprint changed
   = an alarm, kind title or body). The anchors read the pages in a pool of worker
   processes (one per core), forked before any server thread starts.
5. **Score.** A noise-only capture that alarms is a false alarm, counted for each of
   the page's families; an edit capture is found if it alarms and found with the right
   kind if the kinds reported include the expected one. Extra fetches per capture are
   the requests beyond one per page and capture (archiver's confirmation refetches).

The noise generator (families, word lists, content finder) is written here from the
markup real sites emit; it imports nothing from archiver and shares no lists with its
extractor. Only the archiver approach imports archiver.

Usage: python bench/edit_generalization.py [--pages N] [--captures N] [--edits N]
       [--seed N] [--only archiver,trafilatura,readability] [--quick] [--corpus DIR]
Results: tables on stdout, progress on stderr, JSON in
bench/results/edit_generalization-<UTC stamp>.json.
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import html
import json
import multiprocessing
import multiprocessing.pool
import os
import random
import re
import signal
import sys
import tempfile
import threading
import time
import unicodedata
import urllib.error
import urllib.request
import zlib
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urljoin

import lxml.html
from lxml.html import HtmlElement

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, environment, stop_on_sigterm, table, write_results  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
MIN_PARAGRAPH = 25  # characters: shorter <p> children are not article paragraphs
MIN_PARAGRAPHS = 5
MIN_CONTENT = 1000  # characters of paragraph text
CLIENT_HEADER = "X-Bench-Client"
APPROACHES = ("archiver", "trafilatura", "readability")
CAPTURE_EVERY = timedelta(minutes=15)  # virtual time between two captures (relative times, counters)
START = datetime(2025, 3, 14, 8, 0, tzinfo=timezone.utc)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- corpus pages: parsed, their article content found with our own rule --------------

CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w-]+)""", re.I)
XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


@dataclass
class Article:
    """One corpus page as the server holds it: its tree and where its article content is."""
    source: str
    doc: HtmlElement
    body: HtmlElement  # the element holding the most paragraph text
    read_box: HtmlElement | None = None
    read_style: str = ""

    def paragraphs(self) -> list[HtmlElement]:
        return [c for c in self.body if c.tag == "p" and c is not self.read_box and _is_prose(text_of(c))]

    def headline(self) -> str:
        heading = self.heading()
        if heading is not None:
            return text_of(heading)
        og = self.doc.find(".//meta[@property='og:title']")
        return (og.get("content") or "").strip() if og is not None else text_of(self.doc.find("head/title"))

    def heading(self) -> HtmlElement | None:
        """The article's headline element: the <h1>/<h2> sharing most text with the page's
        title tags (not the site's name or logo), else the last <h1> before the first
        paragraph."""
        site = {m.get("content") for m in self.doc.xpath("//meta[@property='og:site_name']")}
        titles = [t for t in self.title_texts() if t not in site]
        headings = [h for h in self.doc.iter("h1", "h2") if text_of(h) and text_of(h) not in site and not _masthead(h)]
        shared = {h: _overlap(text_of(h), titles) for h in headings}
        best = max(shared, key=shared.get, default=None)
        if best is not None and shared[best][0] >= 10:
            return best
        order = {el: i for i, el in enumerate(self.doc.iter())}
        first = order[self.paragraphs()[0]]
        before = [h for h in headings if h.tag == "h1" and order[h] < first]
        return before[-1] if before else None

    def title_texts(self) -> list[str]:
        metas = self.doc.xpath("//meta[@property='og:title' or @name='twitter:title']")
        texts = [text_of(t) for t in self.doc.findall("head/title")] + [m.get("content") or "" for m in metas]
        return [" ".join(t.split()) for t in texts if t.strip()]


def _is_prose(text: str) -> bool:
    """Long enough, and not markup shown as text (editor leftovers such as "<span ...")."""
    return len(text) >= MIN_PARAGRAPH and not re.search(r"<[a-z]+[\s>]", text)


MASTHEAD = re.compile(r"site-?title|site-?name|logo|brand|masthead", re.I)
HOME = re.compile(r"(https?://[^/]+)?(/|\./|/?index\.\w+)?")  # a link to a site's home page


def _masthead(heading: HtmlElement) -> bool:
    """The site's name as a heading: marked as such, or a link to the home page."""
    marks = " ".join(f"{e.get('class') or ''} {e.get('id') or ''}" for e in heading.iter())
    homes = [a for a in heading.iter("a") if a.get("rel") == "home" or HOME.fullmatch(a.get("href") or "#")]
    return bool(MASTHEAD.search(marks) or homes)


def _overlap(heading: str, titles: list[str]) -> tuple[int, bool]:
    """Characters of the heading that a title holds (or of a title the heading holds), and
    whether a title starts with it (titles put the headline before the site's name)."""
    shared = [t for t in titles if heading and (heading in t or t in heading)]
    return max((min(len(heading), len(t)) for t in shared), default=0), any(t.startswith(heading) for t in shared)


def text_of(el: HtmlElement | None) -> str:
    """The text of el as a reader sees it (no script or style), whitespace collapsed."""
    if el is None:
        return ""
    return " ".join("".join(el.xpath(".//text()[not(ancestor::script or ancestor::style)]")).split())


def read_html(path: Path) -> str:
    raw = path.read_bytes()
    declared = CHARSET.search(raw[:8192])
    for encoding in ([declared.group(1).decode("ascii")] if declared else []) + ["utf-8", "cp1252"]:
        try:
            return raw.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
    return raw.decode("utf-8", "replace")


def load_article(path: Path, corpus_html: Path) -> Article | None:
    """The page, served as UTF-8, if it has enough article paragraphs and a headline."""
    doc = lxml.html.document_fromstring(XML_DECLARATION.sub("", read_html(path), count=1))
    declare_utf8(doc)
    body = content_element(doc)
    if body is None:
        return None
    article = Article(str(path.relative_to(corpus_html)), doc, body)
    texts = {text_of(p) for p in article.paragraphs()}
    enough = len(texts) >= MIN_PARAGRAPHS and sum(map(len, texts)) >= MIN_CONTENT
    return article if enough and article.headline() else None


def declare_utf8(doc: HtmlElement) -> None:
    for meta in doc.xpath("//meta[@charset or translate(@http-equiv, 'CONTENT-YP', 'content-yp')='content-type']"):
        meta.drop_tree()
    head = doc.find("head")
    if head is None:
        head = lxml.html.Element("head")
        doc.insert(0, head)
    head.insert(0, lxml.html.Element("meta", charset="utf-8"))


def content_element(doc: HtmlElement) -> HtmlElement | None:
    """The parent element holding the most <p> text."""
    held: Counter = Counter()
    for p in doc.iter("p"):
        parent = p.getparent()
        if parent is not None:
            held[parent] += len(text_of(p))
    return max(held, key=held.get) if held else None


def corpus_articles(corpus: Path) -> list[Article]:
    folder = corpus / "html"
    files = sorted(folder.glob("trafilatura/*.html")) + sorted(folder.glob("readability/*/source.html"))
    return [a for a in (load_article(f, folder) for f in files) if a is not None]


def slug_of(source: str) -> str:
    stem = source.removesuffix("/source.html").removesuffix(".html").split("/", 1)[-1]
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:60]


# ---- text nodes: edits change the page's own text where it is -------------------------

WORD = re.compile(r"[^\W\d_]{4,}")
NUMBER = re.compile(r"\d+")
SENTENCE_BREAK = re.compile(r"(?<=[.!?。！？])\s+")
SENTENCE_END = (".", "!", "?", "。", "！", "？")


def text_nodes(el: HtmlElement) -> list[tuple[HtmlElement, str]]:
    """(element, "text" or "tail") of every text node inside el, outside links and scripts."""
    nodes = [(el, "text")] if el.text else []
    for d in el.iterdescendants():
        if isinstance(d.tag, str) and d.text and not _in_link(d, el):
            nodes.append((d, "text"))
        if d.tail and not _in_link(d.getparent(), el):
            nodes.append((d, "tail"))
    return nodes


def _in_link(node: HtmlElement, stop: HtmlElement) -> bool:
    while node is not None and node is not stop:
        if node.tag in ("a", "script", "style"):
            return True
        node = node.getparent()
    return False


def splice(node: tuple[HtmlElement, str], start: int, end: int, new: str) -> None:
    el, where = node
    text = getattr(el, where)
    setattr(el, where, text[:start] + new + text[end:])


def whole_sentences(text: str) -> list[tuple[int, int]]:
    """Spans of the sentences that follow a sentence break and end with a full stop (a
    sentence before the first break may continue markup that comes before the text)."""
    starts = [m.end() for m in SENTENCE_BREAK.finditer(text)]
    spans = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        sentence = text[start:end].rstrip()
        if sentence.endswith(SENTENCE_END) and len(sentence) >= 20:
            spans.append((start, start + len(sentence)))
    return spans


def donor_sentences(paragraphs: list[HtmlElement]) -> list[tuple[int, str]]:
    """(paragraph index, sentence) of every whole sentence of 30-300 characters."""
    found = []
    for i, p in enumerate(paragraphs):
        for node in text_nodes(p):
            text = getattr(*node)
            found += [(i, " ".join(text[s:e].split())) for s, e in whole_sentences(text) if 30 <= e - s <= 300]
    return found


def replace_word(text: str, old: str, new: str) -> str:
    return re.sub(rf"(?<!\w){re.escape(old)}(?!\w)", lambda m: new, text, count=1)


# ---- READ boxes: a fixed cross-reference that an editor swaps --------------------------

READ_STYLES = ("irp", "strong", "irpp")


def read_box(style: str, url: str, title: str) -> HtmlElement:
    """A READ box as the Inline Related Posts plugin (Minimalist and PRO templates) or an
    editor typing it into the post renders it."""
    title, url = html.escape(title), html.escape(url)
    if style == "strong":
        markup = f'<p><strong>READ ALSO:</strong> <a href="{url}">{title}</a></p>'
    elif style == "irp":
        u = "u" + hashlib.md5(url.encode()).hexdigest()
        markup = (f'<div style="clear:both; margin-top:0em; margin-bottom:1em;"><a href="{url}" target="_self" '
                  f'rel="nofollow" class="{u}"><style> .{u} {{ padding:0px; margin: 0; padding-top:1em!important; '
                  f'padding-bottom:1em!important; width:100%; display: block; font-weight:bold; '
                  f'background-color:#eaeaea; border:0!important; border-left:4px solid #34495E!important; '
                  f'text-decoration:none; }} </style><div style="padding-left:1em; padding-right:1em;">'
                  f'<span class="ctaText">READ</span>&nbsp; <span class="postTitle">{title}</span></div></a></div>')
    else:
        markup = (f'<div style="clear:both; margin-top:0em; margin-bottom:3em;"><a href="{url}" target="_self" '
                  f'rel="nofollow" class="IRPP_kangoo"><!-- INLINE RELATED POSTS 1/1 //-->'
                  f'<style> .IRPP_kangoo .postTitle {{ color: #ECF0F1; font-size: 16px; }} </style>'
                  f'<div class="centered-text-area"><div class="centered-text"><div class="IRPP_kangoo-content">'
                  f'<div class="ctaText" style="float:left;">READ</div><div class="clear:both;"></div>'
                  f'<div class="postTitle" style="float:left;">{title}</div></div></div></div></a></div>')
    return lxml.html.fragment_fromstring(markup)


def place_read_box(art: Article, style: str, url: str, title: str) -> None:
    box = read_box(style, url, title)
    box.tail = "\n"
    paragraphs = art.paragraphs()
    paragraphs[min(2, len(paragraphs) - 2)].addnext(box)
    art.read_box, art.read_style = box, style


def read_target(art: Article) -> str:
    return art.read_box.find(".//a").get("href")


# ---- edits: what an editor does to the page's own content ------------------------------

Other = tuple[str, str]  # (path, title) of another page of the run
Edit = Callable[[Article, random.Random, list[Other]], "str | None"]


def edit_word(art: Article, rng: random.Random, others: list[Other]) -> str | None:
    spots = [(node, m) for p in art.paragraphs() for node in text_nodes(p) for m in WORD.finditer(getattr(*node))]
    pool = sorted({m.group() for _, m in spots})
    if len(pool) < 2:
        return None
    node, m = rng.choice(spots)
    new = rng.choice([w for w in pool if w.lower() != m.group().lower()])
    splice(node, m.start(), m.end(), new)
    return f"word {m.group()!r} -> {new!r}"


def edit_number(art: Article, rng: random.Random, others: list[Other]) -> str | None:
    spots = [(node, m) for p in art.paragraphs() for node in text_nodes(p) for m in NUMBER.finditer(getattr(*node))]
    if not spots:
        return None
    node, m = rng.choice(spots)
    old = int(m.group())
    new = old + rng.choice((-1, 1)) if 1900 <= old <= 2100 else old + rng.randint(1, 9)
    splice(node, m.start(), m.end(), str(new))
    return f"number {m.group()} -> {new}"


def edit_sentence_delete(art: Article, rng: random.Random, others: list[Other]) -> str | None:
    spots = [(node, span) for p in art.paragraphs() for node in text_nodes(p)
             for span in whole_sentences(getattr(*node))]
    if not spots:
        return None
    node, (start, end) = rng.choice(spots)
    text = getattr(*node)
    gone = text[start:end]
    cut_from = len(text[:start].rstrip())  # the space before the sentence goes with it
    splice(node, cut_from, end, "")
    return f"sentence deleted: {gone[:80]!r}"


def edit_sentence_insert(art: Article, rng: random.Random, others: list[Other]) -> str | None:
    paragraphs = art.paragraphs()
    donors = donor_sentences(paragraphs)
    spots = [(i, node, m.end()) for i, p in enumerate(paragraphs) for node in text_nodes(p)
             for m in SENTENCE_BREAK.finditer(getattr(*node))]
    texts = [text_of(p) for p in paragraphs]
    choices = [(spot, d) for spot in spots for d in donors if d[0] != spot[0] and d[1] not in texts[spot[0]]]
    if not choices:
        return None
    (_, node, at), (_, sentence) = rng.choice(choices)
    splice(node, at, at, sentence + " ")
    return f"sentence inserted: {sentence[:80]!r}"


def edit_paragraph_insert(art: Article, rng: random.Random, others: list[Other]) -> str | None:
    paragraphs = art.paragraphs()
    donors = donor_sentences(paragraphs)
    pairs = [(a, b) for a in donors for b in donors if a[0] < b[0]]
    if not pairs:
        return None
    (_, first), (_, second) = rng.choice(pairs)
    new = lxml.html.Element("p")
    new.text, new.tail = f"{first} {second}", "\n"
    at = rng.randrange(len(paragraphs) - 1)
    paragraphs[at].addnext(new)
    return f"paragraph inserted after paragraph {at}: {new.text[:80]!r}"


def edit_paragraph_delete(art: Article, rng: random.Random, others: list[Other]) -> str | None:
    paragraphs = art.paragraphs()
    at = rng.randrange(1, len(paragraphs) - 1)
    gone = text_of(paragraphs[at])
    paragraphs[at].drop_tree()
    return f"paragraph {at} deleted: {gone[:80]!r}"


def edit_paragraph_move(art: Article, rng: random.Random, others: list[Other]) -> str | None:
    paragraphs = art.paragraphs()
    moves = [(i, j) for i in range(len(paragraphs)) for j in range(len(paragraphs)) if abs(i - j) >= 2]
    i, j = rng.choice(moves)
    moving = paragraphs[i]
    detach(moving)
    paragraphs[j].addnext(moving)
    moving.tail = "\n"
    return f"paragraph {i} moved after paragraph {j}: {text_of(moving)[:60]!r}"


def detach(el: HtmlElement) -> None:
    """Take el out of the tree, leaving the text that followed it where it was."""
    parent, previous, tail = el.getparent(), el.getprevious(), el.tail or ""
    if previous is not None:
        previous.tail = (previous.tail or "") + tail
    else:
        parent.text = (parent.text or "") + tail
    el.tail = None
    parent.remove(el)


def edit_title(art: Article, rng: random.Random, others: list[Other]) -> str | None:
    """The headline changes where a CMS prints the post title: <title>, the headline
    element, og:title, twitter:title and the JSON-LD headline. One word of it is replaced,
    one that all of them hold if there is one."""
    old = art.headline()
    words = [m.group() for m in WORD.finditer(old)]
    shared = [w for w in words if words.count(w) == 1 and all(replace_word(t, w, "") != t for t in art.title_texts())]
    pool = sorted({m.group() for p in art.paragraphs() for m in WORD.finditer(text_of(p))} - set(old.split()))
    if not words or not pool:
        return None
    word, new_word = rng.choice(shared or words), rng.choice(pool)
    new = replace_word(old, word, new_word)
    retitle = functools.partial(_retitled, old=old, new=new, word=word, new_word=new_word)
    changed = sum(_retitle_text(el, retitle) for el in _title_elements(art))
    for meta in art.doc.xpath("//meta[@property='og:title' or @name='twitter:title']"):
        content = meta.get("content") or ""
        meta.set("content", retitle(content))
        changed += meta.get("content") != content
    for script in art.doc.xpath("//script[@type='application/ld+json']"):
        text = script.text or ""
        script.text = JSON_LD_HEADLINE.sub(lambda m: m.group(1) + retitle(m.group(2)), text)
        changed += script.text != text
    return f"title {old!r} -> {new!r}" if changed else None


JSON_LD_HEADLINE = re.compile(r'("headline"\s*:\s*")([^"]*)')


def _retitled(text: str, old: str, new: str, word: str, new_word: str) -> str:
    """text with the old headline, or else its changed word, replaced (also as JSON writes
    them, with \\u escapes)."""
    for o, n, w, nw in ((old, new, word, new_word), tuple(map(json_escaped, (old, new, word, new_word)))):
        changed = text.replace(o, n, 1) if o in text else replace_word(text, w, nw)
        if changed != text:
            return changed
    return text


def json_escaped(text: str) -> str:
    return json.dumps(text)[1:-1]


def _title_elements(art: Article) -> list[HtmlElement]:
    """<title>, the headline element and any other heading repeating the headline."""
    headline = art.headline().rstrip("¶# ")
    repeats = [h for h in art.doc.iter("h1", "h2") if text_of(h).rstrip("¶# ") == headline]
    return [el for el in dict.fromkeys([art.doc.find("head/title"), art.heading(), *repeats]) if el is not None]


def _retitle_text(el: HtmlElement, retitle: Callable[[str], str]) -> bool:
    nodes = [(el, "text")] if el.text else []
    nodes += [(d, w) for d in el.iterdescendants() for w in ("text", "tail") if getattr(d, w)]
    for node in nodes:
        text = getattr(*node)
        changed = retitle(text)
        if changed != text:
            setattr(*node, changed)
            return True
    return False


BYLINE_SOURCES = ("//*[@rel='author']", "//*[@itemprop='author']", "//*[contains(@class, 'byline')]",
                  "//*[contains(@class, 'author')]", "//meta[@name='author']/@content")
BY_PREFIX = re.compile(r"^(by|von|por|par|di|door|av)\s+", re.I)
NAME_PARTICLES = {"van", "von", "de", "der", "den", "da", "del", "della", "di", "du", "la", "le", "bin", "al", "y"}
NEW_AUTHORS = ("Marta Kowalczyk", "Jonas Lindqvist", "Amara Okafor", "Tomás Echeverría", "Ilse van Dijk",
               "Kenji Morimoto", "Sofia Marchetti")


def author_name(doc: HtmlElement) -> str | None:
    """The author: of the person-like names in byline places (rel/itemprop author, byline
    and author classes, meta author, JSON-LD author; not in comment sections), the one
    most kinds of place give; on a tie, one that meta or JSON-LD give."""
    sources = [[t if isinstance(t, str) else text_of(t) for t in doc.xpath(xpath) if not _in_comments(t)]
               for xpath in BYLINE_SOURCES] + [_json_ld_authors(doc)]
    names = [[n for n in map(_person, texts) if n] for texts in sources]
    votes = Counter(name.casefold() for found in names for name in {n.casefold(): n for n in found}.values())
    stated = {n.casefold() for n in names[-1] + names[-2]}
    return max((n for found in names for n in found), key=lambda n: (votes[n.casefold()], n.casefold() in stated),
               default=None)


def _in_comments(found) -> bool:
    if isinstance(found, str):
        return False
    marks = " ".join(f"{e.get('class') or ''} {e.get('id') or ''}" for e in [found, *found.iterancestors()])
    return bool(re.search(r"comment|respond|reply", marks, re.I))


def _person(text: str) -> str | None:
    """text as a person's name ("By Jane Doe —" -> "Jane Doe"), or None if it is not one:
    2-4 words, capitalised but for particles (van, de, ...), no digits or separators."""
    name = BY_PREFIX.sub("", " ".join(text.split())).strip(" -–—,;·|")
    words = name.split()
    if 2 <= len(words) <= 4 and len(name) <= 40 and words[0][0].isupper() and words[-1][0].isupper() \
            and all(w[0].isupper() or w in NAME_PARTICLES for w in words) and not re.search(r"[\d@|:/]", name):
        return name
    return None


CDATA = re.compile(r"^\s*<!\[CDATA\[|\]\]>\s*$")


def _json_ld_authors(doc: HtmlElement) -> list[str]:
    names = []
    for script in doc.xpath("//script[@type='application/ld+json']"):
        try:
            data = json.loads(CDATA.sub("", script.text or ""))
        except ValueError:
            continue
        names += _authors_in(data)
    return names


def _authors_in(data) -> list[str]:
    if isinstance(data, list):
        return [n for item in data for n in _authors_in(item)]
    if not isinstance(data, dict):
        return []
    authors = data.get("author")
    authors = authors if isinstance(authors, list) else [authors]
    names = [a if isinstance(a, str) else a.get("name") for a in authors if isinstance(a, (str, dict))]
    return [n for n in names if isinstance(n, str)] + _authors_in(data.get("@graph"))


def edit_byline(art: Article, rng: random.Random, others: list[Other]) -> str | None:
    """The author changes where a CMS prints the author: in attributes (meta author,
    data-author, alt, ...; not links) and scripts (JSON-LD, also with JSON's \\u escapes),
    in any letter case, and in the text of bylines (elements giving the name alone, not
    within running text), not in the text, captions or photo credits, nor in the
    headline and <title>."""
    old = author_name(art.doc)
    if old is None:
        return None
    new = rng.choice([n for n in NEW_AUTHORS if n != old])
    rename = functools.partial(_renamed, old=old, new=new)
    prose = {d for p in art.paragraphs() if _is_prose(rename(text_of(p)).replace(new, "")) for d in p.iter()}
    bylines = {el for el in art.doc.iter() if isinstance(el.tag, str) and el.text and rename(el.text) != el.text
               and el not in prose and (_person(text_of(el)) or "").casefold() == old.casefold()}
    titles = {d for t in _title_elements(art) for d in t.iter()}
    changed = sum(_rename_in(el, rename, bylines) for el in art.doc.iter() if el not in titles)
    return f"byline {old!r} -> {new!r}" if changed else None


def _renamed(text: str, old: str, new: str) -> str:
    """text with the name replaced in any letter case (in capitals where it was in
    capitals), also as JSON writes it (with \\u escapes)."""
    for o, n in ((old, new), (json_escaped(old), json_escaped(new))):
        spaced = r"\s+".join(map(re.escape, o.split()))
        text = re.sub(spaced, lambda m: n.upper() if m.group().isupper() else n, text, flags=re.I)
    return text


def _rename_in(el: HtmlElement, rename: Callable[[str], str], bylines: set) -> int:
    """Rename the author in el's attributes (not links), and in its text if el is a
    script or a byline; count the changes."""
    if not isinstance(el.tag, str):
        return 0
    changed = 0
    for name, value in el.attrib.items():
        if name not in ("href", "src") and rename(value) != value:
            el.set(name, rename(value))
            changed += 1
    if el.text and (el.tag == "script" or el in bylines) and rename(el.text) != el.text:
        el.text, changed = rename(el.text), changed + 1
    return changed


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
JSON_LD_PUBLISHED = re.compile(r'("datePublished"\s*:\s*")([^"]*)')
PUBLISHED_METAS = ("article:published_time", "article:published", "og:published_time", "date", "pubdate",
                   "publishdate", "publish-date", "dc.date", "dc.date.issued", "dcterms.created", "dcterms.date",
                   "sailthru.date", "parsely-pub-date")


def edit_published(art: Article, rng: random.Random, others: list[Other]) -> str | None:
    """The publication date moves back a few days where the page states it for machines
    (publication-date metas, itemprop datePublished, JSON-LD datePublished, the <time
    datetime> elements giving one of those dates or, without any, the first <time>) and
    where it shows it in a common numeric or English form outside the running text."""
    carriers = _published_carriers(art.doc)
    scripts = [s for s in art.doc.xpath("//script[@type='application/ld+json']") if s.text]
    dates = _published_dates(carriers, scripts)
    if not dates:
        return None
    days = rng.randint(1, 5)
    shift = {d: d - timedelta(days=days) for d in dates}

    def moved(text: str) -> str:
        return ISO_DATE.sub(lambda m: _shifted(m.group(), "%Y-%m-%d", shift), text)
    for el, value in carriers:
        el.set(_date_attr(el), moved(value))
    for script in scripts:
        script.text = JSON_LD_PUBLISHED.sub(lambda m: m.group(1) + moved(m.group(2)), script.text)
    _move_shown_dates(art, shift)
    return f"published {', '.join(sorted(d.isoformat() for d in dates))} moved back {days} days"


def _published_dates(carriers: list[tuple[HtmlElement, str]], scripts: list[HtmlElement]) -> set[date]:
    """The publication dates stated; none when one is stated in another form than ISO 8601
    (we could not move it, and the page would contradict itself)."""
    stated = [v for el, v in carriers if el.tag != "time"]
    stated += [m.group(2) for s in scripts for m in JSON_LD_PUBLISHED.finditer(s.text)]
    if not all(ISO_DATE.search(v) for v in stated):
        return set()
    found = [ISO_DATE.search(v) for v in stated or [v for _, v in carriers[:1]]]
    return {date.fromisoformat(m.group()) for m in found if m}


SHOWN_DATES = ("%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d", "%B %d, %Y", "%B %-d, %Y", "%d %B %Y",
               "%-d %B %Y", "%b %d, %Y", "%b %-d, %Y", "%b. %-d, %Y", "%d %b %Y", "%-d %b %Y")


def _move_shown_dates(art: Article, shift: dict[date, date]) -> None:
    """Move the dates shown as text (any form of SHOWN_DATES) outside the article content
    (a date in the text may be another event's) and scripts."""
    hidden = set(art.body.iter()) | set(art.doc.iter("script", "style"))
    pattern = re.compile("|".join(re.escape(d.strftime(f)) for d in shift for f in SHOWN_DATES))
    forms = {d.strftime(f): shift[d].strftime(f) for d in shift for f in reversed(SHOWN_DATES)}

    def moved(text: str) -> str:
        return pattern.sub(lambda m: forms[m.group()], text)
    for el in art.doc.iter():
        if isinstance(el.tag, str) and el.text and el not in hidden:
            el.text = moved(el.text)
        if el.tail and el.getparent() not in hidden:
            el.tail = moved(el.tail)


def _shifted(text: str, form: str, shift: dict[date, date]) -> str:
    day = datetime.strptime(text, form).date()
    return shift[day].strftime(form) if day in shift else text


def _published_carriers(doc: HtmlElement) -> list[tuple[HtmlElement, str]]:
    """(element, date attribute value) of the metas and elements stating the publication
    date; <time> elements marked as the modified or updated date are left out."""
    found = []
    for el in doc.iter("meta", "time", "span", "div", "p", "abbr"):
        name = (el.get("property") or el.get("name") or "").lower()
        published = el.get("itemprop") == "datePublished" or (el.tag == "meta" and name in PUBLISHED_METAS)
        marks = (el.get("class") or "") + (el.get("itemprop") or "")
        dated = el.tag == "time" and el.get("datetime") and not re.search("modif|updat", marks, re.I)
        if (published or dated) and el.get(_date_attr(el)):
            found.append((el, el.get(_date_attr(el))))
    return found


def _date_attr(el: HtmlElement) -> str:
    return "content" if el.get("content") is not None else "datetime"


def edit_link(art: Article, rng: random.Random, others: list[Other]) -> str | None:
    """An editorial link in running text (not a paragraph that is mostly its link, such as
    a "see also" line) points to another article."""
    links = [a for p in art.paragraphs() for a in p.iter("a")
             if (a.get("href") or "#")[0] != "#" and not a.get("href").startswith(("javascript:", "mailto:", "tel:"))
             and 2 * len(text_of(a)) < len(text_of(p))]
    if not links:
        return None
    a = rng.choice(links)
    old = a.get("href")
    new = urljoin(old, rng.choice(others)[0])
    a.set("href", new)
    return f"link {old!r} -> {new!r}"


def edit_read_swap(art: Article, rng: random.Random, others: list[Other]) -> str | None:
    """The editor points the READ box to another article."""
    old = read_target(art)
    path, title = rng.choice([o for o in others if o[0] != old])
    box = read_box(art.read_style, path, title)
    box.tail = art.read_box.tail
    art.read_box.getparent().replace(art.read_box, box)
    art.read_box = box
    return f"READ box {old!r} -> {path!r}"


def edit_gone(art: Article, rng: random.Random, others: list[Other]) -> str | None:
    return "the page is deleted: 404"


EDITS: dict[str, tuple[Edit, str]] = {  # edit kind -> (edit, the change kind it must be reported as)
    "word": (edit_word, "body"),
    "number": (edit_number, "body"),
    "sentence_insert": (edit_sentence_insert, "body"),
    "sentence_delete": (edit_sentence_delete, "body"),
    "paragraph_insert": (edit_paragraph_insert, "body"),
    "paragraph_delete": (edit_paragraph_delete, "body"),
    "paragraph_move": (edit_paragraph_move, "body"),
    "title": (edit_title, "title"),
    "byline": (edit_byline, "byline"),
    "published": (edit_published, "published"),
    "link": (edit_link, "links"),
    "read_swap": (edit_read_swap, "cross_refs"),
    "gone": (edit_gone, "gone"),
}
EXPECTED = {kind: expect for kind, (_, expect) in EDITS.items()} | {"restored": "restored"}


# ---- templates: a page state with slots for the noise -----------------------------------

SLOT = re.compile(r"(?:<!--)?zqslot-([a-z]+(?::\d+)?)-qz(?:-->)?")
NOT_FOUND = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Page not found</title></head><body>"
             "<h1>Page not found</h1><p>Sorry, the page you are looking for does not exist or has been removed.</p>"
             "<p><a href=\"/\">Back to the home page</a></p></body></html>")


@dataclass(frozen=True)
class Shape:
    """What the noise of one page state can hook into."""
    gaps: int  # paragraphs: slot gap:i is before paragraph i, gap:<gaps> after the last one
    images: tuple[str, ...]  # src of the content's images, hooked as imgsrc:i / imgdata:i
    classes: int  # cls:0 is the content element's class, cls:i the i-th paragraph's


@dataclass(frozen=True)
class Template:
    parts: tuple[str, ...]  # literal text, slot name, literal text, ..., literal text
    shape: Shape

    def fill(self, fills: dict[str, list[str]]) -> str:
        return "".join(part if i % 2 == 0 else "".join(fills.get(part, ())) for i, part in enumerate(self.parts))


def slot(name: str) -> HtmlElement:
    return lxml.html.HtmlComment(f"zqslot-{name}-qz")


def build_template(art: Article, hooks: set[str]) -> Template:
    """Serialise a copy of the page with slot markers: head, top and bottom of <body>,
    before/after the content, between paragraphs, a sidebar; class and image hooks for
    the families that rewrite attributes ("cls", "img")."""
    doc = copy.deepcopy(art.doc)
    twin = _twin_finder(art.doc, doc)
    body, paragraphs = twin(art.body), [twin(p) for p in art.paragraphs()]
    images = [twin(i) for i in art.body.iter("img") if i.get("src")] if "img" in hooks else []
    _mark_page(doc, body, paragraphs)
    if "cls" in hooks:
        for i, el in enumerate([body] + paragraphs):
            el.set("class", f"{el.get('class') or ''} zqslot-cls:{i}-qz".strip())
    sources = tuple(i.get("src") for i in images)
    for i, img in enumerate(images):
        img.set("src", f"zqslot-imgsrc:{i}-qz")
        img.set("data-src", f"zqslot-imgdata:{i}-qz")
    text = lxml.html.tostring(doc, encoding="unicode", doctype="<!DOCTYPE html>")
    return Template(tuple(SLOT.split(text)), Shape(len(paragraphs), sources, len(paragraphs) + 1))


def _twin_finder(original: HtmlElement, twin: HtmlElement) -> Callable[[HtmlElement], HtmlElement]:
    tree, twins = original.getroottree(), twin.getroottree()
    return lambda el: twins.xpath(tree.getpath(el))[0]


def _mark_page(doc: HtmlElement, body: HtmlElement, paragraphs: list[HtmlElement]) -> None:
    doc.find("head").append(slot("head"))
    page_body = doc.find("body")
    page_body.insert(0, slot("top"))
    page_body.append(slot("bottom"))
    if body.tag == "body":
        body.insert(1, slot("before"))
        body.append(slot("after"))
    else:
        body.addprevious(slot("before"))
        body.addnext(slot("after"))
    for i, p in enumerate(paragraphs):
        p.addprevious(slot(f"gap:{i}"))
    paragraphs[-1].addnext(slot(f"gap:{len(paragraphs)}"))
    _sidebar(page_body, body).append(slot("sidebar"))


def _sidebar(page_body: HtmlElement, body: HtmlElement) -> HtmlElement:
    """The page's own sidebar (an <aside> outside the content), else a new one after the
    content's top-level block."""
    for aside in page_body.iter("aside"):
        if body not in aside.iterancestors() and aside not in body.iterancestors() and aside is not body:
            return aside
    aside = lxml.html.Element("aside", id="secondary", attrib={"class": "widget-area", "role": "complementary"})
    if body.tag == "body":
        page_body.append(aside)
        return aside
    top = body
    while top.getparent().tag != "body":
        top = top.getparent()
    top.addnext(aside)
    return aside


# ---- noise families: per-render markup as real sites emit it -----------------------------

@dataclass(frozen=True)
class Render:
    """What a family knows when it renders noise into one response."""
    page: str
    post_id: int
    others: tuple[Other, ...]
    capture: int
    when: datetime
    shape: Shape

    def fixed(self, name: str, options: tuple):
        """A per-page choice (the site's template: a label, a markup, a place), the same on
        every render."""
        return options[zlib.crc32(f"{self.page}/{name}".encode()) % len(options)]

    def between(self, rng: random.Random) -> str:
        """A place between two paragraphs, drawn anew on every render (ads, inline boxes)."""
        return f"gap:{rng.randint(1, self.shape.gaps - 1)}"

    def fixed_gap(self, name: str) -> str:
        """A place between two paragraphs where the site's template puts this (after the
        same paragraph on every render)."""
        return f"gap:{1 + zlib.crc32(f'{self.page}/{name}'.encode()) % (self.shape.gaps - 1)}"

    def picks(self, rng: random.Random, k: int) -> list[Other]:
        return rng.sample(self.others, min(k, len(self.others)))


Noise = list[tuple[str, str]]  # (slot, markup)


def hexid(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def base36(rng: random.Random, digits: int) -> str:
    return "".join(rng.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(digits))


def esc(text: str) -> str:
    return html.escape(text)


AD_COPY = (
    ("Compare today's mortgage rates", "See what 14 lenders near you offer before you sign."),
    ("Flights to Lisbon from €39", "Book by Sunday for travel until June."),
    ("Cut your heating bill by up to 23%", "The smart thermostat that learns your routine."),
    ("Hearing aids nobody will notice", "Try them free for 30 days."),
    ("Lease a new SUV from €199 a month", "Limited stock at your local dealer."),
    ("Learn a language in 15 minutes a day", "Start your free week today."),
    ("Solar panels with nothing down", "Check if your roof qualifies in 2 minutes."),
    ("The mattress 40,000 sleepers rate 5 stars", "100-night trial, free returns."),
)
PROMOTED = (
    "Doctors Are Stunned By This Simple Morning Habit", "The 12 Prettiest Villages You Can Reach By Train",
    "Here's What A New Roof Should Cost You This Year", "Seniors Are Switching To This Cheaper Phone Plan",
    "She Bought A Storage Unit For $500. What Was Inside Is Priceless", "Why Pilots Never Order The Fish",
    "20 Photos Taken Seconds Before Disaster", "The Smartest Way To Pay Off Credit Card Debt",
    "This Is What Happens When You Eat Avocado Every Day", "Homeowners Who Haven't Checked This Are Overpaying",
)
SPONSORS = ("FinanceBuzz", "Travel Deals Daily", "HomeAdvisor Guide", "SmartLife Tips", "Healthy Living Today",
            "Money Talks News")


def ad_inserter(rng: random.Random, r: Render) -> Noise:
    """WordPress Ad Inserter code blocks after random paragraphs: label, then the ad."""
    noise = []
    for _ in range(rng.randint(1, 2)):
        headline, text = rng.choice(AD_COPY)
        noise.append((r.between(rng), (
            f"<div class='code-block code-block-{rng.randint(1, 12)}' style='margin: 8px auto; text-align: center; "
            f"display: block; clear: both;'>\n<div class='code-block-label'>Advertisement</div>\n"
            f"<a href=\"https://clk.adnetwork.example/c?ad={hexid(rng, 12)}\" rel=\"sponsored nofollow\">"
            f"<strong>{esc(headline)}</strong></a> {esc(text)}</div>")))
    return noise


def advanced_ads(rng: random.Random, r: Render) -> Noise:
    """Advanced Ads placements: advads-<random> ids, label, banner."""
    headline, _ = rng.choice(AD_COPY)
    markup = (f'<div class="advads-content advads-target" id="advads-{hexid(rng, 10)}" '
              f'data-advadstrackid="{r.post_id + rng.randint(1, 40)}" data-advadstrackbid="1">'
              f'<div class="advads-adlabel">Advertisement</div><a data-no-instant="1" '
              f'href="https://partner.example/?utm_source=advads&amp;utm_campaign={hexid(rng, 6)}" '
              f'rel="noopener sponsored" class="adv-link" target="_blank" aria-label="{esc(headline)}">'
              f'<img src="/wp-content/uploads/2024/0{rng.randint(1, 9)}/banner-{rng.randint(1, 30)}.jpg" '
              f'width="300" height="250" alt="{esc(headline)}"></a></div>')
    return [(rng.choice((r.between(rng), "after", "sidebar")), markup)]


def gpt_slots(rng: random.Random, r: Render) -> Noise:
    """Google Publisher Tag slots (div-gpt-ad-<random>) in the text and the sidebar."""
    def unit() -> str:
        slot_id = f"div-gpt-ad-{rng.randrange(10 ** 12, 10 ** 13)}-{rng.randint(0, 5)}"
        return (f'<div class="ad-unit ad-unit--mpu"><span class="ad-unit__label">Advertisement</span>'
                f'<div id="{slot_id}" style="min-width: 300px; min-height: 250px;"><script>'
                f"googletag.cmd.push(function() {{ googletag.display('{slot_id}'); }});</script></div></div>")
    return [(r.between(rng), unit()), ("sidebar", unit())]


def taboola(rng: random.Random, r: Render) -> Noise:
    """A Taboola "below article thumbnails" feed of promoted stories."""
    items = "".join(
        f'<div class="videoCube trc_spotlight_item origin-default thumbnail_top syndicatedItem" '
        f'data-item-id="~~V1~~{rng.getrandbits(60)}~~{hexid(rng, 16)}"><a title="{esc(t)}" '
        f'href="https://promoted.example/article?utm_source=taboola&amp;utm_medium=referral'
        f'&amp;tblci={base36(rng, 24)}" '
        f'class="item-thumbnail-href" rel="nofollow"><span class="thumbBlock"></span></a>'
        f'<a href="https://promoted.example/article" class="item-label-href" rel="nofollow">'
        f'<span class="video-label-box"><span class="video-label video-title trc_ellipsis">{esc(t)}</span></span>'
        f'<span class="branding">{esc(rng.choice(SPONSORS))}</span></a></div>'
        for t in rng.sample(PROMOTED, 4))
    header = r.fixed("taboola", ("You May Like", "Sponsored Stories", "Promoted Links"))
    markup = (f'<div id="taboola-below-article-thumbnails" class="trc_related_container tbl-feed-container" '
              f'data-placement-name="Below Article Thumbnails"><div class="trc_rbox_header trc_rbox_border_elm">'
              f'<span class="trc_rbox_header_span">{header}</span></div><div class="trc_rbox_outer">{items}</div>'
              f'<a class="trc_desktop_disclosure_link" href="https://popup.taboola.com/en/?template=colorbox">'
              f'by Taboola</a></div>')
    return [(r.fixed("where taboola", ("after", f"gap:{r.shape.gaps}")), markup)]


def outbrain(rng: random.Random, r: Render) -> Noise:
    """An Outbrain "Recommended for you" widget: promoted and own links."""
    items = "".join(
        f'<div class="ob-dynamic-rec-container ob-recIdx-{i} ob-p"><a class="ob-dynamic-rec-link" '
        f'href="https://paid.outbrain.com/network/redir?p={base36(rng, 40)}&amp;c={hexid(rng, 8)}" target="_blank" '
        f'rel="noopener nofollow"><div class="ob-rec-text-wrapper"><span class="ob-unit ob-rec-text" '
        f'title="{esc(t)}">{esc(t)}</span><span class="ob-unit ob-rec-source">{esc(rng.choice(SPONSORS))}</span>'
        f'</div></a></div>'
        for i, t in enumerate(rng.sample(PROMOTED, 3)))
    markup = (f'<div class="OUTBRAIN" data-src="{r.page}" data-widget-id="AR_{rng.randint(1, 4)}">'
              f'<div class="ob-widget ob-feed-layout"><div class="ob-widget-header"><span class="ob-widget-text">'
              f'{r.fixed("outbrain", ("Recommended for you", "Promoted Stories", "From the web"))}</span></div>'
              f'<div class="ob-widget-items-container">{items}</div></div></div>')
    return [(r.fixed("where outbrain", ("after", "sidebar")), markup)]


LIVE_READERS = ("<strong>{n}</strong> people are reading this", "<strong>{n}</strong> readers online now",
                "<strong>{n}</strong> personas están leyendo esta noticia", "Сейчас читают: <strong>{n}</strong>")


def live_readers(rng: random.Random, r: Render) -> Noise:
    """A live-readers promo: "1,284 people are reading this"."""
    phrase = r.fixed("readers", LIVE_READERS).format(n=f"{rng.randint(120, 9000):,}")
    markup = f'<div class="live-readers" aria-live="polite"><span class="live-readers__dot"></span> {phrase}</div>'
    return [(r.fixed("where readers", ("gap:0", "before", "sidebar")), markup)]


RELATIVE_TIMES = (("Updated {n} minutes ago", "Updated {n} hours ago"),
                  ("Published {n} minutes ago", "Published {n} hours ago"),
                  ("Actualizado hace {n} minutos", "Actualizado hace {n} horas"),
                  ("Обновлено {n} минут назад", "Обновлено {n} часов назад"),
                  ("Aktualisiert vor {n} Minuten", "Aktualisiert vor {n} Stunden"),
                  ("Mis à jour il y a {n} minutes", "Mis à jour il y a {n} heures"))


def relative_time(rng: random.Random, r: Render) -> Noise:
    """The last update as a relative time under the headline ("Updated 25 minutes ago"):
    the <time datetime> stays, the text is worked out at each request."""
    minutes, hours = r.fixed("ago", RELATIVE_TIMES)
    updated = START - timedelta(minutes=r.fixed("updated", tuple(range(5, 180))))
    age = int((r.when + timedelta(seconds=rng.randint(0, 90)) - updated).total_seconds() // 60)
    text = minutes.format(n=age) if age < 60 else hours.format(n=age // 60)
    markup = (f'<div class="article-meta"><time class="timeago updated" datetime="{updated.isoformat()}">'
              f'{text}</time></div>')
    return [(r.fixed("where ago", ("before", "gap:0")), markup)]


def view_counter(rng: random.Random, r: Render) -> Noise:
    """The Post Views Counter plugin's count, growing between captures."""
    views = 800 + r.capture * rng.randint(300, 700) + rng.randint(0, 99)
    markup = (f'<div class="post-views content-post post-{r.post_id} entry-meta">'
              f'<span class="post-views-icon dashicons dashicons-chart-bar"></span> '
              f'<span class="post-views-label">Post Views:</span> '
              f'<span class="post-views-count">{views:,}</span></div>')
    return [(r.fixed("where views", ("before", "after", f"gap:{r.shape.gaps}")), markup)]


RELATED_LABELS = ("Related:", "Read more:", "You may also like", "Lea también:", "Читайте также:",
                  "Lesen Sie auch:", "Lire aussi :", "More on this story")


def related_rotating(rng: random.Random, r: Render) -> Noise:
    """Related-article boxes re-picked on every render, in the site's label and markup."""
    label, style = r.fixed("related label", RELATED_LABELS), r.fixed("related style", ("inline", "list", "jetpack"))
    if style == "inline":
        return [(r.between(rng), f'<p><strong>{esc(label)}</strong> <a href="{esc(path)}">{esc(title)}</a></p>')
                for path, title in r.picks(rng, rng.randint(1, 2))]
    if style == "list":
        items = "".join(f'<li><a href="{esc(p)}">{esc(t)}</a></li>' for p, t in r.picks(rng, 3))
        return [(r.fixed("where related", ("after", f"gap:{r.shape.gaps}")),
                 f'<div class="related-posts"><h3 class="related-posts__title">{esc(label)}</h3>'
                 f'<ul>{items}</ul></div>')]
    items = "".join(
        f'<div class="jp-relatedposts-post jp-relatedposts-post{i}" data-post-id="{rng.randint(1000, 99999)}">'
        f'<h4 class="jp-relatedposts-post-title"><a class="jp-relatedposts-post-a" href="{esc(p)}">{esc(t)}</a></h4>'
        f'<p class="jp-relatedposts-post-date">{(r.when - timedelta(days=rng.randint(2, 400))):%B %-d, %Y}</p></div>'
        for i, (p, t) in enumerate(r.picks(rng, 3)))
    return [("after", f'<div id="jp-relatedposts" class="jp-relatedposts"><h3 class="jp-relatedposts-headline">'
                      f'<em>{esc(label)}</em></h3><div class="jp-relatedposts-items">{items}</div></div>')]


PIXEL = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def lazy_images(rng: random.Random, r: Render) -> Noise:
    """Lazy-loaded images with signed CDN URLs (a new signature on every render)."""
    def signed(src: str, width: int) -> str:
        glue = "&" if "?" in src else "?"
        return esc(f"{src}{glue}auto=format&fit=crop&w={width}&q=80&s={hexid(rng, 32)}")
    noise = []
    for i, src in enumerate(r.shape.images):
        noise += [(f"imgsrc:{i}", PIXEL), (f"imgdata:{i}", signed(src, 800))]
    if not r.shape.images:
        src = f"https://images.cdn.example/photos/{r.page.strip('/').replace('/', '-')}.jpg"
        noise.append((r.fixed_gap("lazy figure"), (
            f'<figure class="wp-block-image size-large"><img src="{PIXEL}" data-src="{signed(src, 1024)}" '
            f'data-srcset="{signed(src, 640)} 640w, {signed(src, 1280)} 1280w" class="lazyload" alt=""></figure>')))
    return noise


def csrf_tokens(rng: random.Random, r: Render) -> Noise:
    """CSRF tokens and nonces: a meta tag, the REST API nonce, a comment form's hidden fields."""
    token = base36(rng, 40)
    form = (f'<div id="respond" class="comment-respond"><h3 id="reply-title" class="comment-reply-title">'
            f'Leave a Reply</h3><form action="/wp-comments-post.php" method="post" id="commentform" '
            f'class="comment-form"><p class="comment-form-comment"><label for="comment">Comment</label> '
            f'<textarea id="comment" name="comment" cols="45" rows="8" required></textarea></p>'
            f'<p class="form-submit"><input name="submit" type="submit" id="submit" class="submit" '
            f'value="Post Comment">'
            f'<input type="hidden" name="comment_post_ID" value="{r.post_id}" id="comment_post_ID">'
            f'<input type="hidden" id="_wpnonce" name="_wpnonce" value="{hexid(rng, 10)}"></p>'
            f'<input type="hidden" id="ak_js_1" name="ak_js" '
            f'value="{int(r.when.timestamp() * 1000) + rng.randint(0, 999)}">'
            f'</form></div>')
    return [("head", f'<meta name="csrf-token" content="{token}">'),
            ("head", f'<script id="wp-api-request-js-extra">var wpApiSettings = {{"root":"\\/wp-json\\/",'
                     f'"nonce":"{hexid(rng, 10)}","versionString":"wp\\/v2\\/"}};</script>'),
            ("after", form)]


def css_suffixes(rng: random.Random, r: Render) -> Noise:
    """CSS-in-JS class names (emotion's css-<hash>) that change with every build/render."""
    return [(f"cls:{i}", f"css-{base36(rng, 6)} e{base36(rng, 5)}{rng.randint(0, 9)}") for i in range(r.shape.classes)]


POLLS = (("Should cars be banned from the city centre?", ("Yes", "No", "Only at weekends")),
         ("Will you change your holiday plans this year?", ("Yes", "No", "I haven't decided")),
         ("Do you trust the official figures?", ("Completely", "Partly", "Not at all")),
         ("Should the vote be postponed?", ("Yes", "No")))


def poll(rng: random.Random, r: Render) -> Noise:
    """A WP-Polls poll in the text, its percentages and votes live."""
    question, answers = r.fixed("poll", POLLS)
    votes = [rng.randint(50, 3000) for _ in answers]
    total, pid = sum(votes), r.post_id % 97
    rows = "".join(
        f'<li>{esc(a)} <small>({pct}%, {v:,} Votes)</small><div class="pollbar" '
        f'style="width: {pct}%;" title="{esc(a)} ({pct}% | {v:,} Votes)"></div></li>'
        for a, v, pct in zip(answers, votes, (round(100 * v / total) for v in votes)))
    markup = (f'<div id="polls-{pid}" class="wp-polls"><form id="polls_form_{pid}" class="wp-polls-form" '
              f'action="/index.php" method="post"><p style="display: none;"><input type="hidden" '
              f'id="poll_{pid}_nonce" name="wp-polls-nonce" value="{hexid(rng, 10)}"></p>'
              f'<p style="text-align: center;"><strong>{esc(question)}</strong></p><div id="polls-{pid}-ans" '
              f'class="wp-polls-ans"><ul class="wp-polls-ul">{rows}</ul><p style="text-align: center;">'
              f'Total Voters: <strong>{total:,}</strong></p></div></form></div>')
    return [(r.fixed_gap("poll"), markup)]


NEWSLETTERS = ("Get our morning briefing", "Sign up for the daily newsletter", "Never miss a story")


def newsletter(rng: random.Random, r: Render) -> Noise:
    """A newsletter sign-up box (Mailchimp for WordPress or Jetpack markup)."""
    heading = r.fixed("newsletter", NEWSLETTERS)
    if r.fixed("newsletter style", ("mc4wp", "jetpack")) == "mc4wp":
        form = (f'<form id="mc4wp-form-1" class="mc4wp-form mc4wp-form-{r.post_id % 500}" method="post" '
                f'data-id="{r.post_id % 500}" data-name="Newsletter"><div class="mc4wp-form-fields"><h3>{heading}</h3>'
                f'<p><label>Email address: <input type="email" name="EMAIL" placeholder="Your email address" required>'
                f'</label></p><p><input type="submit" value="Sign up"></p></div>'
                f'<label style="display: none !important;">'
                f'Leave this field empty if you\'re human: <input type="text" name="_mc4wp_honeypot" value="" '
                f'tabindex="-1" autocomplete="off"></label><input type="hidden" name="_mc4wp_timestamp" '
                f'value="{int(r.when.timestamp()) + rng.randint(0, 3599)}"><div class="mc4wp-response"></div></form>')
    else:
        form = (f'<div class="wp-block-jetpack-subscriptions__container"><h3>{heading}</h3><form action="#" '
                f'method="post" id="subscribe-blog-{rng.randint(1, 9)}"><p id="subscribe-email"><input type="email" '
                f'name="email" required placeholder="Type your email…"></p><p id="subscribe-submit">'
                f'<input type="hidden" name="_wpnonce" value="{hexid(rng, 10)}">'
                f'<button type="submit">Subscribe</button>'
                f'</p></form><div class="wp-block-jetpack-subscriptions__subscount">Join '
                f'{48000 + 11 * r.capture + rng.randint(0, 9):,} other subscribers</div></div>')
    return [(r.fixed("where newsletter", (r.fixed_gap("newsletter"), "after")), form)]


def trending(rng: random.Random, r: Render) -> Noise:
    """A WordPress Popular Posts "Trending" list, its order and view counts live."""
    items = "".join(
        f'<li><a href="{esc(p)}" class="wpp-post-title" target="_self">{esc(t)}</a> <span class="wpp-meta post-stats">'
        f'<span class="wpp-views">{rng.randint(10, 999) / 10:.1f}k views</span></span></li>'
        for p, t in r.picks(rng, 5))
    markup = (f'<section id="wpp-2" class="widget popular-posts"><h2 class="widget-title">'
              f'{r.fixed("trending", ("Trending", "Most read", "Popular now"))}</h2>'
              f'<ul class="wpp-list">{items}</ul></section>')
    return [(r.fixed("where trending", ("sidebar", "after")), markup)]


AB_VARIANTS = ("{t}", "{t}: what we know so far", "Why everyone is talking about this: {t}")


def ab_headlines(rng: random.Random, r: Render) -> Noise:
    """An "Up next" teaser whose headline is under an A/B test: a variant per render."""
    path, title = r.fixed("up next", r.others)
    variant = rng.randrange(len(AB_VARIANTS))
    markup = (f'<div class="up-next" data-ab-test="hl-{r.post_id}" data-ab-variant="{"ABC"[variant]}">'
              f'<span class="up-next__label">Up next</span> <a class="up-next__link" href="{esc(path)}">'
              f'{esc(AB_VARIANTS[variant].format(t=title))}</a></div>')
    return [(r.fixed("where up next", ("after", f"gap:{r.shape.gaps}")), markup)]


def share_counts(rng: random.Random, r: Render) -> Noise:
    """Jetpack sharing buttons with live share counts."""
    def count() -> str:
        n = rng.randint(3, 25000)
        return f"{n / 1000:.1f}K" if n >= 1000 else str(n)
    buttons = "".join(
        f'<li class="share-{net}"><a rel="nofollow noopener noreferrer" data-shared="sharing-{net}-{r.post_id}" '
        f'class="share-{net} sd-button share-icon" href="{esc(r.page)}?share={net}" target="_blank">'
        f'<span>{label}</span><span class="share-count">{count()}</span></a></li>'
        for net, label in (("facebook", "Facebook"), ("twitter", "X"), ("linkedin", "LinkedIn")))
    markup = (f'<div class="sharedaddy sd-sharing-enabled"><div class="robots-nocontent sd-block sd-social '
              f'sd-sharing"><h3 class="sd-title">Share this:</h3><div class="sd-content"><ul>{buttons}</ul>'
              f'</div></div></div>')
    return [(r.fixed("where share", ("before", "after")), markup)]


FAMILIES: dict[str, Callable[[random.Random, Render], Noise]] = {
    "ad_inserter": ad_inserter, "advanced_ads": advanced_ads, "gpt_slots": gpt_slots, "taboola": taboola,
    "outbrain": outbrain, "live_readers": live_readers, "relative_time": relative_time,
    "view_counter": view_counter, "related_rotating": related_rotating, "lazy_images": lazy_images,
    "csrf_tokens": csrf_tokens, "css_suffixes": css_suffixes, "poll": poll, "newsletter": newsletter,
    "trending": trending, "ab_headlines": ab_headlines, "share_counts": share_counts,
}
HOOKS = {"css_suffixes": "cls", "lazy_images": "img"}  # families that rewrite attributes of the page


def render(template: Template, families: tuple[str, ...], rng: random.Random, r: Render) -> str:
    fills: dict[str, list[str]] = defaultdict(list)
    for name in families:
        for where, markup in FAMILIES[name](rng, r):
            fills[where].append(markup)
    return template.fill(fills)


# ---- the plan: which page gets which noise and edits, capture by capture -----------------

@dataclass(frozen=True)
class Step:
    capture: int
    what: str  # baseline | noise | edit
    state: int  # index of PagePlan.states served from this capture on
    edit: str = ""  # edit kind (EDITS, or "restored")
    detail: str = ""


@dataclass
class PagePlan:
    id: str
    path: str
    source: str
    post_id: int
    families: tuple[str, ...]
    others: tuple[Other, ...]
    steps: list[Step] = field(default_factory=list)
    states: list[Template | None] = field(default_factory=list)  # None: the page answers 404

    def step_at(self, capture: int) -> Step | None:
        return next((s for s in self.steps if s.capture == capture), None)

    def state_at(self, capture: int) -> Template | None:
        return self.states[max((s for s in self.steps if s.capture <= capture), key=lambda s: s.capture).state]


def make_plans(articles: list[Article], captures: int, edits: int, seed: int) -> list[PagePlan]:
    ids = [f"p{i:03d}" for i in range(len(articles))]
    paths = [f"/news/{slug_of(a.source)}/" for a in articles]
    titles = [a.headline() for a in articles]
    used: Counter = Counter()
    plans = []
    for i, (art, families) in enumerate(zip(articles, assign_families(len(articles)))):
        others = tuple((p, t) for j, (p, t) in enumerate(zip(paths, titles)) if j != i)
        plan = PagePlan(ids[i], paths[i], art.source, 1000 + 37 * i, families, others)
        rng = random.Random(f"{seed}/edits/{plan.id}")
        place_read_box(art, READ_STYLES[i % len(READ_STYLES)], *rng.choice(others))
        script_page(plan, art, captures, edits, used, rng)
        plans.append(plan)
    return plans


def assign_families(pages: int) -> list[tuple[str, ...]]:
    """1, 2 or 3 families per page, taken in turn, so every family covers about as many pages."""
    names, out, k = list(FAMILIES), [], 0
    for i in range(pages):
        count = 1 + i % 3
        out.append(tuple(names[(k + j) % len(names)] for j in range(count)))
        k += count
    return out


def script_page(plan: PagePlan, art: Article, captures: int, edits: int, used: Counter, rng: random.Random) -> None:
    """Baseline, noise-only captures, then per edit: the edit's capture (a 404 is followed
    by the page's return) and a noise-only capture."""
    hooks = {HOOKS[f] for f in plan.families if f in HOOKS}
    plan.states.append(build_template(art, hooks))
    plan.steps = [Step(0, "baseline", 0)] + [Step(c, "noise", 0) for c in range(1, captures + 1)]
    for kind, detail in choose_edits(art, edits, used, rng, list(plan.others)):
        capture, live = len(plan.steps), plan.steps[-1].state
        plan.states.append(None if kind == "gone" else build_template(art, hooks))
        plan.steps.append(Step(capture, "edit", len(plan.states) - 1, kind, detail))
        if kind == "gone":
            plan.steps.append(Step(capture + 1, "edit", live, "restored", "the page is back"))
        plan.steps.append(Step(len(plan.steps), "noise", plan.steps[-1].state))


def choose_edits(art: Article, count: int, used: Counter, rng: random.Random,
                 others: list[Other]) -> Iterator[tuple[str, str]]:
    """The least-used edit kinds that apply to the page (each applied as chosen)."""
    chosen: set[str] = set()
    for _ in range(count):
        for kind in sorted(EDITS, key=lambda k: used[k]):
            detail = None if kind in chosen else EDITS[kind][0](art, rng, others)
            if detail:
                chosen.add(kind)
                used[kind] += 1
                yield kind, detail
                break


# ---- the server: a fresh render per request ----------------------------------------------

class Site:
    """The pages of the run at the current capture; every request gets its own render."""

    def __init__(self, plans: list[PagePlan], seed: int):
        self.seed = seed
        self.capture = 0
        self.requests: Counter = Counter()  # (client, page id, capture) -> requests
        self.first_renders: dict[tuple[str, str, int], str] = {}  # (client, page, capture) -> sha1 of the 1st render
        self.lock = threading.Lock()

    def respond(self, plan: PagePlan, path: str, client: str) -> tuple[int, bytes]:
        if path != plan.path:
            return 404, NOT_FOUND.encode()
        capture = self.capture
        with self.lock:
            nth = self.requests[(client, plan.id, capture)]
            self.requests[(client, plan.id, capture)] += 1
        template = plan.state_at(capture)
        if template is None:
            return 404, NOT_FOUND.encode()
        rng = random.Random(f"{self.seed}/{plan.id}/{capture}/{nth}")
        r = Render(plan.path, plan.post_id, plan.others, capture, START + capture * CAPTURE_EVERY, template.shape)
        body = render(template, plan.families, rng, r).encode()
        if nth == 0:
            self.first_renders[(client, plan.id, capture)] = hashlib.sha1(body).hexdigest()
        return 200, body


class PageHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: PageServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        status, body = self.server.site.respond(self.server.plan, self.path.split("?", 1)[0],
                                                self.headers.get(CLIENT_HEADER, "other"))
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        pass


class PageServer(ThreadingHTTPServer):
    """One page's site: its own port on 127.0.0.1, so its own host for the approaches
    (archiver learns noise per host; each corpus page comes from another site)."""
    daemon_threads = True

    def __init__(self, site: Site, plan: PagePlan):
        super().__init__(("127.0.0.1", 0), PageHandler)
        self.site, self.plan = site, plan

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{self.plan.path}"

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that went away is no error of ours
            super().handle_error(request, client_address)


@contextmanager
def serving(site: Site, plans: list[PagePlan]) -> Iterator[dict[str, str]]:
    """Serve each page from its own server; yield page id -> URL."""
    servers: list[PageServer] = []
    threads: list[threading.Thread] = []
    try:
        for plan in plans:
            servers.append(PageServer(site, plan))
            threads.append(threading.Thread(target=servers[-1].serve_forever, daemon=True))
            threads[-1].start()
        yield {s.plan.id: s.url for s in servers}
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(10)


# ---- the approaches -------------------------------------------------------------------

@dataclass(frozen=True)
class Seen:
    """What an approach reported for one capture."""
    alarm: bool
    kinds: tuple[str, ...] = ()
    changes: tuple[tuple[str, str, str], ...] = ()  # (kind, before, after)


def fetch(url: str, client: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={CLIENT_HEADER: client})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read().decode("utf-8")


class ArchiverApproach:
    """archiver through its library: one snapshot of the pages due, then each URL's history
    as the snapshot returns it (a new version since the last capture = an alarm)."""
    name = "archiver"

    def __init__(self, root: Path):
        from archiver.config import load_config
        from archiver.archive.workdir import init_archive
        self.config = load_config(init_archive(root, overrides=archiver_overrides()))
        self.versions: dict[str, int] = {}

    def capture(self, urls: dict[str, str]) -> dict[str, Seen]:
        from archiver.archive.writer import Writer
        from archiver.pipeline import history_of, snapshot
        from archiver.seeds import normalize_url
        archive = Writer(self.config)
        try:
            histories = snapshot(archive, list(urls.values())).histories
        finally:
            archive.close()
        seeds = {pid: normalize_url(url) for pid, url in urls.items()}
        return {pid: self._seen(pid, histories.get(seed) or history_of(self.config, seed))
                for pid, seed in seeds.items()}

    def _seen(self, pid: str, history) -> Seen:
        versions = history.versions
        before, self.versions[pid] = self.versions.get(pid, 0), len(versions)
        new = versions[before:] if before else []
        kinds = tuple(dict.fromkeys(k for v in new for k in v.kinds))
        return Seen(bool(new), kinds, tuple((c.kind, c.before, c.after) for v in new for c in v.changes))


def archiver_overrides() -> dict[str, str]:
    """Politeness off on loopback, the seed page alone (no cross-references, no
    requisites), and a confirmation (if archiver has one) without waiting."""
    from archiver.config import SETTINGS
    overrides = {"per_host_delay": "0.0", "robots": '"ignore"', "requisites": "false", "depth": "0",
                 "concurrency": "4", "per_host_concurrency": "4", "timeout": "15.0", "total_timeout": "60.0",
                 "headers": f'{{ "{CLIENT_HEADER}" = "archiver" }}', "feed": '""'}
    for s in SETTINGS:
        if s.name == "confirm_delay":
            overrides[s.name] = "0.0" if isinstance(s.default, float) else "0" if isinstance(s.default, int) else '"0s"'
    return overrides


class AnchorApproach:
    """An anchor: each page is fetched and read (``read``, in a worker process of the
    pool) and the reading compared here with the page's last version (``compare``)."""
    name = ""
    read: Callable[[str], object]

    def __init__(self, pool: multiprocessing.pool.Pool):
        self.pool = pool
        self.last: dict[str, object] = {}

    def capture(self, urls: dict[str, str]) -> dict[str, Seen]:
        readings = self.pool.map(self.read, list(urls.values()), chunksize=1)
        return {pid: self.compare(pid, reading) for pid, reading in zip(urls, readings)}

    def compare(self, pid: str, reading) -> Seen:
        raise NotImplementedError


def trafilatura_lines(url: str) -> list[str]:
    import trafilatura
    text = trafilatura.extract(fetch(url, "trafilatura")[1], include_comments=False) or ""
    return [line.strip() for line in text.splitlines() if line.strip()]


class LineDiffApproach(AnchorApproach):
    """changedetection.io-style: trafilatura's text, any changed line = an alarm (kind body:
    a text diff cannot tell a headline or a date from the body). A 404 page is read like
    any other page."""
    name = "trafilatura"
    read = staticmethod(trafilatura_lines)

    def compare(self, pid: str, lines: list[str]) -> Seen:
        before, self.last[pid] = self.last.get(pid), lines
        if before is None or before == lines:
            return Seen(False)
        gone, came = [x for x in before if x not in lines], [x for x in lines if x not in before]
        return Seen(True, ("body",), (("body", "\n".join(gone), "\n".join(came)),))


# diffengine (DocNow/diffengine, diffengine/__init__.py, Entry.get_latest, _normal, _equal,
# _fingerprint), replicated: a non-200 answer makes no version; the title is
# readability's doc.title(), compared as is; the summary is doc.summary(html_partial=True)
# cleaned by bleach to <p> tags, then _normal (no-break spaces, curly quotes, newlines, an
# invisible character we read as the soft hyphen, runs of spaces), and compared by
# _fingerprint: _normal, all tags stripped, all whitespace and Unicode punctuation (P*)
# removed. A new version is compared with the last version, not the last capture. We
# strip the tags with lxml (bleach is not installed); the text compared is the same,
# except that bleach escapes & and < (as "&amp;", "&lt;") on both sides alike. Left
# out: the htmldiff check that drops a version whose rendered diff shows no <ins> or
# <del> (it only drops versions whose fingerprints differed, which is rare).
@functools.cache
def punctuation() -> dict[int, None]:
    return dict.fromkeys(i for i in range(sys.maxunicode + 1) if unicodedata.category(chr(i)).startswith("P"))


def diffengine_normal(s: str) -> str:
    s = s.replace("\xa0", " ").replace("“", '"').replace("”", '"').replace("’", "'")
    s = s.replace("\n", " ").replace("\xad", "")
    return re.sub(r"  +", " ", s).strip()


def diffengine_fingerprint(text: str) -> str:
    return re.sub(r"\s+", "", diffengine_normal(text)).translate(punctuation())


def diffengine_version(url: str) -> tuple[str, str, str] | None:
    """(title, fingerprint, summary text) of the page, or None where diffengine makes no
    version (not a 200, or readability cannot parse it)."""
    import readability
    from readability.readability import Unparseable
    status, page = fetch(url, "readability")
    if status != 200:
        return None
    try:
        doc = readability.Document(page)
        title, summary = doc.title(), doc.summary(html_partial=True)
    except Unparseable:  # diffengine logs it and makes no version
        return None
    text = lxml.html.fromstring(summary).text_content() if summary.strip() else ""
    return title, diffengine_fingerprint(text), diffengine_normal(text)


class DiffengineApproach(AnchorApproach):
    """readability-lxml with diffengine's normalisation: title changed = kind title,
    text fingerprint changed = kind body."""
    name = "readability"
    read = staticmethod(diffengine_version)

    def compare(self, pid: str, new: tuple[str, str, str] | None) -> Seen:
        old = self.last.get(pid)
        if new is None or (old is not None and old[:2] == new[:2]):
            return Seen(False)
        self.last[pid] = new
        if old is None:
            return Seen(False)
        kind = "title" if old[0] != new[0] else "body"
        before, after = (old[0], new[0]) if kind == "title" else (old[2], new[2])
        return Seen(True, (kind,), ((kind, before, after),))


def make_approaches(only: list[str], work: Path, pool: multiprocessing.pool.Pool) -> list:
    made = {"archiver": lambda: ArchiverApproach(work / "archive"), "trafilatura": lambda: LineDiffApproach(pool),
            "readability": lambda: DiffengineApproach(pool)}
    return [made[name]() for name in only]


@contextmanager
def anchor_pool() -> Iterator[multiprocessing.pool.Pool]:
    """Worker processes for the anchors' extraction, forked before any server thread runs.
    They leave when done, or are killed on an error: with SIGTERM's default action, as
    stop_on_sigterm's SystemExit in a worker can wait forever on a lock the pool holds."""
    pool = multiprocessing.get_context("fork").Pool(os.cpu_count() or 2, initializer=signal.signal,
                                                    initargs=(signal.SIGTERM, signal.SIG_DFL))
    try:
        yield pool
    except BaseException:
        pool.terminate()
        raise
    else:
        pool.close()
    finally:
        pool.join()


# ---- scoring -----------------------------------------------------------------------------

SAMPLE_CHARS = 300


@dataclass
class Tally:
    """One approach's score."""
    noise: Counter = field(default_factory=Counter)  # "all" and each family -> noise-only captures
    false_alarms: Counter = field(default_factory=Counter)
    edits: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # kind -> cases/found/right/exact
    false_samples: list[dict] = field(default_factory=list)
    missed: list[dict] = field(default_factory=list)  # edits not found with the right kind
    extra_kinds: list[dict] = field(default_factory=list)  # found with the right kind and others
    seconds: float = 0.0

    def add(self, plan: PagePlan, step: Step, seen: Seen) -> None:
        if step.what == "noise":
            self._noise(plan, step, seen)
        elif step.what == "edit":
            self._edit(plan, step, seen)

    def _noise(self, plan: PagePlan, step: Step, seen: Seen) -> None:
        for key in ("all",) + plan.families:
            self.noise[key] += 1
            self.false_alarms[key] += seen.alarm
        if seen.alarm:
            self.false_samples.append(sample(plan, step, seen))

    def _edit(self, plan: PagePlan, step: Step, seen: Seen) -> None:
        expect = EXPECTED[step.edit]
        right, exact = expect in seen.kinds, seen.kinds == (expect,)
        for key in ("all", step.edit):
            self.edits[key].update(cases=1, found=seen.alarm, right=right, exact=exact)
        if not exact:
            (self.extra_kinds if right else self.missed).append(
                sample(plan, step, seen) | {"expected": expect, "detail": step.detail})


def sample(plan: PagePlan, step: Step, seen: Seen) -> dict:
    return {"page": plan.id, "source": plan.source, "families": list(plan.families), "capture": step.capture,
            "edit": step.edit, "kinds": list(seen.kinds),
            "changes": [{"kind": k, "before": b[:SAMPLE_CHARS], "after": a[:SAMPLE_CHARS]} for k, b, a in seen.changes]}


def run(plans: list[PagePlan], site: Site, urls: dict[str, str], approaches: list) -> dict[str, Tally]:
    tallies = {a.name: Tally() for a in approaches}
    captures = max(s.capture for p in plans for s in p.steps) + 1
    for capture in range(captures):
        site.capture = capture
        due = [p for p in plans if p.step_at(capture) is not None]
        timings = []
        for approach in approaches:
            start = time.perf_counter()
            seen = approach.capture({p.id: urls[p.id] for p in due})
            tallies[approach.name].seconds += time.perf_counter() - start
            timings.append(f"{approach.name} {time.perf_counter() - start:.1f} s")
            for plan in due:
                tallies[approach.name].add(plan, plan.step_at(capture), seen[plan.id])
        log(f"capture {capture + 1}/{captures}: {len(due)} pages; " + ", ".join(timings) + "; false alarms so far: "
            + ", ".join(f"{n} {t.false_alarms['all']}" for n, t in tallies.items()))
    return tallies


def extra_fetches(site: Site, plans: list[PagePlan], client: str) -> dict[str, dict[str, int]]:
    """Requests beyond one per page and capture, and captures, of one client: in all and
    by what the capture was (baseline, noise, edit)."""
    out: dict[str, Counter] = defaultdict(Counter)
    for plan in plans:
        for step in plan.steps:
            extra = max(0, site.requests[(client, plan.id, step.capture)] - 1)
            for key in ("all", step.what):
                out[key].update(extra=extra, captures=1)
    return {key: dict(c) for key, c in out.items()}


def per_capture(fetched: dict[str, int]) -> str:
    return f"{fetched['extra'] / fetched['captures']:.3f}" if fetched.get("captures") else "-"


def render_mismatches(site: Site, clients: list[str]) -> int:
    """Captures whose first render differed between clients (must be 0: same renders)."""
    by_capture = defaultdict(set)
    for (client, pid, capture), digest in site.first_renders.items():
        if client in clients:
            by_capture[(pid, capture)].add(digest)
    return sum(len(d) > 1 for d in by_capture.values())


# ---- report ------------------------------------------------------------------------------

def rate(n: int, of: int) -> str:
    return f"{n} ({100 * n / of:.1f}%)" if of else "-"


def summary_table(tallies: dict[str, Tally], extra: dict[str, dict[str, dict[str, int]]]) -> str:
    rows = []
    for name, t in tallies.items():
        e = t.edits["all"]
        rows.append([name, t.noise["all"], rate(t.false_alarms["all"], t.noise["all"]), e["cases"],
                     rate(e["right"], e["cases"]), rate(e["found"], e["cases"]), rate(e["exact"], e["cases"]),
                     per_capture(extra[name]["all"]), f"{t.seconds:.0f}"])
    return table(rows, ["approach", "noise-only", "false alarms", "edits", "right kind", "found at all",
                        "exact kinds", "extra fetches/capture", "seconds"])


def family_table(tallies: dict[str, Tally], plans: list[PagePlan]) -> str:
    pages = Counter(f for p in plans for f in p.families)
    first = next(iter(tallies.values()))
    rows = [[f, pages[f], first.noise[f]] + [rate(t.false_alarms[f], t.noise[f]) for t in tallies.values()]
            for f in FAMILIES]
    return table(rows, ["noise family", "pages", "noise-only"] + [f"{n} false alarms" for n in tallies])


def edit_table(tallies: dict[str, Tally]) -> str:
    first = next(iter(tallies.values()))
    rows = [[kind, EXPECTED[kind], first.edits[kind]["cases"]]
            + [f'{rate(t.edits[kind]["right"], t.edits[kind]["cases"])} / {t.edits[kind]["found"]}'
               for t in tallies.values()]
            for kind in EXPECTED]
    return table(rows, ["edit", "expected kind", "cases"] + [f"{n} right kind / found" for n in tallies])


def print_samples(tallies: dict[str, Tally]) -> None:
    t = tallies.get("archiver")
    if t is None or not t.false_samples:
        return
    print("\narchiver's false alarms (first 10): page, families, kinds, change before -> after")
    for s in t.false_samples[:10]:
        print(f"- {s['page']} ({s['source']}) capture {s['capture']}, {', '.join(s['families'])}: {s['kinds']}")
        for c in s["changes"][:3]:
            print(f"    {c['kind']}: {c['before'][:160]!r} -> {c['after'][:160]!r}")


# ---- main ----------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--pages", type=int, default=100, help="corpus pages to use (default 100)")
    p.add_argument("--captures", type=int, default=10, help="noise-only captures after the baseline (default 10)")
    p.add_argument("--edits", type=int, default=4, help="edits per page, each followed by a noise-only capture")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--only", default=",".join(APPROACHES), help="approaches to run, comma-separated")
    p.add_argument("--quick", action="store_true", help="a small run for smoke testing (12 pages, 3 captures, 3 edits)")
    args = p.parse_args(argv)
    if args.quick:
        args.pages, args.captures, args.edits = 12, 3, 3
    args.only = [a.strip() for a in args.only.split(",") if a.strip()]
    if not args.only or set(args.only) - set(APPROACHES):
        p.error(f"--only takes some of {', '.join(APPROACHES)}")
    if args.captures < 2:
        p.error("--captures must be at least 2: a READ box is fixed after 3 identical captures")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    started = time.perf_counter()
    env = environment()  # now: the archiver commit measured, even if main moves during the run
    articles = corpus_articles(args.corpus)
    if not articles:
        print(f"edit_generalization: no usable pages under {args.corpus} (point --corpus at ../shared/corpus)",
              file=sys.stderr)
        return 2
    chosen = random.Random(args.seed).sample(articles, min(args.pages, len(articles)))
    plans = make_plans(chosen, args.captures, args.edits, args.seed)
    log(f"{len(plans)} pages of {len(articles)} usable; plan ready in {time.perf_counter() - started:.1f} s")
    site = Site(plans, args.seed)
    with tempfile.TemporaryDirectory(prefix="edit-generalization-") as work, anchor_pool() as pool, \
            serving(site, plans) as urls:
        tallies = run(plans, site, urls, make_approaches(args.only, Path(work), pool))
    extra = {name: extra_fetches(site, plans, name) for name in tallies}
    wall = time.perf_counter() - started
    print(f"edit_generalization: {len(plans)} pages, {args.captures} noise-only captures + {args.edits} edits "
          f"per page, seed {args.seed}; wall time {wall:.0f} s")
    print("\n" + summary_table(tallies, extra))
    for name, fetched in extra.items():
        if fetched["all"]["extra"]:
            print(f"{name}: extra fetches per noise-only capture {per_capture(fetched['noise'])}, "
                  f"per edit capture {per_capture(fetched['edit'])}, per baseline {per_capture(fetched['baseline'])}")
    print("\n" + family_table(tallies, plans))
    print("\n" + edit_table(tallies))
    mismatches = render_mismatches(site, list(tallies))
    print(f"\ncaptures whose first render differed between approaches: {mismatches} (must be 0)")
    print_samples(tallies)
    path = write_results("edit_generalization", results_json(args, env, plans, tallies, extra, wall, mismatches))
    print(f"\nresults: {path}")
    return 0


def results_json(args, env, plans, tallies, extra, wall, mismatches) -> dict:
    return {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "environment": env, "wall_s": round(wall, 1), "render_mismatches": mismatches,
        "pages": [{"id": p.id, "source": p.source, "families": list(p.families),
                   "steps": [vars(s) for s in p.steps]} for p in plans],
        "approaches": {name: {"seconds": round(t.seconds, 1), "noise_only": dict(t.noise),
                              "false_alarms": dict(t.false_alarms),
                              "edits": {k: dict(c) for k, c in t.edits.items()},
                              "extra_fetches": extra[name],
                              "false_alarm_samples": t.false_samples, "missed": t.missed,
                              "extra_kinds": t.extra_kinds}
                       for name, t in tallies.items()},
    }


if __name__ == "__main__":
    sys.exit(main())
