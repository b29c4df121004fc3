"""The user's credentials go to the server and nowhere else: request records hold a
redaction marker a holder of the secret can check, and no WARC, catalog, ledger, index,
export or log holds the secret; archive files are the owner's only. On real servers."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import stat
import zipfile
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from archiver.config import load_config
from archiver.errors import ConfigError
from archiver.capture.fetch import describe_error
from archiver.capture.redact import MARKER, Redactor, proves

from .conftest import make_archive, run_cli, run_snapshot, warc_files, warcio_check
from .site import Site
from .test_requests_features import CREDENTIALS, ForwardingProxy

COOKIE, TOKEN, API_KEY = "COOKIE-S3CRET", "Bearer TOKEN-S3CRET", "APIKEY-S3CRET"
PROXY_AUTHORIZATION = "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()
SECRETS = [COOKIE.encode(), b"TOKEN-S3CRET", API_KEY.encode(), b"s3cret-pw", PROXY_AUTHORIZATION.encode(),
           base64.b64encode(CREDENTIALS.encode())]
PAGE = "<html><head><link rel=stylesheet href=/style.css></head><body><article><p>Credentials.</p></article></body></html>"


@pytest.fixture
def authenticated(site, tmp_path, monkeypatch):
    """(an archive whose captures carry the user's cookie, Authorization and API key and go
    through a proxy that wants a password, the proxy, the page's URL). The page sets a
    cookie of the site's own, which its stylesheet's request sends back."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    site.page("/page", PAGE, headers=(("Set-Cookie", "consent=site-set; Path=/"),))
    site.page("/style.css", "p { color: red }", "text/css")
    cookies = tmp_path / "cookies.txt"
    cookies.write_text(f"# Netscape HTTP Cookie File\nnews.test\tFALSE\t/\tFALSE\t0\tsession\t{COOKIE}\n")
    proxy = ForwardingProxy()
    config = make_archive(
        tmp_path / "a", cookies_file=f'"{cookies}"', proxy=f'"http://{CREDENTIALS}@127.0.0.1:{proxy.port}"',
        headers=f'{{ Authorization = "{TOKEN}", X-Api-Key = "{API_KEY}", Accept-Language = "en" }}',
        secret_headers='["X-Api-Key"]')
    yield config, proxy, f"http://news.test:{site.server.server_address[1]}/page"
    proxy.stop()


def request_heads(config) -> dict[str, dict[str, str]]:
    """WARC-Target-URI -> the headers of its request record."""
    heads = {}
    for path in warc_files(config):
        with open(path, "rb") as f:
            for r in ArchiveIterator(f):
                if r.rec_type == "request":
                    heads[r.rec_headers.get_header("WARC-Target-URI")] = dict(r.http_headers.headers)
    return heads


def stored_bytes(path: Path) -> bytes:
    """A file's bytes as a reader would see them: gzip members and zip entries opened."""
    data = path.read_bytes()
    if path.suffix in (".wacz", ".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return b"".join(_opened(z.read(name)) for name in z.namelist())
    return _opened(data)


def _opened(data: bytes) -> bytes:
    return data + gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def leaks(texts: dict[str, bytes]) -> list[tuple[str, bytes]]:
    return [(name, secret) for name, data in texts.items() for secret in SECRETS if secret in data]


def test_credentials_reach_the_server_and_no_record_catalog_ledger_export_or_log(site, authenticated, tmp_path):
    config, proxy, url = authenticated
    wacz = tmp_path / "out.wacz"
    runs = [run_cli("keygen", cwd=config.root), run_cli("snapshot", url, cwd=config.root),
            run_cli("export", "--wacz", str(wacz), cwd=config.root), run_cli("verify", cwd=config.root),
            run_cli("verify", str(wacz), "--key", "archive.key.pub", cwd=config.root)]
    assert [r.returncode for r in runs] == [0] * 5, [r.stderr for r in runs]
    # The server and the proxy got every credential, as sent.
    page, style = (dict(next(s for s in site.seen if s.path == p).headers) for p in ("/page", "/style.css"))
    assert (page["Authorization"], page["X-Api-Key"], page["Cookie"]) == (TOKEN, API_KEY, f"session={COOKIE}")
    assert sorted(style["Cookie"].split("; ")) == ["consent=site-set", f"session={COOKIE}"]
    assert all(f"Proxy-Authorization: {PROXY_AUTHORIZATION}".encode() in head for head in proxy.requests)
    # Nothing else holds them: every file of the archive but its config, the export, every output.
    files = {str(p): stored_bytes(p) for p in config.root.rglob("*") if p.is_file() and p.name != "config.toml"}
    files[str(wacz)] = stored_bytes(wacz)
    files.update({f"{r.args[3:]} output": (r.stdout + r.stderr).encode() for r in runs})
    assert {Path(name).name for name in files} >= {"archive.sqlite", "ledger.jsonl", "out.wacz"}
    assert leaks(files) == []
    # The request records keep each header, its value a marker that the secret proves.
    heads = request_heads(config)
    salt = (config.root / "redaction.salt").read_text().strip()
    page_head, style_head = heads[url], heads[url.replace("/page", "/style.css")]
    for header, secret in (("Authorization", TOKEN), ("X-Api-Key", API_KEY), ("Proxy-Authorization", PROXY_AUTHORIZATION)):
        assert MARKER.fullmatch(page_head[header])[1] == salt
        assert proves(page_head[header], secret) and not proves(page_head[header], secret + "x")
    assert page_head["Accept-Language"] == "en"
    consent, session = sorted(style_head["Cookie"].split("; "))
    assert consent == "consent=site-set" and session.startswith("session=[redacted sha256:")
    assert proves(session, COOKIE) and session == page_head["Cookie"]  # one secret, one marker
    assert all(warcio_check(path).returncode == 0 for path in warc_files(config))


def test_configured_credentials_go_to_the_seeds_host_only(site, tmp_path):
    """A requisite or cross-reference on another host (a CDN, a tracker, another site)
    never receives the Authorization, Cookie or secret headers set for the seed's site."""
    other = Site()
    try:
        other.page("/lib.css", "p { color: red }", "text/css")
        other.page("/elsewhere/", "<html><body><p>Another site's page.</p></body></html>")
        site.page("/page", f"<html><head><link rel=stylesheet href={other.url('/lib.css')}></head><body><article>"
                           f"<p>{'Words of the article. ' * 10}<a href={other.url('/elsewhere/')}>elsewhere</a></p>"
                           f"</article></body></html>")
        site.page("/style.css", "p { color: red }", "text/css")
        config = make_archive(tmp_path / "a", headers=f'{{ Authorization = "{TOKEN}", X-Api-Key = "{API_KEY}", '
                                                       f'Cookie = "session={COOKIE}" }}',
                              secret_headers='["X-Api-Key"]')
        assert run_cli("snapshot", site.url("/page"), cwd=config.root).returncode == 0
        page = dict(next(s for s in site.seen if s.path == "/page").headers)
        assert (page["Authorization"], page["X-Api-Key"], page["Cookie"]) == (TOKEN, API_KEY, f"session={COOKIE}")
        assert {s.path for s in other.seen} == {"/lib.css", "/elsewhere/"}
        for seen in other.seen:
            names = {name.lower() for name, _ in seen.headers}
            assert not names & {"authorization", "x-api-key", "cookie"}, (seen.path, seen.headers)
    finally:
        other.stop()


def test_keep_secrets_keeps_the_sites_credentials_but_never_the_proxys(site, authenticated, tmp_path):
    config, proxy, url = authenticated
    config_file = config.root / "config.toml"
    config_file.write_text(config_file.read_text().replace("keep_secrets = false", "keep_secrets = true"))
    config = load_config(config_file)
    summary = run_snapshot(config, url)
    assert [r.status for r in summary.results] == [200, 200]
    page_head = request_heads(config)[url]
    assert (page_head["Authorization"], page_head["X-Api-Key"], page_head["Cookie"]) == (
        TOKEN, API_KEY, f"session={COOKIE}")
    assert proves(page_head["Proxy-Authorization"], PROXY_AUTHORIZATION)
    warcs = {str(p): stored_bytes(p) for p in warc_files(config)}
    assert {secret for _, secret in leaks(warcs)} == {COOKIE.encode(), b"TOKEN-S3CRET", API_KEY.encode()}
    assert all(warcio_check(path).returncode == 0 for path in warc_files(config))


def test_the_redactor_changes_only_credentials_and_keeps_the_rest_byte_for_byte():
    redactor = Redactor.of("0" * 32, ["X-Api-Key"], ["session"], keep=False)
    head = (b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nauthorization:Basic dTpw\r\nX-API-KEY:  k1 \r\n"
            b"Cookie: a=1; session=s=2;b\r\nProxy-Authorization: Basic\r\n cGFzcw==\r\nX-Folded: x\r\n\r\nbody")
    redacted = redactor.head(head)
    fields = redacted.split(b"\r\n")
    assert fields[:2] + fields[-3:] == [b"GET http://a.test/ HTTP/1.1", b"Host: a.test", b"X-Folded: x", b"", b"body"]
    assert proves(fields[2].decode(), "Basic dTpw") and fields[2].startswith(b"authorization:[redacted")
    assert proves(fields[3].decode(), "k1") and fields[3].startswith(b"X-API-KEY:  [redacted")
    assert fields[4].startswith(b"Cookie: a=1; session=[redacted") and fields[4].endswith(b"];b")
    assert proves(fields[4].decode(), "s=2")
    assert proves(fields[5].decode(), "Basic\r\n cGFzcw==")  # a folded value is one value
    assert redactor.head(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n") == b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"
    # The format the README's recipe computes: SHA-256 over "<salt>:<value>".
    assert MARKER.search(fields[2].decode())[2] == hashlib.sha256(b"0" * 32 + b":Basic dTpw").hexdigest()
    with pytest.raises(ValueError):
        proves("Basic dTpw", "Basic dTpw")


def test_an_error_message_never_repeats_a_proxy_password():
    message = describe_error(OSError("cannot reach proxy http://user:s3cret-pw@proxy.test:3128/ now"))
    assert message == "OSError: cannot reach proxy http://***@proxy.test:3128/ now"


@pytest.mark.parametrize("setting, value", [
    ("proxy", '["http://user:s3cret-pw@proxy.test:3128"]'),
    ("headers", '["Authorization: Bearer TOKEN-S3CRET"]'),
    ("secret_headers", '["X Api Key"]'),
    ("mode", '"0400"'),
    ("mode", '"rw-------"'),
])
def test_a_bad_setting_is_refused_in_one_line_that_repeats_no_secret(tmp_path, setting, value):
    path = make_archive(tmp_path / "a").root / "config.toml"
    path.write_text("\n".join(f"{setting} = {value}" if line.startswith(f"{setting} = ") else line
                              for line in path.read_text().splitlines()) + "\n")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    message = str(refused.value)
    assert f"{setting} must" in message and "\n" not in message and "s3cret" not in message.lower()


# ---- file modes -------------------------------------------------------------------------

def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def test_archive_files_are_the_owners_only_and_existing_files_keep_their_mode(site, tmp_path):
    site.page("/a/", PAGE)
    site.page("/style.css", "p {}", "text/css")
    root, wacz = tmp_path / "archive", tmp_path / "out.wacz"
    assert run_cli("init", str(root)).returncode == 0
    (root / "config.toml").write_text((root / "config.toml").read_text().replace("per_host_delay = 1.0",
                                                                                  "per_host_delay = 0.0"))
    for args in (("keygen",), ("snapshot", site.url("/a/")), ("export", "--wacz", str(wacz))):
        assert run_cli(*args, cwd=root).returncode == 0
    made = modes(root)
    assert {name for name, mode in made.items() if mode != (0o700 if (root / name).is_dir() else 0o600)} == set()
    assert {"archive.key", "archive.key.pub", "archive.sqlite", "ledger.jsonl", "config.toml", "indexes", "locks",
            "warcs", "seeds/example.txt", "changes.atom"} <= set(made)
    assert stat.S_IMODE(wacz.stat().st_mode) == 0o600
    (root / "ledger.jsonl").chmod(0o644)
    assert run_cli("snapshot", site.url("/a/"), cwd=root).returncode == 0
    assert stat.S_IMODE((root / "ledger.jsonl").stat().st_mode) == 0o644
    assert {stat.S_IMODE(p.stat().st_mode) for p in warc_files(load_config(root / "config.toml"))} == {0o600}


def test_storage_mode_sets_the_mode_of_files_and_folders_archiver_creates(site, tmp_path):
    site.page("/a/", PAGE)
    config = make_archive(tmp_path / "a", mode='"0640"')
    assert run_cli("snapshot", site.url("/a/"), cwd=config.root).returncode == 0
    made = modes(config.root)
    assert (made["indexes"], made["locks"]) == (0o750, 0o750)
    assert {made[name] for name in ("archive.sqlite", "ledger.jsonl", "redaction.salt")} == {0o640}
    assert {made[str(p.relative_to(config.root))] for p in warc_files(config)} == {0o640}
