"""Article extraction (pure): real corpus pages, one synthetic page per layout, and bytes
that are no article at all."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter

import lxml.html
import pytest
from hypothesis import given, settings, strategies as st

from archiver.page.article import EXTRACTOR_VERSION, Article, Ref, extract_article
from archiver.config import DEFAULT_CTA_TEXTS

from .conftest import CORPUS, needs_corpus

CTA = tuple(DEFAULT_CTA_TEXTS)
HTML = CORPUS / "html"
READABILITY_URL = "http://fakehost/test/page.html"
LONG = "This sentence is long enough to read as article text rather than a caption, a label or a menu."


def extract(html: str, url: str = "https://news.example/2026/05/harbour-budget/", **kw) -> Article:
    return extract_article(html.encode(), url, "text/html; charset=utf-8", kw.pop("cta_texts", CTA))


# ---- real pages: metadata ----------------------------------------------------------------

def readability_page(name: str) -> tuple[Article, dict]:
    folder = HTML / "readability" / name
    meta = json.loads((folder / "expected-metadata.json").read_text(encoding="utf-8"))
    return extract_article((folder / "source.html").read_bytes(), READABILITY_URL), meta


@needs_corpus
@pytest.mark.parametrize("name", ["002", "aktualne", "ars-1", "cnet", "cnn", "folha", "lemonde-1", "nytimes-1",
                                  "nytimes-2", "schema-org-context-object"])
def test_title_and_byline_of_real_pages(name):
    article, meta = readability_page(name)
    assert (article.title, article.byline) == (meta["title"], meta["byline"])


@needs_corpus
@pytest.mark.parametrize("name", ["aktualne", "bbc-1", "breitbart", "folha", "guardian-1", "liberation-1",
                                  "schema-org-context-object", "seattletimes-1", "theverge", "wordpress"])
def test_published_date_of_real_pages(name):
    article, meta = readability_page(name)
    assert article.published == meta["publishedTime"]


@needs_corpus
def test_byline_leaves_out_the_relative_time_printed_beside_it():
    article, _ = readability_page("aktualne")  # <div class="author__date">před 2 hodinami</div> in the byline box
    assert article.byline == "Aleš Vávra"
    assert article.modified == "2021-11-01T10:52:50+0100"  # JSON-LD dateModified, preferred to <meta>
    assert article.canonical_url.startswith("https://sport.aktualne.cz/fotbal/zahranici/west-ham-hrozi-gi")


# ---- real pages: body text ---------------------------------------------------------------

def html_text(html: str) -> str:
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    for el in root.iter():
        el.tail = " " + (el.tail or "")
    return root.text_content()


def token_f1(got: str, want: str) -> float:
    g, w = (Counter(t.lower() for t in re.findall(r"\w+", s)) for s in (got, want))
    common = sum((g & w).values())
    p, r = common / max(1, sum(g.values())), common / max(1, sum(w.values()))
    return 2 * p * r / (p + r) if p + r else 0.0


@needs_corpus
def test_body_text_matches_readability_ground_truth():
    """All 130 pages of the Mozilla Readability test set. Measured for archiver/3 with this
    test's own scoring (`python bench/extract_quality.py` gives macro F1 0.949 with its
    tokeniser): macro F1 0.947; 7 pages under 0.80, the lowest 0.107 (nytimes-5, whose
    body our scoring does not find). Thresholds sit a little below."""
    scores = {}
    for folder in sorted((HTML / "readability").iterdir()):
        article = extract_article((folder / "source.html").read_bytes(), READABILITY_URL)
        want = html_text((folder / "expected.html").read_text(encoding="utf-8"))
        scores[folder.name] = token_f1("\n".join(article.paragraphs), want)
    assert sum(scores.values()) / len(scores) >= 0.94, scores
    assert len([f for f in scores.values() if f < 0.80]) <= 8, scores
    assert min(scores.values()) >= 0.10, scores


@needs_corpus
def test_body_text_keeps_and_drops_trafilatura_snippets():
    """trafilatura's evaldata: snippets the main text must / must not contain, over all
    110 pages of its test cache. Measured for archiver/3 (`python bench/extract_quality.py`,
    same run as its peers): F1 0.919, P 0.926, R 0.913, tp 262 fn 25 fp 21 (trafilatura
    2.3.1 itself: 0.918 default, 0.912 favor_recall, 0.905 fast, 0.902 favor_precision);
    threshold a little below."""
    evaldata = json.loads((HTML / "trafilatura" / "evaldata.json").read_text(encoding="utf-8"))
    tp = fn = fp = 0
    for url, entry in evaldata.items():
        path = HTML / "trafilatura" / entry["file"]
        if not path.exists():
            continue
        text = " ".join(" ".join(extract_article(path.read_bytes(), url, "", CTA).paragraphs).split())
        found = [" ".join(s.split()) in text for s in entry.get("with", [])]
        leaked = [" ".join(s.split()) in text for s in entry.get("without", [])]
        tp, fn, fp = tp + sum(found), fn + len(found) - sum(found), fp + sum(leaked)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert 2 * precision * recall / (precision + recall) >= 0.91


# ---- real pages: READ boxes --------------------------------------------------------------

@needs_corpus
def test_inline_related_posts_minimalist_boxes_are_read_refs_not_paragraphs():
    page = (HTML / "inline-related-posts" / "desdechinandega.com-ladivina.html").read_bytes()
    article = extract_article(page, "https://www.desdechinandega.com/el-domingo-de-la-divina-misericordia.html",
                              "text/html; charset=UTF-8", CTA)
    assert article.read_refs == (
        Ref("https://www.desdechinandega.com/fuego-casi-envuelve-a-una-familia.html",
            "Fuego casi envuelve a una familia"),
        Ref("https://www.desdechinandega.com/mas-de-1700-viviendas-afectadas-por-el-huracan-eta-en-nicaragua.html",
            "Más de 1700 viviendas afectadas por el Huracán Eta en Nicaragua"))
    body = "\n".join(article.paragraphs)
    assert "También puede leer" not in body and "Fuego casi envuelve" not in body
    assert len(article.paragraphs) > 30 and article.paragraphs[0].startswith("El segundo Domingo de Pascua")
    assert {r.url for r in article.read_refs}.isdisjoint(r.url for r in article.links)
    assert Ref("https://www.aciprensa.com/juanpabloii/index.html", "San Juan Pablo II") in article.links


@needs_corpus
def test_inline_related_posts_pro_box_is_a_read_ref_not_a_paragraph():
    page = (HTML / "inline-related-posts" / "minuto30-lasierra.html").read_bytes()
    article = extract_article(page, "https://www.minuto30.com/policia-hace-presencia-en-la-sierra/1331134/", "", CTA)
    assert article.read_refs == (Ref("https://www.minuto30.com/banshee-se-perdio-en-tricentenario/1330952/",
                                     '"Banshee" se perdió en Tricentenario'),)
    assert not any("Banshee" in p for p in article.paragraphs)
    assert article.paragraphs[0].startswith("Tras el anuncio del Paro armado")
    assert article.byline == "Juliet Jimenez"


# ---- synthetic layouts ------------------------------------------------------------------

WORDPRESS = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Council approves harbour budget | The Harbour Gazette</title>
<meta property="og:title" content="Council approves harbour budget | The Harbour Gazette">
<meta property="og:site_name" content="The Harbour Gazette">
<meta property="article:published_time" content="2026-05-04T09:30:00+00:00">
<meta property="article:modified_time" content="2026-05-05T10:00:00+00:00">
<link rel="canonical" href="https://news.example/2026/05/harbour-budget/?utm_source=x#top">
</head><body class="post-template-default single single-post">
<header id="masthead"><nav class="main-navigation"><ul><li><a href="/">Home</a></li><li><a href="/news/">News</a></li></ul></nav></header>
<div id="content" class="site-content"><main id="main" class="site-main">
<article class="post type-post hentry">
 <header class="entry-header"><h1 class="entry-title">Council approves harbour budget</h1>
  <div class="entry-meta"><span class="byline">By <span class="author vcard"><a class="url fn n" href="/author/ana/">Ana Ruiz</a></span></span>
  <span class="posted-on">Updated 5 minutes ago</span></div></header>
 <div class="entry-content">
  <p>The council approved the harbour budget on Monday. {LONG} See <a href="https://council.example/minutes.pdf">the minutes</a>.</p>
  <div class="post-views">1,234 views</div>
  <div style="clear:both; margin-top:0em; margin-bottom:1em;"><a href="https://news.example/2026/04/ferry/" target="_blank" rel="nofollow" class="u0a1b2c"><style>.u0a1b2c{{padding:0}}</style><div style="padding-left:1em; padding-right:1em;"><span class="ctaText">READ</span>&nbsp; <span class="postTitle">Ferry timetable changes</span></div></a></div>
  <h2>What the money pays for</h2>
  <p>Most of it goes to the breakwater. {LONG}</p>
  <ul><li>Breakwater repairs, 2 million.</li><li>New <a href="/tags/cranes/">cranes</a>, 1 million.</li></ul>
  <p><strong>READ ALSO:</strong> <a href="/2026/03/dredging/">Dredging contract awarded</a></p>
  <div class="code-block advert"><p>Advertisement</p><a href="https://ads.example/click">Buy now</a></div>
  <p>Advertisement</p>
  <p>The mayor called it "a fair deal". {LONG}<br><br>A second paragraph after two line breaks, {LONG}</p>
  <div class="sharedaddy sd-sharing-enabled"><h3 class="sd-title">Share this:</h3><a href="https://twitter.example/share">Twitter</a></div>
  <div id="jp-relatedposts" class="jp-relatedposts"><h3>Related</h3><p><a href="/2026/01/old/">An old story</a> {LONG}</p></div>
 </div>
 <footer class="entry-footer"><span class="tags-links"><a href="/tag/harbour/">harbour</a></span></footer>
</article>
<div id="comments" class="comments-area"><p>Great article! {LONG}</p></div>
</main>
<aside id="secondary" class="widget-area"><section class="widget"><h2>Popular</h2><ul><li><a href="/p1/">P1</a></li></ul></section></aside>
</div><footer id="colophon" class="site-footer"><p>Copyright © 2026 The Harbour Gazette. {LONG}</p></footer>
</body></html>"""


