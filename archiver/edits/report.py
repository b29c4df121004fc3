"""Pure rendering of histories, diffs and change feeds: text, JSON values, HTML, Atom.

Archived content is untrusted: everything taken from a page is escaped in HTML and Atom,
and control characters never reach a terminal or a feed raw (``visible``).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass
from typing import Any

from archiver import __version__
from archiver.edits.diff import DELETE, EQUAL, INSERT, MOVE, BodyOp, Change
from archiver.edits.history import CaptureRef, History, Version

# C0 controls (ESC, BEL, CR, NUL...), DEL, C1 controls (CSI \x9b, OSC \x9d...), lone
# surrogates, and U+FFFE/U+FFFF, which XML forbids. Tab and newline are matched too: each
# caller says which of them are layout where it writes.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# What JSON (RFC 8259) leaves raw and a terminal may still act on: DEL, C1, lone surrogates
# (which cannot even be encoded to UTF-8), and the line separators JavaScript chokes on.
LAYOUT = "\t\n"  # the controls kept where text runs over several lines
_JSON_RAW = re.compile("[\x7f-\x9f\ud800-\udfff\u2028\u2029]")


def visible(text: str, keep: str = "\t") -> str:
    """text with every control character shown as an escape (``\\x1b``, ``\\x9b``,
    ``\\ud800``) instead of acted on, except those in ``keep`` (tab by default; add ``\\n``
    where newlines are layout). An escape sequence becomes inert text: ``\\x1b]0;title\\x07``.
    """
    return _CONTROL.sub(lambda m: m.group() if m.group() in keep else _escaped(m.group()), text)


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xff else f"\\u{code:04x}"


def json_text(value: Any, indent: int | None = None) -> str:
    """JSON with non-ASCII text as is, but DEL, C1 controls and lone surrogates as \\u
    escapes: the same value, safe to print to a terminal."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def escape(text: str) -> str:
    """HTML and XML text: markup escaped, control characters shown (never invalid XML)."""

    return html.escape(visible(text, LAYOUT))


ANSI = {DELETE: "\x1b[31;9m", INSERT: "\x1b[32;4m", MOVE: "\x1b[33m", "reset": "\x1b[0m", "dim": "\x1b[2m"}


@dataclass(frozen=True)
class VersionDiff:
    url: str
    old: Version
    new: Version
    changes: list[Change]
    body: list[BodyOp]


def capture_json(ref: CaptureRef) -> dict[str, Any]:
    return {"timestamp": ref.fetched_at, "warc": ref.warc, "offset": ref.offset}


def replay_url(base: str, fetched_at: str, url: str, collection: str = "archive") -> str:
    """The capture's timestamped URL in archiver replay (pywb)."""
    return f"{base}/{collection}/{''.join(c for c in fetched_at if c.isdigit())[:14]}/{url}"


# ---- history ---------------------------------------------------------------------------

def history_json(history: History, url: str = "", replay_base: str = "") -> list[dict[str, Any]]:
    """Versions and suspect captures, oldest first; with a replay base, each version's
    first capture as a replay link."""
    entries = [(v.first.fetched_at, _version_json(v)) for v in history.versions]
    if replay_base:
        for (_, entry), v in zip(entries, history.versions):
            entry["replay"] = replay_url(replay_base, v.first.fetched_at, v.final_url or url)
    entries += [(s.capture.fetched_at, {"suspect": True, "reason": s.reason, "status": s.status,
                                        "capture": capture_json(s.capture)}) for s in history.suspects]
    entries += [(n.capture.fetched_at, {"variant": n.field, "values": list(n.values),
                                        "capture": capture_json(n.capture)}) for n in history.variants]
    return [entry for _, entry in sorted(entries, key=lambda e: e[0])]


