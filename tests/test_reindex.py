"""The WARCs are the source of truth: reindex rebuilds the catalog and index exactly."""

from __future__ import annotations

from archiver.catalog import Catalog
from archiver.demo import run_demo
from archiver.config import load_config
from archiver.pipeline import reindex


def test_reindex_rebuilds_identical_catalog_and_cdxj(tmp_path):
    run_demo(tmp_path / "d")
    config = load_config(tmp_path / "d" / "config.toml")
    catalog = Catalog(config.storage.catalog)
    before = catalog.captures.dump()
    catalog.close()
    cdxj_before = {p.name: p.read_text() for p in config.storage.index_dir.glob("*.cdxj")}
    assert len(before[0]) == 30 and len(before[1]) > 20  # 28 fetches, the first capture's and the edit's confirmations
    config.storage.catalog.unlink()
    for p in config.storage.index_dir.glob("*.cdxj"):
        p.unlink()
    result = reindex(config)
    assert (result.files, result.captures, result.damaged) == (2, 30, [])
    catalog = Catalog(config.storage.catalog)
    assert catalog.captures.dump() == before
    catalog.close()
    assert {p.name: p.read_text() for p in config.storage.index_dir.glob("*.cdxj")} == cdxj_before


# ---- the SURT keys of the CDXJ index --------------------------------------------------

import surt  # noqa: E402
from hypothesis import given, settings, strategies as st  # noqa: E402

from archiver.archive.index import surt_key  # noqa: E402

LABEL = st.text("abcxyzWw0123456789-", min_size=1, max_size=6)
HOST = st.one_of(
    st.lists(LABEL, min_size=1, max_size=4).map(".".join),
    st.lists(st.integers(0, 300).map(str), min_size=3, max_size=5).map(".".join),
    st.sampled_from(["www.example.com", "www2.example.com", "wwwexample.com", "localhost", "127.0.0.1",
                     "010.0.0.1", "example.com.", "EXAMPLE.com"]))
PATH = st.text("abcXYZ019-._~/%;=()+ ", max_size=24).map(lambda p: "/" + p)
QUERY = st.one_of(st.just(""), st.text("ab=&1;", max_size=8).map(lambda q: "?" + q))
PORT = st.one_of(st.just(""), st.sampled_from([":80", ":443", ":8080", ":0", ":08", ":65535"]))


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(["http", "https"]), HOST, PORT, PATH, QUERY)
def test_surt_key_equals_the_reference_implementation(scheme, host, port, path, query):
    url = f"{scheme}://{host}{port}{path}{query}"
    try:
        expected = surt.surt(url)
    except Exception:  # noqa: BLE001 - URLs the reference cannot key are never indexed
        return
    assert surt_key(url) == expected


def test_surt_key_of_common_urls():
    for url, key in [("http://127.0.0.1:53665/articles/1/", "1,0,0,127:53665)/articles/1"),
                     ("https://www.example.com/a/B.html", "com,example)/a/b.html"),
                     ("http://example.com/", "com,example)/"),
                     ("https://sub.example.co.uk:8443/x/y-z_1.jpg", "uk,co,example,sub:8443)/x/y-z_1.jpg")]:
        assert surt_key(url) == key == surt.surt(url)


def test_pending_index_is_sorted_in_runs_and_merged(tmp_path):
    from archiver.archive.index import PendingIndex

    index = PendingIndex(tmp_path)
    index.RUN_LINES = 7
    lines = [f"com,example)/{n:03d} 2026 {{}}" for n in range(50)]
    for line in reversed(lines):
        index.add("x.warc.gz", line)
    target = index.finish("x.warc.gz")
    assert target.read_text().splitlines() == sorted(lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.warc.gz.cdxj"]


def test_reindex_of_a_truncated_warc_keeps_its_whole_records_says_so_and_exits_1(tmp_path):
    from archiver.archive.warcfile import iter_gzip_members

    from .conftest import run_cli

    run_demo(tmp_path / "d")
    config = load_config(tmp_path / "d" / "config.toml")
    first, second = sorted(config.storage.warc_dir.glob("*.warc.gz"))
    with open(first, "rb") as f:
        members = list(iter_gzip_members(f))
    cut = members[len(members) // 2][0] + 20  # 20 bytes into a record: the rest of the file is gone
    with open(first, "r+b") as f:
        f.truncate(cut)
    catalog = Catalog(config.storage.catalog)
    whole = [row for row in catalog.captures.rows() if row.warc == second.name or
             row.metadata_offset < members[len(members) // 2][0]]
    catalog.close()
    result = run_cli("reindex", "--quiet", cwd=config.root)
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert first.name in line and f"read {len(members) // 2} whole records" in line and f"of {cut}" in line
    catalog = Catalog(config.storage.catalog)
    kept = catalog.captures.rows()
    catalog.close()
    assert {(r.warc, r.offset) for r in kept} == {(r.warc, r.offset) for r in whole}
    assert 0 < len(kept) < 29 and result.stdout.startswith(f"reindexed {len(kept)} captures from 2 WARC files")