def test_wordpress_entry_content():
    article = extract(WORDPRESS)
    assert article.title == "Council approves harbour budget"
    assert article.byline == "Ana Ruiz"
    assert (article.published, article.modified) == ("2026-05-04T09:30:00+00:00", "2026-05-05T10:00:00+00:00")
    assert article.canonical_url == "https://news.example/2026/05/harbour-budget/?utm_source=x"
    assert article.paragraphs == (
        f"The council approved the harbour budget on Monday. {LONG} See the minutes.",
        "What the money pays for",
        f"Most of it goes to the breakwater. {LONG}",
        "Breakwater repairs, 2 million.",
        "New cranes, 1 million.",
        f'The mayor called it "a fair deal". {LONG}',
        f"A second paragraph after two line breaks, {LONG}")
    assert article.links == (Ref("https://council.example/minutes.pdf", "the minutes"),
                             Ref("https://news.example/tags/cranes/", "cranes"))
    assert article.read_refs == (Ref("https://news.example/2026/04/ferry/", "Ferry timetable changes"),
                                 Ref("https://news.example/2026/03/dredging/", "Dredging contract awarded"))
    assert article.extractor == f"archiver/{EXTRACTOR_VERSION}"


def test_renders_differing_in_read_boxes_and_counters_give_the_same_text_and_links():
    other = (WORDPRESS.replace("1,234 views", "1,240 views").replace("Updated 5 minutes ago", "Updated 7 minutes ago")
             .replace("/2026/04/ferry/", "/2025/11/lighthouse/").replace("Ferry timetable changes", "Lighthouse"))
    a, b = extract(WORDPRESS), extract(other)
    assert (a.paragraphs, a.links, a.title, a.byline) == (b.paragraphs, b.links, b.title, b.byline)
    assert a.read_refs != b.read_refs


