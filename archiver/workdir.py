"""An archive folder on disk: ``archiver init`` lays it out."""

from __future__ import annotations

import re
from pathlib import Path

from .config import CONFIG_NAME, default_config_text
from .errors import UsageError

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
