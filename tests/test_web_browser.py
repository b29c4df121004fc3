"""archiver serve in a real browser (Debian's chromium driven by Playwright): the list, an
article's history, its last change with the inserted words highlighted, the replay of the
capture, and a hostile title shown as text.

With ARCHIVER_SCREENSHOTS=DIR set, each page is also saved as a PNG in DIR (the README's
screenshots in docs/ are made so).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from archiver.web import running

from .site import Site
from .webarchive import HOSTILE_TITLE, INSERTED, build

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = os.environ.get("ARCHIVER_SCREENSHOTS")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    news, other = Site(), Site()
    try:
        archive = build(tmp_path_factory.mktemp("browser") / "archive", news, other)
        with running(archive.config, "127.0.0.1", 0) as addresses:
            yield archive, addresses.interface
    finally:
        news.stop()
        other.stop()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the test extra)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield b
        b.close()


def shot(tab, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(Path(SHOTS) / f"web-{name}.png"), full_page=True)


def test_a_reader_goes_from_the_list_to_a_change_and_its_replay(served, browser):
    archive, base = served
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        tab.goto(base + "/")
        shot(tab, "tracked")
        # The hostile title is a link's text, shown as written; nothing of it ran.
        hostile = tab.locator("a.article", has_text="document.title")
        assert hostile.inner_text() == HOSTILE_TITLE
        assert tab.locator("img").count() == 0 and tab.title() != "pwned"

        tab.get_by_role("link", name="Defence Office Opens in Marenburg After Vote").click()
        tab.wait_for_url("**/history?**")
        assert tab.locator("tr.version").count() == 2
        shot(tab, "history")

        tab.get_by_role("link", name="The last change").click()
        tab.wait_for_url("**/diff?**")
        inserted = tab.locator(".inline-diff ins", has_text=INSERTED)
        assert inserted.count() == 1 and inserted.is_visible()
        background = inserted.evaluate("e => getComputedStyle(e).backgroundColor")
        assert background not in ("rgba(0, 0, 0, 0)", "transparent")  # highlighted
        assert tab.locator(".inline-diff del", has_text="12").count() == 1
        assert tab.locator(".side.new mark.moved").count() == 1
        assert tab.locator("dd.ok").count() == 2
        shot(tab, "diff")

        replay = tab.locator(".evidence a.replay").last
        href = replay.get_attribute("href")
        replay.click()
        tab.wait_for_url(href.split("/archive/")[0] + "/**")
        frame = tab.frame_locator("iframe").first
        heading = frame.locator("h1.entry-title")
        heading.wait_for(timeout=30_000)
        assert heading.inner_text() == "Defence Office Opens in Marenburg After Vote"
        assert frame.locator("text=" + INSERTED).count() >= 1
        shot(tab, "replay")

        for name, path in (("changes", "/changes"), ("status", "/status")):
            tab.goto(base + path)
            shot(tab, name)
        tab.goto(base + "/history?url=" + archive.hostile)
        assert tab.locator("h1").inner_text() == HOSTILE_TITLE and tab.title() != "pwned"
        assert dialogs == []
    finally:
        tab.close()


def test_with_a_token_a_browser_opens_the_link_once_then_reads_and_replays(tmp_path, browser):
    news, other = Site(), Site()
    try:
        archive = build(tmp_path / "archive", news, other, token='"s3cret-token"')
        with running(archive.config, "127.0.0.1", 0) as addresses:
            tab = browser.new_page()
            refused: list[str] = []  # the capture's requisites come from its sandbox, without the cookie
            tab.on("response", lambda r: refused.append(r.url) if r.status == 401 else None)
            assert tab.goto(addresses.interface + "/").status == 401
            refused.clear()
            assert tab.goto(addresses.interface + "/?token=s3cret-token").status == 200
            assert "token" not in tab.url
            tab.get_by_role("link", name="Defence Office Opens in Marenburg After Vote").click()
            tab.wait_for_url("**/history?**")
            tab.locator("tr.version").nth(1).locator("a.replay").click()
            heading = tab.frame_locator("iframe").first.locator("h1.entry-title")
            heading.wait_for(timeout=30_000)
            assert heading.inner_text() == "Defence Office Opens in Marenburg After Vote"
            tab.wait_for_load_state("networkidle")
            assert refused == []
            tab.close()
    finally:
        news.stop()
        other.stop()