NEWS_CMS = f"""<html><head><title>Tunnel reopens after repairs - Regional Courier</title>
<meta name="description" content="The road tunnel reopened on Friday after six months of repairs costing 40 million.">
</head><body>
<div class="top"><a href="/">Regional Courier</a> <a href="/sport/">Sport</a> <a href="/weather/">Weather</a></div>
<div class="layout"><div class="col-main" itemscope itemtype="https://schema.org/NewsArticle">
 <h1 itemprop="headline">Tunnel reopens after repairs</h1>
 <p class="standfirst">The road tunnel reopened on Friday after six months of repairs costing 40 million.</p>
 <div class="meta"><span itemprop="author" itemscope itemtype="https://schema.org/Person">By <span itemprop="name">Jon Berg</span></span>
  <time itemprop="datePublished" datetime="2026-02-06T07:00:00+01:00">6 February</time>
  <meta itemprop="dateModified" content="2026-02-06T09:15:00+01:00"></div>
 <div itemprop="articleBody">
  <p>Traffic resumed at dawn. {LONG}</p>
  <h3>Costs</h3>
  <p>The repairs cost 40 million, <a href="https://audit.example/report">the audit office</a> says. {LONG}</p>
  <div class="inline-promo"><p>Subscribe to our newsletter for more regional news every morning, it is free.</p></div>
 </div>
</div>
<div class="col-side"><div class="box"><p>{LONG} {LONG} {LONG}</p></div></div></div>
</body></html>"""


