"""An archive for the web interface's tests, made by real captures of local sites: a news
article captured, edited (title, inserted and deleted words, a moved paragraph) and
captured again, and a hostile article whose title, byline, text and link are markup and
``javascript:`` URLs."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

from archiver.config import Config
from archiver.pipeline import open_archive, snapshot

from .conftest import make_archive, run_snapshot
from .newssite import NewsSite, Story
from .site import Site

HOSTILE_TITLE = '<script>document.title="pwned"</script><img src=x onerror="alert(1)">'
HOSTILE_BYLINE = '<b onmouseover="alert(2)">Mallory</b>'
HOSTILE_TEXT = ('Officials confirmed <script>alert(3)</script> the plan on Monday, and the '
                'ministry published the <iframe src="javascript:alert(4)"></iframe> full text.')
INSERTED = "and two liaison officers from the capital"


@dataclass
class WebArchive:
    config: Config
    article: str   # the edited article's URL
    hostile: str   # the hostile article's URL
    quiet: str     # a tracked URL never captured


def edit(story: Story) -> None:
    """Title changed, words replaced and inserted, the last two paragraphs swapped."""
    story.title = "Defence Office Opens in Marenburg After Vote"
    story.paragraphs[1] = story.paragraphs[1].replace("employ 12 people", f"employ 40 people {INSERTED}")
    story.paragraphs[2], story.paragraphs[3] = story.paragraphs[3], story.paragraphs[2]


def build(root: Path, news: Site, other: Site, **settings: str) -> WebArchive:
    story, hostile = Story(), Story(title=HOSTILE_TITLE, byline=HOSTILE_BYLINE)
    hostile.paragraphs = [HOSTILE_TEXT] + hostile.paragraphs[1:]
    hostile.links = [("Officials confirmed", "javascript:alert(5)", "<the statement>")]
    article, bad = NewsSite(news, story).url("wordpress"), NewsSite(other, hostile).url("wordpress")
    config = make_archive(root, replay_port="0", **settings)
    quiet = "https://quiet.example/never-captured/"
    (config.seeds_dir / "example.txt").unlink()
    (config.seeds_dir / "news.txt").write_text(
        f"{article} tag=defence tag=ruritania\n{bad} tag=hostile\n{quiet} every=1d tag=defence\n", encoding="utf-8")
    # The first captures an hour back: a replay link names its capture to the second.
    snapshot_at(config, datetime.now(timezone.utc) - timedelta(hours=1), article, bad)
    edit(story)
    run_snapshot(config, article, bad)
    return WebArchive(config, article, bad, quiet)


def snapshot_at(config: Config, when: datetime, *urls: str) -> None:
    start = datetime.now(timezone.utc)
    archive = open_archive(config, clock=lambda: when + (datetime.now(timezone.utc) - start))
    try:
        snapshot(archive, urls)
    finally:
        archive.close()


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    data: bytes

    @property
    def body(self) -> str:
        return self.data.decode("utf-8", "replace")


def fetch(url: str, method: str = "GET", body: str | None = None, headers: dict[str, str] | None = None) -> Reply:
    """One request, redirects not followed."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        hdrs = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})} if body else headers or {}
        conn.request(method, target, body=body, headers=hdrs)
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()
