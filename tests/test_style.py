"""Pure stages stay pure: extract never imports the network, the database or the scheduler."""

from __future__ import annotations

import subprocess
import sys


def test_extract_imports_no_io_libraries():
    code = ("import sys, archiver.extract; "
            "bad = [m for m in ('requests', 'sqlite3', 'apscheduler', 'urllib3') if m in sys.modules]; "
            "print(','.join(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
