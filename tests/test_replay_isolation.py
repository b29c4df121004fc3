"""Replay isolation: an archived page cannot read other archived content or pywb's index
API, nor reach any host but the replay server (archiver/replay.py, ``guard``).

A hostile page and a "secret" page of another origin are captured from local servers, then
replayed through a real pywb. Over HTTP: the policy every kind of response carries. In a
real browser (Debian's chromium driven by Playwright): the hostile page's own script tries
every way out it can and must fail at each, while its requisites still load.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
from urllib.parse import urlsplit

import pytest

from archiver.replay.pywb import Collection, Pywb, running_pywb

from .conftest import make_archive, run_snapshot
from .rawnet import Listener
from .site import Site

pytestmark = pytest.mark.slow

COLL = "archive"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PIXEL = bytes.fromhex(  # a 1x1 PNG: the page's one requisite, to show replay still works
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0000003010100c9fe92ef0000000049454e44ae426082")

# The hostile page's script. It finds the replay server's collection prefix (pywb's wbinfo
# in rewritten modes, its own URL in id_ mode), then tries to read the index API, a capture
# of another origin and its own, to reach another host by fetch, WebSocket (from the page
# and from a worker), image, popup and frame, and to read the frame it is replayed in. Each
# attempt reports "OK ..." or "blocked ..." into #out; data-done is set when all have ended.
# Replayed rewritten (mp_), it also loads itself raw (id_) in a frame, where it runs the
# same attempts with the browser's own fetch, WebSocket and Image (no pywb rewriting).
HOSTILE_JS = """
(function () {
  var out = document.getElementById('out'), res = {}, pending = 0;
  var here = window.wbinfo ? wbinfo.url : document.URL.slice(document.URL.indexOf('/http') + 1);
  var prefix = window.wbinfo ? wbinfo.prefix : document.URL.slice(0, document.URL.indexOf('/http') + 1)
      .replace(/[0-9]+[a-z]*_\\/$/, '');
  var secret = 'SECRET_URL', other = 'OTHER_BASE';
  function report() { out.textContent = JSON.stringify(res); if (!pending) out.dataset.done = '1'; }
  function attempt(name, run) {
    pending++;
    new Promise(run).then(function (v) { res[name] = 'OK ' + String(v).slice(0, 80); },
                          function (e) { res[name] = 'blocked ' + String(e).slice(0, 80); })
      .then(function () { pending--; report(); });
  }
  function read(url) { return function (ok, fail) { fetch(url).then(function (r) { return r.text(); }).then(ok, fail); }; }
  attempt('cdx', read(prefix + 'cdx?url=' + encodeURIComponent(secret)));
  attempt('timemap', read(prefix + 'timemap/json/' + secret));
  attempt('capture-id', read(prefix + '2id_/' + secret));
  attempt('capture-mp', read(prefix + '2mp_/' + secret));
  attempt('own-capture-id', read(prefix + '2id_/' + here));
  attempt('other-host-fetch', read(other + '/fetch'));
  if (!window.wbinfo) attempt('other-host-ws', function (ok, fail) {  // wombat's WebSocket is a stub
    var ws = new WebSocket(other.replace('http:', 'ws:') + '/ws');
    ws.onopen = function () { ok('open'); }; ws.onerror = function () { fail('error'); };
  });
  attempt('other-host-ws-worker', function (ok, fail) {
    var src = "var w = new WebSocket('" + other.replace('http:', 'ws:') + "/worker');" +
              "w.onopen = function () { postMessage('open'); }; w.onerror = function () { postMessage('error'); };";
    var worker = new Worker(URL.createObjectURL(new Blob([src], {type: 'text/javascript'})));
    worker.onmessage = function (e) { (e.data === 'open' ? ok : fail)(e.data); };
    worker.onerror = function (e) { fail('worker: ' + e.message); };
  });
  attempt('other-host-image', function (ok, fail) {
    var img = new Image(); img.onload = function () { ok('loaded'); }; img.onerror = function () { fail('error'); };
    img['s' + 'rc'] = other + '/image';  // past pywb's rewriting of src
  });
  attempt('other-host-popup', function (ok, fail) {
    var w = window.open(other + '/popup'); w ? ok('opened') : fail('no window');
  });
  attempt('capture-in-frame', function (ok, fail) {
    var f = document.createElement('iframe');
    f.onload = function () { try { ok(f.contentDocument.body.innerText); } catch (e) { fail(e); } };
    f['s' + 'rc'] = prefix + '2mp_/' + secret;
    document.body.appendChild(f);
  });
  attempt('replay-frame', function (ok, fail) {
    try { ok(window.frameElement.ownerDocument.documentElement.outerHTML.length); } catch (e) { fail(e); }
  });
  if (window.wbinfo) {  // the same page raw (id_) in a frame of its own: no pywb code in the way
    var raw = document.createElement('iframe');
    raw['s' + 'rc'] = prefix + '2id_/' + here;
    document.body.appendChild(raw);
  }
  report();
})();
"""


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head><body>'
            f'<article><h1>{title}</h1>{body}</article></body></html>')


class OtherHost(Listener):
    """A host beyond the archive (127.0.0.2): counts the connections made to it, when they
    are accepted, and records the first line of every request sent on them."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        super().__init__("127.0.0.2")

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = conn.recv(4096)
            if head:  # a browser may open a connection and close it unused
                self.requests.append(head.split(b"\r\n", 1)[0])
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nAccess-Control-Allow-Origin: *\r\n\r\nok")


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """pywb over an archive holding a hostile page (origin A, with its image) and a
    secret page (origin B, sent with Access-Control-Allow-Origin: *); one for the module,
    each test looking only."""
    tmp_path = tmp_path_factory.mktemp("isolation")
    hostile, secret, other = Site(), Site(), OtherHost()
    secret_url = secret.url("/secret/")
    script = HOSTILE_JS.replace("SECRET_URL", secret_url).replace("OTHER_BASE", other.base)
    hostile.page("/hostile/", page("Hostile", '<p>An ordinary looking article.</p><img src="/pixel.png">'
                                   f'<pre id="out">not run</pre><script>{script}</script>'))
    hostile.page("/pixel.png", PIXEL, "image/png")
    secret.page("/secret/", page("Secret", "<p>TOP-SECRET-CONTENT</p>"),
                headers=(("Access-Control-Allow-Origin", "*"),))
    config = make_archive(tmp_path / "archive", depth="0")
    run_snapshot(config, secret_url)
    run_snapshot(config, hostile.url("/hostile/"))
    hostile.stop()
    secret.stop()
    with running_pywb({COLL: Collection(config.storage.warc_dir, config.storage.index_dir)},
                      tmp_path / "pywb") as pywb:
        yield pywb, hostile.url("/hostile/"), secret_url, other
    other.listener.close()


