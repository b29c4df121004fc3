#!/usr/bin/env python3
"""archiver snapshot vs. wget --warc-file on the same generated loopback site, side by side.

The site: an index page linking N articles (default 200). Each article has a header nav
link, an ``entry-content`` body of several paragraphs with two READ boxes in the Inline
Related Posts markup pointing at other articles, a sidebar, and requisites: two
stylesheets (one shared with url() to a font and an image, one per article with url() to
a per-article image), two scripts (one shared, one per article), an icon (shared) and a
per-article photo with a srcset of two more sizes. So per article: 1 page + 6 per-article
requisites; 5 shared requisites for the whole site.

Served by nginx (Debian package) from a subprocess on 127.0.0.1, or by Python's
``http.server`` if nginx is not installed (the output says which).

Per run, both tools capture the same site into a fresh folder:
  archiver  python -m archiver --config ROOT/config.toml snapshot --quiet ARTICLE_URL...
            (depth 1, follow read+body, requisites on, per_host_delay 0, concurrency C)
  wget      wget --recursive --level=1 --page-requisites -e robots=off --warc-file=...
            starting from the index page (level 0 = index, level 1 = articles; READ
            targets are articles, so level 1 already holds them).

Before the runs, the archiver package under test is compiled to bytecode (compileall), as
pip does when it installs a package; without it, a machine with PYTHONDONTWRITEBYTECODE=1
compiles every module from source at each start.

Measured per tool: wall time, articles/s, URLs/s, CPU seconds (user+sys of the child,
from os.wait4), CPU ms per article, peak RSS (ru_maxrss), CPU used by the server during
the run, and from the WARC files: distinct response URLs, their HTTP statuses and
payload SHA-1s. The URL sets are compared after dropping what only wget fetches by
design (the index page it starts from; robots.txt if robots were on). Before each tool's
run, how long creating an empty file takes in the work folder (file_create_us): the
file system's state, which weighs on wget (a file per URL) far more than on archiver.

Usage: python bench/capture_vs_wget.py [--articles 200] [--runs 3] [--concurrency 8]
Results: a table on stdout and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import (REPO, StaticServer, environment, file_create_us, run_measured, scratch, stop_on_sigterm,  # noqa: E402
                   system_busy_s, table, write_results)

# ---- the generated site -----------------------------------------------------------------

# Filler vocabulary written for this benchmark (no third-party text).
WORDS = ("council harbour ministry budget railway valley committee report hearing minister "
         "delegation treaty district archive ledger survey tender contract border customs "
         "pipeline airfield garrison cooperative municipal provincial regional quarterly annual "
         "spokesperson auditor inspector engineer farmer teacher court appeal ruling statement "
         "agreement amendment proposal reserve fund grant loan bridge tunnel station depot "
         "warehouse factory market festival museum library bulletin broadcast evening morning "
         "northern southern eastern western river coast plateau forest quarry mill dockyard "
         "opened closed signed delayed approved rejected announced confirmed denied published "
         "reviewed extended reduced increased visited inspected questioned welcomed postponed").split()


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(9, 22))]
    return " ".join(words).capitalize() + "."


def paragraph(rng: random.Random, n: int) -> str:
    return " ".join(sentence(rng) for _ in range(n))


def title_of(n: int) -> str:
    rng = random.Random(f"title-{n}")
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 7))).title() + f" ({n})"


def article_path(n: int) -> str:
    """Where article n is linked from other pages: root-relative on a one-host site."""
    return f"/articles/{n}/"


def read_box(n: int, cls: str, href: Callable[[int], str] = article_path) -> str:
    return (f'<div style="clear:both; margin-top:0em; margin-bottom:1em;"><a href="{href(n)}" '
            f'target="_blank" rel="nofollow" class="{cls}"><div style="padding-left:1em; padding-right:1em;">'
            f'<span class="ctaText">READ</span>&nbsp; <span class="postTitle">{title_of(n)}</span></div></a></div>')


def read_targets(n: int, total: int) -> tuple[int, int]:
    return n % total + 1, (n + total // 2 + 6) % total + 1


def article_html(n: int, total: int, paragraphs: int, href: Callable[[int], str] = article_path) -> str:
    rng = random.Random(f"article-{n}")
    paras = [f"<p>{paragraph(rng, rng.randint(3, 6))}</p>" for _ in range(paragraphs)]
    a, b = read_targets(n, total)
    cls = f"u{n:03x}a"
    third = max(1, paragraphs // 3)
    body = ("".join(paras[:third]) + read_box(a, cls, href) + "".join(paras[third:2 * third])
            + f'<figure><img src="/media/{n}/photo.jpg" srcset="/media/{n}/photo-640.jpg 640w, '
              f'/media/{n}/photo-1280.jpg 1280w" sizes="(max-width: 700px) 640px, 1280px" alt="Photo {n}">'
              f'<figcaption>{sentence(rng)}</figcaption></figure>'
            + "".join(paras[2 * third:-1]) + read_box(b, cls, href) + paras[-1])
    trending = "".join(f'<li><a href="{href(k)}">{title_of(k)}</a></li>' for k in (1, 2, 3))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title_of(n)} | Loopback Ledger</title>
<link rel="stylesheet" href="/static/site.css">
<link rel="stylesheet" href="/media/{n}/article.css">
<link rel="icon" href="/favicon.ico">
<script src="/static/app.js"></script>
<script src="/media/{n}/gallery.js" defer></script>
</head><body>
<header><nav><a href="/">Home</a></nav></header>
<main><article><h1>{title_of(n)}</h1><p class="byline">By the newsroom</p>
<div class="entry-content">{body}</div></article></main>
<aside class="sidebar"><h3>Trending</h3><ul>{trending}</ul></aside>
<footer>Loopback Ledger, a generated benchmark site.</footer></body></html>
"""