def test_news_cms_with_itemprop_article_body_and_microdata():
    article = extract(NEWS_CMS, "https://courier.example/news/tunnel")
    assert article.title == "Tunnel reopens after repairs"
    assert article.byline == "Jon Berg"
    assert (article.published, article.modified) == ("2026-02-06T07:00:00+01:00", "2026-02-06T09:15:00+01:00")
    assert article.paragraphs == (
        "The road tunnel reopened on Friday after six months of repairs costing 40 million.",  # standfirst
        f"Traffic resumed at dawn. {LONG}",
        "Costs",
        f"The repairs cost 40 million, the audit office says. {LONG}")
    assert article.links == (Ref("https://audit.example/report", "the audit office"),)


OLD_LAYOUT = f"""<html><head><title>Daily Example - Council approves harbour budget</title></head>
<body bgcolor="#ffffff"><h1><a href="/">Daily Example</a></h1>
<table width="100%"><tr>
<td width="150" valign="top"><a href="/">Home</a><br><a href="/archive/">Archive</a><br><a href="/contact/">Contact</a></td>
<td valign="top"><h2>Council approves harbour budget</h2><font size="2">By Mary Okafor</font><br><br>
The council approved the budget on Monday night. {LONG}<br>
It was a long meeting. {LONG}<br><br>
The vote was 7 to 2, says <a href="http://council.example/vote.html">the record</a>. {LONG}<br><br><br>
<b>Reactions</b> were mixed. {LONG}
</td></tr></table>
<p align="center"><font size="1">(c) 2003 Daily Example</font></p></body></html>"""


def test_old_layout_with_br_paragraphs_and_the_site_name_in_h1():
    article = extract(OLD_LAYOUT, "http://www.dailyexample.example/2003/harbour.html")
    assert article.title == "Council approves harbour budget"
    assert article.paragraphs == (
        "By Mary Okafor",
        f"The council approved the budget on Monday night. {LONG} It was a long meeting. {LONG}",
        f"The vote was 7 to 2, says the record. {LONG}",
        f"Reactions were mixed. {LONG}")
    assert article.links == (Ref("http://council.example/vote.html", "the record"),)


