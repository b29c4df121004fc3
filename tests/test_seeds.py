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


def test_unknown_seed_option_names_file_line_and_option(tmp_path):
    (tmp_path / "a.txt").write_text("https://ok.example/ every=1h\nhttps://x.example/ evry=1h tag=a\n")
    with pytest.raises(ConfigError, match=r"a.txt:2: unknown option 'evry' \(options: every, cron, tag, follow, match, max\)"):
        load_seeds(tmp_path)


def test_duplicate_seed_with_other_options_is_warned_about_naming_both_places(tmp_path, caplog):
    (tmp_path / "a.txt").write_text("https://x.example/ every=1h\nhttps://y.example/ tag=t\n")
    (tmp_path / "b.txt").write_text("# more\nhttps://x.example/ every=6h\nhttps://y.example/ tag=t\n")
    seeds = load_seeds(tmp_path)
    assert [(s.url, s.option("every")) for s in seeds] == [("https://x.example/", "1h"), ("https://y.example/", None)]
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]  # y: the same options, no warning
    assert "https://x.example/" in warning and "a.txt:1 (every=1h) is used" in warning
    assert "b.txt:2 (every=6h) is ignored" in warning


def test_commands_that_read_seeds_refuse_an_unknown_option(tmp_path):
    from .conftest import make_archive, run_cli

    config = make_archive(tmp_path / "a")
    (config.seeds_dir / "example.txt").write_text("http://127.0.0.1:9/a/ evry=1h\n")
    for args in (["snapshot"], ["run", "--once"], ["list"], ["status"]):
        result = run_cli(*args, cwd=config.root)
        assert result.returncode == 2, (args, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert "example.txt:1: unknown option 'evry'" in line, (args, line)
    (config.seeds_dir / "example.txt").write_text("http://127.0.0.1:9/a/ every=1h\n")
    (config.seeds_dir / "more.txt").write_text("http://127.0.0.1:9/a/ every=2h\n")
    listed = run_cli("list", cwd=config.root)
    assert listed.returncode == 0
    assert "example.txt:1 (every=1h) is used" in listed.stderr and "more.txt:1 (every=2h) is ignored" in listed.stderr


@pytest.mark.parametrize("raw", ["http://exa mple.org/", "http://exa<mple.org/", "http://ex%20ample.org/",
                                 "https://exa\"mple.org/a", "http://exa\u00a0mple.org/"])
def test_urls_with_invalid_host_characters_are_refused(raw):
    with pytest.raises(UsageError, match="invalid host"):
        normalize_url(raw)


def test_unusual_but_valid_hosts_are_kept():
    assert normalize_url("http://_dmarc.Example.com/") == "http://_dmarc.example.com/"
    assert normalize_url("http://[::1]:8080/x") == "http://[::1]:8080/x"
    assert normalize_url("http://example.org./") == "http://example.org./"


def test_invalid_hosts_and_os_errors_are_one_line_without_errno(site, tmp_path):
    from .conftest import make_archive, run_cli, run_snapshot

    config = make_archive(tmp_path / "a")
    run_snapshot(config, site.url("/a/"))  # something to export
    snap = run_cli("snapshot", "http://exa mple.org/", cwd=config.root)
    assert snap.returncode == 2 and snap.stderr.strip().splitlines() == [
        "archiver: error: invalid host 'exa mple.org' in URL 'http://exa mple.org/': a host name has only letters, "
        "digits, hyphens and dots"]
    (config.seeds_dir / "example.txt").write_text('# ok\n"http://exa mple.org/" every=1h\n')
    seeded = run_cli("snapshot", cwd=config.root)
    assert seeded.returncode == 2 and "example.txt:2: invalid host 'exa mple.org'" in seeded.stderr
    (config.seeds_dir / "example.txt").unlink()
    (config.seeds_dir / "folder.txt").mkdir()
    results = {"seed folder": run_cli("list", cwd=config.root),
               "missing WACZ": run_cli("verify", str(tmp_path / "none.wacz"), cwd=config.root),
               "export into a missing folder": run_cli("export", "--wacz", str(tmp_path / "no" / "x.wacz"),
                                                       cwd=config.root)}
    (config.seeds_dir / "folder.txt").rmdir()
    text = config.root.joinpath("config.toml").read_text()
    for setting in ("cookies_file", "ca_bundle"):
        config.root.joinpath("config.toml").write_text(text.replace(f'{setting} = ""', f'{setting} = "missing.txt"'))
        results[setting] = run_cli("snapshot", "https://127.0.0.1:9/", cwd=config.root)
    for what, result in results.items():
        assert result.returncode in (1, 2), what
        problem = result.stderr if what != "missing WACZ" else result.stdout.splitlines()[0]
        assert "Errno" not in result.stderr + result.stdout and "Error:" not in result.stderr, (what, result.stderr)
        assert "No such file or directory" in problem or "Is a directory" in problem, (what, problem)
        assert len(result.stderr.strip().splitlines()) <= 1, (what, result.stderr)
    assert results["cookies_file"].returncode == results["ca_bundle"].returncode == 2
