"""history / diff / changes output: JSON shapes, escaping of hostile content, the Atom feed."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from lxml import html as lxml_html

from archiver.article import Article
from archiver.history import CaptureRef, Observation, build_history
from archiver.report import VersionDiff, diff_html
from archiver.tracking import version_diff

from .conftest import make_archive, run_cli, run_snapshot
from .newssite import NewsSite

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def hostile_diff() -> VersionDiff:
    obs = [Observation(CaptureRef("a.warc.gz", i, f"2026-11-0{i + 1}T00:00:00.000000Z"), 200, "https://e.example/",
                       Article("https://e.example/", title=title, paragraphs=(body, "Second paragraph stays.")))
           for i, (title, body) in enumerate([("Plain title", "First paragraph."),
                                              (HOSTILE, f"First paragraph. {HOSTILE} </p></body>")])]
    return version_diff("https://e.example/<x>", build_history(obs), None, None)


def test_html_diff_escapes_archived_content():
    page = diff_html(hostile_diff())
    doc = lxml_html.document_fromstring(page)
    assert doc.xpath("//script") == []
    assert doc.xpath("//img") == []
    assert not any(el.get("onerror") for el in doc.iter())
    assert "&lt;script&gt;" in page
    assert "default-src 'none'" in page  # and a CSP in case a renderer is lenient
    assert doc.xpath("//ins") and doc.xpath("//del")


def test_diff_history_and_changes_commands(site, tmp_path):
    news = NewsSite(site)
    config = make_archive(tmp_path / "a", requisites="false", depth="0")
    url = news.url("wordpress")
    run_snapshot(config, url)
    run_snapshot(config, url)
    news.story.title = "A changed headline"
    news.story.paragraphs[1] = news.story.paragraphs[1].replace("12 people", "40 people")
    run_snapshot(config, url)

    history = json.loads(run_cli("history", "--json", url, cwd=config.root).stdout)
    assert [(h["version"], h["captures"], h["kinds"]) for h in history] == [(1, 2, []), (2, 1, ["title", "body"])]
    assert {"version", "first_seen", "last_seen", "captures", "title", "text_sha256", "kinds"} <= set(history[0])

    diff = json.loads(run_cli("diff", "--json", url, cwd=config.root).stdout)
    assert diff["from"]["version"] == 1 and diff["to"]["version"] == 2
    assert {"timestamp", "warc", "offset"} <= set(diff["to"])
    assert {"kind": "title", "before": "Defence Office Opens in Marenburg Amid Protests",
            "after": "A changed headline"} in diff["changes"]
    ops = {(op["op"], op["text"]) for op in diff["body"]}
    assert ("delete", "12") in ops and ("insert", "40") in ops

    text = run_cli("diff", url, "--from", "1", "--to", "2", cwd=config.root).stdout
    assert "[-12-] {+40+}" in text  # not a terminal: no colour codes
    assert "\x1b[" not in text
    html_out = run_cli("diff", url, "--format", "html", cwd=config.root).stdout
    assert html_out.startswith("<!DOCTYPE html>") and "<ins>40</ins>" in html_out

    bad = run_cli("diff", url, "--from", "7", cwd=config.root)
    assert bad.returncode == 2 and "has versions 1 to 2" in bad.stderr

    lines = [json.loads(line) for line in run_cli("changes", "--json", "--since", "1d", cwd=config.root).stdout.splitlines()]
    assert {e["kind"] for e in lines} == {"title", "body"}
    assert all(e["to"]["warc"].endswith(".warc.gz") and e["from"]["offset"] >= 0 for e in lines)
    assert run_cli("changes", "--json", "--since", "2999-01-01", cwd=config.root).stdout == ""
    feed = ET.parse(config.root / "changes.atom").getroot()
    entries = feed.findall("{http://www.w3.org/2005/Atom}entry")
    assert len(entries) == 2
    bad_since = run_cli("changes", "--since", "yesterday", cwd=config.root)
    assert bad_since.returncode == 2


def test_history_of_an_unknown_url_is_a_clear_error(tmp_path):
    config = make_archive(tmp_path / "a")
    result = run_cli("history", "https://never.example/", cwd=config.root)
    assert result.returncode == 2
    assert "no captures" in result.stderr and len(result.stderr.strip().splitlines()) == 1
