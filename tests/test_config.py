"""config.toml: defaults, validation with one clear line, paths relative to the file."""

from __future__ import annotations

import logging
import math
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.config import SETTINGS, Config, build_config, default_config_text, load_config
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
    ("[capture]\ntimeout = nan\n", "[capture] timeout must be a finite number, got nan"),
    ("[capture]\ntotal_timeout = inf\n", "[capture] total_timeout must be a finite number, got inf"),
    ("[capture]\nhead_timeout = -inf\n", "[capture] head_timeout must be a finite number, got -inf"),
    ("[capture]\ntimeout = 1e12\n", "[capture] timeout must be between 0 and 1e+09"),
    ("[capture]\ntimeout = 100000000000000000000\n", "[capture] timeout must be between 0 and 1e+09"),
    ('[capture]\nheaders = { X-A = "a\\r\\nX-Evil: 1" }\n',
     "[capture] headers X-A: the value must not contain line breaks or other control characters"),
    ('[capture]\nheaders = { X-A = "a\\u0000" }\n', "[capture] headers X-A: the value must not contain"),
    ('[capture]\nheaders = { "X-A\\r\\nX-Evil" = "1" }\n', "[capture] headers: 'X-A\\r\\nX-Evil' is not a header name"),
    ('[capture]\nheaders = { "X A" = "1" }\n', "[capture] headers: 'X A' is not a header name"),
    ('[capture]\noperator = "me\\nsoftware: forged"\n', "[capture] operator must not contain line breaks"),
    ('[storage]\nwarc_dir = "w\\u0000x"\n', "[storage] warc_dir must not contain a NUL character"),
    ("[replay]\nport = 70000\n", "[replay] port is too large, got 70000"),
    ("[capture]\nmax_links_per_page = 0\n", "[capture] max_links_per_page must be at least 1"),
    ('[schedule]\nhost_backoff = "99999999999w"\n', "[schedule] host_backoff: '99999999999w' is too long"),
    ('[capture]\nfollow = ' + "[" * 50 + "]" * 50 + "\n", "[capture] follow must be a list of strings"),
    ("[capture]\ntimeout = " + "[" * 50 + "]" * 50 + "\n", "[capture] timeout must be a number, got [[[...]]]"),
    ('["\\u0007\\n"]\n', "unknown section ['\\x07\\n']"),
    ("a = " + "[" * 5000 + "]" * 5000 + "\n", "invalid TOML: arrays or tables nested too deeply"),
    ("a = " + "9" * 5000 + "\n", "invalid TOML: "),
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


@pytest.mark.parametrize("data, message", [
    (bytes(range(256)) * 4, "not a config file: not UTF-8 text (byte 128 is 0x80)"),
    (b"\x1f\x8b\x08\x00" + bytes(100), "not a config file: not UTF-8 text"),  # a gzip file
    (b"# " + b"x" * (1 << 20) + b"\n", "not a config file: larger than 1 MB"),
])
def test_a_file_that_is_no_config_is_one_line(tmp_path, data, message):
    path = tmp_path / "config.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text", [b"\xff\xfe[capture]\x00", b"a = " + b"[" * 100_000 + b"]" * 100_000,
                                  b"[capture]\ntimeout = nan\n",
                                  b'[capture]\nheaders = { X-A = "1\\r\\nX-B: 2" }\n'])
def test_every_bad_config_exits_2_with_one_line(tmp_path, text):
    (tmp_path / "config.toml").write_bytes(text)
    result = run_cli("captures", cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("archiver: error: ") and "Traceback" not in result.stderr


TOML_LEAVES = (st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=20)
               | st.datetimes() | st.dates() | st.times())
TOML_VALUES = st.recursive(TOML_LEAVES, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=5)
OF_TYPE = {float: st.floats(), int: st.integers(-2 ** 70, 2 ** 70), bool: st.booleans(), str: st.text(max_size=20),
           list: st.lists(st.text(max_size=10), max_size=3),
           dict: st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)}


def raw_configs() -> st.SearchStrategy:
    """What tomllib may return: the real sections and keys (so the validators, not the
    key check, see the values), values of the setting's type (nan and inf among the
    floats, control characters among the strings) or of any other TOML type, and now
    and then an unknown key or section."""
    def section(name: str) -> st.SearchStrategy:
        keys = {s.name: OF_TYPE[type(s.default)] | TOML_VALUES for s in SETTINGS if s.section == name}
        return st.fixed_dictionaries({}, optional=keys) | st.dictionaries(st.text(max_size=5), TOML_VALUES, max_size=2)
    sections = {name: section(name) for name in sorted({s.section for s in SETTINGS})}
    return st.fixed_dictionaries({}, optional=sections) | st.dictionaries(st.text(max_size=5), TOML_VALUES, max_size=2)


HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=raw_configs())
def test_any_toml_structure_is_a_config_or_a_one_line_config_error(raw):
    try:
        config = build_config(raw, Path("/archive"))
    except ConfigError as e:
        assert "\n" not in str(e) and len(str(e)) < 400
        return
    assert isinstance(config, Config)
    numbers = [v for table in config.values.values() for v in table.values() if isinstance(v, float)]
    assert all(math.isfinite(v) for v in numbers)
    for name, value in config.capture.headers:
        assert HEADER_NAME.fullmatch(name) and value.isprintable()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400) | st.builds(lambda t, cut, junk: t[:cut] + junk + t[cut:],
                                                   st.just(default_config_text().encode()),
                                                   st.integers(0, 6000), st.binary(max_size=20)))
def test_any_bytes_are_a_config_or_a_one_line_config_error(tmp_path, data):
    path = tmp_path / "config.toml"
    path.write_bytes(data)
    try:
        load_config(path)
    except ConfigError as e:
        assert "\n" not in str(e)


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
    from archiver.archive.workdir import EXAMPLE_SEEDS

    root = README.parent
    assert (root / "config.toml").read_text() == default_config_text()
    assert (root / "seeds" / "example.txt").read_text() == EXAMPLE_SEEDS
    assert load_config(root / "config.toml").capture.per_host_delay == 1.0


def test_a_retired_setting_in_an_older_archive_config_loads_with_a_warning(tmp_path, caplog):
    """Archives made before the multi-process snapshot was removed hold processes = 0 in
    their config.toml (the template wrote it): they keep loading, and the log says so."""
    path = tmp_path / "config.toml"
    path.write_text("[capture]\nprocesses = 0\nconcurrency = 3\n")
    with caplog.at_level(logging.WARNING, logger="archiver"):
        config = load_config(path)
    assert config.capture.concurrency == 3
    assert "[capture] processes is no longer used" in caplog.text
