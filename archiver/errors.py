"""The one exception root of archiver and its few subclasses.

The CLI maps ``UsageError`` and ``ConfigError`` to exit status 2 and every other
``ArchiverError`` to exit status 1, each printed as one line.
"""


class ArchiverError(Exception):
    """Root of every error archiver raises on purpose."""


class ConfigError(ArchiverError):
    """config.toml or a seed file is unreadable or names a bad key or value."""


class UsageError(ArchiverError, ValueError):
    """The user asked for something that cannot be done (bad URL, bad scheme)."""


class FetchError(ArchiverError):
    """No HTTP response could be obtained (DNS, refused, reset, TLS, timeout)."""


class WarcError(ArchiverError):
    """A WARC file could not be written, read or repaired."""