def test_site_name_stripped_from_the_title_when_no_heading_matches():
    html = OLD_LAYOUT.replace("<h2>Council approves harbour budget</h2>", "")
    assert extract(html, "http://www.dailyexample.example/2003/harbour.html").title == \
        "Council approves harbour budget"


JSON_LD = f"""<html><head><title>Grain prices | Farm Weekly</title>
<meta property="og:title" content="Grain prices fall for a third month">
<script type="application/ld+json">
{{"@context": "https://schema.org", "@graph": [
  {{"@type": "WebSite", "name": "Farm Weekly"}},
  {{"@type": "NewsArticle", "headline": "Grain prices fall for a third month",
    "author": [{{"@type": "Person", "name": "Li Wei"}}, {{"@type": "Person", "name": "Sara Holm"}}],
    "datePublished": "2026-03-01T06:00:00Z", "dateModified": "2026-03-02T08:30:00Z"}}]}}
</script></head>
<body><div class="wrap"><div class="story"><h1>Grain prices fall for a third month</h1>
<span class="byline">By someone else entirely</span>
<p>Prices fell again. {LONG}</p><p>Farmers are worried. {LONG}</p></div></div></body></html>"""


def test_json_ld_metadata():
    article = extract(JSON_LD, "https://farmweekly.example/grain")
    assert article.title == "Grain prices fall for a third month"
    assert article.byline == "Li Wei, Sara Holm"
    assert (article.published, article.modified) == ("2026-03-01T06:00:00Z", "2026-03-02T08:30:00Z")
    assert article.paragraphs == (f"Prices fell again. {LONG}", f"Farmers are worried. {LONG}")


def test_article_split_over_several_containers_of_one_kind():
    parts = "".join(f"<section class='story-part'><div class='text'><p>Part {n}. {LONG}</p><p>{LONG}</p></div>"
                    f"<div class='ad-slot'><p>Sponsored: buy a boat today, the best boats in the region.</p></div>"
                    "</section>" for n in range(3))
    html = f"<html><body><div class='page'>{parts}</div><div class='teasers'><p>{LONG}</p></div></body></html>"
    paragraphs = extract(html).paragraphs
    assert [p for p in paragraphs if p.startswith("Part")] == ["Part 0. " + LONG, "Part 1. " + LONG, "Part 2. " + LONG]
    assert len(paragraphs) == 6


def test_a_theme_headline_named_post_title_is_no_read_box():
    html = (f"<html><body><div class='post'><h2 class='postTitle'><a href='/2026/05/harbour/'>Harbour news</a></h2>"
            f"<p>{LONG}</p><p>{LONG} Again.</p></div></body></html>")
    article = extract(html)
    assert article.read_refs == () and article.paragraphs == ("Harbour news", LONG, f"{LONG} Again.")


def test_a_listing_of_teasers_is_no_article():
    """A home page: cards of one kind, each a linked headline and an excerpt. A new card
    must not read as an edit, so there is no body at all."""
    cards = "".join(f"<div class='card'><h3><a href='/story-{n}/'>Story number {n} headline here</a></h3>"
                    f"<div class='summary'>Summary of story {n}, which is long enough to be a sentence or two "
                    f"about it.</div></div>" for n in range(8))
    article = extract(f"<html><head><title>Gazette</title></head><body><div class='cards'>{cards}</div></body></html>")
    assert (article.title, article.paragraphs, article.links) == ("Gazette", (), ())


def test_hidden_elements_and_page_wide_furniture_tags():
    html = (f"<html><body><form id='aspnetForm'><div class='article'><p>{LONG}</p><p>{LONG} Two.</p>"
            f"<p style='display:none'>Hidden text that a reader never sees on the page at all.</p>"
            f"<div class='sr-only'>Skip to the comments of this article right now</div></div></form></body></html>")
    assert extract(html).paragraphs == (LONG, f"{LONG} Two.")


