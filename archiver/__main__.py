"""``python -m archiver``: the same as the ``archiver`` command. (Run as ``-m archiver.cli``,
cli.py itself would be compiled from source on every start, 5 ms, as ``__main__`` is never
cached.)"""

from archiver.cli import run

run()
