"""The version of archiver, in one place (the package, warcinfo records, exports, feeds)."""

__version__ = "0.1.0"