def _version_json(v: Version) -> dict[str, Any]:
    return {"version": v.number, "first_seen": v.first.fetched_at, "last_seen": v.last.fetched_at,
            "captures": v.captures, "title": v.article.title if v.article else "",
            "text_sha256": v.text_sha256, "kinds": list(v.kinds), "gone": v.gone, "status": v.status,
            "revert_of": v.revert_of, "final_url": v.final_url, "unconfirmed": v.unconfirmed,
            "first_capture": capture_json(v.first), "last_capture": capture_json(v.last),
            "read_targets_seen": v.read_seen,
            "extractor": v.article.extractor if v.article else ""}


def history_text(url: str, history: History, replay_base: str = "") -> str:
    """One line per fact; whatever came from a page is shown with its controls escaped."""
    return "\n".join(visible(line) for line in _history_lines(url, history, replay_base))


def _history_lines(url: str, history: History, replay_base: str) -> list[str]:
    lines = [f"{url}  (READ boxes: {history.read_boxes})"]
    for entry in history_json(history, url, replay_base):
        if entry.get("suspect"):
            cap = entry["capture"]
            lines.append(f"  suspect  {cap['timestamp']}  {entry['reason']}  [{cap['warc']}@{cap['offset']}]")
            continue
        if entry.get("variant"):
            values = " | ".join(_short(v, 40) for v in entry["values"])
            lines.append(f"  variant  {entry['capture']['timestamp']}  {entry['variant']} differs between two "
                         f"renders (not an edit): {values}")
            continue
        title = "(gone)" if entry["gone"] else entry["title"]
        kinds = ", ".join(entry["kinds"]) or "first version"
        revert = f"; same as v{entry['revert_of']}" if entry["revert_of"] else ""
        revert += "; unconfirmed (no second render yet)" if entry["unconfirmed"] else ""
        lines.append(f"  v{entry['version']:<3} {entry['first_seen']} .. {entry['last_seen']}  "
                     f"{entry['captures']} capture(s)  {kinds}{revert}")
        lines.append(f"        {title}")
        if entry.get("replay"):
            lines.append(f"        {entry['replay']}")
    return lines


# ---- one diff --------------------------------------------------------------------------

def diff_json(d: VersionDiff, replay_base: str = "") -> dict[str, Any]:
    ends = {"from": _end(d.old), "to": _end(d.new)}
    if replay_base:
        for name, v in (("from", d.old), ("to", d.new)):
            ends[name]["replay"] = replay_url(replay_base, v.first.fetched_at, v.final_url or d.url)
    return {"url": d.url, **ends,
            "changes": [{"kind": c.kind, "before": c.before, "after": c.after} for c in d.changes],
            "body": [{"op": op.op, "text": op.text} for op in d.body]}


def _end(v: Version) -> dict[str, Any]:
    return {"version": v.number, **capture_json(v.first)}


def diff_text(d: VersionDiff, color: bool) -> str:
    lines = [f"{d.url}: v{d.old.number} ({d.old.first.fetched_at}) -> v{d.new.number} ({d.new.first.fetched_at})"]
    for c in d.changes:
        if c.kind != "body":
            lines.append(f"  {c.kind}: {c.before!r} -> {c.after!r}")
    if not d.changes:
        lines.append("  no editorial changes")
    lines = [visible(line) for line in lines] + [""]
    lines += _body_lines(d.body, color)
    return "\n".join(lines)


def _body_lines(ops: list[BodyOp], color: bool) -> list[str]:
    paragraphs: dict[int, list[str]] = {}
    for op in ops:
        paragraphs.setdefault(op.paragraph, []).append(_mark(op, color))
    return [" ".join(parts) + "\n" for _, parts in sorted(paragraphs.items())]


def _mark(op: BodyOp, color: bool) -> str:
    text = visible(op.text, LAYOUT)  # the page's own escape sequences, inert; ours below act
    if op.op == EQUAL:
        return text
    if color:
        return f"{ANSI[op.op]}{text}{ANSI['reset']}"
    return {DELETE: "[-{}-]", INSERT: "{{+{}+}}", MOVE: "[moved: {}]"}[op.op].format(text)


