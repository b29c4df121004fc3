"""An archive folder on disk: ``archiver init`` lays it out; the permissions of what
archiver creates in it; the salt of its redaction markers."""

from __future__ import annotations

import os
import re
from pathlib import Path

from archiver.config import CONFIG_NAME, default_config_text
from archiver.errors import ArchiverError, UsageError, os_error_text
from archiver.capture.redact import SALT, new_salt

DEFAULT_MODE = 0o600
SALT_NAME = "redaction.salt"

EXAMPLE_SEEDS = """# One tracked URL per line: URL [every=INTERVAL] [cron="EXPR"] [tag=TAG]...
# Lines starting with # are comments.
https://www.stalkerzone.org/the-russian-defence-ministry-has-established-itself-in-serbia/ every=6h tag=serbia
"""


def init_archive(root: Path, overrides: dict[str, str] | None = None) -> Path:
    """Create config.toml, seeds/ and warcs/ in root; refuse to overwrite a config."""
    config = root / CONFIG_NAME
    if config.exists():
        raise UsageError(f"{config} already exists: {root} is already an archive")
    (root / "seeds").mkdir(parents=True, exist_ok=True)
    (root / "warcs").mkdir(exist_ok=True)
    text = default_config_text()
    for key, value in (overrides or {}).items():
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
    config.write_text(text, encoding="utf-8")
    example = root / "seeds" / "example.txt"
    if not example.exists():
        example.write_text(EXAMPLE_SEEDS, encoding="utf-8")
    return config


def storage_umask(mode: int) -> int:
    """The umask that creates files with ``mode`` and folders with the same plus search
    (x) wherever it grants read: 0600 -> folders 0700, 0640 -> 0750."""
    folders = mode | (mode & 0o444) >> 2
    return 0o777 & ~folders


def apply_storage_mode(mode: int = DEFAULT_MODE) -> None:
    """Make every file and folder this process creates from now on (WARCs, catalog and its
    journal, ledger, index, locks, exports, feed) take ``[storage] mode``: the process
    umask, as archive tools such as borg set theirs. Files that exist keep their mode.
    The CLI calls it; a program using archiver as a library calls it itself."""
    os.umask(storage_umask(mode))


def redaction_salt(root: Path) -> str:
    """The archive's salt for redaction markers (redact.py), made at its first capture.
    Not a secret: every marker carries it."""
    path = root / SALT_NAME
    salt = _read_salt(path)
    if salt is None:
        _make_salt(path)
        salt = _read_salt(path)
    assert salt is not None, "the salt file was just made"
    return salt


def _make_salt(path: Path) -> None:
    """Write a new salt aside and link it in place: the file appears whole, and of
    processes capturing at once the first to link wins (the others read its salt)."""
    aside = path.with_name(f".{SALT_NAME}.{os.getpid()}.tmp")
    try:
        aside.write_text(new_salt() + "\n", encoding="ascii")
        os.link(aside, path)
    except FileExistsError:
        pass
    except OSError as e:
        raise ArchiverError(f"{path}: cannot create the redaction salt: {os_error_text(e, with_path=False)}") from e
    finally:
        aside.unlink(missing_ok=True)


def _read_salt(path: Path) -> str | None:
    try:
        salt = path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ArchiverError(f"{path}: cannot read the redaction salt: {os_error_text(e, with_path=False)}") from e
    if not SALT.fullmatch(salt):
        raise ArchiverError(f"{path}: not a redaction salt (32 hexadecimal digits); "
                            "delete it and the next capture makes a new one")
    return salt