def index_html(articles: Iterable[int]) -> str:
    items = "".join(f'<li><a href="/articles/{n}/">{title_of(n)}</a></li>' for n in articles)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Loopback Ledger</title>'
            f'</head><body><h1>Loopback Ledger</h1><ul>{items}</ul></body></html>\n')


def fake_binary(magic: bytes, size: int, seed: str) -> bytes:
    """Incompressible bytes behind a file signature: stands in for a real image or font."""
    return magic + random.Random(seed).randbytes(size - len(magic))


PNG, JPEG, WOFF2, ICO = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", b"wOF2", b"\x00\x00\x01\x00"


def site_files(articles: Iterable[int], total: int, paragraphs: int,
               href: Callable[[int], str] = article_path) -> dict[str, bytes]:
    """Path -> bytes of a site holding ``articles`` (of ``total``, which READ boxes point
    into), its index page and the shared requisites; ``href`` links one article to another."""
    articles = list(articles)
    files: dict[str, bytes] = {
        "/index.html": index_html(articles).encode(),
        "/static/site.css": (b'@font-face { font-family: Ledger; src: url("/static/ledger.woff2") format("woff2"); }\n'
                             b"body { font-family: Ledger, serif; background: url(/static/paper.png); margin: 0 auto; "
                             b"max-width: 46em; }\n.entry-content p { line-height: 1.5; }\n"),
        "/static/app.js": b"document.documentElement.className = 'js';\n" * 40,
        "/static/ledger.woff2": fake_binary(WOFF2, 24_000, "font"),
        "/static/paper.png": fake_binary(PNG, 6_000, "paper"),
        "/favicon.ico": fake_binary(ICO, 1_150, "icon"),
    }
    for n in articles:
        files[f"/articles/{n}/index.html"] = article_html(n, total, paragraphs, href).encode()
        files[f"/media/{n}/article.css"] = (f".entry-content figure {{ background: url(bg.png) repeat-x; }}\n"
                                            f"h1::after {{ content: ' #{n}'; }}\n").encode()
        files[f"/media/{n}/gallery.js"] = (f"window.gallery{n} = " + json.dumps(
            [f"/media/{n}/photo-{w}.jpg" for w in (320, 640, 1280)] * 20) + ";\n").encode()
        files[f"/media/{n}/bg.png"] = fake_binary(PNG, 4_000, f"bg-{n}")
        files[f"/media/{n}/photo.jpg"] = fake_binary(JPEG, 30_000, f"photo-{n}")
        files[f"/media/{n}/photo-640.jpg"] = fake_binary(JPEG, 15_000, f"photo640-{n}")
        files[f"/media/{n}/photo-1280.jpg"] = fake_binary(JPEG, 60_000, f"photo1280-{n}")
    return files


