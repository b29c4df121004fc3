"""Learned noise (pure): which blocks two renders teach, and what masking takes out."""

from __future__ import annotations

from hypothesis import given, strategies as st

from archiver.page.article import Article, Ref, extract_article
from archiver.edits.noise import learn_noise, mask, settle, settle_own

BODY = [f"Paragraph {n} of the story, long enough to be article text and not a caption or a label."
        for n in ("one", "two", "three", "four")]


def render(ad: str, promo: str, extra: str = "") -> Article:
    html = (f"<html><body><article><h1>T</h1><p>{BODY[0]}</p>"
            f"<div class='code-block code-block-{len(ad)}' id='inserted-8f3a9c21'><p>{ad}</p></div>"
            f"<p>{BODY[1]}</p><p>{promo}</p><p>{BODY[2]}</p>{extra}<p>{BODY[3]}</p></article></body></html>")
    return extract_article(html.encode(), "https://news.example/a/")


def test_a_differing_block_is_learned_by_where_it_stands_and_a_bare_counter_by_its_shape():
    a = render("Sponsored: the best mattress of 2026", "1,204 readers are on this page")
    b = render("Sponsored: holidays in the sun", "1,377 readers are on this page")
    assert learn_noise(a, b) == {"block:div.code-block.inserted>p|sponsored",
                                 "shape:# readers are on this page"}


def test_a_block_sharing_its_signature_with_stable_text_is_never_learned():
    a = render("ad", "counter", extra="<p>An editor added this paragraph between two renders.</p>")
    b = render("ad", "counter")
    assert learn_noise(a, b) == frozenset()  # a bare <p>: the article's own paragraphs stand there too


def test_a_block_repeating_its_text_under_a_new_link_is_learned_by_its_block_element():
    def ad(click: str) -> Article:  # a small ad pool: the same copy twice, a new click id each time
        box = (f"<div class='code-block code-block-{click[0]}'><a href='https://ads.example/c?id={click}'>"
               f"<strong>Flights to Lisbon</strong></a> Book by Sunday for travel until June.</div>")
        return render("an ad", "a promo", extra=box)
    assert learn_noise(ad("1f3a"), ad("9c2e")) == {"block:div.code-block"}  # not "a>strong": bold links open text too


def test_two_different_pages_teach_nothing():
    a = Article(url="u", paragraphs=("one", "two", "three"), blocks=("p", "p", "div>p"))
    b = Article(url="u", paragraphs=("four", "five", "six"), blocks=("p", "p", "div>p"))
    assert learn_noise(a, b) == frozenset()


def test_mask_takes_out_noise_paragraphs_links_and_read_refs():
    a = Article(url="u", paragraphs=("the first paragraph of text", "Advertisement: buy", "the second paragraph"),
                blocks=("p", "div.ad>p|advertisement", "p"),
                links=(Ref("https://ads.example/", "buy", "div.ad>p|advertisement"), Ref("https://x/", "x", "p")),
                read_refs=(Ref("https://r/", "r", "aside.trending|trending"),))
    masked, used = mask(a, frozenset({"block:div.ad>p|advertisement", "block:aside.trending|trending", "block:x"}))
    assert used == {"block:div.ad>p|advertisement", "block:aside.trending|trending"}
    assert masked.paragraphs == ("the first paragraph of text", "the second paragraph") and masked.blocks == ("p", "p")
    assert masked.links == (Ref("https://x/", "x"),) and masked.read_refs == ()


def test_a_key_holding_most_of_an_article_is_not_applied_to_it():
    a = Article(url="u", paragraphs=("long text " * 20, "more long text " * 20, "ad"), blocks=("p", "p", "div>p"))
    assert mask(a, frozenset({"block:p"})) == (a, frozenset())


@given(st.lists(st.text(max_size=30), max_size=8))
def test_two_identical_renders_teach_nothing_and_no_noise_masks_nothing(paragraphs):
    a = Article(url="u", paragraphs=tuple(paragraphs), blocks=tuple("p" for _ in paragraphs))
    assert learn_noise(a, a) == frozenset()
    assert mask(a, frozenset())[0] is a


def test_settle_drops_the_slot_two_renders_disagree_on_in_the_old_version_too():
    """A bare paragraph ad (no markup to learn) holds a new ad on every render: the old
    version's ad, this render's and the other render's stand in one slot."""
    def article(*paragraphs: str) -> Article:
        return Article(url="u", paragraphs=paragraphs, blocks=("p",) * len(paragraphs))
    old = article("one", "ad: mortgages", "two", "three")
    render = article("one", "ad: holidays", "two", "three, edited")
    other = article("one", "ad: phones", "two", "three, edited")
    base, settled = settle(old, render, other)
    assert base.paragraphs == ("one", "two", "three") and settled.paragraphs == ("one", "two", "three, edited")


def test_what_only_one_render_of_a_version_showed_is_not_held_against_a_later_capture():
    """A teaser the extraction took in once (an ad beside it pulled it into the text) and
    not in the render fetched right after: later captures lacking it are no edit."""
    from archiver.edits.history import CaptureRef, Observation, build_history
    teaser = "Lesen Sie hier einen weiteren spannenden Beitrag über Webshops und ihre Suche."
    renders = [BODY + [teaser], BODY, BODY, BODY]  # the first capture, its confirmation, a capture, its confirmation
    observations = [Observation(CaptureRef("w", n, f"2026-01-01T00:00:0{n}Z"), 200, "https://news.example/a/",
                                Article(url="https://news.example/a/", paragraphs=tuple(p), blocks=("p",) * len(p)),
                                confirm=n % 2 == 1)
                    for n, p in enumerate(renders)]
    assert settle_own(observations[0].article, observations[1].article).paragraphs == tuple(BODY)
    history = build_history(observations, confirm=True)
    assert [(v.kinds, v.captures) for v in history.versions] == [((), 2)]