def test_charset_from_meta_and_http_header():
    html = f"<html><head><meta charset='windows-1251'></head><body><p>Читайте новости. {LONG}</p></body></html>"
    assert extract_article(html.encode("windows-1251"), "https://ru.example/").paragraphs[0].startswith("Читайте")
    assert extract_article(html.encode("koi8-r"), "https://ru.example/", "text/html; charset=koi8-r") \
        .paragraphs[0].startswith("Читайте")


def test_not_html_gives_an_empty_article():
    assert extract_article(b"\x89PNG\r\n\x1a\n\x00\x00", "https://a.example/x.png") == Article("https://a.example/x.png")
    assert extract_article(b"<p>text</p>", "https://a.example/", "application/pdf").paragraphs == ()
    assert extract_article(b"", "https://a.example/") == Article("https://a.example/")


def test_article_module_imports_no_io_libraries():
    code = ("import sys, archiver.page.article; "
            "print(','.join(m for m in ('requests', 'sqlite3', 'apscheduler', 'urllib3') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


CONTENT_TYPES = st.sampled_from(["", "text/html", "text/html; charset=utf-8", "text/html; charset=utf-16",
                                 "text/html; charset=shift_jis", "text/html; charset=bogus", "application/xhtml+xml"])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), CONTENT_TYPES)
def test_extract_never_raises_on_arbitrary_bytes(data, content_type):
    for body in (data, b"<html><body><div class='entry-content'><p>" + data + b"</p></div></body></html>",
                 b"<html><head><script type='application/ld+json'>" + data + b"</script></head><body>" + data):
        article = extract_article(body, "https://news.example/a", content_type, CTA)
        assert article.url == "https://news.example/a"
        assert all(p and p == " ".join(p.split()) for p in article.paragraphs)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=2000))
def test_extract_never_raises_on_arbitrary_text_in_markup(text):
    html = f"<html><head><title>{text}</title><meta name='author' content='{text}'></head><body><article>" \
           f"<h1>{text}</h1><p>{text}</p><p>READ: <a href='{text}'>{text}</a></p><br><br>{text}</article></body></html>"
    extract_article(html.encode("utf-8", "surrogatepass"), "https://news.example/a", "", CTA)


@pytest.mark.parametrize("title", ["How we designed Dropbox ATF: an async task framework",
                                   "How we designed Dropbox ATF: an async task framework: what we know so far"])
def test_a_self_labelled_teaser_takes_no_closing_line_with_it(title):
    """A blog post's closing line ("... schönen Sonntag <3") followed by an "Up next"
    teaser whose headline is A/B tested: a long headline made the teaser all link and the
    closing line its label, so the line came and went with the headline (a false edit
    found by bench/edit_generalization.py, --seed 2)."""
    body = "".join(f"<p>Paragraph {i} of the post, long enough to be read as the article itself.</p>"
                   for i in range(6))
    article = extract(f"<html><body><article>{body}"
                      "<p>Ich wünsche euch allen einen schönen Sonntag &lt;3</p>"
                      f'<div class="up-next"><span>Up next</span> <a href="/next/">{title}</a></div>'
                      "<p>x Franzi</p></article></body></html>")
    assert "Ich wünsche euch allen einen schönen Sonntag <3" in article.paragraphs
    assert "x Franzi" in article.paragraphs


def test_a_label_still_takes_the_bare_link_it_introduces():
    body = "".join(f"<p>Paragraph {i} of the story, long enough to be read as the article itself.</p>"
                   for i in range(6))
    article = extract(f"<html><body><article>{body}<p>Explore further</p>"
                      '<p><a href="/other/">Another story of the same site</a></p>'
                      "<p>The end of the story, with a final sentence.</p></article></body></html>")
    assert "Explore further" not in article.paragraphs
    assert "Another story of the same site" not in article.paragraphs
