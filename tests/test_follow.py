"""Following sites: feeds, sitemaps (indexes, .xml.gz) and front pages bring new articles
into seeds/, captured by ``archiver run`` within one cycle; hostile sources are bounded
and recorded as failed."""

from __future__ import annotations

import gzip
import json
import sqlite3

import pytest

from archiver.config import FollowConfig
from archiver.follow import Fetched, discover, front_page_links, parse_source, robots_sitemaps, sniff_kind
from archiver.follower import FOLLOWED_FILE
from archiver.schedule.runner import Runner
from archiver.seeds import load_seeds

from .conftest import make_archive, run_cli
from .test_scheduler import Clock

LIMITS = FollowConfig("30m", 100, 1_000_000, 1000, 5)


def rss(base: str, items: list[tuple[str, str]]) -> str:
    entries = "".join(f"<item><title>Story {path}</title><link>{base}{path}</link><pubDate>{date}</pubDate></item>"
                      for path, date in items)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>{entries}</channel></rss>'


def atom(base: str, paths: list[str]) -> str:
    entries = "".join(f'<entry><title>{p}</title><id>{base}{p}</id><link href="{base}{p}"/>'
                      f"<updated>2026-11-2{i}T10:00:00Z</updated></entry>" for i, p in enumerate(paths))
    return f'<feed xmlns="http://www.w3.org/2005/Atom"><title>N</title>{entries}</feed>'


def urlset(base: str, paths: list[str], news: bool = False) -> str:
    ns = ' xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"' if news else ""
    body = "".join(f"<url><loc>{base}{p}</loc>"
                   + (f"<news:news><news:publication_date>2026-11-26T08:00:00+01:00</news:publication_date>"
                      f"<news:title>T {p}</news:title></news:news>" if news else "<lastmod>2026-11-20</lastmod>")
                   + "</url>" for p in paths)
    return f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"{ns}>{body}</urlset>'


def index(base: str, paths: list[str]) -> str:
    body = "".join(f"<sitemap><loc>{base}{p}</loc></sitemap>" for p in paths)
    return f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</sitemapindex>'


def article(title: str) -> str:
    return f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>" \
           f"<p>{'Text of the story. ' * 20}</p></article></body></html>"


# ---- parsing (pure) -----------------------------------------------------------------------

def test_rss_atom_and_sitemaps_list_their_articles_with_published_times():
    base = "https://news.example"
    feed = parse_source(rss(base, [("/a", "Thu, 26 Nov 2026 08:00:00 +0100")]).encode(), base + "/rss", "auto", "",
                        LIMITS)
    assert feed.kind == "feed" and [(e.url, e.published) for e in feed.entries] == \
        [("https://news.example/a", "2026-11-26T07:00:00Z")]
    assert [e.url for e in parse_source(atom(base, ["/x", "/y"]).encode(), base, "auto", "", LIMITS).entries] == \
        [base + "/x", base + "/y"]
    news = parse_source(urlset(base, ["/n"], news=True).encode(), base + "/s.xml", "auto", "", LIMITS)
    assert news.kind == "sitemap" and news.entries[0].published == "2026-11-26T07:00:00Z"
    assert news.entries[0].title == "T /n"
    gz = parse_source(gzip.compress(urlset(base, ["/g"]).encode()), base + "/s.xml.gz", "auto", "", LIMITS)
    assert [e.url for e in gz.entries] == [base + "/g"]
    idx = parse_source(index(base, ["/s1.xml", "/s2.xml.gz"]).encode(), base, "sitemap", "", LIMITS)
    assert idx.kind == "index" and idx.sitemaps == (base + "/s1.xml", base + "/s2.xml.gz")


def test_front_page_links_are_the_listing_not_the_navigation():
    page = b"""<html><body><header><a href="/world/">World news and more from us</a></header>
    <nav><a href="/politics/some-long-section-name">Politics and government section</a></nav>
    <main><h2><a href="/2026/11/27/budget">Budget</a></h2>
    <div class="story"><a href="/2026/11/27/strike">Dockers strike for a second week</a></div>
    <a href="/about">About</a><a href="https://elsewhere.example/x">A story on another site here</a></main>
    <footer><a href="/contact/us/today">Contact us today for tips</a></footer>
    <div class="sidebar"><a href="/most/read/1">The most read story of today</a></div></body></html>"""
    found = front_page_links(page, "https://news.example/", "text/html")
    assert [e.url for e in found.entries] == ["https://news.example/2026/11/27/budget",
                                              "https://news.example/2026/11/27/strike"]


