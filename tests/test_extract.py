"""What the crawler follows from a page: cross-references (READ boxes and editorial links,
as the article extractor finds them) and requisites (pure functions, real corpus pages)."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from archiver.config import DEFAULT_CTA_TEXTS
from archiver.page.article import extract_article
from archiver.page.extract import css_links, decode_body, page_requisites

from .conftest import CORPUS, needs_corpus

CTA = tuple(DEFAULT_CTA_TEXTS)
BASE = "https://news.example/2026/article/"
FILLER = "This paragraph is long enough to be article text and not a caption. " * 3


def refs(html: str | bytes, kind: str | None = None):
    """READ targets, then editorial links, each in page order, as the crawler follows them."""
    data = html.encode() if isinstance(html, str) else html
    a = extract_article(data, BASE, "text/html", CTA)
    found = [("read", r.url, r.text) for r in a.read_refs] + [("body", r.url, r.text) for r in a.links]
    return [f for f in found if kind is None or f[0] == kind]


def article(inner: str, outside: str = "") -> str:
    return f"<html><body>{outside}<div class='entry-content'><p>{FILLER}</p>{inner}<p>{FILLER}</p></div></body></html>"


@needs_corpus
def test_inline_related_posts_minimalist_boxes_on_a_real_page():
    page = (CORPUS / "html/inline-related-posts/desdechinandega.com-ladivina.html").read_bytes()
    assert refs(page, "read") == [
        ("read", "https://www.desdechinandega.com/fuego-casi-envuelve-a-una-familia.html",
         "Fuego casi envuelve a una familia"),
        ("read", "https://www.desdechinandega.com/mas-de-1700-viviendas-afectadas-por-el-huracan-eta-en-nicaragua.html",
         "Más de 1700 viviendas afectadas por el Huracán Eta en Nicaragua")]


@needs_corpus
def test_inline_related_posts_pro_box_on_a_real_page():
    page = (CORPUS / "html/inline-related-posts/minuto30-lasierra.html").read_bytes()
    assert refs(page, "read") == [
        ("read", "https://www.minuto30.com/banshee-se-perdio-en-tricentenario/1330952/",
         '"Banshee" se perdió en Tricentenario')]


def test_call_to_action_paragraph_variants():
    html = article(
        "<p><strong>READ:</strong> <a href='/a'>Neither Russia nor Serbia</a></p>"
        "<p>READ ALSO: <a href='/b'>Second</a></p>"
        "<p>También puede leer: <a href='/c'>Tercero</a></p>"
        "<div class='IRPP_button'><a href='/d'><div class='ctaText'>Lea también</div>"
        "<div class='postTitle'>Cuarto</div></a></div>"
        "<p>Readers of this paragraph, which <a href='/e'>links a source</a>, are not a READ box.</p>")
    assert refs(html) == [
        ("read", "https://news.example/a", "Neither Russia nor Serbia"),
        ("read", "https://news.example/b", "Second"),
        ("read", "https://news.example/c", "Tercero"),
        ("read", "https://news.example/d", "Cuarto"),
        ("body", "https://news.example/e", "links a source")]


def test_editorial_links_exclude_navigation_sidebars_footers_comments_ads():
    html = article(
        "<p>Source: <a href='/report.pdf'>the report</a> and <a href='https://other.example/x#sec'>x</a>.</p>"
        "<div class='share-buttons'><a href='/share'>share</a></div>"
        "<div class='advert'><a href='/ad'>ad</a></div>"
        "<div id='comments'><a href='/comment-author'>commenter</a></div>"
        "<p><a href='#top'>top</a> <a href='javascript:void(0)'>js</a> <a href='mailto:a@b'>mail</a></p>",
        outside="<nav><a href='/nav'>nav</a></nav><aside><a href='/side'>side</a></aside>")
    html = html.replace("</body>", "<footer><a href='/foot'>foot</a></footer></body>")
    assert refs(html) == [("body", "https://news.example/report.pdf", "the report"),
                          ("body", "https://other.example/x", "x")]


def test_article_body_found_without_theme_class_names():
    html = ("<html><body><div id='menu'><a href='/m1'>m1</a><a href='/m2'>m2</a></div>"
            f"<table><tr><td>{FILLER}<br><br>{FILLER} <a href='/src'>source</a><br>{FILLER}</td></tr></table>"
            "</body></html>")
    assert refs(html) == [("body", "https://news.example/src", "source")]


def test_requisites_cover_css_js_images_srcset_icons_fonts_and_inline_css():
    html = """<html><head><base href="https://cdn.example/base/">
    <link rel="stylesheet" href="s.css"><link rel="shortcut icon" href="/favicon.ico">
    <link rel="preload" as="font" href="/f.woff2"><link rel="canonical" href="/canonical">
    <script src="app.js"></script><style>@import url("print.css"); .a { background: url('bg.png') }</style>
    </head><body><img src="a.jpg" srcset="a-640.jpg 640w, a-1280.jpg 1280w">
    <img data-src="lazy.jpg"><picture><source srcset="p.webp 1x, p2.webp 2x"></picture>
    <div style="background-image:url(hero.jpg)"></div><video poster="poster.jpg"></video></body></html>"""
    found = {link.url for link in page_requisites(html.encode(), BASE)}
    expected = {"s.css", "/favicon.ico", "/f.woff2", "app.js", "print.css", "bg.png", "a.jpg", "a-640.jpg",
                "a-1280.jpg", "lazy.jpg", "p.webp", "p2.webp", "hero.jpg", "poster.jpg"}
    assert found == {u if u.startswith("/") and False else
                     ("https://cdn.example" + u if u.startswith("/") else "https://cdn.example/base/" + u)
                     for u in expected}


def test_css_links_resolve_against_the_stylesheet():
    css = b'@import "reset.css"; @font-face { src: url(../fonts/a.woff2) format("woff2"); } ' \
          b'.x { background: url( "img/b.png" ) } .y { background: url(data:image/png;base64,AAAA) }'
    assert [link.url for link in css_links(css, "https://s.example/css/site.css")] == [
        "https://s.example/css/reset.css", "https://s.example/fonts/a.woff2", "https://s.example/css/img/b.png"]


def test_charset_from_header_meta_or_fallback():
    text = "<html><head><meta charset='windows-1251'></head><body>" + article(
        "<p>Читайте также: <a href='/ru'>Статья</a></p>") + "</body></html>"
    assert refs(text.encode("windows-1251"), "read") == [("read", "https://news.example/ru", "Статья")]


def test_decode_body_caps_gzip_bombs():
    import gzip
    bomb = gzip.compress(b"a" * 50_000_000)
    assert len(decode_body(bomb, "gzip")) == 20_000_000
    assert decode_body(b"not gzip", "gzip") == b"not gzip"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_discovery_never_raises_on_arbitrary_bytes(data):
    page_requisites(data, BASE, "text/html")
    page_requisites(b"<html><body><div>" + data + b"</div></body></html>", BASE, "")
    css_links(data, BASE)
    decode_body(data, "gzip, br")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=500))
def test_discovery_never_raises_on_arbitrary_markup(text):
    page_requisites(f"<p>READ: <img src='{text}'> <a href='{text}'>{text}</a></p>".encode("utf-8", "surrogatepass"),
                    BASE, "")
