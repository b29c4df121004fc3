"""How long parsing HTML takes: lxml directly (what archiver does) against BeautifulSoup.

    pip install beautifulsoup4     # no longer an archiver dependency
    python bench/html_parsers.py   # the pages of ../shared/corpus/html

Prints the best of three passes over every page for each parser, and the ratio.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lxml import etree

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "html"


def best_of(parse, pages: list[bytes], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        for page in pages:
            parse(page)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    try:
        import bs4
    except ImportError:
        sys.exit("pip install beautifulsoup4 first")
    pages = [p.read_bytes() for p in sorted(CORPUS.rglob("*.htm*")) if p.is_file()]
    print(f"{len(pages)} pages, {sum(map(len, pages)) / 1e6:.1f} MB, lxml {etree.__version__}, bs4 {bs4.__version__}")
    parser = etree.HTMLParser()
    base = best_of(lambda page: etree.fromstring(page, parser), pages)
    print(f"lxml etree.HTMLParser        {base:7.3f} s")
    for builder in ("html.parser", "lxml"):
        took = best_of(lambda page: bs4.BeautifulSoup(page, builder), pages)
        print(f"BeautifulSoup({builder!r:13}) {took:7.3f} s  ({took / base:.0f}x)")


if __name__ == "__main__":
    main()
