"""Pure diffing: (Article, Article) -> the editorial changes between them.

Texts are compared after normalisation (Unicode NFC, whitespace, quotes and dashes,
no-break and soft hyphens, relative times and counters), so renders that differ only in
such noise compare equal. The body is compared paragraph by paragraph (a paragraph that
moved is a move), changed paragraphs sentence by sentence, changed sentences word by word.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

import ftfy

from archiver.page.article import Article, Ref

EQUAL, INSERT, DELETE, MOVE = "equal", "insert", "delete", "move"

# Removed, and no-break spaces made plain, before mojibake repair: whether a page used
# them must not change how its text is repaired.
_INVISIBLE = str.maketrans({**{c: None for c in "\u00ad\u200b\u200c\u200d\u2060\ufeff"},
                            **{c: " " for c in "\u00a0\u202f\u2007"}})
_TRANSLATE = str.maketrans({
    "\u00a0": " ", "\u202f": " ", "\u2007": " ", "\u2009": " ", "\u200a": " ", "\u3000": " ",
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u2026": "...",
})
# Per-render noise inside text: "5 minutes ago", "1,234 views".
_RELATIVE_TIME = re.compile(r"\b(?:about |an? |\d+ )(?:second|minute|hour|day|week|month|year)s? ago\b|\bjust now\b", re.I)
_COUNTER = re.compile(r"\b\d[\d,.\s]*[km]?\s*(?:views?|shares?|comments?|reads?|likes?|visits?)\b", re.I)
_MOJIBAKE_HINT = re.compile("[\u00c2\u00c3\u00c5\u00ce\u00d0\u00d8\u00d9\u00e0\u00e2\u00e3][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u203a\u20ac\u2122]")
_DIGIT = re.compile(r"\d")
_WORD_CHAR = re.compile(r"[^\W_]")
_LONE_A_CIRCUMFLEX = re.compile(r"\u00c2(?=\s|$)")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=[\"'(\[]?[A-ZÀ-ÖØ-ÞА-ЯЁ0-9])")


def normalize(text: str) -> str:
    if text.isascii():  # every step below leaves ASCII as it is but the spacing: a quarter of the cost
        return " ".join(text.split())
    text = text.translate(_INVISIBLE)
    if _MOJIBAKE_HINT.search(text):
        text = ftfy.fix_encoding(text)  # UTF-8 read as Latin-1/cp1252 somewhere upstream
    # A no-break space read that way is "Â" + space once whitespace is collapsed; a real
    # "Â" starts a word.
    text = _LONE_A_CIRCUMFLEX.sub("", text)
    text = unicodedata.normalize("NFC", text).translate(_TRANSLATE)
    return " ".join(text.split())


def normalized_paragraphs(paragraphs: Iterable[str]) -> tuple[str, ...]:
    """Normalised paragraphs, without those that are only noise once normalised."""
    out = (normalize(p) for p in paragraphs)
    return tuple(p for p in out if p and not _is_noise(p))


def _is_noise(paragraph: str) -> bool:
    """Empty of words, or a short line around a relative time or counter ("Updated 5
    minutes ago", "1,234 views"). Inside prose, times and counts are editorial."""
    if not _may_hold_time_or_counter(paragraph):  # most paragraphs: decided at a third of the cost
        return not _WORD_CHAR.search(paragraph)
    masked = _COUNTER.sub("<count>", _RELATIVE_TIME.sub("<time>", paragraph))
    rest = re.sub(r"<time>|<count>|[\W_]+", " ", masked).split()
    return not rest or (("<time>" in masked or "<count>" in masked) and len(rest) <= 3)


def _may_hold_time_or_counter(paragraph: str) -> bool:
    """What _RELATIVE_TIME or _COUNTER (or the masks _is_noise puts in their place) need
    to match; substring tests are much cheaper than either."""
    if _DIGIT.search(paragraph):
        return True
    low = paragraph.casefold()  # as re.IGNORECASE compares: "juſt now" matches
    return "ago" in low or "just now" in low or "<time>" in low or "<count>" in low


@dataclass(frozen=True)
class Change:
    kind: str  # title | byline | published | modified | body | links | cross_refs | gone | restored | redirected
    before: str
    after: str


@dataclass(frozen=True)
class BodyOp:
    op: str  # equal | insert | delete | move
    text: str
    paragraph: int  # index in the newer version (in the older one for deletes)


def diff_articles(old: Article, new: Article, fixed_refs: tuple[tuple[Ref, ...], tuple[Ref, ...]] | None = None
                  ) -> tuple[list[Change], list[BodyOp]]:
    """Field and body changes from old to new. fixed_refs, when given, are the fixed READ
    targets before and after; rotating READ targets are never compared here."""
    changes = [Change(kind, b, a) for kind, b, a in (
        ("title", old.title, new.title), ("byline", old.byline, new.byline),
        ("published", old.published, new.published), ("modified", old.modified, new.modified))
        if normalize(b) != normalize(a)]
    ops, body = diff_body(old.paragraphs, new.paragraphs)
    changes += body
    changes += ref_changes("links", old.links, new.links)
    if fixed_refs is not None:
        changes += ref_changes("cross_refs", *fixed_refs)
    return changes, ops


# ---- body ------------------------------------------------------------------------------

def diff_body(old: Iterable[str], new: Iterable[str]) -> tuple[list[BodyOp], list[Change]]:
    """Body ops for display and one body Change per changed passage (whole sentences)."""
    a, b = normalized_paragraphs(old), normalized_paragraphs(new)
    opcodes = _matcher(a, b).get_opcodes()
    unmatched_a = {a[i] for tag, i1, i2, _, _ in opcodes if tag != EQUAL for i in range(i1, i2)}
    unmatched_b = {b[j] for tag, _, _, j1, j2 in opcodes if tag != EQUAL for j in range(j1, j2)}
    moved = unmatched_a & unmatched_b
    ops: list[BodyOp] = []
    changes: list[Change] = []
    for tag, i1, i2, j1, j2 in opcodes:
        if tag == EQUAL:
            ops += [BodyOp(EQUAL, b[j], j) for j in range(j1, j2)]
            continue
        gone = [a[i] for i in range(i1, i2) if a[i] not in moved]
        came = [(j, b[j]) for j in range(j1, j2) if b[j] not in moved]
        _changed_block(gone, came, j1, ops, changes)
        for j in range(j1, j2):
            if b[j] in moved:
                ops.append(BodyOp(MOVE, b[j], j))
                changes.append(Change("body", f"(moved) {b[j]}", f"(moved to paragraph {j + 1}) {b[j]}"))
    return sorted(ops, key=lambda op: op.paragraph), changes


def _changed_block(gone: list[str], came: list[tuple[int, str]], at: int,
                   ops: list[BodyOp], changes: list[Change]) -> None:
    """Paragraphs replaced in place: compared sentence by sentence, then word by word."""
    old_sentences = [s for p in gone for s in split_sentences(p)]
    new_sentences = [s for _, p in came for s in split_sentences(p)]
    paragraph = came[0][0] if came else at
    for tag, i1, i2, j1, j2 in _matcher(old_sentences, new_sentences).get_opcodes():
        before, after = " ".join(old_sentences[i1:i2]), " ".join(new_sentences[j1:j2])
        if tag == EQUAL:
            ops.append(BodyOp(EQUAL, after, paragraph))
            continue
        changes.append(Change("body", before, after))
        if tag == DELETE:
            ops.append(BodyOp(DELETE, before, paragraph))
        elif tag == INSERT:
            ops.append(BodyOp(INSERT, after, paragraph))
        else:
            ops += [BodyOp(op, text, paragraph) for op, text in diff_words(before, after)]


def split_sentences(paragraph: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(paragraph) if s]


def _matcher(a: Sequence[str], b: Sequence[str]) -> difflib.SequenceMatcher:
    return difflib.SequenceMatcher(None, a, b, autojunk=False)


def diff_words(before: str, after: str) -> list[tuple[str, str]]:
    a, b = before.split(), after.split()
    out: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in _matcher(a, b).get_opcodes():
        if tag == EQUAL:
            out.append((EQUAL, " ".join(b[j1:j2])))
            continue
        if i2 > i1:
            out.append((DELETE, " ".join(a[i1:i2])))
        if j2 > j1:
            out.append((INSERT, " ".join(b[j1:j2])))
    return out


# ---- links and cross-references --------------------------------------------------------

def ref_changes(kind: str, old: Iterable[Ref], new: Iterable[Ref]) -> list[Change]:
    """Links removed, added, and replaced: an editorial link retargeted keeps its anchor
    text; a READ target swapped for another is paired with it in page order."""
    old_keys = [(r.url, normalize(r.text)) for r in old]
    new_keys = [(r.url, normalize(r.text)) for r in new]
    removed = [k for k in old_keys if k not in new_keys]
    added = [k for k in new_keys if k not in old_keys]
    pairs = _paired(removed, added, by_text=(kind == "links"))
    changes = [Change(kind, _ref_text(r), _ref_text(a)) for r, a in pairs]
    paired_removed, paired_added = {r for r, _ in pairs}, {a for _, a in pairs}
    changes += [Change(kind, _ref_text(r), "") for r in removed if r not in paired_removed]
    changes += [Change(kind, "", _ref_text(a)) for a in added if a not in paired_added]
    return changes


def _paired(removed: list[tuple[str, str]], added: list[tuple[str, str]], by_text: bool):
    if not by_text:
        return list(zip(removed, added))
    added_by_text = {text: (url, text) for url, text in added}
    return [(r, added_by_text[r[1]]) for r in removed if r[1] and r[1] in added_by_text]


def _ref_text(key: tuple[str, str]) -> str:
    url, text = key
    return f"{text} -> {url}"


def content_key(article: Article, fixed_refs: tuple[Ref, ...] | None) -> tuple:
    """What makes two captures the same version: normalised editorial content."""
    return (normalize(article.title), normalize(article.byline), normalize(article.published),
            normalized_paragraphs(article.paragraphs),
            tuple(sorted({(r.url, normalize(r.text)) for r in article.links})),
            None if fixed_refs is None else ref_targets(fixed_refs))


# Bump when normalize() or content_key() change what they return: digests stored with
# another version are then recomputed from the article instead of trusted.
KEY_VERSION = 1


def content_digest(article: Article) -> str:
    """content_key(article, None) in one string, to store beside an observation: a
    tracked URL's history is rebuilt from all its observations on every capture, and
    normalising every old article again cost 3 ms each."""
    return _digest_prefix() + hashlib.sha256(repr(content_key(article, None)).encode()).hexdigest()


def is_current_digest(digest: str) -> bool:
    return digest.startswith(_digest_prefix())


@functools.cache
def _digest_prefix() -> str:
    """What decides normalize()'s output besides this file: KEY_VERSION, the Unicode
    tables (NFC) and ftfy (mojibake repair). An upgrade of either makes stored digests stale."""
    return f"v{KEY_VERSION}/unicode-{unicodedata.unidata_version}/ftfy-{ftfy.__version__}:"


def ref_targets(refs: Iterable[Ref]) -> tuple[str, ...]:
    return tuple(sorted({r.url for r in refs}))