def build_site(root: Path, total: int, paragraphs: int) -> dict:
    """Write the site; return counts and the set of URL paths a faithful capture holds."""
    files = site_files(range(1, total + 1), total, paragraphs)
    for path, data in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    expected = {p.removesuffix("index.html") for p in files if p != "/index.html"}
    page_bytes = sum(len(d) for p, d in files.items() if p.startswith("/articles/"))
    return {"articles": total, "files": len(files), "bytes": sum(len(d) for d in files.values()),
            "article_page_bytes_avg": page_bytes // total, "expected_paths": sorted(expected)}


# ---- reading WARCs ----------------------------------------------------------------------

def warc_responses(paths: list[Path]) -> dict:
    """Per distinct response URL: HTTP status and payload SHA-1; plus record counts."""
    urls: dict[str, dict] = {}
    types: dict[str, int] = {}
    duplicates = 0
    for path in paths:
        with open(path, "rb") as f:
            for record in ArchiveIterator(f):
                types[record.rec_type] = types.get(record.rec_type, 0) + 1
                if record.rec_type not in ("response", "revisit"):
                    continue
                url = record.rec_headers.get_header("WARC-Target-URI")
                h = hashlib.sha1()
                stream = record.raw_stream  # the HTTP payload as received (no content decoding)
                while chunk := stream.read(1 << 16):
                    h.update(chunk)
                status = int(record.http_headers.get_statuscode()) if record.http_headers else None
                if url in urls:
                    duplicates += 1
                urls[url] = {"status": status, "sha1": h.hexdigest(), "type": record.rec_type}
    return {"urls": urls, "record_types": types, "duplicate_responses": duplicates,
            "warc_bytes": sum(p.stat().st_size for p in paths)}


def path_of(url: str, base: str) -> str:
    return url[len(base):] if url.startswith(base) else url


# ---- the two tools ----------------------------------------------------------------------

def archiver_env(args: argparse.Namespace) -> dict:
    """The environment for archiver: with --archiver-src, that tree comes first on sys.path."""
    env = dict(os.environ)
    if args.archiver_src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(args.archiver_src), env.get("PYTHONPATH", "")]))
    return env


def run_archiver(work: Path, base: str, total: int, args: argparse.Namespace) -> dict:
    seeds = [f"{base}/articles/{n}/" for n in range(1, total + 1)]
    return run_snapshot(work / "archiver", seeds, {
        "per_host_delay": "0.0", "concurrency": str(args.concurrency),
        "per_host_concurrency": str(args.concurrency), "timeout": "15.0", "depth": "1"}, args)


def run_snapshot(root: Path, seeds: list[str], overrides: dict[str, str], args: argparse.Namespace) -> dict:
    """A new archive in root (config.toml with ``overrides``), then one measured
    ``archiver snapshot`` of ``seeds`` (killed after ``args.timeout`` seconds)."""
    from archiver.archive.workdir import init_archive

    init_archive(root, overrides=overrides)
    cmd = [sys.executable, "-m", "archiver", "--config", str(root / "config.toml"), "snapshot", "--quiet", *seeds]
    with open(root / "stdout.txt", "wb") as out, open(root / "stderr.txt", "wb") as err:
        # cwd is the archive folder, not the repo: `python -m` puts the cwd first on sys.path.
        m = run_measured(cmd, timeout=args.timeout, cwd=root, env=archiver_env(args), stdout=out, stderr=err)
    return {"measured": m, "warcs": sorted((root / "warcs").glob("*.warc.gz")),
            "log": (root / "stderr.txt").read_text(errors="replace")[-2000:]}


def run_wget(root: Path, start_urls: list[str], args: argparse.Namespace, options: tuple[str, ...] = ()) -> dict:
    """One measured recursive wget (level 1, requisites, WARC) from ``start_urls``, in root;
    ``options`` go before the URLs (e.g. --wait=1)."""
    (root / "files").mkdir(parents=True)
    cmd = ["wget", "--recursive", "--level=1", "--page-requisites", "-e", "robots=off",
           "--no-verbose", "-o", str(root / "wget.log"), "--directory-prefix", str(root / "files"),
           "--warc-file", str(root / "wget"), "--warc-tempdir", str(root), "--no-warc-keep-log",
           "--timeout=15", "--tries=1", *options]
    if args.wget_cdx:
        cmd.append("--warc-cdx")
    cmd += start_urls
    m = run_measured(cmd, timeout=args.timeout, cwd=root)
    return {"measured": m, "warcs": sorted(root.glob("*.warc.gz")),
            "log": (root / "wget.log").read_text(errors="replace")[-2000:]}


