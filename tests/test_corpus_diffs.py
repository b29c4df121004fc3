"""The differ on real pages: reshuffled READ boxes and real before/after revisions."""

from __future__ import annotations

import random
import re

import pytest

from archiver.page.article import extract_article
from archiver.config import DEFAULT_CTA_TEXTS
from archiver.edits.diff import diff_articles

from .conftest import CORPUS, make_archive, needs_corpus, run_snapshot
from .site import send

pytestmark = needs_corpus

IRP = CORPUS / "html" / "inline-related-posts"
REVISIONS = CORPUS / "revisions" / "web-monitoring-diff"
BOX_LINK = re.compile(r'(<a href=")([^"]+)("[^>]*>(?:(?!</a>).)*?class="postTitle"[^>]*>)([^<]+)(<)', re.S)


def reshuffled(page: bytes, rng: random.Random, pool: list[tuple[str, str]]) -> bytes:
    """The page with every READ box re-picked from the site's pool, as the plugin does per render."""
    def pick(m: re.Match) -> str:
        href, title = rng.choice(pool)
        return f"{m.group(1)}{href}{m.group(3)}{title}{m.group(5)}"
    return BOX_LINK.sub(pick, page.decode("utf-8")).encode()


@pytest.mark.parametrize("name", ["desdechinandega.com-ladivina.html", "minuto30-lasierra.html"])
def test_real_pages_with_reshuffled_read_boxes_give_no_edit(site, tmp_path, name):
    page = (IRP / name).read_bytes()
    assert len(BOX_LINK.findall(page.decode("utf-8"))) >= 1
    rng = random.Random(3)
    pool = [(f"{site.base}/post-{i}/", f"Another story number {i}") for i in range(300)]
    site.routes["/article/"] = lambda h: send(h, 200, reshuffled(page, rng, pool), "text/html; charset=utf-8")
    config = make_archive(tmp_path / "a", requisites="false", depth="0")
    for _ in range(5):
        summary = run_snapshot(config, site.url("/article/"))
    history = summary.histories[site.url("/article/")]
    assert [v.captures for v in history.versions] == [5]
    assert history.read_boxes == "rotating"
    assert history.suspects == []


def diff_pair(stem: str):
    before, after = sorted(REVISIONS.glob(stem + "_v1_*"))[0], sorted(REVISIONS.glob(stem + "_v2_*"))[0]
    cta = tuple(DEFAULT_CTA_TEXTS)
    old = extract_article(before.read_bytes(), "https://www.fema.gov/hurricane-maria", "text/html", cta)
    new = extract_article(after.read_bytes(), "https://www.fema.gov/hurricane-maria", "text/html", cta)
    return diff_articles(old, new)


def test_fema_revision_reports_the_updated_figures_and_not_the_mojibake():
    """v2 of this page was saved with its UTF-8 read as cp1252 ("EspaÃ±ol"): that is
    not an edit; the updated figures and the swapped tweets are."""
    changes, _ = diff_pair("fema.gov-hurricane-maria")
    body = [c for c in changes if c.kind == "body"]
    assert any("12,300 federal staff" in c.before and "14,000 federal staff" in c.after for c in body)
    assert any("October 3, 2017" in c.before and "October 5, 2017" in c.after for c in body)
    assert any("USNS COMFORT is arriving" in c.before and "USNS Comfort arrived" in c.after for c in body)
    everything = " ".join(c.before + c.after for c in changes)
    assert "Ã" not in everything and "Español" not in everything
    assert {c.kind for c in changes} == {"body", "links"}
    assert len(body) <= 12


def test_energy_homepage_revision_has_no_article_edit():
    """The two energy.gov captures differ by a new card in a news listing and a form
    token: neither is article text."""
    changes, ops = diff_pair("energy.gov")
    assert changes == []
