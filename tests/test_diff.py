"""Pure diff and history stages: round-trips, noise invariance, READ-box logic."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st

from archiver.page.article import Article, Ref
from archiver.edits import diff
from archiver.edits import history as history_module
from archiver.edits.diff import diff_articles, diff_body, normalize
from archiver.edits.history import FIXED_AFTER, CaptureRef, Observation, ReadBoxes, build_history

words = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "Zs")), min_size=1, max_size=40)
paragraphs = st.lists(words, max_size=8)


@settings(max_examples=200, deadline=None)
@given(paragraphs, words)
def test_diff_of_an_article_with_itself_is_empty(paras, title):
    a = Article("https://e.example/", title=title, paragraphs=tuple(paras))
    changes, ops = diff_articles(a, a)
    assert changes == []
    assert all(op.op == "equal" for op in ops)


@settings(max_examples=200, deadline=None)
@given(paragraphs, st.randoms(use_true_random=False))
def test_soft_hyphens_nbsp_and_quotes_are_not_edits(paras, rng):
    def noisy(text: str) -> str:
        out = []
        for ch in text:
            out.append(ch)
            if rng.random() < 0.1:
                out.append(rng.choice(["\u00ad", "\u200b"]))
        return "".join(out).replace(" ", rng.choice([" ", "\u00a0", "  "]))
    _, changes = diff_body(paras, [noisy(p) for p in paras])
    assert changes == []


@given(words)
def test_normalize_is_idempotent(text):
    assert normalize(normalize(text)) == normalize(text)


def _normalize_without_fast_path(text: str) -> str:
    text = text.translate(diff._INVISIBLE)
    text = diff._LONE_A_CIRCUMFLEX.sub("", text)  # (no mojibake repair: never for ASCII)
    return " ".join(unicodedata.normalize("NFC", text).translate(diff._TRANSLATE).split())


@settings(max_examples=300)
@given(st.text(st.characters(max_codepoint=127)))
def test_normalize_fast_path_for_ascii_is_the_full_normalisation(text):
    assert normalize(text) == _normalize_without_fast_path(text)


def _is_noise_without_fast_path(paragraph: str) -> bool:
    masked = diff._COUNTER.sub("<count>", diff._RELATIVE_TIME.sub("<time>", paragraph))
    rest = re.sub(r"<time>|<count>|[\W_]+", " ", masked).split()
    return not rest or (("<time>" in masked or "<count>" in masked) and len(rest) <= 3)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(["5", "1,234", " ", "views", "minutes", "ago", "just now", "an hour", "_", "—",
                                 "<time>", "<count>", "Ünïcode", "٣", "word", "likes", ".", "Updated", "JUſT NOW", "AGO"]))
       .map("".join) | st.text())
def test_noise_fast_path_decides_as_the_full_test(paragraph):
    assert diff._is_noise(paragraph) == _is_noise_without_fast_path(paragraph)


def test_relative_times_and_counters_are_noise():
    assert diff_body(["Posted 5 minutes ago", "Body text here.", "1,234 views"],
                     ["Posted 2 hours ago", "Body text here.", "98 views"])[1] == []
    assert diff_body(["The office has 12 staff."], ["The office has 40 staff."])[1] != []


def refs(*urls: str) -> tuple[Ref, ...]:
    return tuple(Ref(u, u) for u in urls)


def test_read_boxes_become_fixed_after_identical_captures_and_a_swap_is_announced():
    boxes = ReadBoxes()
    for _ in range(FIXED_AFTER):
        assert boxes.observe(refs("a", "b"), other_edits=False) is None
    assert boxes.status == "fixed"
    assert boxes.observe(refs("a", "c"), other_edits=False) == (refs("a", "b"), refs("a", "c"))
    assert boxes.observe(refs("a", "c"), other_edits=False) is None


def test_read_boxes_that_change_twice_without_other_edits_are_rotating():
    boxes = ReadBoxes()
    boxes.observe(refs("a", "b"), other_edits=False)
    assert boxes.observe(refs("c", "d"), other_edits=False) is None
    assert boxes.status == "unknown"  # one change could be an editor's
    assert boxes.observe(refs("e", "f"), other_edits=False) is None
    assert boxes.status == "rotating"
    assert boxes.observe(refs("g", "h"), other_edits=True) is None


def test_one_early_swap_does_not_make_read_boxes_rotating_forever():
    boxes = ReadBoxes()
    boxes.observe(refs("old"), other_edits=False)
    for _ in range(FIXED_AFTER):
        boxes.observe(refs("new"), other_edits=False)
    assert boxes.status == "fixed"
    assert boxes.observe(refs("propaganda"), other_edits=False) == (refs("new"), refs("propaganda"))


def test_read_change_together_with_an_edit_is_not_taken_as_rotation():
    boxes = ReadBoxes()
    boxes.observe(refs("a", "b"), other_edits=False)
    boxes.observe(refs("a", "c"), other_edits=True)
    assert boxes.status == "unknown"


def observation(i: int, status: int | None = 200, article: Article | None = None) -> Observation:
    return Observation(CaptureRef("f.warc.gz", i, f"2026-11-01T00:00:{i:02d}.000000Z"), status,
                       "https://e.example/", article, error="" if status else "connection refused")


def test_failed_fetches_are_suspect_and_first_404_is_a_gone_version():
    text = Article("https://e.example/", title="T", paragraphs=("A real paragraph with words.",))
    history = build_history([observation(0, 404), observation(1, None), observation(2, 200, text)])
    assert [(v.gone, v.kinds) for v in history.versions] == [(True, ()), (False, ("restored",))]
    assert [s.reason for s in history.suspects] == ["no response: connection refused"]


def live(i: int, title: str = "T", paragraphs: tuple[str, ...] = ("A real paragraph with enough words in it.",),
         read: tuple[str, ...] = ("r1",)) -> Observation:
    return observation(i, 200, Article("https://e.example/", title=title, paragraphs=paragraphs,
                                       read_refs=refs(*read)))


def test_counts_and_times_inside_prose_are_editorial():
    _, changes = diff_body(["The post received 1,200 comments within a year ago today."],
                           ["The post received 12,000 comments within a year ago today."])
    assert changes and "12,000" in changes[0].after


@pytest.mark.parametrize("title", ["Security check at the border delays trucks", "Flight 404 lands safely",
                                   "Access denied: how journalists are blocked", "Missing hikers not found"])
def test_real_headlines_that_look_like_error_pages_are_articles(title):
    body = tuple(f"Paragraph {i} of a real report with several sentences of reporting in it." * 3 for i in range(6))
    history = build_history([live(0, title, body), live(1, title, body)])
    assert history.suspects == [] and [v.captures for v in history.versions] == [2]


def test_a_retraction_notice_that_stays_becomes_a_version():
    body = tuple(f"Paragraph {i} of the original article, long enough to count as the text." * 2 for i in range(8))
    notice = ("This article has been removed.",)
    history = build_history([live(0, "T", body)] + [live(i, "T", notice) for i in range(1, 1 + FIXED_AFTER)])
    assert [v.captures for v in history.versions] == [1, FIXED_AFTER]
    assert history.versions[1].kinds == ("body",) and history.suspects == []


def test_revert_is_found_after_read_boxes_became_fixed():
    history = build_history([live(0, "A"), live(1, "A"), live(2, "A"), live(3, "B"), live(4, "C"), live(5, "B")])
    assert [v.article.title for v in history.versions] == ["A", "B", "C", "B"]
    assert history.versions[-1].revert_of == 2


def test_changes_after_a_deletion_are_measured_from_the_last_live_version():
    history = build_history([live(0, "A"), observation(1, 404), live(2, "B")])
    v3 = history.versions[2]
    assert v3.kinds == ("restored", "title") and v3.since_version == 1 and v3.since.offset == 0


def test_a_stored_digest_of_this_version_stands_for_the_article():
    """History is rebuilt from every observation on each capture; a digest stored with
    the observation is trusted instead of normalising the article again."""
    article = live(0).article
    assert article is not None
    same = diff.content_digest(article)
    other = diff.content_digest(Article("https://e.example/", title="Other", paragraphs=("Different words.",)))
    history = build_history([replace(live(0), digest=same), replace(live(1), digest=other)])
    assert [v.number for v in history.versions] == [1, 2]  # same article, told apart by the digests
    assert history.computed == {}
    edited = live(1, paragraphs=("An edited paragraph with other words in it.",))
    history = build_history([replace(live(0), digest=same), replace(edited, digest=same)])
    assert [v.captures for v in history.versions] == [2]  # an edit, hidden by the digests


def test_digests_are_worked_out_once_when_missing_or_of_another_key_version(monkeypatch):
    worked_out = []
    monkeypatch.setattr(history_module, "content_digest", lambda a: worked_out.append(a) or diff.content_digest(a))
    assert build_history([live(0)]).computed == {}  # nothing to compare a first capture with
    stale = "v0:" + "0" * 64
    observations = [replace(live(0), digest=stale), live(1), live(2),
                    live(3, paragraphs=("An edited paragraph with other words in it.",)), live(4)]
    history = build_history(observations)
    assert [(v.captures, v.revert_of) for v in history.versions] == [(3, None), (1, None), (1, 1)]
    assert history.computed == {o.capture: diff.content_digest(o.article) for o in observations}
    assert len(worked_out) == 5


def test_content_digest_changes_only_with_key_version():
    """A change to what normalize() or content_key() return must bump KEY_VERSION, or
    stored digests would be compared with new ones: this pins one digest."""
    article = Article("https://e.example/", title="A \u201cquoted\u201d title", byline="By\u00a0Someone",
                      published="2026-01-02", paragraphs=("First paragraph \u2014 with a dash.", "Updated 5 minutes ago",
                                                          "Caf\u0065\u0301 society, 1,200 words."),
                      links=(Ref("https://e.example/source", "the\u00a0source"),))
    prefix, digest = diff.content_digest(article).split(":", 1)
    assert prefix.startswith(f"v{diff.KEY_VERSION}/unicode-")
    assert (diff.KEY_VERSION, digest) == (1, "5ddf533bd6db019ad93c7bfac5daa669375b6a7cfef23dae9e91a9ad703cea09")