def one_run(run: int, order: list[str], server: StaticServer, work: Path, site: dict,
            args: argparse.Namespace) -> dict:
    total = site["articles"]
    out: dict = {"run": run, "order": order}
    for tool in order:
        tool_dir = work / f"run{run}"
        tool_dir.mkdir(exist_ok=True)
        # Neither tool pays for writing back the other's (or the site's) dirty pages. Earlier
        # runs' files stay until the end: deleting them here made the file system (ext4
        # with online discard) several times slower for the runs that followed.
        os.sync()
        create_us = file_create_us(tool_dir)
        os.sync()
        cpu0, busy0, load0 = server.cpu_s(), system_busy_s(), os.getloadavg()[0]
        if tool == "archiver":
            res = run_archiver(tool_dir, server.base, total, args)
        else:
            res = run_wget(tool_dir / "wget", [f"{server.base}/"], args)
        server_cpu = server.cpu_s() - cpu0
        m = res["measured"]
        # Busy CPU on the whole machine during the run that was neither the tool nor the
        # server: the benchmark itself (idle while waiting) and anything else running.
        other_cpu = system_busy_s() - busy0 - m.cpu_s - server_cpu
        responses = warc_responses(res["warcs"])
        statuses: dict[str, int] = {}
        for info in responses["urls"].values():
            statuses[str(info["status"])] = statuses.get(str(info["status"]), 0) + 1
        out[tool] = {
            **m.to_json(),
            "articles_per_s": total / m.wall_s,
            "urls_per_s": len(responses["urls"]) / m.wall_s,
            "cpu_ms_per_article": 1000 * m.cpu_s / total,
            "server_cpu_s": server_cpu,
            "other_cpu_s": other_cpu,
            "loadavg_1min_before": load0,
            "file_create_us_before": create_us,
            "distinct_response_urls": len(responses["urls"]),
            "statuses": statuses,
            "record_types": responses["record_types"],
            "duplicate_responses": responses["duplicate_responses"],
            "warc_files": [p.name for p in res["warcs"]],
            "warc_bytes": responses["warc_bytes"],
            "_urls": responses["urls"],
        }
        if m.returncode != 0 and not (tool == "wget" and m.returncode == 8 and statuses.keys() <= {"200"}):
            out[tool]["log_tail"] = res["log"]
    out["comparison"] = compare(out["archiver"].pop("_urls"), out["wget"].pop("_urls"), server.base, site)
    out["ratio_archiver_over_wget_pages_per_s"] = out["archiver"]["articles_per_s"] / out["wget"]["articles_per_s"]
    return out


# Only wget fetches these, by how it is started: the index page is its starting point
# (archiver gets the articles as seeds instead); robots.txt only if robots were obeyed.
WGET_ONLY_BY_DESIGN = {"/", "/index.html", "/robots.txt"}


def compare(arch: dict, wget: dict, base: str, site: dict, wget_only: set[str] = WGET_ONLY_BY_DESIGN) -> dict:
    """Both tools' response URLs (as paths under base) against each other and the
    expected paths, leaving ``wget_only`` out."""
    a = {path_of(u, base): v for u, v in arch.items()}
    w = {path_of(u, base): v for u, v in wget.items()}
    dropped = sorted(p for p in set(a) | set(w) if p in wget_only)
    a = {p: v for p, v in a.items() if p not in wget_only}
    w = {p: v for p, v in w.items() if p not in wget_only}
    expected = set(site["expected_paths"])
    both = set(a) & set(w)
    return {
        "normalised_out": dropped,
        "archiver_urls": len(a), "wget_urls": len(w), "expected_urls": len(expected),
        "url_sets_equal": set(a) == set(w),
        "only_archiver": sorted(set(a) - set(w))[:50],
        "only_wget": sorted(set(w) - set(a))[:50],
        "archiver_missing_expected": sorted(expected - set(a))[:50],
        "wget_missing_expected": sorted(expected - set(w))[:50],
        "payload_sha1_mismatches": sorted(p for p in both if a[p]["sha1"] != w[p]["sha1"])[:50],
        "non_200": {"archiver": sorted(p for p, v in a.items() if v["status"] != 200)[:50],
                    "wget": sorted(p for p, v in w.items() if v["status"] != 200)[:50]},
    }


