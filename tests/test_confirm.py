"""Confirm before alarm, on a real local site: a change is an edit only when a second
render shows it too; what differs between two renders is learned as the site's noise.

The pages use markup no other test uses: an ad-inserting plugin's block between body
paragraphs ("Advertisement: ..." with a new ad on every render), a bare paragraph with a
live count, and READ boxes inside elements named as related content.
"""

from __future__ import annotations

import itertools
import re
import random
import threading
from dataclasses import dataclass, field, replace
from typing import Callable

import pytest

import archiver

from archiver.archive.writer import Writer
from archiver.catalog import Catalog
from archiver.pipeline import history_of, reindex, snapshot
from archiver.seeds import url_host
from archiver.edits.observe import load_history, reextract

from .conftest import make_archive, run_cli, run_snapshot
from .site import Site, send

PARAGRAPHS = [
    "The harbour authority approved the dredging contract on Monday after a two-hour debate.",
    "The contract covers the outer basin and is worth 4 million, according to the minutes.",
    "Fishermen said the works would close the northern channel for most of the summer season.",
    "The authority will publish the full tender documents next week on its website.",
]


@dataclass
class Page:
    """One article; every request is a new render with its own ad, count and READ box pick."""
    title: str = "Dredging contract approved"
    paragraphs: list[str] = field(default_factory=lambda: list(PARAGRAPHS))
    read: tuple[str, str] = ("/2026/05/ferry/", "Ferry timetable changes")
    titles: list[str] | None = None  # A/B headlines: one per render, in turn
    status: int = 200
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    renders: itertools.count = field(default_factory=itertools.count)
    box: Callable[[], str] | None = None  # one more box at the article's end, rendered anew each time

    def render(self) -> bytes:
        n = next(self.renders)
        title = self.titles[n % len(self.titles)] if self.titles else self.title
        ad = f"Advertisement: {self.rng.choice(['Buy', 'Try', 'Get'])} the {self.rng.randint(2, 99)}-piece set today"
        body = [f"<p>{p}</p>" for p in self.paragraphs]
        body.insert(2, f'<div class="code-block code-block-{self.rng.randint(1, 9)}" style="margin:8px 0">'
                       f'<p>{ad}</p></div>')
        body.insert(1, f"<p>{self.rng.randint(100, 9999):,} people are reading this story right now</p>")
        body.append(f'<aside class="related-content"><strong>Read also:</strong> '
                    f'<a href="{self.read[0]}">{self.read[1]}</a></aside>')
        if self.box is not None:
            body.append(self.box())
        return (f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
                f"{''.join(body)}</article></body></html>").encode()


class Site2(Site):
    def serve(self, path: str, page: Page) -> str:
        self.routes[path] = lambda h: send(h, page.status, page.render(), "text/html; charset=utf-8")
        return self.url(path)


@pytest.fixture
def news(tmp_path):
    site = Site2()
    yield site, make_archive(tmp_path / "a", requisites="false", depth="0", confirm="true")
    site.stop()


def test_noise_only_recaptures_are_confirmed_once_then_learned(news):
    site, config = news
    url = site.serve("/story/", Page())
    for _ in range(6):
        history = run_snapshot(config, url).histories[url]
    assert [v.kinds for v in history.versions] == [()]
    # The first capture is confirmed by a second render, which differed in the ad and
    # count blocks: from then on they are known noise, and no capture alarms.
    assert site.hits["/story/"] == 7
    catalog = Catalog(config.storage.catalog)
    roles = [r[0] for r in catalog.db.execute("SELECT role FROM captures ORDER BY id")]
    noise = catalog.history.noise(url_host(url))
    catalog.close()
    assert roles == ["seed", "confirm", "seed", "seed", "seed", "seed", "seed"]
    assert "block:div.code-block>p|advertisement" in noise  # by where it stands
    assert "shape:# people are reading this story right now" in noise  # a bare <p>: by its text less digits


