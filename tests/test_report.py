"""history / diff / changes output: JSON shapes, escaping of hostile content, the Atom feed."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from lxml import etree
from lxml import html as lxml_html

from archiver.page.article import Article
from archiver.edits.history import CaptureRef, Observation, build_history
from archiver.edits.report import VersionDiff, atom_feed, diff_html, diff_text, json_text
from archiver.edits.observe import version_diff

from .conftest import make_archive, run_cli, run_snapshot
from .newssite import NewsSite, Story

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


# Control characters a page can carry: NUL, BEL, CR, an OSC window title, a screen clear,
# an OSC 8 hyperlink, DEL, C1 controls (CSI \x9b, OSC \x9d, ST \x9c).
CONTROLS = ("\x00\x07\r\x1b]0;pwned\x07\x1b[2J\x1b[H\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"
            "\x7f\x80\x9b31m\x9d0;title\x9c")
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")  # anything but tab and newline


def test_control_characters_in_pages_reach_no_terminal_and_break_no_feed(site, tmp_path):
    story = Story(title=f"Office opens{CONTROLS}", byline=f"Ana{CONTROLS}")
    story.paragraphs[1] = f"The office will employ 12 people{CONTROLS} and coordinate training."
    news = NewsSite(site, story)
    config = make_archive(tmp_path / "a", requisites="false", depth="0")
    url = news.url("wordpress")
    run_snapshot(config, url)
    story.title = f"Office closes{CONTROLS}"
    story.byline = f"Bo{CONTROLS}"
    story.paragraphs[1] = "The office will employ 40 people\x1b]0;again\x07 and coordinate training."
    run_snapshot(config, url)

    outputs = {args: run_cli(*args, cwd=config.root) for args in (
        ("history", url), ("diff", url), ("diff", url, "--format", "html"), ("changes", "--since", "1d"),
        ("captures",), ("diff", "--json", url), ("changes", "--json", "--since", "1d"), ("history", "--json", url))}
    for args, proc in outputs.items():
        assert proc.returncode == 0, (args, proc.stderr)
        assert not RAW.search(proc.stdout), (args, RAW.search(proc.stdout), proc.stdout[:2000])
    # Shown, not dropped: the escape sequence is there as text.
    assert "Office closes\ufffd\\x07 \\x1b]0;pwned\\x07\\x1b[2J" in outputs[("history", url)].stdout  # NUL: U+FFFD, CR: space (extract)
    assert "\\x9b31m\\x9d0;title\\x9c" in outputs[("history", url)].stdout
    assert "\\x1b]0;again\\x07" in outputs[("diff", url)].stdout

    # JSON stays exact: the same strings the page held, escaped by JSON itself.
    diff = json.loads(outputs[("diff", "--json", url)].stdout)
    changes = {c["kind"]: c for c in diff["changes"]}
    assert "\x1b]0;pwned\x07\x1b[2J" in changes["title"]["after"] and "\x9b31m" in changes["title"]["after"]
    assert any("\x1b]0;again\x07" in op["text"] for op in diff["body"] if op["op"] == "insert")
    events = [json.loads(line) for line in outputs[("changes", "--json", "--since", "1d")].stdout.splitlines()]
    assert any("\x1b]8;;https://evil.example/" in e["after"] for e in events if e["kind"] == "byline")

    # The feed is well-formed XML whatever the pages held, and shows what changed.
    feed = etree.parse(str(config.root / "changes.atom")).getroot()
    summaries = [e.findtext("{http://www.w3.org/2005/Atom}summary") for e in feed]
    assert any("Office closes\ufffd\\x07 \\x1b]0;pwned" in (s or "") for s in summaries), summaries


def test_coloured_diff_sends_only_its_own_escape_sequences():
    obs = [Observation(CaptureRef("a.warc.gz", i, f"2026-11-0{i + 1}T00:00:00.000000Z"), 200, "https://e.example/",
                       Article("https://e.example/", title="T", paragraphs=(body,)))
           for i, body in enumerate(["Twelve people work there.", f"Forty{CONTROLS} people work there."])]
    text = diff_text(version_diff("https://e.example/", build_history(obs), None, None), color=True)
    assert set(re.findall("\x1b[^\\[]|\x1b\\[[0-9;]*[^0-9;]", text)) <= {"\x1b[31;9m", "\x1b[32;4m", "\x1b[0m"}
    assert not re.search("[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f\ud800-\udfff]", text)
    assert "Forty\\x00\\x07 \\x1b]0;pwned" in text  # NUL as it came; the diff splits words at CR


def test_json_and_feeds_survive_lone_surrogates():
    """A lone surrogate (which no UTF-8 writer can encode) as JSON escape, and as text in the feed."""
    event = {"url": "https://e.example/", "kind": "title", "before": "a\ud800\x9b", "after": "b\x00",
             "from": {"version": 1, "timestamp": "t1", "warc": "w", "offset": 0},
             "to": {"version": 2, "timestamp": "t2", "warc": "w", "offset": 9}}
    line = json_text(event)
    assert json.loads(line) == event and not RAW.search(line)
    line.encode("utf-8")
    feed = atom_feed([event], "2026-11-01T00:00:00Z").encode("utf-8")
    summary = etree.fromstring(feed).findtext("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}summary")
    assert summary.startswith("title: a\\ud800\\x9b -> b\\x00")