@pytest.mark.parametrize("body, error", [
    (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
     b"<rss><channel><item><link>&lol2;</link></item></channel></rss>", "entities"),
    (b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>&x;</loc></url></urlset>', "entities"),
    (b"<urlset><url><loc>https://a.example/1</loc>" * 3, "not a sitemap"),
    (b"<rss>" + b"x" * 2_000_000, "larger than"),
    (gzip.compress(b"<urlset>" + b" " * 3_000_000 + b"</urlset>"), "uncompressed"),
    (b"\x1f\x8b not gzip at all", "not gzip"),
])
def test_hostile_sources_are_refused_with_a_reason(body, error):
    listing = parse_source(body, "https://a.example/feed", "auto", "", LIMITS)
    assert listing.entries == () and error in listing.error


def test_more_entries_than_max_entries_are_cut_and_said():
    listing = parse_source(urlset("https://a.example", [f"/{i}" for i in range(1500)]).encode(),
                           "https://a.example/s.xml", "sitemap", "", LIMITS)
    assert len(listing.entries) == 1000 and "max_entries" in listing.error


def test_sniffing_and_discovery_from_a_page_robots_and_usual_paths():
    assert sniff_kind(b'<?xml version="1.0"?>\n<!-- c --><rss>', "") == "feed"
    assert sniff_kind(b"<sitemapindex>", "text/xml") == "sitemap"
    assert sniff_kind(b"<html>", "text/html") == "front"
    assert robots_sitemaps("User-agent: *\nSitemap: /news.xml\nsitemap: https://a.example/s.xml\n",
                           "https://a.example") == ["https://a.example/news.xml", "https://a.example/s.xml"]
    pages = {
        "https://a.example/": Fetched(200, "text/html", b'<html><head><link rel="alternate" '
                                      b'type="application/rss+xml" href="/rss"></head></html>'),
        "https://a.example/robots.txt": Fetched(200, "text/plain", b"Sitemap: https://a.example/news.xml\n"),
    }
    get = lambda url: pages.get(url, Fetched(404, "", b""))  # noqa: E731
    assert discover("https://a.example/", get, LIMITS) == [("https://a.example/rss", "feed"),
                                                            ("https://a.example/news.xml", "sitemap")]
    pages = {"https://b.example/sitemap.xml": Fetched(200, "application/xml", urlset("x", []).encode())}
    assert discover("https://b.example/", get, LIMITS) == [("https://b.example/sitemap.xml", "sitemap")]


# ---- archiver run ---------------------------------------------------------------------------

@pytest.fixture
def news(site, tmp_path):
    """A site with a feed and a sitemap, followed by an archive (no confirmation)."""
    config = make_archive(tmp_path / "arch", requisites="false", depth="0", jitter="0.0")
    for p in ("/a1", "/a2", "/s1", "/s2", "/s3"):
        site.page(p, article(f"Story {p}"))
    site.page("/rss", rss(site.base, [("/a1", "Thu, 26 Nov 2026 08:00:00 GMT")]), "application/rss+xml")
    site.page("/sitemap.xml", urlset(site.base, ["/s1"]), "application/xml")
    (config.seeds_dir / "example.txt").write_text(f"{site.url('/rss')} follow=feed every=30m tag=desk\n"
                                                  f"{site.url('/sitemap.xml')} follow=auto every=30m\n")
    return site, config


def tracked_urls(config) -> set[str]:
    return {s.url for s in load_seeds(config.seeds_dir)}


def test_run_tracks_new_articles_of_a_feed_and_a_sitemap_within_one_cycle(news):
    site, config = news
    clock = Clock()
    assert Runner(config, clock=clock).run_once() == 4  # two sources, then their two articles
    assert site.hits["/a1"] == 1 and site.hits["/s1"] == 1
    followed = (config.seeds_dir / FOLLOWED_FILE).read_text()
    assert f"{site.url('/a1')} tag=desk\n" in followed and f"{site.url('/s1')}\n" in followed
    # The sources gain entries; the next capture of each brings them in, in the same run.
    site.page("/rss", rss(site.base, [("/a2", "Fri, 27 Nov 2026 08:00:00 GMT"),
                                      ("/a1", "Thu, 26 Nov 2026 08:00:00 GMT")]), "application/rss+xml")
    site.page("/sitemap.xml", urlset(site.base, ["/s1", "/s2", "/s3"]), "application/xml")
    clock.advance(minutes=31)
    assert Runner(config, clock=clock).run_once() == 2 + 2 + 3  # sources, articles due again, new articles
    assert all(site.hits[p] == 1 for p in ("/a2", "/s2", "/s3"))
    assert tracked_urls(config) >= {site.url(p) for p in ("/a1", "/a2", "/s1", "/s2", "/s3")}
    # The feed is evidence: every capture of it is in the WARCs, with the published times kept.
    db = sqlite3.connect(config.storage.catalog)
    assert db.execute("SELECT count(*) FROM captures WHERE url = ?", (site.url("/rss"),)).fetchone()[0] == 2
    assert db.execute("SELECT published FROM follow_entries WHERE url = ?",
                      (site.url("/a2"),)).fetchone()[0] == "2026-11-27T08:00:00Z"
    listed = {r["url"]: r for r in json.loads(run_cli("list", "--json", cwd=config.root).stdout)}
    assert listed[site.url("/a2")]["published"] == "2026-11-27T08:00:00Z"
    assert listed[site.url("/rss")]["follow"] == "feed" and listed[site.url("/a2")]["tags"] == ["desk"]


def test_entries_seen_are_not_added_again_after_a_restart_or_a_remove(news):
    site, config = news
    clock = Clock()
    Runner(config, clock=clock).run_once()
    assert run_cli("remove", site.url("/a1"), cwd=config.root).returncode == 0
    lines = (config.seeds_dir / FOLLOWED_FILE).read_text().splitlines()
    clock.advance(minutes=31)
    Runner(config, clock=clock).run_once()  # a new process: what was seen is in the catalog
    assert (config.seeds_dir / FOLLOWED_FILE).read_text().splitlines() == lines
    assert site.url("/a1") not in tracked_urls(config) and site.hits["/a1"] == 1


def test_match_and_max_per_run_and_a_retraction_signal(site, tmp_path, caplog):
    config = make_archive(tmp_path / "arch", requisites="false", depth="0", jitter="0.0")
    for i in range(5):
        site.page(f"/news/{i}", article(f"Story {i}"))
    days = [f"{20 + i} Nov 2026" for i in range(5)]
    items = [(f"/news/{i}", f"Fri, {d} 08:00:00 GMT") for i, d in enumerate(days)] + [("/video/1", days[0])]
    site.page("/rss", rss(site.base, items[::-1]), "application/rss+xml")
    (config.seeds_dir / "example.txt").write_text(f"{site.url('/rss')} follow=feed every=30m match=/news/ max=3\n")
    clock = Clock()
    Runner(config, clock=clock).run_once()
    assert tracked_urls(config) == {site.url("/rss"), site.url("/news/4"), site.url("/news/3"), site.url("/news/2")}
    site.page("/rss", rss(site.base, [items[4], items[2], items[1], items[0]]), "application/rss+xml")  # 3 went
    clock.advance(minutes=31)
    Runner(config, clock=clock).run_once()
    assert tracked_urls(config) >= {site.url("/news/1"), site.url("/news/0")}  # the rest of max=3
    assert site.url("/video/1") not in tracked_urls(config)
    assert any("/news/3 is no longer listed" in r.getMessage() and "retraction" in r.getMessage()
               for r in caplog.records)
    db = sqlite3.connect(config.storage.catalog)
    assert db.execute("SELECT retracted FROM follow_entries WHERE url = ?", (site.url("/news/3"),)).fetchone()[0] == 1


def test_a_front_page_is_captured_as_a_source_and_its_listing_tracked(site, tmp_path):
    """Its article links are tracked; its navigation is not, and it is not an article of
    its own (no cross-references followed from it, no edit history)."""
    config = make_archive(tmp_path / "arch", requisites="false", jitter="0.0")
    site.page("/", '<html><body><nav><a href="/world">World news from everywhere today</a></nav><main>'
                   '<h2><a href="/2026/budget">Budget</a></h2><p><a href="/2026/strike">Dockers strike for a week</a>'
                   '</p></main></body></html>')
    for p in ("/world", "/2026/budget", "/2026/strike"):
        site.page(p, article(p))
    (config.seeds_dir / "example.txt").write_text(f"{site.url('/')} follow=front every=30m\n")
    assert Runner(config, clock=Clock()).run_once() == 3
    assert tracked_urls(config) == {site.url("/"), site.url("/2026/budget"), site.url("/2026/strike")}
    assert site.hits["/world"] == 0 and site.hits["/2026/budget"] == 1  # once, as a seed: not as a cross-reference
    db = sqlite3.connect(config.storage.catalog)
    assert db.execute("SELECT article FROM observations WHERE tracked_url = ?", (site.url("/"),)).fetchone() == (None,)


def test_a_feed_cannot_make_internal_addresses_seeds(site, tmp_path):
    """A seed may reach any address: a feed naming 169.254.169.254 (cloud metadata),
    localhost or 10.x (hosts other than its own) does not get them tracked."""
    config = make_archive(tmp_path / "arch", requisites="false", depth="0")
    site.page("/a", article("A"))
    port = site.server.server_address[1]
    feed = atom("", [site.url("/a"), "http://169.254.169.254/latest/meta-data/", f"http://localhost:{port}/a",
                     "http://10.1.2.3/x", "https://[::1]/y"])
    site.page("/atom", feed, "application/atom+xml")
    (config.seeds_dir / "example.txt").write_text(f"{site.url('/atom')} follow=feed every=1h\n")
    Runner(config, clock=Clock()).run_once()
    assert tracked_urls(config) == {site.url("/atom"), site.url("/a")}


def test_an_unchanged_feed_with_entries_left_over_is_read_from_the_record_it_revisits(site, tmp_path):
    config = make_archive(tmp_path / "arch", requisites="false", depth="0", jitter="0.0", batch="1")
    site.page("/rss", rss(site.base, [(f"/n/{i}", "Thu, 26 Nov 2026 08:00:00 GMT") for i in range(3)]),
              "application/rss+xml")
    (config.seeds_dir / "example.txt").write_text(f"{site.url('/rss')} follow=feed every=1m max=2\n")
    clock = Clock()
    for _ in range(2):
        runner = Runner(config, clock=clock)
        runner.sync_seeds()
        runner.dispatch()  # batch 1: the feed alone
        runner.crawler.run()
        runner.follower.wait()
        runner.close()
        clock.advance(minutes=2)
    db = sqlite3.connect(config.storage.catalog)
    assert [r for (r,) in db.execute("SELECT record FROM captures WHERE url = ?", (site.url("/rss"),))] == \
        ["response", "revisit"]
    assert (config.seeds_dir / FOLLOWED_FILE).read_text().splitlines() == [site.url(f"/n/{i}") for i in range(3)]


def test_a_sitemap_index_and_its_gzipped_children_are_captured_and_read(site, tmp_path):
    config = make_archive(tmp_path / "arch", requisites="false", depth="0", jitter="0.0")
    site.page("/index.xml", index(site.base, ["/s1.xml", "/s2.xml.gz"]), "application/xml")
    site.page("/s1.xml", urlset(site.base, ["/p1"]), "application/xml")
    site.page("/s2.xml.gz", gzip.compress(urlset(site.base, ["/p2"], news=True).encode()), "application/gzip")
    for p in ("/p1", "/p2"):
        site.page(p, article(p))
    (config.seeds_dir / "example.txt").write_text(f"{site.url('/index.xml')} follow=sitemap every=1h\n")
    Runner(config, clock=Clock()).run_once()
    assert site.hits["/s1.xml"] == site.hits["/s2.xml.gz"] == site.hits["/p1"] == site.hits["/p2"] == 1
    db = sqlite3.connect(config.storage.catalog)
    assert db.execute("SELECT count(*) FROM captures WHERE url LIKE '%.xml%'").fetchone()[0] == 3  # evidence


def test_an_endless_sitemap_index_stops_at_its_bounds(site, tmp_path):
    """Each index lists another index: nesting stops at three levels, children per
    capture at max_sitemaps, and the run ends."""
    config = make_archive(tmp_path / "arch", requisites="false", depth="0", max_sitemaps="4")

    def endless(h):
        from .site import send
        n = int(h.path.split("/")[-1].split(".")[0])
        send(h, 200, index(site.base, [f"/idx/{n * 10 + k}.xml" for k in range(10)]).encode(), "application/xml")
    site.routes.update({f"/idx/{n}.xml": endless for n in range(100_000)})
    (config.seeds_dir / "example.txt").write_text(f"{site.url('/idx/1.xml')} follow=sitemap every=1h\n")
    Runner(config, clock=Clock()).run_once()
    assert sum(site.hits.values()) <= 1 + 4


def test_a_hostile_feed_is_recorded_as_failed_and_the_run_goes_on(site, tmp_path):
    config = make_archive(tmp_path / "arch", requisites="false", depth="0")
    site.page("/bomb", b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
              + b"".join(b'<!ENTITY a%d "&a%s;&a%s;&a%s;&a%s;&a%s;&a%s;&a%s;&a%s;&a%s;&a%s;">'
                         % (i, *([b"" if i == 1 else str(i - 1).encode()] * 10)) for i in range(1, 10))
              + b']><rss><channel><item><link>&a9;</link></item></channel></rss>', "application/rss+xml")
    site.page("/junk", b"\x00\xff" * 1000, "application/rss+xml")
    site.page("/ok", article("fine"))
    (config.seeds_dir / "example.txt").write_text(f"{site.url('/bomb')} follow=feed every=1h\n"
                                            f"{site.url('/junk')} follow=feed every=1h\n{site.url('/ok')}\n")
    assert Runner(config, clock=Clock()).run_once() == 3
    result = run_cli("status", "--json", cwd=config.root)
    failed = {s["source"]: s["error"] for s in json.loads(result.stdout)["following"]}
    assert "entities" in failed[site.url("/bomb")] and failed[site.url("/junk")]
    assert site.hits["/ok"] == 1


def test_archiver_follow_discovers_a_sites_feed_and_writes_a_seed_line(site, tmp_path):
    config = make_archive(tmp_path / "arch")
    (config.seeds_dir / "example.txt").unlink()
    site.page("/", '<html><head><link rel="alternate" type="application/atom+xml" href="/atom.xml"></head>'
                   '<body><h2><a href="/x">X</a></h2></body></html>')
    site.page("/atom.xml", atom(site.base, ["/x"]), "application/atom+xml")
    result = run_cli("follow", site.url("/"), "--tag", "desk", "--every", "15m", "--json", cwd=config.root)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"url": site.url("/atom.xml"), "follow": "feed"}]
    [seed] = load_seeds(config.seeds_dir)
    assert seed.url == site.url("/atom.xml") and dict(seed.options) == {"follow": "feed", "every": "15m",
                                                                        "tag": "desk"}
    listed = json.loads(run_cli("list", "--json", cwd=config.root).stdout)
    assert listed[0]["follow"] == "feed"
    front = run_cli("follow", site.url("/"), "--kind", "front", "--match", "/20", cwd=config.root)
    assert front.returncode == 0, front.stderr
    assert load_seeds(config.seeds_dir)[-1].option("follow") == "front"
    bad = run_cli("follow", site.url("/other"), "--kind", "feed", "--match", "(", cwd=config.root)
    assert bad.returncode == 2 and "regular expression" in bad.stderr


