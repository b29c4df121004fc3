"""The command line: exit codes, JSON lines, stdout for data and stderr for progress."""

from __future__ import annotations

import json

from .conftest import make_archive, run_cli


def test_snapshot_json_lines_and_exit_0(site, tmp_path):
    site.page("/a/", "<html><body><div class='entry-content'><p>" + "words " * 20 +
              "<a href='/b/'>b</a></p></div></body></html>")
    site.page("/b/", "<html><body>b</body></html>")
    config = make_archive(tmp_path / "a")
    result = run_cli("snapshot", "--json", site.url("/a/"), cwd=config.root)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(d["url"], d["status"], d["role"], d["record"]) for d in lines] == [
        (site.url("/a/"), 200, "seed", "response"), (site.url("/b/"), 200, "body", "response")]
    assert set(lines[0]) == {"url", "status", "role", "record", "warc", "offset", "error"}
    assert site.url("/a/") in result.stderr  # progress goes to stderr


def test_snapshot_of_a_404_is_evidence_and_exits_0(site, tmp_path):
    config = make_archive(tmp_path / "a")
    result = run_cli("snapshot", "--json", "--quiet", site.url("/missing"), cwd=config.root)
    assert result.returncode == 0
    assert json.loads(result.stdout)["status"] == 404
    assert result.stderr == ""


def test_snapshot_exits_1_when_a_seed_gets_no_response(site, tmp_path):
    config = make_archive(tmp_path / "a")
    url = site.url("/x")
    site.stop()
    result = run_cli("snapshot", url, cwd=config.root)
    assert result.returncode == 1
    assert f"no response for seed {url}" in result.stderr


def test_snapshot_usage_errors_exit_2(tmp_path):
    config = make_archive(tmp_path / "a")
    for bad in ("ftp://example.org/", "not a url"):
        result = run_cli("snapshot", bad, cwd=config.root)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1


def test_init_creates_an_archive_and_refuses_to_overwrite(tmp_path):
    result = run_cli("init", str(tmp_path / "new"))
    assert result.returncode == 0
    assert (tmp_path / "new" / "config.toml").exists()
    assert (tmp_path / "new" / "seeds" / "example.txt").read_text().count("stalkerzone.org") == 1
    again = run_cli("init", str(tmp_path / "new"))
    assert again.returncode == 2 and "already an archive" in again.stderr


def test_captures_lists_json(site, tmp_path):
    site.page("/a/", "<html><body>a</body></html>")
    config = make_archive(tmp_path / "a")
    run_cli("snapshot", "-q", site.url("/a/"), cwd=config.root)
    result = run_cli("captures", "--json", cwd=config.root)
    [row] = json.loads(result.stdout)
    assert (row["url"], row["status"], row["record"]) == (site.url("/a/"), 200, "response")


def test_demo_runs_offline_and_says_where_the_warcs_are(tmp_path):
    result = run_cli("demo", "--dir", str(tmp_path / "demo"), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "after the edit" in result.stdout and str(tmp_path / "demo" / "warcs") in result.stdout
    assert len(list((tmp_path / "demo" / "warcs").glob("*.warc.gz"))) == 2
    assert result.stdout.rstrip().endswith(f"archiver --config {tmp_path / 'demo'}/config.toml serve\n"
                                           "  then open http://127.0.0.1:8000/")


def test_help_explains_every_command():
    from archiver.cli import build_parser

    result = run_cli("--help")
    commands = build_parser()._subparsers._group_actions[0].choices
    for name, parser in commands.items():
        assert name in result.stdout
        assert parser.description and len(parser.description) > 20, name  # `archiver NAME --help` says what it does


def test_commands_refuse_a_folder_without_config_and_create_nothing(tmp_path):
    """Only init and demo make archives: anywhere else a command says to run init, exit 2."""
    for args in (["snapshot", "http://127.0.0.1:9/"], ["captures"], ["run", "--once"], ["keygen"], ["verify"],
                 ["reindex"], ["status"]):
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert "archiver init" in line and "--config" in line, line
    assert list(tmp_path.iterdir()) == []
    missing = run_cli("--config", str(tmp_path / "nowhere.toml"), "captures", cwd=tmp_path)
    assert missing.returncode == 2 and "Errno" not in missing.stderr and "archiver init" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_snapshot_summary_counts_urls_not_attempts(site, tmp_path):
    site.page("/busy/", "busy", "text/plain", status=503, headers=(("Retry-After", "0"),))
    config = make_archive(tmp_path / "a", retries="2")
    result = run_cli("snapshot", "--quiet", site.url("/busy/"), cwd=config.root)
    assert site.hits["/busy/"] == 3
    assert result.stdout.splitlines()[0] == "captured 1 URL for 1 seed(s): 1 response (3 attempts)"
    site.stop()  # no response: retried too (with back-off: once here, 2 s)
    config = make_archive(tmp_path / "b", retries="1")
    failed = run_cli("snapshot", "--quiet", site.url("/gone/"), cwd=config.root)
    assert failed.returncode == 1
    assert failed.stdout.splitlines()[0] == "captured 1 URL for 1 seed(s): 1 failed (2 attempts)"
