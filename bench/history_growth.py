#!/usr/bin/env python3
"""What rebuilding a tracked URL's history costs as its observations pile up.

Every capture of a tracked URL ends in edits/observe.update_history, which reads all of the
URL's observations from the catalog and folds them into versions again. At `every=6h`, a
URL has 1,460 observations after a year. This benchmark fills a real catalog with the
observations of one tracked URL (the article extracted from a real page of
../shared/corpus/html/inline-related-posts/, its READ targets rotating on every capture
as that plugin's do) and times update_history at each checkpoint, twice:

  stored digests   observations as they are after earlier updates: each with its
                   content_digest, worked out by the update that first needed it
  no digests       the same observations without one, as in a catalog written before
                   digests were stored (or after diff.KEY_VERSION changed): every
                   article is normalised again (the update then stores the digests,
                   so they are cleared before each timed update)

Each figure is the median of --repeat updates.

Usage: python bench/history_growth.py [--observations 10,100,500,1460] [--repeat 3]
Results: a table on stdout, JSON in bench/results/history_growth-<UTC stamp>.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, environment, table, write_results  # noqa: E402

from archiver.page.article import Ref, extract_article  # noqa: E402
from archiver.catalog import Catalog, CaptureRow  # noqa: E402
from archiver.edits.observe import record_observation, update_history  # noqa: E402

PAGE_DIR = REPO.parent / "shared" / "corpus" / "html" / "inline-related-posts"
URL = "https://news.example/the-article/"


def fill(catalog: Catalog, article, start: int, end: int) -> None:
    for n in range(start, end):
        seconds = n * 6 * 3600
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_767_225_600 + seconds)) + ".000000Z"
        row = CaptureRow(URL, URL, "seed", "", 0, f"snapshot-{n}", 0, stamp, 200, "response",
                         "bench.warc.gz", n * 1000, 1000, 0)
        capture_id = catalog.captures.add_many([(row, [])])[0]
        rotated = replace(article, read_refs=(Ref(f"https://news.example/related-{n % 7}/", "Related"),))
        record_observation(catalog, capture_id, URL, URL, "", rotated)


def timed_updates(catalog: Catalog, repeat: int, clear_digests: bool) -> float:
    update_history(catalog, URL)  # stores the digests of the observations just added
    times = []
    for _ in range(repeat):
        if clear_digests:
            catalog.db.execute("UPDATE observations SET content_digest = NULL")
        start = time.perf_counter()
        update_history(catalog, URL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def stores_digests(catalog: Catalog) -> bool:
    """False for archiver up to e28b611, which stored no digests
    (run this file with PYTHONPATH set to an older checkout to measure it)."""
    return any(row[1] == "content_digest" for row in catalog.db.execute("PRAGMA table_info(observations)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--observations", default="10,100,500,1460",
                        help="checkpoints: observation counts at which updates are timed")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    checkpoints = sorted(int(n) for n in args.observations.split(","))
    page = sorted(PAGE_DIR.glob("*.html"))[0]
    article = extract_article(page.read_bytes(), URL, "text/html", ("READ",))
    rows = []
    with tempfile.TemporaryDirectory(prefix="history-growth-") as tmp:
        catalogs = {kind: Catalog(Path(tmp) / f"{kind}.sqlite") for kind in ("stored", "none")}
        has_digests = stores_digests(catalogs["stored"])
        if not has_digests:
            print("this archiver stores no content digests: one column, without them", file=sys.stderr)
            del catalogs["stored"]
        have = 0
        for count in checkpoints:
            for catalog in catalogs.values():
                fill(catalog, article, have, count)
            have = count
            ms = {k: round(timed_updates(c, args.repeat, k == "none" and has_digests) * 1000, 1)
                  for k, c in catalogs.items()}
            rows.append({"observations": count, "stored_digests_ms": ms.get("stored"), "no_digests_ms": ms["none"]})
            print(f"{count} observations: {ms.get('stored', '-')} ms with stored digests, {ms['none']} ms without",
                  file=sys.stderr)
        for catalog in catalogs.values():
            catalog.close()
    print(table([[r["observations"], r["stored_digests_ms"] or "-", r["no_digests_ms"],
                  f"{r['no_digests_ms'] / r['stored_digests_ms']:.1f}x" if r["stored_digests_ms"] else "-"]
                 for r in rows],
                ["observations", "update ms, stored digests", "update ms, no digests", "ratio"]))
    path = write_results("history_growth", {"environment": environment(), "archiver": str(Path(
        sys.modules["archiver"].__file__).parent), "page": page.name, "repeat": args.repeat, "rows": rows})
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
