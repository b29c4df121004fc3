"""Pure stages stay pure: extract never imports the network, the database or the scheduler."""

from __future__ import annotations

import subprocess
import sys


def test_extract_imports_no_io_libraries():
    code = ("import sys, archiver.page.extract, archiver.page.article, archiver.edits.diff, archiver.edits.noise, "
            "archiver.edits.history, archiver.follow; "
            "bad = [m for m in ('requests', 'sqlite3', 'apscheduler', 'urllib3') if m in sys.modules]; "
            "print(','.join(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_every_declared_dependency_is_imported_by_archiver():
    """A dependency nobody imports (beautifulsoup4 was one) only costs installs."""
    import ast
    import re
    import tomllib
    from importlib.metadata import packages_distributions
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    declared = {re.split(r"[<>=!~\[; ]", d, 1)[0].lower()
                for d in tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]}
    imported = set()
    for path in (root / "archiver").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    used = {dist.lower() for module in imported for dist in packages_distributions().get(module, [])}
    assert declared - used == set()
