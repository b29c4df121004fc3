"""archiver as a library: what a notebook or another tool calls, against a real local site."""

from __future__ import annotations

import pytest

import archiver
from archiver.edits.diff import INSERT

SETTINGS = {"per_host_delay": "0.0", "confirm_delay": "0.0", "timeout": "5.0", "retries": "0"}


def article(sentence: str) -> str:
    return ("<html><head><title>Minister visits the port</title></head><body><article>"
            "<h1>Minister visits the port</h1>"
            + "".join(f"<p>Paragraph {i} of the report on the port visit, with enough words to count. </p>"
                      for i in range(6))
            + f"<p>{sentence}</p></article></body></html>")


def test_a_python_caller_tracks_captures_diffs_verifies_and_exports(site, tmp_path):
    site.page("/news/port/", article("The minister said the port would open in May."))
    url = site.url("/news/port/")
    archive = archiver.init(tmp_path / "a", overrides=SETTINGS)
    assert archiver.open(tmp_path / "a").config.root == archive.config.root
    (archive.config.seeds_dir / "example.txt").unlink()  # its URL is on the internet

    tracking = archive.add(url, every="6h", tags=["ports"])
    assert [t["url"] for t in archive.tracked()] == [tracking.seed.url]

    first = archive.snapshot()  # every seed
    assert first.failed_seeds == []
    site.page("/news/port/", article("The minister said the port would open in September, not May."))
    archive.snapshot([url])

    assert {c.url for c in archive.captures(url)} == {url}
    history = archive.history(url)
    assert [v.number for v in history.versions] == [1, 2]
    change = archive.diff(url)
    inserted = " ".join(op.text for op in change.body if op.op == INSERT)
    assert "September" in inserted
    assert [e["kind"] for e in archive.changes("1d") if e["url"] == url] == ["body"]

    archive.keygen()
    assert archive.verify().ok
    exported = archive.export(tmp_path / "out.wacz", [url])
    assert exported.signed and exported.captures >= 2
    key = str(archive.config.evidence.key) + ".pub"
    assert archiver.verify_export(tmp_path / "out.wacz", key=key).ok
    assert archive.status()["tracked"] == 1

    assert archive.remove(url)
    assert archive.tracked() == []


def test_what_a_caller_asks_wrongly_is_a_usage_error(site, tmp_path):
    archive = archiver.init(tmp_path / "a", overrides=SETTINGS)
    (archive.config.seeds_dir / "example.txt").unlink()
    with pytest.raises(archiver.UsageError, match="no URL given and no seeds"):
        archive.snapshot()
    with pytest.raises(archiver.UsageError, match="has no captures"):
        archive.history(site.url("/never/"))
    with pytest.raises(archiver.UsageError, match="every or cron"):
        archive.add(site.url("/x/"), every="1h", cron="0 * * * *")
    with pytest.raises(archiver.ConfigError):
        archiver.open(tmp_path / "not-an-archive")
    assert issubclass(archiver.UsageError, archiver.ArchiverError)
