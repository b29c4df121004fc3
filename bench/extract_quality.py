#!/usr/bin/env python3
"""Article extraction quality: archiver.page.article vs. trafilatura and readability-lxml.

Two real-page corpora from ../shared/corpus/html/ (see its README):

  readability/*/   source.html + expected.html (the main content readability.js keeps)
                   + expected-metadata.json. Body text is scored per page by token
                   precision / recall / F1 (multiset of lower-cased words of the extracted
                   text vs. the text of expected.html), macro-averaged over pages. Title and
                   byline: exact matches after whitespace/case folding, and loose ones (~:
                   "By" dropped, or one contains the other, e.g. with/without " - Site");
                   published date: the day matches publishedTime.
  trafilatura/     pages with evaldata.json: snippets the main text must contain ("with")
                   and must not contain ("without"). As in trafilatura's own evaluation:
                   tp = with-snippets found, fn = missed, fp = without-snippets present,
                   tn = correctly absent; precision, recall, F1 and accuracy over all pages.

Every approach sees the same bytes and URL and is timed (median ms per page, one run,
so only a rough guide: bench/extract_cost.py measures archiver's cost properly).
trafilatura runs with include_comments=False and with_metadata=True (as archiver always
extracts metadata), in its default mode and its fast / favor_precision / favor_recall
modes. What the expected texts contain is the other tools' choice: readability keeps
figure captions and leaves standfirsts out; trafilatura's snippets want standfirsts
and comments in, captions out. archiver keeps standfirsts and captions, drops comments.
Peers are optional: an approach whose library is not installed is skipped with a note
(pip install trafilatura readability-lxml).

Usage: python bench/extract_quality.py [--corpus ../shared/corpus] [--only NAME,...] [--pages]
Results: tables on stdout, JSON in bench/results/extract_quality-<UTC stamp>.json.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import re
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import lxml.html

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, environment, table, write_results  # noqa: E402

from archiver.page.article import EXTRACTOR_VERSION, extract_article  # noqa: E402
from archiver.config import DEFAULT_CTA_TEXTS  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
READABILITY_URL = "http://fakehost/test/page.html"  # the URL readability's own tests use
WORD = re.compile(r"\w+", re.UNICODE)
BLOCKS = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
          "pre", "table", "tr", "td", "th", "section", "article", "figure", "figcaption", "dd", "dt"}


@dataclass
class Extracted:
    text: str
    title: str = ""
    byline: str = ""
    published: str = ""


# ---- approaches -------------------------------------------------------------------------

def run_archiver(html: bytes, url: str) -> Extracted:
    a = extract_article(html, url, cta_texts=tuple(DEFAULT_CTA_TEXTS))
    return Extracted("\n".join(a.paragraphs), a.title, a.byline, a.published)


def run_trafilatura(html: bytes, url: str, **options) -> Extracted:
    import trafilatura
    doc = trafilatura.bare_extraction(html, url=url, include_comments=False, with_metadata=True, **options)
    if doc is None:
        return Extracted("")
    fields = doc if isinstance(doc, dict) else doc.as_dict()
    return Extracted(*(fields.get(k) or "" for k in ("text", "title", "author", "date")))


def run_readability(html: bytes, url: str) -> Extracted:
    from readability import Document
    doc = Document(html, url=url)
    return Extracted(html_text(doc.summary(html_partial=True)), doc.short_title())


@dataclass(frozen=True)
class Approach:
    run: Callable[[bytes, str], Extracted]
    dist: str = ""  # the PyPI distribution it needs ("" = this repo)
    module: str = ""


TRAFILATURA = {"dist": "trafilatura", "module": "trafilatura"}
APPROACHES: dict[str, Approach] = {
    "archiver": Approach(run_archiver),
    "trafilatura": Approach(run_trafilatura, **TRAFILATURA),
    "trafilatura-fast": Approach(lambda h, u: run_trafilatura(h, u, fast=True), **TRAFILATURA),
    "trafilatura-precision": Approach(lambda h, u: run_trafilatura(h, u, favor_precision=True), **TRAFILATURA),
    "trafilatura-recall": Approach(lambda h, u: run_trafilatura(h, u, favor_recall=True), **TRAFILATURA),
    "readability-lxml": Approach(run_readability, "readability-lxml", "readability"),
}


def missing(approach: Approach) -> str:
    """'' if the approach can run, else what to install."""
    if not approach.module:
        return ""
    try:
        importlib.import_module(approach.module)
    except ImportError:
        return f"pip install {approach.dist}"
    return ""


def version_of(approach: Approach) -> str:
    if not approach.dist:
        return f"archiver/{EXTRACTOR_VERSION}"
    try:
        return importlib.metadata.version(approach.dist)
    except importlib.metadata.PackageNotFoundError:
        return ""


# ---- text and scores --------------------------------------------------------------------

def html_text(html: str) -> str:
    """Text of an HTML fragment, block elements separated by newlines."""
    if not html.strip():
        return ""
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    for el in root.iter("script", "style"):
        el.text = ""
    for el in root.iter():
        if el.tag in BLOCKS:
            el.tail = "\n" + (el.tail or "")
    return root.text_content()


def tokens(text: str) -> Counter:
    return Counter(w.lower() for w in WORD.findall(text))


def prf(got: Counter, want: Counter) -> tuple[float, float, float]:
    common = sum((got & want).values())
    p = common / sum(got.values()) if got else 0.0
    r = common / sum(want.values()) if want else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def folded(s: str | None) -> str:
    return " ".join((s or "").split()).casefold()


def loosely(got: str, want: str | None) -> bool:
    """Equal after dropping a "By"/"Par" prefix and punctuation, or one names the other
    (a title with or without " - Site", a byline with or without a date)."""
    g, w = (re.sub(r"^(?:by|par|von|por)\s+|\W+", " ", folded(x)).strip() for x in (got, want))
    return bool(g) and (g == w or g in w or w in g)


def snippet_counts(text: str, with_: list[str], without: list[str]) -> dict[str, int]:
    """Snippets are matched after whitespace collapsing, as extractors differ in line breaks."""
    flat = " ".join(text.split())
    found = [" ".join(s.split()) in flat for s in with_]
    leaked = [" ".join(s.split()) in flat for s in without]
    return {"tp": sum(found), "fn": len(found) - sum(found), "fp": sum(leaked), "tn": len(leaked) - sum(leaked)}


def snippet_scores(c: dict[str, int]) -> dict[str, float]:
    p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
    r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
    total = sum(c.values())
    return {"with_found": c["tp"] / (c["tp"] + c["fn"]), "without_absent": c["tn"] / (c["tn"] + c["fp"]),
            "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "accuracy": (c["tp"] + c["tn"]) / total if total else 0.0}


# ---- corpora ----------------------------------------------------------------------------

def readability_pages(corpus: Path) -> list[dict]:
    pages = []
    for d in sorted((corpus / "html" / "readability").iterdir()):
        if not (d / "source.html").exists():
            continue
        meta_path = d / "expected-metadata.json"
        pages.append({"name": d.name, "html": (d / "source.html").read_bytes(), "url": READABILITY_URL,
                      "expected": html_text((d / "expected.html").read_text(encoding="utf-8")),
                      "meta": json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}})
    return pages


def trafilatura_pages(corpus: Path) -> list[dict]:
    folder = corpus / "html" / "trafilatura"
    evaldata = json.loads((folder / "evaldata.json").read_text(encoding="utf-8"))
    pages = []
    for url, entry in evaldata.items():
        path = folder / entry["file"]
        if path.exists():
            pages.append({"name": entry["file"], "html": path.read_bytes(),
                          "url": url if url.startswith("http") else "https://example.org/",
                          "with": entry.get("with", []), "without": entry.get("without", [])})
    return sorted(pages, key=lambda p: p["name"])


# ---- runs -------------------------------------------------------------------------------

def timed(fn: Callable[[bytes, str], Extracted], html: bytes, url: str) -> tuple[Extracted, float]:
    start = time.perf_counter()
    out = fn(html, url)
    return out, (time.perf_counter() - start) * 1000


def score_readability(fn: Callable[[bytes, str], Extracted], pages: list[dict]) -> dict:
    rows, ms = [], []
    for page in pages:
        out, t = timed(fn, page["html"], page["url"])
        ms.append(t)
        p, r, f = prf(tokens(out.text), tokens(page["expected"]))
        meta = page["meta"]
        rows.append({"page": page["name"], "precision": p, "recall": r, "f1": f, "ms": t,
                     "title_ok": folded(out.title) == folded(meta.get("title")) if meta.get("title") else None,
                     "byline_ok": folded(out.byline) == folded(meta.get("byline")) if meta.get("byline") else None,
                     "date_ok": out.published[:10] == meta["publishedTime"][:10] if meta.get("publishedTime") else None,
                     "title_loose": loosely(out.title, meta.get("title")) if meta.get("title") else None,
                     "byline_loose": loosely(out.byline, meta.get("byline")) if meta.get("byline") else None,
                     "title": out.title, "byline": out.byline})
    return {"pages": rows, **readability_summary(rows), "median_ms": statistics.median(ms)}


def readability_summary(rows: list[dict]) -> dict:
    return {**{f"{k}_{how}": _share(rows, f"{k}_{'ok' if how == 'exact' else how}")
               for k in ("title", "byline") for how in ("exact", "loose")},
            "date": _share(rows, "date_ok"), **_token_summary(rows)}


def _share(rows: list[dict], key: str) -> str:
    marks = [r[key] for r in rows if r[key] is not None]
    return f"{sum(marks)}/{len(marks)}"


def _token_summary(rows: list[dict]) -> dict:
    return {"precision": statistics.mean(r["precision"] for r in rows),
            "recall": statistics.mean(r["recall"] for r in rows),
            "f1": statistics.mean(r["f1"] for r in rows),
            "f1_min": min(r["f1"] for r in rows)}


def score_snippets(fn: Callable[[bytes, str], Extracted], pages: list[dict]) -> dict:
    total = Counter({"tp": 0, "fn": 0, "fp": 0, "tn": 0})
    rows, ms = [], []
    for page in pages:
        out, t = timed(fn, page["html"], page["url"])
        ms.append(t)
        c = snippet_counts(out.text, page["with"], page["without"])
        total.update(c)
        rows.append({"page": page["name"], **c, "ms": t})
    return {"pages": rows, "counts": dict(total), **snippet_scores(dict(total)), "median_ms": statistics.median(ms)}


def report(results: dict) -> str:
    rows_r = [[n, f"{r['readability']['precision']:.3f}", f"{r['readability']['recall']:.3f}",
               f"{r['readability']['f1']:.3f}", f"{r['readability']['f1_min']:.3f}",
               r["readability"]["title_exact"], r["readability"]["title_loose"],
               r["readability"]["byline_exact"], r["readability"]["byline_loose"], r["readability"]["date"],
               f"{r['readability']['median_ms']:.1f}"] for n, r in results.items()]
    rows_t = [[n, f"{r['trafilatura']['with_found']:.3f}", f"{r['trafilatura']['without_absent']:.3f}",
               f"{r['trafilatura']['precision']:.3f}", f"{r['trafilatura']['recall']:.3f}",
               f"{r['trafilatura']['f1']:.3f}", f"{r['trafilatura']['accuracy']:.3f}",
               f"{r['trafilatura']['median_ms']:.1f}"] for n, r in results.items()]
    return "\n".join([
        "readability corpus: body token P/R/F1 (macro over pages); title and byline matches, exact and loose"
        " (~); published date (day) matches",
        table(rows_r, ["approach", "P", "R", "F1", "F1 min", "title", "~title", "byline", "~byline", "date",
                       "ms med"]), "",
        "trafilatura evaldata: snippet scores over all pages",
        table(rows_t, ["approach", "with found", "without absent", "P", "R", "F1", "acc", "ms med"])])


def page_table(results: dict, corpus: str, key: str) -> str:
    names = list(results)
    pages = [p["page"] for p in results[names[0]][corpus]["pages"]]
    rows = [[page] + [f"{results[n][corpus]['pages'][i][key]:.2f}" for n in names] for i, page in enumerate(pages)]
    return table(rows, [f"{corpus} {key}"] + names)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--only", default="", help="comma-separated approach names")
    p.add_argument("--pages", action="store_true", help="also print per-page F1 / snippet misses")
    args = p.parse_args()
    names = [n for n in APPROACHES if not args.only or n in args.only.split(",")]
    rpages, tpages = readability_pages(args.corpus), trafilatura_pages(args.corpus)
    results, skipped = {}, {}
    for name in names:
        approach = APPROACHES[name]
        if missing(approach):
            skipped[name] = missing(approach)
            continue
        results[name] = {"version": version_of(approach), "readability": score_readability(approach.run, rpages),
                         "trafilatura": score_snippets(approach.run, tpages)}
    print(report(results))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    if args.pages:
        print("\n" + page_table(results, "readability", "f1"))
        print("\n" + page_table(results, "trafilatura", "fn") + "\n\n" + page_table(results, "trafilatura", "fp"))
    path = write_results("extract_quality", {"environment": environment(), "corpus": str(args.corpus),
                                             "readability_pages": len(rpages), "trafilatura_pages": len(tpages),
                                             "skipped": skipped, "results": results})
    print(f"\nresults: {path.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
