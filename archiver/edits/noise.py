"""Pure: per-render noise learned from two renders of one page, and articles without it.

Two renders of a page fetched seconds apart differ only by what the site renders anew
each time: ads, promos with live counts, rotating boxes, widgets with random ids. A block
that differs between them is noise for that page whatever its markup, and every block of
the site's template standing in the same place (the same ``article.signature``) is noise
too, on any page of the site. Keys:

    block:<signature>   every paragraph, link and READ ref standing in such a block
    shape:<text>        paragraphs whose text is this once digits are taken out
                        ("1,284 people are reading this"), wherever they stand
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from difflib import SequenceMatcher

from archiver.page.article import Article, Ref
from archiver.edits.diff import normalize

MAX_VOLATILE_SHARE = 0.5  # past this share of differing paragraphs, two renders are two contents
MAX_MASKED_SHARE = 0.4  # a key holding more of an article's text than this is not noise there
_HAS_DIGIT = re.compile(r"\d")  # a learned shape stands for digits: other paragraphs need no normalising
_DIGITS = re.compile(r"\d+(?:[,.:\s]\d+)*")


def learn_noise(a: Article, b: Article) -> frozenset[str]:
    """Keys of the blocks that differ between two renders a and b of the same page. A
    block standing where text both renders share stands as often as where they differ
    is editorial and never learned; an ad slot that shows the same ad twice in a row
    (small ad pools do) is still an ad slot."""
    texts_a, texts_b = _texts(a), _texts(b)
    volatile_a = _unmatched(texts_a, texts_b)
    volatile_b = _unmatched(texts_b, texts_a)
    if len(volatile_a) > MAX_VOLATILE_SHARE * max(len(texts_a), 1):
        return frozenset()  # not two renders of one article (a live blog, another page)
    # READ targets are left out: whether a box rotates is decided by observation (history.ReadBoxes).
    moved_a, kept_a = _ref_blocks(a.links, b.links)
    moved_b, kept_b = _ref_blocks(b.links, a.links)
    flipped = _volatile_blocks(a, volatile_a) + _volatile_blocks(b, volatile_b) + \
        [r.block for r in moved_a + moved_b]
    stable = Counter(_stable_blocks(a, volatile_a, moved_a) + _stable_blocks(b, volatile_b, moved_b) +
                     [r.block for r in kept_a + kept_b])
    keys = {f"block:{block}" for block, n in Counter(flipped).items() if block and n > stable[block]}
    shapes_a = {_shape(texts_a[i]) for i in volatile_a}
    shapes_b = {_shape(texts_b[i]) for i in volatile_b}
    keys |= {f"shape:{shape}" for shape in shapes_a & shapes_b if any(c.isalpha() for c in shape)}
    return frozenset(keys)


def mask(article: Article, noise: frozenset[str]) -> tuple[Article, frozenset[str]]:
    """(the article without its noise blocks, the keys that took something out); the
    same article object when nothing was taken out. A block
    key holding a large share of this article's text is not applied to it: the content
    root of another page of the site may have been found elsewhere, making a signature
    learned on an ad the signature of this page's paragraphs."""
    if not noise:
        return article, frozenset()
    keys = _keys(article, noise)
    total = sum(len(p) for p in article.paragraphs) or 1
    heavy = {k for k in set(keys) if k and sum(len(p) for p, pk in zip(article.paragraphs, keys) if pk == k)
             > MAX_MASKED_SHARE * total}
    keep = [i for i, key in enumerate(keys) if not key or key in heavy]
    applied = noise - heavy
    links = tuple(r for r in article.links if f"block:{r.block}" not in applied)
    read_refs = tuple(r for r in article.read_refs if f"block:{r.block}" not in applied)
    used = frozenset(k for k in keys if k and k not in heavy) | \
        frozenset(f"block:{r.block}" for r in article.links + article.read_refs if f"block:{r.block}" in applied)
    if not used:
        return article, used
    return Article(url=article.url, canonical_url=article.canonical_url, title=article.title, byline=article.byline,
                   published=article.published, modified=article.modified,
                   paragraphs=tuple(article.paragraphs[i] for i in keep),
                   blocks=tuple(article.blocks[i] for i in keep) if article.blocks else (),
                   links=links, read_refs=read_refs, extractor=article.extractor), used


def _keys(article: Article, noise: frozenset[str]) -> list[str]:
    """Per paragraph, the noise key that matches it, or ""."""
    shapes = any(key.startswith("shape:") for key in noise)
    blocks = article.blocks if len(article.blocks) == len(article.paragraphs) else ("",) * len(article.paragraphs)
    out = []
    for text, block in zip(article.paragraphs, blocks):
        key = f"block:{block}" if f"block:{block}" in noise else ""
        if not key and shapes and _HAS_DIGIT.search(text) and f"shape:{_shape(normalize(text))}" in noise:
            key = f"shape:{_shape(normalize(text))}"
        out.append(key)
    return out