def fetch(pywb: Pywb, path: str, headers: dict[str, str] | None = None,
          method: str = "GET") -> http.client.HTTPResponse:
    parts = urlsplit(pywb.base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request(method, path, headers=headers or {})
    reply = conn.getresponse()
    reply.read()
    conn.close()
    return reply


IFRAME = {"Sec-Fetch-Dest": "iframe"}
READ = {"Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors", "Origin": "null"}  # fetch() in a sandboxed page


def token_prefix(pywb: Pywb, url: str) -> str:
    """/o-TOKEN/archive/: where a page of url's origin is served, as its redirect says."""
    reply = fetch(pywb, f"/{COLL}/2mp_/{url}", IFRAME)
    assert reply.status == 302, reply.status
    location = reply.headers["Location"]
    assert re.fullmatch(rf"/o-[0-9a-f]{{24}}/{COLL}/2mp_/{re.escape(url)}", location), location
    return location.split(f"/{COLL}/", 1)[0] + f"/{COLL}/"


def test_every_reply_carries_a_policy_without_other_hosts(replayed):
    pywb, hostile, secret, _ = replayed
    own = token_prefix(pywb, secret)
    assert token_prefix(pywb, hostile) != own  # one capability per origin
    assert fetch(pywb, f"{token_prefix(pywb, hostile)}2mp_/{secret}", IFRAME).headers["Location"] == f"{own}2mp_/{secret}"
    for mode in ("mp_", "id_", "if_", "js_", "im_"):
        reply = fetch(pywb, f"{own}2{mode}/{secret}", IFRAME)
        assert reply.status == 200, (mode, reply.status)
        csp = reply.headers.get_all("Content-Security-Policy")
        assert len(csp) == 1, (mode, csp)
        # A sandbox without allow-same-origin: an opaque origin for every archived document.
        assert csp[0].startswith("sandbox allow-scripts allow-forms;"), (mode, csp)
        assert "allow-same-origin" not in csp[0] and "allow-popups" not in csp[0]
        assert "default-src 'self' " in csp[0] and "ws:" not in csp[0] and "http" not in csp[0] and "*" not in csp[0]
        assert "Sec-Fetch-Dest" in reply.headers["Vary"]
    # A capture opened as a top-level page runs no script.
    top = fetch(pywb, f"{own}2id_/{secret}", {"Sec-Fetch-Dest": "document"})
    assert top.headers["Content-Security-Policy"].startswith("sandbox allow-forms;")
    # pywb's own pages and index API: never framed, no other host either, never granted.
    for path in (f"/{COLL}/2/{hostile}", f"/{COLL}/cdx?url={secret}", f"/{COLL}/timemap/json/{secret}",
                 f"{own}cdx?url={secret}", f"/{COLL}/*/{secret}", f"/{COLL}/", "/", "/static/wombat.js"):
        reply = fetch(pywb, path, READ)
        assert reply.status == 200, (path, reply.status)
        csp = reply.headers.get_all("Content-Security-Policy")
        assert csp and len(csp) == 1 and "frame-ancestors 'none'" in csp[0], (path, csp)
        assert "sandbox" not in csp[0] and "ws:" not in csp[0] and "*" not in csp[0], (path, csp)
        assert reply.headers["Access-Control-Allow-Origin"] is None, path


def test_a_page_may_read_the_captures_of_its_own_origin_only(replayed):
    pywb, hostile, secret, _ = replayed
    own, other = token_prefix(pywb, secret), token_prefix(pywb, hostile)
    for mode in ("id_", "mp_"):
        granted = fetch(pywb, f"{own}2{mode}/{secret}", READ)
        assert granted.status == 200 and granted.headers["Access-Control-Allow-Origin"] == "null", mode
        for path in (f"{other}2{mode}/{secret}", f"/{COLL}/2{mode}/{secret}"):  # another origin's token, none
            refused = fetch(pywb, path, READ)
            assert refused.status == 200 and refused.headers["Access-Control-Allow-Origin"] is None, path
            # The archived Access-Control-Allow-Origin: * is renamed, also in id_ mode.
            assert refused.headers["X-Archive-Orig-Access-Control-Allow-Origin"] == "*", path
    asked = {**READ, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "x-requested-with"}
    allowed = fetch(pywb, f"{own}2mp_/{secret}", asked, "OPTIONS")
    assert allowed.status == 204 and allowed.headers["Access-Control-Allow-Methods"] == "PUT"
    assert allowed.headers["Access-Control-Allow-Headers"] == "x-requested-with"
    refused = fetch(pywb, f"{other}2mp_/{secret}", asked, "OPTIONS")
    assert refused.status == 204 and refused.headers["Access-Control-Allow-Methods"] is None
    # Fonts and module scripts: loaded in CORS mode, never shown to a script.
    font = fetch(pywb, f"{other}2id_/{secret}", {**READ, "Sec-Fetch-Dest": "font"})
    assert font.headers["Access-Control-Allow-Origin"] == "null"


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the test extra)")
    with sync_api.sync_playwright() as p:
        # Flags as for any headless chromium here: no background calls to Google's hosts.
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield b
        b.close()


