"""Edit detection end to end: a noisy local news site, captured again and again.

Noise-only recaptures must give no edit; every editorial edit must be reported with the
right kind and text, also when it arrives together with the noise.
"""

from __future__ import annotations

import copy

import pytest

from archiver.edits.history import FIXED_AFTER

from .conftest import make_archive, run_snapshot
from .newssite import TEMPLATES, NewsSite, Story

STABLE = FIXED_AFTER  # captures before an edit, so fixed READ targets are known as fixed


@pytest.fixture
def news(site, tmp_path):
    config = make_archive(tmp_path / "a", requisites="false", depth="0", confirm="true")
    return NewsSite(site), config


def capture(config, url, times: int = 1):
    for _ in range(times):
        summary = run_snapshot(config, url)
    return summary.histories[url]


@pytest.mark.parametrize("template", TEMPLATES)
def test_noise_only_recaptures_give_no_edit(news, template):
    site, config = news
    history = capture(config, site.url(template), times=5)
    assert [v.captures for v in history.versions] == [5]
    assert history.suspects == []
    assert history.read_boxes == "fixed"


@pytest.mark.parametrize("template", ("wordpress", "newscms"))
def test_read_boxes_rotating_over_hundreds_of_posts_raise_nothing(news, template):
    site, config = news
    site.story.read_pool = [(f"/2025/post-{i}/", f"Older story number {i}") for i in range(300)]
    history = capture(config, site.url(template), times=6)
    assert [v.captures for v in history.versions] == [6]
    assert history.read_boxes == "rotating"
    assert len(history.versions[0].read_seen) > 6  # every target seen is recorded


def edit_word(s: Story): s.paragraphs[0] = s.paragraphs[0].replace("on Monday", "on Tuesday")
def edit_number(s: Story): s.paragraphs[1] = s.paragraphs[1].replace("employ 12 people", "employ 40 people")
def add_sentence(s: Story): s.paragraphs[2] += " A second protest is planned for Friday."
def delete_sentence(s: Story): s.paragraphs[2] = s.paragraphs[2].replace(" They demanded a debate in parliament.", "")
def add_paragraph(s: Story): s.paragraphs.insert(3, "The ministry later confirmed that the office would also host liaison officers from the air force.")
def delete_paragraph(s: Story): del s.paragraphs[3]
def move_paragraph(s: Story): s.paragraphs.insert(1, s.paragraphs.pop(3))
def edit_title(s: Story): s.title = "Defence Office Opens in Marenburg"
def edit_byline(s: Story): s.byline = "Staff reporter"
def edit_published(s: Story): s.published = "2026-11-01T18:00:00+00:00"
def retarget_link(s: Story): s.links[0] = ("The defence ministry", "/docs/ministry-statement-corrected", "a statement")
def swap_read(s: Story): s.read_targets[0] = ("/2026/11/new-target/", "A Story Chosen by an Editor")


EDITS = [
    # (edit, kind, text that must be in "before", text that must be in "after", templates)
    (edit_word, "body", "on Monday", "on Tuesday", TEMPLATES),
    (edit_number, "body", "employ 12 people", "employ 40 people", TEMPLATES),
    (add_sentence, "body", "", "A second protest is planned for Friday.", TEMPLATES),
    (delete_sentence, "body", "They demanded a debate in parliament.", "", TEMPLATES),
    (add_paragraph, "body", "", "liaison officers from the air force", TEMPLATES),
    (delete_paragraph, "body", "Analysts expect the question", "", TEMPLATES),
    (move_paragraph, "body", "(moved) Neighbouring governments", "(moved to paragraph", TEMPLATES),
    (edit_title, "title", "Amid Protests", "Defence Office Opens in Marenburg", TEMPLATES),
    (edit_byline, "byline", "Ana Petrović", "Staff reporter", ("wordpress", "newscms")),
    (edit_published, "published", "2026-11-02", "2026-11-01", ("wordpress", "newscms")),
    (retarget_link, "links", "a statement -> ", "ministry-statement-corrected", TEMPLATES),
    (swap_read, "cross_refs", "pipeline-deal", "new-target", TEMPLATES),
]


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("edit, kind, before, after, templates", EDITS, ids=[e[0].__name__ for e in EDITS])
def test_each_editorial_edit_is_detected_among_noise(news, template, edit, kind, before, after, templates):
    if template not in templates:
        pytest.skip(f"the {template} template does not show this field")
    site, config = news
    url = site.url(template)
    capture(config, url, times=STABLE)
    edit(site.story)
    history = capture(config, url, times=2)
    assert [v.captures for v in history.versions] == [STABLE, 2]
    v2 = history.versions[1]
    assert v2.kinds == (kind,), v2.changes
    assert any(before in c.before and after in c.after for c in v2.changes), v2.changes
    assert history.suspects == []


def test_deletion_and_restoration(news):
    site, config = news
    url = site.url("wordpress")
    capture(config, url, times=2)
    site.story.status = 404
    capture(config, url, times=2)
    site.story.status = 200
    history = capture(config, url)
    assert [(v.kinds, v.gone, v.captures) for v in history.versions] == [
        ((), False, 2), (("gone",), True, 2), (("restored",), False, 1)]
    assert history.versions[2].revert_of == 1


def test_410_after_an_edit_then_restored_with_edit_reports_both(news):
    site, config = news
    url = site.url("newscms")
    capture(config, url)
    site.story.status = 410
    capture(config, url)
    site.story.status = 200
    edit_title(site.story)
    history = capture(config, url)
    assert history.versions[-1].kinds == ("restored", "title")
    assert history.versions[-1].revert_of is None


