"""archiver: evidence-grade capture of articles and their cross-references into WARC files."""

__version__ = "0.1.0"
