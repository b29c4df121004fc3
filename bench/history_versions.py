#!/usr/bin/env python3
"""What building the history of an article with many versions costs (the web interface's
first change page, and every capture's history update, pay it): N observations, each a
new version of the same article (one figure changes), with stored content digests.

    python bench/history_versions.py [--versions 1000] [--repeat 3]
    PYTHONPATH=OLD_TREE python bench/history_versions.py   # another tree's archiver
"""

from __future__ import annotations

import argparse
import statistics
import time

from archiver.edits.diff import content_digest
from archiver.edits.history import CaptureRef, Observation, build_history
from archiver.page.article import Article

PARAGRAPHS = [f"Paragraph {i} of the article about the harbour budget, with enough words to count." for i in range(7)]


def observations(count: int) -> list[Observation]:
    found = []
    for n in range(count):
        paragraphs = (*PARAGRAPHS, f"The figure is now {n} million.")
        article = Article(url="http://a.test/x", canonical_url="", title="Harbour budget", byline="", published="",
                          modified="", paragraphs=paragraphs, blocks=("p",) * len(paragraphs), links=(),
                          read_refs=(), extractor="archiver")
        found.append(Observation(CaptureRef("a.warc.gz", n, f"2026-01-01T00:00:{n:04d}Z"), 200, "http://a.test/x",
                                 article, digest=content_digest(article)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    made = observations(args.versions)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        history = build_history(made)
        times.append(time.perf_counter() - start)
    print(f"{len(history.versions)} versions: history built in {statistics.median(times) * 1000:.0f} ms "
          f"(median of {args.repeat})")


if __name__ == "__main__":
    main()