def test_an_ad_only_the_first_render_showed_never_alarms(news):
    """An ad server that placed an image ad in the text once, then in the sidebar: the
    first capture is confirmed by a second render, so the ad is known as noise before
    any recapture lacks it."""
    site, config = news
    renders = itertools.count()

    def first_render_has_the_ad(h) -> None:
        ad = ('<div class="advads-content" id="advads-5f2c"><a href="https://partner.example/?c=7a1"><img '
              'src="/banner.jpg" alt=""></a></div>') if next(renders) == 0 else ""
        body = "".join(f"<p>{p}</p>" for p in PARAGRAPHS[:2]) + ad + "".join(f"<p>{p}</p>" for p in PARAGRAPHS[2:])
        send(h, 200, f"<html><body><article><h1>Harbour</h1>{body}</article></body></html>".encode(),
             "text/html; charset=utf-8")
    site.routes["/story/"] = first_render_has_the_ad
    url = site.url("/story/")
    for _ in range(3):
        history = run_snapshot(config, url).histories[url]
    assert [v.kinds for v in history.versions] == [()]
    assert site.hits["/story/"] == 4  # the first capture, its confirming fetch, two recaptures


def test_a_page_is_confirmed_when_its_requisites_are_stored_after_it(tmp_path):
    """With requisites on (the default), a page is stored batches before its stylesheet:
    its confirmation is asked for once the last of them is stored."""
    site = Site2()
    try:
        config = make_archive(tmp_path / "a", depth="0", confirm="true")
        page = Page()
        site.routes["/story/"] = lambda h: send(h, 200, page.render().replace(
            b"<head>", b'<head><link rel="stylesheet" href="/site.css">'), "text/html; charset=utf-8")
        stored = threading.Event()  # the page is stored (and reported) before its stylesheet is answered

        def stylesheet(h) -> None:
            stored.wait(10)
            send(h, 200, b"p { margin: 0 }", "text/css")
        site.routes["/site.css"] = stylesheet
        url = site.url("/story/")

        def capture():
            stored.clear()
            archive = Writer(config)
            try:
                return snapshot(archive, [url], lambda r: stored.set() if r.url == url else None)
            finally:
                archive.close()
        capture()
        page.paragraphs[1] = page.paragraphs[1].replace("4 million", "9 million")
        history = capture().histories[url]
        catalog = Catalog(config.storage.catalog)
        roles = [r[0] for r in catalog.db.execute("SELECT role FROM captures WHERE url = ? ORDER BY id", (url,))]
        catalog.close()
        assert roles == ["seed", "confirm", "seed", "confirm"]
        assert history.versions[-1].kinds == ("body",) and not history.versions[-1].unconfirmed
    finally:
        site.stop()


def test_an_edit_among_noise_is_reported_alone_and_confirmed(news):
    site, config = news
    page = Page()
    url = site.serve("/story/", page)
    run_snapshot(config, url)
    page.paragraphs[1] = page.paragraphs[1].replace("4 million", "9 million")
    history = run_snapshot(config, url).histories[url]
    assert len(history.versions) == 2
    v2 = history.versions[1]
    assert v2.kinds == ("body",) and not v2.unconfirmed
    assert all("Advertisement" not in c.before + c.after and "reading this" not in c.after for c in v2.changes)
    assert any("4 million" in c.before and "9 million" in c.after for c in v2.changes)


def test_a_failed_confirmation_keeps_the_change_unconfirmed_until_the_next_capture(news):
    site, config = news
    page = Page()
    url = site.serve("/story/", page)
    run_snapshot(config, url)
    run_snapshot(config, url)  # learns the noise
    page.paragraphs.append("The authority later corrected the figure.")
    original, calls = site.routes["/story/"], itertools.count()

    def confirmation_fails(h):
        if next(calls) == 1:  # the second request: the confirming fetch
            send(h, 503, b"busy", "text/plain")
        else:
            original(h)
    site.routes["/story/"] = confirmation_fails
    history = run_snapshot(config, url).histories[url]
    assert history.versions[-1].unconfirmed and history.versions[-1].kinds == ("body",)
    site.routes["/story/"] = original
    history = run_snapshot(config, url).histories[url]  # the next capture settles it
    assert not history.versions[-1].unconfirmed and [v.kinds for v in history.versions] == [(), ("body",)]