def test_a_large_feed_is_added_once_and_read_again_from_its_revisit(site, tmp_path):
    """2,000 entries (bench/follow_10k.py measures 10,000): appended to seeds/ in one
    write; the next capture of the unchanged feed is a revisit, read back from the
    record it revisits, and adds nothing."""
    config = make_archive(tmp_path / "arch", requisites="false", depth="0", max_per_run="5000", jitter="0.0",
                          batch="1")
    site.page("/rss", rss(site.base, [(f"/n/{i}", "Thu, 26 Nov 2026 08:00:00 GMT") for i in range(2000)]),
              "application/rss+xml")
    (config.seeds_dir / "example.txt").write_text(f"{site.url('/rss')} follow=feed every=1m\n")
    clock = Clock()
    for _ in range(2):
        runner = Runner(config, clock=clock)
        runner.sync_seeds()
        runner.dispatch()
        runner.crawler.run()
        runner.follower.wait()
        runner.close()
        clock.advance(minutes=2)
    assert site.hits["/rss"] == 2 and sum(site.hits.values()) == 2  # one due URL a look (batch 1): the feed
    assert len((config.seeds_dir / FOLLOWED_FILE).read_text().splitlines()) == 2000
    db = sqlite3.connect(config.storage.catalog)
    assert [r for (r,) in db.execute("SELECT record FROM captures WHERE url = ?", (site.url("/rss"),))] == \
        ["response", "revisit"]
    assert db.execute("SELECT entries, added, error FROM follow_sources").fetchone() == (2000, 0, "")
