"""Notifications: a local webhook receiver gets one signed POST per edit, exactly once
across a restart of ``archiver run``; Apprise through its json:// target against the
same receiver; retries with back-off; digests; filters; secrets kept out of logs and WARCs."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import re
import signal
import sqlite3
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from archiver.config import NotifyConfig, load_config
from archiver.notify import describe, message, wanted, with_links
from archiver.schedule.runner import Runner
from archiver.seeds import Seed

from .conftest import make_archive, run_cli, warc_files
from .test_scheduler import Clock, HitCounter, start_run

SECRET = "s3cret-signing-key"


@dataclass
class Receiver:
    """A webhook endpoint on localhost: records every POST; answers ``status`` (a list
    is used up one answer per POST, then 200)."""
    answers: list[int] = field(default_factory=list)
    posts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    hang: threading.Event | None = None  # set: never answer until it is set
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.arrived:
                    receiver.posts.append((self.path, dict(self.headers.items()), body))
                    receiver.arrived.notify_all()
                if receiver.hang is not None:
                    receiver.hang.wait(10)
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def wait_for(self, n: int, timeout: float) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.posts) >= n, timeout)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def events(self, path: str = "/hook") -> list[dict]:
        return [json.loads(body) for p, _, body in self.posts if p == path]

    def stop(self) -> None:
        if self.hang is not None:
            self.hang.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def page(title: str, extra: str = "") -> str:
    return (f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
            f"<p>{'The council met on Tuesday. ' * 10}{extra}</p></article></body></html>")


def set_notify(config, **values) -> None:
    """Set [notify] settings (the last section of config.toml)."""
    path = config.root / "config.toml"
    head, sep, section = path.read_text().partition("[notify]\n")
    for key, value in values.items():
        section = re.sub(rf"^{key} = .*$", f"{key} = {json.dumps(value)}", section, count=1, flags=re.M)
    path.write_text(head + sep + section)


@pytest.fixture
def watched(site, tmp_path, receiver):
    """An archive tracking one article hourly, notifying the receiver."""
    config = make_archive(tmp_path / "arch", requisites="false", depth="0", jitter="0.0")
    site.page("/story", page("Minister denies report"))
    (config.seeds_dir / "example.txt").write_text(f"{site.url('/story')} every=1h tag=politics\n")
    set_notify(config, webhooks=[receiver.url()], secret=SECRET)
    return site, load_config(config.root / "config.toml")


def change_count(config) -> int:
    return sqlite3.connect(config.storage.catalog).execute("SELECT count(*) FROM changes").fetchone()[0]


def test_one_signed_post_per_edit_exactly_once_across_a_restart(watched, receiver):
    site, config = watched
    clock = Clock()
    Runner(config, clock=clock).run_once()
    assert receiver.posts == []  # a first capture is no edit
    site.page("/story", page("Minister confirms report"))
    clock.advance(minutes=61)
    Runner(config, clock=clock).run_once()
    assert len(receiver.posts) == change_count(config) >= 1
    path, headers, body = receiver.posts[0]
    assert headers["X-Archiver-Signature"] == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["Content-Type"] == "application/json"
    event = json.loads(body)
    assert event["url"] == site.url("/story") and event["kind"] == "title"
    assert (event["before"], event["after"]) == ("Minister denies report", "Minister confirms report")
    assert event["links"]["after"].startswith("http://127.0.0.1:8080/archive/20261127130100/")
    # the same object archiver changes --json gives, with the links added
    [listed] = [json.loads(line) for line in run_cli("changes", "--json", "--since", "2026-01-01",
                                                     cwd=config.root).stdout.splitlines()
                if json.loads(line)["kind"] == "title"]
    assert {k: v for k, v in event.items() if k != "links"} == listed
    clock.advance(minutes=61)
    Runner(config, clock=clock).run_once()  # a restart, nothing new: nothing sent again
    assert len(receiver.posts) == change_count(config)


@pytest.mark.slow
def test_archiver_run_sends_each_edit_once_across_a_restart(site, tmp_path, receiver):
    """The real service: its delivery thread posts the edit while capture goes on; a
    SIGTERM and a new start send nothing twice."""
    config = make_archive(tmp_path / "arch", requisites="false", depth="0", jitter="0.0", tick="0.2",
                          warc_idle_close="3600")
    story = HitCounter(site, "/story", page("Minister denies report").encode())
    (config.seeds_dir / "example.txt").write_text(f"{site.url('/story')} every=1s\n")
    set_notify(config, webhooks=[receiver.url()], secret=SECRET)
    proc = start_run(config)
    try:
        assert story.wait_for(1, 30)
        site.routes["/story"] = story.handler(page("Minister confirms report").encode())
        assert receiver.wait_for(1, 30), proc.stderr.read() if proc.poll() is not None else ""
        assert story.wait_for(story.count + 2, 30)  # captures go on; the edit is not sent again
        stop(proc)
        proc = start_run(config)
        assert story.wait_for(story.count + 3, 30)
        stop(proc)
    finally:
        proc.kill()
        proc.communicate()
    assert len(receiver.posts) == change_count(config) >= 1
    assert len({body for _, _, body in receiver.posts}) == len(receiver.posts)


def stop(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_a_failing_target_is_retried_with_back_off_and_survives_a_restart(watched, receiver):
    site, config = watched
    clock = Clock()
    Runner(config, clock=clock).run_once()
    site.page("/story", page("Minister confirms report"))
    receiver.answers = [500] * 10
    clock.advance(minutes=61)
    Runner(config, clock=clock).run_once()
    tries = len(receiver.posts)
    assert tries == 1  # one try; the others wait with it
    status = json.loads(run_cli("status", "--json", cwd=config.root).stdout)["notifications"]
    assert status["pending"] == change_count(config) and status["failures"][0]["error"] == "HTTP 500"
    receiver.answers = []
    clock.advance(seconds=30)
    Runner(config, clock=clock).run_once()  # a restart before the back-off (1m) is over: nothing sent
    assert len(receiver.posts) == tries
    clock.advance(seconds=31)
    Runner(config, clock=clock).run_once()
    assert len(receiver.posts) == tries + change_count(config)
    assert json.loads(run_cli("status", "--json", cwd=config.root).stdout)["notifications"]["pending"] == 0
    clock.advance(minutes=61)
    Runner(config, clock=clock).run_once()
    assert len(receiver.posts) == tries + change_count(config)  # exactly once


def test_a_delivery_is_given_up_after_its_attempts_and_shown_as_failed(watched, receiver):
    site, config = watched
    set_notify(config, attempts=2)
    config = load_config(config.root / "config.toml")
    clock = Clock()
    Runner(config, clock=clock).run_once()
    site.page("/story", page("Minister confirms report"))
    receiver.answers = [500] * 10
    clock.advance(minutes=61)
    Runner(config, clock=clock).run_once()
    clock.advance(minutes=2)  # past the first back-off (1m)
    Runner(config, clock=clock).run_once()
    assert len(receiver.posts) == 2
    status = json.loads(run_cli("status", "--json", cwd=config.root).stdout)["notifications"]
    assert (status["pending"], status["failed"]) == (0, change_count(config))
    assert "failed after 2 tries" in run_cli("status", cwd=config.root).stdout


def test_a_change_stored_but_not_queued_before_a_crash_is_sent_after_the_restart(watched, receiver):
    site, config = watched
    clock = Clock()
    Runner(config, clock=clock).run_once()
    site.page("/story", page("Minister confirms report"))
    clock.advance(minutes=61)
    runner = Runner(config, clock=clock)
    runner.notifier.enqueue = lambda urls, seed_of: 0  # the process dies between history and queue
    runner.run_once()
    assert receiver.posts == [] and change_count(config) >= 1
    Runner(config, clock=clock).run_once()
    assert len(receiver.posts) == change_count(config)


def test_apprise_json_target_gets_the_change_in_words(watched, receiver):
    site, config = watched
    set_notify(config, webhooks=[], apprise=["json://" + receiver.url("/apprise").removeprefix("http://")])
    config = load_config(config.root / "config.toml")
    clock = Clock()
    Runner(config, clock=clock).run_once()
    site.page("/story", page("Minister confirms report"))
    clock.advance(minutes=61)
    Runner(config, clock=clock).run_once()
    messages = receiver.events("/apprise")
    assert len(messages) == change_count(config)
    title = [m for m in messages if "title changed" in m["title"]][0]
    assert site.url("/story") in title["title"]
    assert "title: \u201cMinister denies report\u201d -> \u201cMinister confirms report\u201d" in title["message"]
    assert "diff: http://127.0.0.1:8080/archive/2026112713" in title["message"]


def test_digest_mode_sends_one_message_per_period(watched, receiver, site):
    _, config = watched
    site.page("/other", page("Second story"))
    (config.seeds_dir / "example.txt").write_text(f"{site.url('/story')} every=1h\n{site.url('/other')} every=1h\n")
    set_notify(config, digest=90)
    config = load_config(config.root / "config.toml")
    clock = Clock()
    Runner(config, clock=clock).run_once()
    site.page("/story", page("Minister confirms report"))
    site.page("/other", page("Second story, corrected"))
    clock.advance(minutes=61)
    Runner(config, clock=clock).run_once()
    assert receiver.posts == []  # gathering for 90 minutes
    clock.advance(minutes=91)
    Runner(config, clock=clock).run_once()
    [digest] = receiver.events()
    assert len(digest["events"]) == change_count(config) and {e["url"] for e in digest["events"]} == \
        {site.url("/story"), site.url("/other")}


def test_a_target_that_never_answers_does_not_hold_up_capture(watched, receiver):
    site, config = watched
    set_notify(config, timeout=1.0)
    config = load_config(config.root / "config.toml")
    receiver.hang = threading.Event()
    clock = Clock()
    Runner(config, clock=clock).run_once()
    site.page("/story", page("Minister confirms report"))
    clock.advance(minutes=61)
    Runner(config, clock=clock).run_once()
    assert site.hits["/story"] == 2 and change_count(config) >= 1
    status = json.loads(run_cli("status", "--json", cwd=config.root).stdout)["notifications"]
    assert status["pending"] == change_count(config) and status["failures"][0]["error"] == "ReadTimeout"


def test_secrets_never_reach_a_log_or_a_warc(watched, receiver):
    site, config = watched
    token = "xoxb-TOKEN-1234567890"
    set_notify(config, webhooks=[receiver.url(f"/hook/{token}")], apprise=[f"json://127.0.0.1:9/{token}2"])
    receiver.answers = [503]
    run = run_cli("run", "--once", cwd=config.root)
    site.page("/story", page("Minister confirms report"))
    with sqlite3.connect(config.storage.catalog) as db:  # due again now
        db.execute("UPDATE schedule SET next_due = 0")
    second = run_cli("run", "--once", cwd=config.root)
    test = run_cli("notify", "test", cwd=config.root)
    assert test.returncode == 1 and "webhook 1 (127.0.0.1): sent" in test.stdout
    assert "apprise 1 (json://): FAILED" in test.stdout
    status = run_cli("status", cwd=config.root)
    logs = run.stderr + second.stderr + test.stdout + test.stderr + status.stdout + status.stderr
    assert "notification to webhook 1 (127.0.0.1) failed (HTTP 503)" in second.stderr
    for secret in (token, SECRET):
        assert secret not in logs
        assert all(secret.encode() not in gzip.decompress(path.read_bytes()) for path in warc_files(config))
        assert secret.encode() not in Path(config.storage.catalog).read_bytes()


def test_notify_test_sends_a_sample_to_every_target(watched, receiver):
    _, config = watched
    result = run_cli("notify", "test", "--json", cwd=config.root)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"target": "webhook 1 (127.0.0.1)", "ok": True, "error": ""}
    [sample] = receiver.events()
    assert sample["sample"] is True and sample["kind"] == "title"


def test_filters_and_words():
    cfg = NotifyConfig(tags=("politics",), sites=("news.example",), kinds=("title", "body"))
    event = {"url": "https://www.news.example/a", "kind": "title", "before": "A", "after": "B"}
    seed = Seed("https://www.news.example/a", (("tag", "politics"),))
    assert wanted(event, seed, cfg)
    assert not wanted(event, Seed(seed.url), cfg)
    assert not wanted(dict(event, url="https://other.example/a"), seed, cfg)
    assert not wanted(dict(event, kind="links"), seed, cfg)
    assert describe(dict(event, kind="body", before="It rained.", after="It snowed.")) == \
        "text changed: \u201cIt snowed.\u201d (was \u201cIt rained.\u201d)"
    assert describe(dict(event, kind="body", before="Gone sentence.", after="")) == \
        "text deleted: \u201cGone sentence.\u201d"
    assert describe(dict(event, unconfirmed=True)).endswith("(unconfirmed: no second render has shown it yet)")
    title, body = message([dict(event, links={"after": "http://r/x"})])
    assert title == "archiver: title changed on https://www.news.example/a"
    assert body == "title: \u201cA\u201d -> \u201cB\u201d\ndiff: http://r/x"


def test_with_diff_link_a_message_links_to_the_change_page_of_archiver_serve():
    event = {"url": "https://www.news.example/a?b=1", "kind": "title", "before": "A", "after": "B",
             "from": {"version": 2, "timestamp": "2026-11-30T10:00:00Z"},
             "to": {"version": 3, "timestamp": "2026-12-01T10:00:00Z"}}
    linked = with_links(event, "http://127.0.0.1:8080", "http://archive.example:8000")
    assert linked["links"]["diff"] == \
        "http://archive.example:8000/diff?url=https%3A%2F%2Fwww.news.example%2Fa%3Fb%3D1&from=2&to=3"
    assert message([linked])[1].endswith("diff: " + linked["links"]["diff"])
    assert "diff" not in with_links(event, "http://127.0.0.1:8080", "")["links"]