def test_a_flip_between_renders_is_a_variant_not_an_edit(news):
    site, config = news
    url = site.serve("/story/", Page(titles=["Dredging contract approved", "Harbour votes for dredging"]))
    for _ in range(4):
        history = run_snapshot(config, url).histories[url]
    assert [v.kinds for v in history.versions] == [()]
    assert any(v.field == "title" for v in history.variants)


def test_a_read_box_in_a_related_element_is_tracked_and_its_swap_reported(news):
    site, config = news
    page = Page()
    url = site.serve("/story/", page)
    for _ in range(3):
        history = run_snapshot(config, url).histories[url]
    assert [r.url for r in history.versions[0].article.read_refs] == [site.url("/2026/05/ferry/")]
    page.read = ("/2026/06/tender/", "Tender documents published")
    history = run_snapshot(config, url).histories[url]
    assert history.versions[-1].kinds == ("cross_refs",)
    assert "ferry" in history.versions[-1].changes[0].before + history.versions[-1].changes[-1].before


@pytest.mark.parametrize("rotating", ('<div class="yarpp-related"><b>Related:</b> {link}</div>',
                                      '<aside class="related-content"><strong>Lea también:</strong> {link}</aside>'))
def test_a_rotating_related_box_beside_a_fixed_read_box_hides_no_swap(news, rotating):
    """Each READ box is fixed or rotating by itself: a plugin re-picking its "Related:"
    box on every render does not make the editor's box rotating too, whether it stands
    elsewhere or alike, under another call to action."""
    site, config = news
    pool = itertools.count()
    page = Page(box=lambda: rotating.format(link=f'<a href="/2025/{(n := next(pool))}/">Older story {n}</a>'))
    url = site.serve("/story/", page)
    for _ in range(3):
        history = run_snapshot(config, url).histories[url]
    assert [v.kinds for v in history.versions] == [()] and history.read_boxes == "fixed and rotating"
    page.read = ("/2026/06/tender/", "Tender documents published")
    history = run_snapshot(config, url).histories[url]
    assert history.versions[-1].kinds == ("cross_refs",)
    assert [c.before for c in history.versions[-1].changes] == [f"Ferry timetable changes -> {site.url('/2026/05/ferry/')}"]


def test_a_swap_to_a_title_of_another_shape_is_confirmed(news):
    """A READ box's signature may carry words of the title it links (its text reads
    "READ Ferry timetable: ..."): the box is the same box after the swap."""
    site, config = news
    read = ["/2026/05/ferry/", "Ferry timetable: summer changes"]
    url = site.serve("/story/", Page(box=lambda: f'<div><strong>READ</strong> <a href="{read[0]}">{read[1]}</a></div>'))
    for _ in range(3):
        run_snapshot(config, url)
    read[:] = ["/2026/06/tender/", "Tender documents published"]
    history = run_snapshot(config, url).histories[url]
    assert history.versions[-1].kinds == ("cross_refs",) and not history.versions[-1].unconfirmed
    assert any("ferry" in c.before and "tender" in c.after for c in history.versions[-1].changes)


def test_a_read_box_under_a_random_class_name_stays_one_box(news):
    """CSS-in-JS class names change on every render ("related-qxkzt"): a READ box is the
    same box whatever its element is called."""
    site, config = news
    rng = random.Random(3)

    def random_classes() -> str:
        suffix = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
        return (f'<div class="related-{suffix}"><b>Related:</b> <a href="/2026/01/chicago/">Chicago is '
                f'America\'s most segregated city</a></div>')
    url = site.serve("/story/", Page(box=random_classes))
    for _ in range(5):
        history = run_snapshot(config, url).histories[url]
    assert [v.kinds for v in history.versions] == [()] and history.read_boxes == "fixed"