def _texts(article: Article) -> list[str]:
    return [normalize(p) for p in article.paragraphs]


def _unmatched(texts: list[str], other: list[str]) -> list[int]:
    """Indexes of texts the other render does not have (as many times)."""
    left = Counter(other)
    out = []
    for i, text in enumerate(texts):
        if left[text] > 0:
            left[text] -= 1
        else:
            out.append(i)
    return out


def _ref_blocks(refs: tuple[Ref, ...], other: tuple[Ref, ...]) -> tuple[list[Ref], list[Ref]]:
    """(the links the other render lacks, the links it has too)."""
    keys = {(r.url, normalize(r.text)) for r in other}
    moved = [r for r in refs if (r.url, normalize(r.text)) not in keys]
    kept = [r for r in refs if (r.url, normalize(r.text)) in keys]
    return moved, kept


def _volatile_blocks(article: Article, volatile: list[int]) -> list[str]:
    """Blocks of the volatile paragraphs, one per paragraph; none for an article
    extracted without signatures."""
    if len(article.blocks) != len(article.paragraphs):
        return []
    return [article.blocks[i] for i in volatile if article.blocks[i]]


def _stable_blocks(article: Article, volatile: list[int], moved: list[Ref]) -> list[str]:
    """Blocks of the paragraphs both renders have, but for a paragraph holding a link
    the other render lacks: the same ad copy under a new click id is not a repeat."""
    if len(article.blocks) != len(article.paragraphs):
        return []
    flipped = set(volatile)
    relinked = {(r.block, normalize(r.text)) for r in moved if r.text.strip()}
    return [block for i, block in enumerate(article.blocks) if i not in flipped and not any(
        b == block and text in normalize(article.paragraphs[i]) for b, text in relinked)]


def _shape(text: str) -> str:
    return " ".join(_DIGITS.sub("#", text).split())


def settle(base: Article, render: Article, other: Article) -> tuple[Article, Article]:
    """(base, render) without the slots that differ between render and other, two renders
    of one page: where they disagree, what base held there was per-render noise too (an
    ad slot holds a new ad on every render), wherever it stands and whatever its markup.
    Paragraphs and links are settled apart, each as a sequence in page order."""
    keep_base, keep_render = _settled([normalize(p) for p in base.paragraphs],
                                      [normalize(p) for p in render.paragraphs],
                                      [normalize(p) for p in other.paragraphs])
    link_base, link_render = _settled(_link_keys(base), _link_keys(render), _link_keys(other))
    return _kept(base, keep_base, link_base), _kept(render, keep_render, link_render)


def settle_own(article: Article, other: Article) -> Article:
    """article without what a second render of it (other, fetched right after) did not
    show alike: what a version holds only by chance of its render (an ad, a teaser an ad
    pulled into the text) is not held against a later capture lacking it."""
    paragraphs = _agreed([normalize(p) for p in article.paragraphs], [normalize(p) for p in other.paragraphs])
    links = _agreed(_link_keys(article), _link_keys(other))
    return _kept(article, paragraphs, links)


def _agreed(mine: list[str], other: list[str]) -> set[int]:
    """Indexes of mine that other has alike, in the same order."""
    kept: set[int] = set()
    for tag, i1, i2, _, _ in SequenceMatcher(None, mine, other, autojunk=False).get_opcodes():
        if tag == "equal":
            kept.update(range(i1, i2))
    return kept


def _link_keys(article: Article) -> list[str]:
    return [f"{r.url} {normalize(r.text)}" for r in article.links]


def _settled(base: list[str], render: list[str], other: list[str]) -> tuple[set[int], set[int]]:
    """Indexes of base and render outside the slots where render and other differ."""
    items, gaps = set(), set()  # render's items that differ, and positions where other has more
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, render, other, autojunk=False).get_opcodes():
        if tag != "equal":
            items.update(range(i1, i2))
            gaps.update((i1, i2))
    drop_base, drop_render = set(), set()
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, base, render, autojunk=False).get_opcodes():
        if tag != "equal" and (items.intersection(range(j1, j2)) or j1 in gaps or j2 in gaps):
            drop_base.update(range(i1, i2))
            drop_render.update(range(j1, j2))
    return set(range(len(base))) - drop_base, set(range(len(render))) - drop_render


def _kept(article: Article, paragraphs: set[int], links: set[int]) -> Article:
    blocks = article.blocks if len(article.blocks) == len(article.paragraphs) else ()
    return replace(article, paragraphs=tuple(p for i, p in enumerate(article.paragraphs) if i in paragraphs),
                   blocks=tuple(b for i, b in enumerate(blocks) if i in paragraphs),
                   links=tuple(r for i, r in enumerate(article.links) if i in links))