def compile_archiver(work: Path, args: argparse.Namespace) -> str:
    """Compile the archiver package under test to bytecode, as pip does when it installs a
    package; an editable install under PYTHONDONTWRITEBYTECODE=1 would otherwise compile
    every module from source at each start (40 ms here). Returns the package's path."""
    module = subprocess.run([sys.executable, "-c", "import archiver; print(archiver.__file__)"], cwd=work,
                            env=archiver_env(args), capture_output=True, text=True, timeout=60).stdout.strip()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(module).parent)], check=True, timeout=120)
    return module


def startup_cost(work: Path, args: argparse.Namespace) -> dict:
    """What importing archiver and parsing arguments costs, without any capture."""
    runs = [run_measured([sys.executable, "-m", "archiver", "--version"], timeout=60, cwd=work,
                         env=archiver_env(args)) for _ in range(3)]
    best = min(runs, key=lambda m: m.wall_s)
    return {"wall_s": best.wall_s, "cpu_s": best.cpu_s, "max_rss_mb": best.max_rss_kb / 1024}


# ---- report -----------------------------------------------------------------------------

METRICS = [("wall s", "wall_s", "{:.2f}"), ("articles/s", "articles_per_s", "{:.1f}"),
           ("URLs/s", "urls_per_s", "{:.0f}"), ("CPU s", "cpu_s", "{:.2f}"),
           ("user s", "user_s", "{:.2f}"), ("sys s", "sys_s", "{:.2f}"),
           ("CPU ms/article", "cpu_ms_per_article", "{:.1f}"), ("peak RSS MB", "max_rss_mb", "{:.1f}"),
           ("server CPU s", "server_cpu_s", "{:.2f}"), ("other CPU s", "other_cpu_s", "{:.2f}"), ("response URLs", "distinct_response_urls", "{}"),
           ("WARC MB", "warc_bytes", "{:.1f}"), ("file create us, before", "file_create_us_before", "{:.0f}"),
           ("exit", "returncode", "{}")]


def fmt(key: str, spec: str, value) -> str:
    return spec.format(value / 1e6 if key == "warc_bytes" else value)