def test_noise_learned_on_one_page_needs_no_confirmation_on_another(news):
    site, config = news
    first = site.serve("/one/", Page())
    for _ in range(2):
        run_snapshot(config, first)
    second = site.serve("/two/", Page(rng=random.Random(11)))
    unconfirmed = replace(config, detect=replace(config.detect, confirm=False))
    for _ in range(3):  # no second render of page two to learn from: only page one's noise
        history = run_snapshot(unconfirmed, second).histories[second]
    assert [v.kinds for v in history.versions] == [()]
    assert site.hits["/two/"] == 3


def test_reindex_and_reextract_rebuild_the_learned_noise_and_versions(news):
    site, config = news
    page = Page()
    url = site.serve("/story/", page)
    for _ in range(3):
        run_snapshot(config, url)
    page.title = "Dredging contract approved after debate"
    run_snapshot(config, url)
    before = history_of(config, url)
    catalog = Catalog(config.storage.catalog)
    noise = catalog.history.noise(url_host(url))
    catalog.close()
    assert noise
    for rebuild in (lambda: reindex(config), lambda: reextract(config)):
        rebuild()
        after = history_of(config, url)
        assert [(v.kinds, v.captures, v.unconfirmed) for v in after.versions] == \
            [(v.kinds, v.captures, v.unconfirmed) for v in before.versions] == [((), 3, False), (("title",), 1, False)]
        catalog = Catalog(config.storage.catalog)
        assert catalog.history.noise(url_host(url)) == noise
        catalog.close()


def test_without_confirmation_every_difference_is_a_change(tmp_path):
    site = Site2()
    try:
        config = make_archive(tmp_path / "a", requisites="false", depth="0", confirm="false")
        url = site.serve("/story/", Page())
        run_snapshot(config, url)
        history = run_snapshot(config, url).histories[url]
        assert history.versions[-1].kinds == ("body",) and site.hits["/story/"] == 2
    finally:
        site.stop()


def test_digests_of_masked_articles_are_stored_with_what_was_masked(news):
    """A rebuild after every capture must not normalise every old article again (see
    the content digests in history.py), noise or not."""
    site, config = news
    url = site.serve("/story/", Page())
    for _ in range(4):
        run_snapshot(config, url)
    catalog = Catalog(config.storage.catalog)
    try:
        assert load_history(catalog, url).computed == {}  # every digest needed was stored
        digests = [r["content_digest"] for r in catalog.history.observations(url) if r["role"] == "seed"]
        assert len(digests) == 4 and all(d and "/" in d.split(":")[0] for d in digests)  # tagged: masked
    finally:
        catalog.close()


def test_the_snapshot_summary_counts_a_confirming_fetch_apart(news):
    site, config = news
    page = Page()
    url = site.serve("/story/", page)
    run_cli("snapshot", url, cwd=config.root)
    page.paragraphs[0] = page.paragraphs[0].replace("Monday", "Tuesday")
    result = run_cli("snapshot", url, cwd=config.root)
    assert result.stdout.splitlines()[0] == \
        "captured 1 URL for 1 seed(s): 1 response; 1 page(s) fetched again to confirm a change"


def test_an_unconfirmed_change_is_flagged_in_the_changes_feed_until_settled(news):
    """archiver changes and the Atom feed say a change is unconfirmed while it is; the
    Atom entry keeps its id when it is settled."""
    site, config = news
    page = Page()
    url = site.serve("/story/", page)
    run_snapshot(config, url)
    page.paragraphs.append("The authority later corrected the figure.")
    original, calls = site.routes["/story/"], itertools.count()

    def confirmation_fails(h):
        send(h, 503, b"busy", "text/plain") if next(calls) == 1 else original(h)
    site.routes["/story/"] = confirmation_fails
    run_snapshot(config, url)
    archive = archiver.open(config.root)
    [event] = archive.changes("1d")
    assert event["kind"] == "body" and event["unconfirmed"]
    feed = config.report.feed.read_text()
    assert "body changed (unconfirmed" in feed
    entry_id = re.search(r"<id>(urn:archiver:change:\w+)</id>", feed)[1]
    site.routes["/story/"] = original
    run_snapshot(config, url)
    [event] = archive.changes("1d")
    assert not event["unconfirmed"]
    feed = config.report.feed.read_text()
    assert "unconfirmed" not in feed and entry_id in feed
