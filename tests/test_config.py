"""config.toml: defaults, validation with one clear line, paths relative to the file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from archiver.config import SETTINGS, build_config, default_config_text, load_config
from archiver.errors import ConfigError

from .conftest import run_cli

README = Path(__file__).resolve().parent.parent / "README.md"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_default_config_text_parses_to_the_defaults(tmp_path):
    parsed = tomllib.loads(default_config_text())
    for s in SETTINGS:
        assert parsed[s.section][s.name] == s.default, s.key
    assert load_config(write(tmp_path, default_config_text())) == build_config({}, tmp_path)


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    config = load_config(write(tmp_path, '[storage]\nwarc_dir = "w"\ncatalog = "db/c.sqlite"\n'))
    assert config.storage.warc_dir == tmp_path / "w"
    assert config.storage.catalog == tmp_path / "db" / "c.sqlite"


@pytest.mark.parametrize("text, message", [
    ("[capture]\ntimeot = 3\n", "unknown key [capture] timeot"),
    ("[captur]\n", "unknown section [captur]"),
    ('[capture]\ntimeout = "fast"\n', "[capture] timeout must be a number, got 'fast'"),
    ("[capture]\ndepth = 1.5\n", "[capture] depth must be an integer"),
    ('[capture]\nrobots = "maybe"\n', "[capture] robots must be one of ignore, obey"),
    ('[capture]\nfollow = ["read", "nav"]\n', "[capture] follow may only name read and body"),
    ("[capture]\nconcurrency = 0\n", "[capture] concurrency must be at least 1"),
    ("[capture\n", "invalid TOML"),
    ("[schedule]\njitter = 1.5\n", "[schedule] jitter must be below 1"),
    ("[schedule]\nbatch = 0\n", "[schedule] batch must be at least 1"),
    ('[capture]\nuser_agent = "a\\r\\nX-Evil: 1"\n', "[capture] user_agent must not contain line breaks"),
    ('[schedule]\nadaptive = ["3h"]\n', "is not AGE=INTERVAL"),
])
def test_bad_config_is_one_line_naming_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=None) as e:
        load_config(write(tmp_path, text))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_config_exits_2_with_one_line(tmp_path):
    write(tmp_path, "[capture]\ntimeot = 3\n")
    result = run_cli("captures", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["archiver: error: config: unknown key [capture] timeot"]


def test_unreadable_config_exits_2(tmp_path):
    result = run_cli("--config", str(tmp_path / "missing.toml"), "captures")
    assert result.returncode == 2
    assert "cannot read config" in result.stderr


def test_every_setting_is_documented_in_the_readme():
    readme = README.read_text()
    for s in SETTINGS:
        assert f"`{s.name}`" in readme, f"README does not document {s.key}"


def test_public_dict_leaves_secrets_out(tmp_path):
    config = load_config(write(tmp_path, '[capture]\nheaders = { Cookie = "s=1", X-A = "b" }\n'
                                         'proxy = "http://user:pw@proxy:3128"\n'))
    public = config.public_dict()
    assert "proxy" not in public["capture"] and "cookies_file" not in public["capture"]
    assert public["capture"]["headers"] == {"X-A": "b"}


def test_the_repository_is_an_archive_with_default_config_and_example_seeds():
    """config.toml and seeds/example.txt at the repository root are what ``archiver init`` writes."""
    from archiver.workdir import EXAMPLE_SEEDS

    root = README.parent
    assert (root / "config.toml").read_text() == default_config_text()
    assert (root / "seeds" / "example.txt").read_text() == EXAMPLE_SEEDS
    assert load_config(root / "config.toml").capture.per_host_delay == 1.0