def test_flip_flopping_headline_is_marked_as_revert(news):
    site, config = news
    url = site.url("wordpress")
    original = site.story.title
    capture(config, url)
    site.story.title = "A/B headline"
    capture(config, url)
    site.story.title = original
    history = capture(config, url)
    assert [v.revert_of for v in history.versions] == [None, None, 1]


def test_edits_arriving_with_rotation_start_of_a_site(news):
    """A site that switches on rotation right after a fixed swap: the swap is announced
    once, the rotation after it never is."""
    site, config = news
    url = site.url("newscms")
    capture(config, url, times=STABLE)
    swap_read(site.story)
    capture(config, url)
    site.story.read_pool = [(f"/p/{i}/", f"Pool story {i}") for i in range(200)]
    history = capture(config, url, times=4)
    assert [v.kinds for v in history.versions] == [(), ("cross_refs",)]
    assert history.read_boxes == "rotating"


def test_several_edits_at_once_with_noise(news):
    site, config = news
    url = site.url("wordpress")
    capture(config, url, times=STABLE)
    edit_title(site.story)
    edit_number(site.story)
    retarget_link(site.story)
    history = capture(config, url)
    assert set(history.versions[1].kinds) == {"title", "body", "links"}


def test_suspect_captures_never_become_versions(news, site):
    news_site, config = news
    url = news_site.url("wordpress")
    capture(config, url, times=2)
    story = news_site.story
    pages = {
        "503": (503, "<html><body>Service unavailable</body></html>", ()),
        "challenge": (403, "<html><head><title>Just a moment...</title></head><body></body></html>",
                      (("cf-mitigated", "challenge"),)),
        "challenge200": (200, "<html><head><title>Just a moment...</title></head><body><p>Checking your "
                              "browser before accessing the site.</p></body></html>", ()),
        "empty": (200, "<html><body></body></html>", ()),
        "error200": (200, "<html><head><title>Page not found</title></head><body><h1>Page not found</h1>"
                          "<p>Sorry, the page you are looking for does not exist. Try the search.</p></body></html>", ()),
        "short": (200, "<html><head><title>x</title></head><body><article><p>Only a teaser line of the "
                       "article remains here.</p></article></body></html>", ()),
    }
    from .site import send
    for name, (status, body, headers) in pages.items():
        site.routes["/article/wordpress/"] = lambda h, s=status, b=body, hd=headers: send(h, s, b.encode(), "text/html", hd)
        capture(config, url)
    site.routes["/article/wordpress/"] = news_site._handler("wordpress")
    history = capture(config, url)
    assert [v.captures for v in history.versions] == [3]
    reasons = [s.reason for s in history.suspects]
    assert len(reasons) == 6, reasons
    assert reasons[0] == "HTTP 503"
    assert reasons[1].startswith("bot challenge (cf-mitigated")
    assert reasons[2].startswith("bot challenge page")
    assert reasons[3] == "empty extraction"
    assert reasons[4].startswith("error page served with HTTP 200")
    assert reasons[5].startswith("extraction far shorter than the current version")
    assert story.title == history.versions[0].article.title


def test_history_is_keyed_on_the_tracked_url_through_redirects(news, site):
    from .site import redirect
    news_site, config = news
    site.routes["/tracked/"] = redirect("/article/newscms/", 301)
    url = site.url("/tracked/")
    capture(config, url, times=2)
    site.routes["/tracked/"] = redirect("/article/wordpress/", 301)
    history = capture(config, url)
    assert [v.final_url for v in history.versions] == [news_site.url("newscms"), news_site.url("wordpress")]
    assert history.versions[1].kinds[0] == "redirected"


def test_reextract_rebuilds_the_same_versions(news):
    from archiver.catalog import Catalog
    from archiver.edits.observe import reextract
    site, config = news
    url = site.url("wordpress")
    capture(config, url, times=2)
    edit_number(site.story)
    capture(config, url)
    catalog = Catalog(config.storage.catalog)
    before = catalog.db.execute("SELECT * FROM versions ORDER BY number").fetchall()
    changes = catalog.db.execute("SELECT * FROM changes").fetchall()
    catalog.close()
    assert reextract(config) == 1
    catalog = Catalog(config.storage.catalog)
    assert catalog.db.execute("SELECT * FROM versions ORDER BY number").fetchall() == before
    assert catalog.db.execute("SELECT * FROM changes").fetchall() == changes
    catalog.close()


def test_each_content_digest_is_worked_out_once_and_stored(news):
    """Every capture rebuilds the URL's history from all its observations: their
    content digests come from the catalog, not from normalising each article again."""
    from archiver.catalog import Catalog
    from archiver.edits.diff import content_digest
    from archiver.edits.observe import article_from_json, load_history, reextract
    site, config = news
    url = site.url("wordpress")
    capture(config, url, times=3)
    catalog = Catalog(config.storage.catalog)
    # A confirming fetch's digest is never compared, so never worked out.
    rows = [r for r in catalog.history.observations(url) if r["role"] != "confirm"]
    assert [r["content_digest"] for r in rows] == [content_digest(article_from_json(r["article"])) for r in rows]
    assert load_history(catalog, url).computed == {}
    # reextract records the observations again: a stored digest, even a wrong one, goes.
    prefix = rows[0]["content_digest"].split(":")[0]
    catalog.db.execute("UPDATE observations SET content_digest = ?", (prefix + ":wrong",))
    catalog.close()
    assert reextract(config) == 1
    catalog = Catalog(config.storage.catalog)
    rows = [r for r in catalog.history.observations(url) if r["role"] != "confirm"]
    assert [r["content_digest"] for r in rows] == [content_digest(article_from_json(r["article"])) for r in rows]
    catalog.close()


def test_story_fixture_is_not_shared_between_tests():
    assert Story().paragraphs == copy.deepcopy(Story()).paragraphs