def report(runs: list[dict]) -> tuple[str, dict]:
    lines = []
    for r in runs:
        rows = [[label] + [fmt(key, spec, r[t][key]) for t in ("archiver", "wget")] for label, key, spec in METRICS]
        lines.append(f"\nrun {r['run']} (order: {' then '.join(r['order'])})")
        lines.append(table(rows, ["", "archiver", "wget"]))
        c = r["comparison"]
        lines.append(f"URL sets equal: {c['url_sets_equal']} (archiver {c['archiver_urls']}, wget {c['wget_urls']}, "
                     f"expected {c['expected_urls']}; left out of the comparison: {', '.join(c['normalised_out']) or 'nothing'}); "
                     f"payload SHA-1 mismatches: {len(c['payload_sha1_mismatches'])}; "
                     f"non-200: archiver {len(c['non_200']['archiver'])}, wget {len(c['non_200']['wget'])}")
        for k in ("only_archiver", "only_wget", "archiver_missing_expected", "wget_missing_expected", "payload_sha1_mismatches"):
            if c[k]:
                lines.append(f"  {k}: {c[k][:10]}{' ...' if len(c[k]) > 10 else ''}")
        lines.append(f"ratio archiver/wget articles per second: {r['ratio_archiver_over_wget_pages_per_s']:.2f}")
    median = {t: {key: statistics.median(r[t][key] for r in runs) for _, key, _ in METRICS if key != "returncode"}
              for t in ("archiver", "wget")}
    median["ratio_archiver_over_wget_pages_per_s"] = statistics.median(
        r["ratio_archiver_over_wget_pages_per_s"] for r in runs)
    if len(runs) > 1:
        rows = [[label] + [fmt(key, spec, median[t][key]) for t in ("archiver", "wget")]
                for label, key, spec in METRICS if key != "returncode"]
        lines.append(f"\nmedian of {len(runs)} runs")
        lines.append(table(rows, ["", "archiver", "wget"]))
        ratios = ", ".join(f"{r['ratio_archiver_over_wget_pages_per_s']:.2f}" for r in runs)
        lines.append(f"ratio archiver/wget articles per second: median "
                     f"{median['ratio_archiver_over_wget_pages_per_s']:.2f} (runs: {ratios}); a regression figure "
                     f"(the capture goal is bench/capture_latency.py)")
    return "\n".join(lines), median


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--articles", type=int, default=200, help="articles on the site (default 200)")
    p.add_argument("--paragraphs", type=int, default=8, help="paragraphs per article (default 8)")
    p.add_argument("--runs", type=int, default=3, help="side-by-side runs (default 3); the order alternates")
    p.add_argument("--concurrency", type=int, default=8,
                   help="archiver [capture] concurrency and per_host_concurrency (default 8)")
    p.add_argument("--server", choices=("auto", "nginx", "python"), default="auto",
                   help="static server: nginx if installed (auto), or Python's http.server")
    p.add_argument("--nginx-workers", type=int, default=1, help="nginx worker processes (default 1)")
    p.add_argument("--no-wget-cdx", dest="wget_cdx", action="store_false",
                   help="do not let wget write a CDX index (by default it does, as archiver writes CDXJ)")
    p.add_argument("--timeout", type=float, default=600.0, help="kill a capture after this many seconds")
    p.add_argument("--archiver-src", type=Path,
                   help="run archiver from this source tree (a folder holding archiver/), e.g. an export of "
                        "one commit; default: the archiver installed in this Python (the repo, editable)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (site, WARCs) and print it")
    args = p.parse_args()
    if not 1 <= args.runs <= 20 or args.articles < 10:
        p.error("--runs must be 1..20 and --articles at least 10")
    if args.archiver_src:
        args.archiver_src = args.archiver_src.resolve()
        if not (args.archiver_src / "archiver" / "cli.py").exists():
            p.error(f"--archiver-src {args.archiver_src}: no archiver/cli.py there")
        sys.path.insert(0, str(args.archiver_src))
    if not shutil.which("wget"):
        p.error("wget not found: apt-get install wget (see bench/README.md)")

    stop_on_sigterm()
    with scratch("archiver-bench-", args.keep) as work:
        site_info = build_site(work / "site", args.articles, args.paragraphs)
        wget_version = subprocess.run(["wget", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        lifetime = 120 + args.runs * 2 * (args.timeout + 60)
        with StaticServer(work / "site", work, args.server, args.nginx_workers, lifetime) as server:
            print(f"server: {server.kind} ({server.version}) at {server.base}; site: {site_info['articles']} articles, "
                  f"{site_info['files']} files, {site_info['bytes'] / 1e6:.1f} MB, "
                  f"{len(site_info['expected_paths'])} URLs expected per capture; wget: {wget_version}", flush=True)
            module = compile_archiver(work, args)
            startup = startup_cost(work, args)
            startup["module"] = module
            print(f"archiver: {startup['module']} (bytecode compiled, as pip does on install)", flush=True)
            print(f"archiver CLI start-up alone (python -m archiver --version): {startup['wall_s']:.2f} s wall, "
                  f"{startup['cpu_s']:.2f} s CPU", flush=True)
            runs = []
            for i in range(1, args.runs + 1):
                order = ["archiver", "wget"] if i % 2 else ["wget", "archiver"]
                runs.append(one_run(i, order, server, work, site_info, args))
                r = runs[-1]
                print(f"run {i}: archiver {r['archiver']['wall_s']:.2f} s, wget {r['wget']['wall_s']:.2f} s", flush=True)
        text, median = report(runs)
        print(text)
        result = {
            "benchmark": "capture_vs_wget", "environment": environment(),
            "server": {"kind": server.kind, "version": server.version, "nginx_workers": args.nginx_workers},
            "wget_version": wget_version, "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "site": {k: v for k, v in site_info.items() if k != "expected_paths"},
            "archiver_src": str(args.archiver_src or REPO), "archiver_startup": startup, "runs": runs, "median": median,
            "time": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        }
        path = write_results("capture_vs_wget", result)
        print(f"\nJSON: {path}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
