"""Seed files and URL normalisation."""

from __future__ import annotations

import pytest

from archiver.errors import ConfigError, UsageError
from archiver.seeds import load_seeds, normalize_url, parse_seed_line


def test_seed_line_with_options_and_comment():
    seed = parse_seed_line("https://Example.org/a?b=1 every=6h tag=serbia  # watched", "s.txt", 3)
    assert seed.url == "https://example.org/a?b=1"
    assert seed.option("every") == "6h" and seed.option("tag") == "serbia"
    assert parse_seed_line("   # only a comment") is None
    assert parse_seed_line("") is None


def test_seed_file_errors_name_file_and_line(tmp_path):
    (tmp_path / "a.txt").write_text("https://ok.example/\nftp://bad.example/\n")
    with pytest.raises(ConfigError, match=r"a.txt:2: unsupported URL scheme 'ftp'"):
        load_seeds(tmp_path)
    (tmp_path / "a.txt").write_text("https://ok.example/ every\n")
    with pytest.raises(ConfigError, match="a.txt:1: option 'every' is not key=value"):
        load_seeds(tmp_path)


def test_first_occurrence_of_a_url_wins_across_files(tmp_path):
    (tmp_path / "a.txt").write_text("https://x.example/ tag=a\n")
    (tmp_path / "b.txt").write_text("https://x.example/ tag=b\nhttps://y.example/\n")
    seeds = load_seeds(tmp_path)
    assert [(s.url, s.option("tag")) for s in seeds] == [("https://x.example/", "a"), ("https://y.example/", None)]


@pytest.mark.parametrize("raw, expected", [
    ("HTTP://Example.COM:80/a b#frag", "http://example.com/a%20b"),
    ("https://example.com:443", "https://example.com/"),
    ("https://bücher.example/ü", "https://xn--bcher-kva.example/%C3%BC"),
    ("http://127.0.0.1:8080/x?q=a%20b", "http://127.0.0.1:8080/x?q=a%20b"),
])
def test_normalize_url(raw, expected):
    assert normalize_url(raw) == expected


@pytest.mark.parametrize("raw", ["ftp://x.example/", "example.com/page", "http://", "http://[::1"])
def test_invalid_urls_are_usage_errors(raw):
    with pytest.raises(UsageError):
        normalize_url(raw)


from hypothesis import given, settings, strategies as st  # noqa: E402

from urllib.parse import urljoin  # noqa: E402

from archiver.seeds import ALREADY_NORMAL, _normalized  # noqa: E402


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["http", "https"]), st.from_regex(r"[a-z0-9-]{1,5}(\.[a-z0-9-]{1,5}){0,3}", fullmatch=True),
       st.sampled_from(["", ":81", ":8080", ":65535", ":65536", ":99999"]), st.text("aZ09._~/-", max_size=20))
def test_urls_taken_as_already_normal_are_what_full_normalisation_gives(scheme, host, port, path):
    url = f"{scheme}://{host}{port}/{path}"
    assert ALREADY_NORMAL.fullmatch(url)
    if port in (":65536", ":99999"):  # not a port: both paths refuse it
        with pytest.raises(UsageError):
            normalize_url(url)
    else:
        assert _normalized(url, url) == normalize_url(url) == url


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(["http://127.0.0.1:8080/articles/1/", "https://www.example.com/a/b.html", "http://h:80/x",
                        "https://h.example/", "http://h.example:443/q/", "https://h.example", "https://h.example/a/?q"]),
       st.text("aZ09._~/-%?#: ", max_size=16))
def test_root_relative_links_joined_without_urljoin_are_what_urljoin_gives(base, rest):
    """normalize_url's fast path for plain root-relative links (PLAIN_ROOT_PATH)."""
    href = "/" + rest

    def through_urljoin() -> str:
        raw = urljoin(base, href.strip())
        return raw if ALREADY_NORMAL.fullmatch(raw) and not raw.split("/")[2].endswith((":80", ":443")) \
            else _normalized(raw, href)

    try:
        expected = through_urljoin()
    except UsageError:
        with pytest.raises(UsageError):
            normalize_url(href, base)
        return
    assert normalize_url(href, base) == expected
