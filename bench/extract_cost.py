#!/usr/bin/env python3
"""What archiver.page.article.extract_article costs per real page: time and memory.

Every HTML page of ../shared/corpus/html/ (readability/*/source.html, trafilatura/*.html,
inline-related-posts/*.html) is read from disk and handled as a recapture would be: two
renders of the page (the bytes as saved, and a second render differing only by a
per-render comment before </body>, as a re-render would) are each extracted, then an
optional diff step compares the two Articles. Each page is measured --repeat times after
one warm-up; a page's figure is the median of its repeats.

  extract ms   wall time of one extract_article call (perf_counter)
  cpu ms       its CPU time (process_time): less disturbed by other load on the machine
  diff ms      the diff step: --diff module:function, by default archiver.edits.diff:diff_articles
               when that exists ("--diff ''" for none)
  total ms     extract + diff: the cost of checking one recapture against its predecessor

Reported over pages: median, p95 and max. Peak RSS is this process's ru_maxrss after all
pages (the Python interpreter, lxml and the largest page's tree); the RSS before the first
extraction is printed beside it. Pages are read one at a time, so the corpus itself does
not sit in memory.

Usage: python bench/extract_cost.py [--repeat 7] [--diff module:function] [--peers]
Results: a table on stdout, JSON in bench/results/extract_cost-<UTC stamp>.json.
"""

from __future__ import annotations

import argparse
import importlib
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, environment, table, write_results  # noqa: E402

from archiver.page.article import EXTRACTOR_VERSION, Article, extract_article  # noqa: E402
from archiver.config import DEFAULT_CTA_TEXTS  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
CTA = tuple(DEFAULT_CTA_TEXTS)
URL = "https://news.example/2026/article/"

DiffFn = Callable[[Article, Article], Any]


def corpus_pages(corpus: Path) -> list[tuple[str, Path]]:
    html = corpus / "html"
    found = [(f"readability/{p.parent.name}", p) for p in sorted(html.glob("readability/*/source.html"))]
    found += [(f"trafilatura/{p.name}", p) for p in sorted(html.glob("trafilatura/*.html"))]
    found += [(f"inline-related-posts/{p.name}", p) for p in sorted(html.glob("inline-related-posts/*.html"))]
    return found


def second_render(body: bytes, n: int) -> bytes:
    """The page as a later render: the same bytes plus a per-render comment."""
    marker = f"<!-- render {n} at {time.time_ns()} -->".encode()
    at = body.rfind(b"</body>")
    return body[:at] + marker + body[at:] if at >= 0 else body + marker


DEFAULT_DIFF = "archiver.edits.diff:diff_articles"


def load_diff(spec: str) -> DiffFn | None:
    """The diff function spec names; None for no spec, or for the default if it is absent."""
    if not spec:
        return None
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        if spec == DEFAULT_DIFF:
            return None
        raise


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def measure_page(body: bytes, repeat: int, diff: DiffFn | None) -> dict:
    extract_article(body, URL, "text/html", CTA)  # warm-up
    walls, cpus, diffs = [], [], []
    for n in range(repeat):
        other = second_render(body, n)
        a, wall_a, cpu_a = timed(lambda: extract_article(body, URL, "text/html", CTA))
        b, wall_b, cpu_b = timed(lambda: extract_article(other, URL, "text/html", CTA))
        walls += [wall_a, wall_b]
        cpus += [cpu_a, cpu_b]
        if diff is not None:
            diffs.append(timed(lambda: diff(a, b))[1])
    extract_ms = statistics.median(walls)
    diff_ms = statistics.median(diffs) if diffs else 0.0
    return {"bytes": len(body), "extract_ms": extract_ms, "cpu_ms": statistics.median(cpus),
            "diff_ms": diff_ms, "total_ms": extract_ms + diff_ms, "paragraphs": len(a.paragraphs)}


def measure_peer(name: str, body: bytes, repeat: int) -> float:
    from extract_quality import APPROACHES
    fn = APPROACHES[name].run
    fn(body, URL)
    return statistics.median(timed(lambda: fn(body, URL))[1] for _ in range(repeat))


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "p95": quantile(values, 0.95), "max": max(values)}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def report(pages: dict[str, dict], peers: dict[str, list[float]], rss_before: float, rss_after: float) -> str:
    keys = ["extract_ms", "cpu_ms", "diff_ms", "total_ms"]
    groups = {"all pages": list(pages.values())}
    for prefix in ("readability", "trafilatura", "inline-related-posts"):
        groups[prefix] = [v for k, v in pages.items() if k.startswith(prefix + "/")]
    rows = []
    for group, values in groups.items():
        for key in keys:
            s = summary([v[key] for v in values])
            rows.append([f"{group} ({len(values)})", key, f"{s['median']:.2f}", f"{s['p95']:.2f}", f"{s['max']:.2f}"])
    for name, times in peers.items():
        s = summary(times)
        rows.append([f"all pages ({len(times)})", f"{name} ms", f"{s['median']:.2f}", f"{s['p95']:.2f}",
                     f"{s['max']:.2f}"])
    return "\n".join([table(rows, ["pages", "per page", "median", "p95", "max"]), "",
                      f"peak RSS {rss_after:.1f} MB (before the first extraction: {rss_before:.1f} MB)"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--diff", default=DEFAULT_DIFF, help="module:function taking (Article, Article); '' for none")
    p.add_argument("--peers", action="store_true", help="also time trafilatura and readability-lxml per page")
    args = p.parse_args()
    diff = load_diff(args.diff)
    rss_before = rss_mb()
    pages = {name: measure_page(path.read_bytes(), args.repeat, diff) for name, path in corpus_pages(args.corpus)}
    rss_after = rss_mb()
    peers: dict[str, list[float]] = {}
    if args.peers:
        for name in ("trafilatura", "readability-lxml"):
            peers[name] = [measure_peer(name, path.read_bytes(), max(1, args.repeat // 2))
                           for _, path in corpus_pages(args.corpus)]
    print(report(pages, peers, rss_before, rss_after))
    path = write_results("extract_cost", {
        "environment": environment(), "extractor": f"archiver/{EXTRACTOR_VERSION}", "repeat": args.repeat,
        "diff": args.diff if diff else "", "rss_before_mb": rss_before, "peak_rss_mb": rss_after, "pages": pages,
        "summary": {k: summary([v[k] for v in pages.values()]) for k in ("extract_ms", "cpu_ms", "total_ms")},
        "peers_ms": {name: summary(v) for name, v in peers.items()}})
    print(f"\nresults: {path.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
