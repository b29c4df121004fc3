"""archiver: evidence-grade capture of articles and their cross-references into WARC files.

The library (library.py): ``archiver.open(folder)`` gives an ``Archive`` with a method
per command: snapshot, captures, history, diff, changes, verify, export, ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["Archive", "ArchiverError", "ConfigError", "Tracking", "UsageError", "__version__", "init", "open",
           "verify_export"]

if TYPE_CHECKING:
    from archiver.errors import ArchiverError, ConfigError, UsageError
    from archiver.library import Archive, Tracking, init, open, verify_export


def __getattr__(name: str):
    """The library's names, loaded on first use: importing a pure stage (page/, edits/)
    does not start the network, the catalog and the scheduler."""
    if name in ("ArchiverError", "ConfigError", "UsageError"):
        from archiver import errors
        return getattr(errors, name)
    if name in __all__:
        from archiver import library
        return getattr(library, name)
    raise AttributeError(f"module 'archiver' has no attribute {name!r}")
