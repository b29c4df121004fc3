"""The one exception root of archiver and its few subclasses.

The CLI maps ``UsageError`` and ``ConfigError`` to exit status 2 and every other
``ArchiverError`` to exit status 1, each printed as one line.
"""


def os_error_text(e: OSError, with_path: bool = True) -> str:
    """An OSError as people read it, one line and no errno: "PATH: No such file or
    directory" (with_path=False when the message names the path already), where
    str(e) gives "[Errno 2] No such file or directory: 'PATH'"."""
    reason = e.strerror or str(e) or type(e).__name__
    if with_path and e.filename is not None:
        return f"{e.filename}: {reason}" + (f" (and {e.filename2})" if e.filename2 is not None else "")
    return reason


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