def results_in(frame) -> dict[str, str]:
    frame.wait_for_function("document.getElementById('out') && document.getElementById('out').dataset.done",
                            timeout=20_000)
    return json.loads(frame.evaluate("document.getElementById('out').textContent"))


def test_a_hostile_capture_cannot_read_the_archive_or_reach_another_host(replayed, browser):
    pywb, hostile, secret, other = replayed
    tab = browser.new_page()
    try:
        tab.goto(pywb.url(COLL, "2", "", hostile))  # the framed replay link archiver prints
        [capture] = [f for f in tab.frames if "mp_/" in f.url and f.url.endswith(hostile)]
        [raw] = [f for f in tab.frames if "id_/" in f.url and f.url.endswith(hostile)]
        for frame, attempts in ((capture, 10), (raw, 11)):
            results = results_in(frame)
                # Its own origin's captures are readable to it, as on the live web; nothing else.
            assert results.pop("own-capture-id").startswith("OK <!DOCTYPE html>"), results
            assert all(r.startswith("blocked") for r in results.values()), json.dumps(results, indent=1)
            assert len(results) == attempts, results
        assert other.connections == 0  # not even a connection, let alone a request
        # Replay still works inside the sandbox: pywb's client-side rewriter set itself up
        # and the page's image came from the archive.
        assert capture.evaluate("typeof window._wb_wombat") == "object"
        assert capture.evaluate("document.querySelector('article img').naturalWidth") == 1
        # Navigating itself out of pywb's frame (past pywb's rewriting of location): refused
        # by the frame's policy, which says so (naming the origin only). No request is sent;
        # chromium may have opened a connection to the host beforehand (the README says so).
        tab.evaluate("window.refused = []; document.addEventListener('securitypolicyviolation',"
                     " e => refused.push(e.effectiveDirective + ' ' + e.blockedURI))")
        capture.evaluate(f"window['loc' + 'ation'].href = '{other.base}/navigation'")
        tab.wait_for_function(f"refused.includes('frame-src {other.base}')", timeout=10_000)
    finally:
        tab.close()
    assert other.requests == []


def test_a_capture_opened_as_a_top_level_page_runs_no_script(replayed, browser):
    pywb, hostile, _, other = replayed
    connections = other.connections
    tab = browser.new_page()
    try:
        for mode in ("id_", "mp_"):
            tab.goto(pywb.url(COLL, "2", mode, hostile))  # returns once the page has loaded
            assert tab.text_content("#out") == "not run", mode
            assert tab.text_content("h1") == "Hostile", mode
    finally:
        tab.close()
    assert other.connections == connections and other.requests == []