def diff_html(d: VersionDiff) -> str:
    """One self-contained page: metadata changes, the highlighted body, links to the captures."""
    rows = "".join(f"<tr><th>{escape(c.kind)}</th><td class=del>{escape(c.before)}</td>"
                   f"<td class=ins>{escape(c.after)}</td></tr>" for c in d.changes if c.kind != "body")
    paragraphs: dict[int, list[str]] = {}
    for op in d.body:
        tag = {EQUAL: "span", INSERT: "ins", DELETE: "del", MOVE: "mark"}[op.op]
        paragraphs.setdefault(op.paragraph, []).append(f"<{tag}>{escape(op.text)}</{tag}>")
    body = "".join(f"<p>{' '.join(parts)}</p>" for _, parts in sorted(paragraphs.items()))
    return _HTML.format(url=escape(d.url), old=_capture_html(d.old), new=_capture_html(d.new),
                        rows=rows or "<tr><td colspan=3>no metadata changes</td></tr>", body=body,
                        version=__version__)


def _capture_html(v: Version) -> str:
    return (f"v{v.number}, captured {escape(v.first.fetched_at)} "
            f"(<code>{escape(v.first.warc)}</code> at offset {v.first.offset})")


_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>archiver diff: {url}</title>
<style>body{{font:16px/1.5 Georgia,serif;max-width:46em;margin:2em auto;padding:0 1em}}
del{{background:#fdd;color:#900}}ins{{background:#dfd;color:#060;text-decoration:none}}
mark{{background:#ffd}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em;vertical-align:top}}
td.del{{background:#fee}}td.ins{{background:#efe}}small{{color:#666}}</style></head>
<body><h1>Changes to {url}</h1>
<p>From {old}<br>to {new}</p>
<table><tr><th>field</th><th>before</th><th>after</th></tr>{rows}</table>
<h2>Article text</h2>{body}
<p><small>Generated by archiver {version}. <del>Deleted</del>, <ins>inserted</ins>, <mark>moved</mark>.</small></p>
</body></html>
"""


# ---- change feed -----------------------------------------------------------------------

def change_event_json(row: Any) -> dict[str, Any]:
    return {"url": row["tracked_url"], "kind": row["kind"], "before": row["before"], "after": row["after"],
            "from": {"version": row["from_version"], "timestamp": row["from_time"], "warc": row["from_warc"],
                     "offset": row["from_offset"]},
            "to": {"version": row["to_version"], "timestamp": row["to_time"], "warc": row["to_warc"],
                   "offset": row["to_offset"]},
            "unconfirmed": bool(row["unconfirmed"])}  # no second render has shown it yet


def change_text(event: dict[str, Any]) -> str:
    return visible(f"{event['to']['timestamp']}  {event['kind']:<10} {event['url']}  "
                   f"v{event['from']['version']}->v{event['to']['version']}: {_short(event['before'])!r} -> "
                   f"{_short(event['after'])!r}" + ("  (unconfirmed)" if event.get("unconfirmed") else ""))


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def atom_feed(events: list[dict[str, Any]], updated: str) -> str:
    entries = "".join(_atom_entry(e) for e in reversed(events))
    return ('<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>archiver: changes to tracked articles</title><id>urn:archiver:changes</id>"
            f"<updated>{escape(updated)}</updated><generator>archiver {__version__}</generator>{entries}</feed>\n")


def _atom_entry(e: dict[str, Any]) -> str:
    same = {k: v for k, v in e.items() if k != "unconfirmed"}  # one entry, confirmed or not yet
    digest = hashlib.sha1(json.dumps(same, sort_keys=True).encode()).hexdigest()[:16]
    ident = f"urn:archiver:change:{digest}"
    state = " (unconfirmed: no second render has shown it yet)" if e.get("unconfirmed") else ""
    summary = f"{e['kind']}: {e['before']} -> {e['after']} (captures {e['from']['warc']}@{e['from']['offset']}, " \
              f"{e['to']['warc']}@{e['to']['offset']})"
    return (f"<entry><title>{escape(e['kind'])} changed{state}: {escape(e['url'])}</title>"
            f"<id>{escape(ident)}</id><updated>{escape(e['to']['timestamp'])}</updated>"
            f"<link href=\"{escape(e['url'])}\"/><summary>{escape(summary)}</summary></entry>")


# ---- evidence packet -------------------------------------------------------------------------

def provenance_html(url: str, history: History, rows: list[Any], tls: dict[str, dict[str, Any]],
                    verified: dict[str, Any], created: str) -> str:
    """The human-readable report inside an article's evidence packet."""
    versions = "".join(
        f"<tr><td>v{v.number}</td><td>{escape(v.first.fetched_at)}</td><td>{escape(v.last.fetched_at)}</td>"
        f"<td>{v.captures}</td><td>{escape(', '.join(v.kinds) or 'first version')}</td>"
        f"<td>{escape(v.article.title if v.article else '(gone)')}</td></tr>" for v in history.versions)
    changes = "".join(
        f"<tr><td>v{v.since_version}&rarr;v{v.number}</td><td>{escape(c.kind)}</td><td class=del>{escape(c.before)}</td>"
        f"<td class=ins>{escape(c.after)}</td></tr>" for v in history.versions for c in v.changes)
    suspects = "".join(f"<tr><td>{escape(s.capture.fetched_at)}</td><td>{escape(s.reason)}</td></tr>"
                       for s in history.suspects)
    captures = "".join(
        f"<tr><td>{escape(r.fetched_at)}</td><td>{escape(r.role)}</td><td>{escape(r.url)}</td>"
        f"<td>{r.status if r.status is not None else escape(r.error)}</td><td>{escape(r.ip)}</td>"
        f"<td><code>{escape(r.warc)}@{r.offset}</code></td><td><code>{escape(r.payload_digest)}</code></td>"
        f"<td>{escape(_tls_text(tls.get(r.record_id)))}</td></tr>" for r in rows)
    problems = "".join(f"<li>{escape(p['where'])}: {escape(p['message'])}</li>" for p in verified["problems"])
    verdict = "passed" if verified["ok"] else f"FAILED ({len(verified['problems'])} problems)"
    return _PROVENANCE.format(url=escape(url), created=escape(created), version=__version__,
                              verdict=verdict, problems=f"<ul>{problems}</ul>" if problems else "",
                              counts=escape(json.dumps(verified["counts"])),
                              checkpoint=escape(json.dumps(verified.get("latest_checkpoint"))),
                              versions=versions, changes=changes or "<tr><td colspan=4>none</td></tr>",
                              suspects=suspects or "<tr><td colspan=2>none</td></tr>", captures=captures)


def _tls_text(tls: dict[str, Any] | None) -> str:
    if not tls:
        return ""
    return f"{tls['tls_version']} {tls['cipher']}, certificate SHA-256 {tls['certificate_sha256']}"


_PROVENANCE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Provenance report: {url}</title>
<style>body{{font:14px/1.4 sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1.5em}}
td,th{{border:1px solid #ccc;padding:.25em .4em;vertical-align:top}}td.del{{background:#fee}}td.ins{{background:#efe}}
code{{font-size:12px}}</style></head><body>
<h1>Provenance report</h1>
<p>Article: <strong>{url}</strong><br>Packet made {created} by archiver {version}.</p>
<h2>Verification of the archive at export time: {verdict}</h2>{problems}
<p>Counts: <code>{counts}</code><br>Latest signed ledger checkpoint: <code>{checkpoint}</code></p>
<h2>Versions</h2><table><tr><th>version</th><th>first seen</th><th>last seen</th><th>captures</th><th>changes</th><th>title</th></tr>{versions}</table>
<h2>Changes</h2><table><tr><th>versions</th><th>kind</th><th>before</th><th>after</th></tr>{changes}</table>
<h2>Suspect captures (not versions)</h2><table><tr><th>time</th><th>reason</th></tr>{suspects}</table>
<h2>Captures in this packet</h2>
<table><tr><th>time</th><th>role</th><th>URL</th><th>status</th><th>IP</th><th>record</th><th>payload digest</th><th>TLS</th></tr>{captures}</table>
</body></html>
"""
