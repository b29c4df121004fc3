"""Catalog transactions: writes made inside catalog.transaction() commit, or roll back, as one."""

import pytest

from archiver.catalog import Catalog


def _scheduled(path) -> set[str]:
    other = Catalog(path)  # another connection sees only what was committed
    try:
        return {row["url"] for row in other.schedule_rows()}
    finally:
        other.close()


def test_writes_inside_a_transaction_commit_together(tmp_path):
    path = tmp_path / "archive.sqlite"
    catalog = Catalog(path)
    with catalog.transaction():
        catalog.sync_schedule({"http://a.test/": "a.test"}, 1.0)
        catalog.mark_started(["http://a.test/"], 2.0)
        assert _scheduled(path) == set()  # both joined the open transaction
    assert _scheduled(path) == {"http://a.test/"}
    catalog.close()


def test_a_failure_inside_rolls_back_every_write_made_inside(tmp_path):
    path = tmp_path / "archive.sqlite"
    catalog = Catalog(path)
    catalog.sync_schedule({"http://kept.test/": "kept.test"}, 1.0)
    with pytest.raises(RuntimeError), catalog.transaction():
        catalog.sync_schedule({"http://kept.test/": "kept.test", "http://new.test/": "new.test"}, 2.0)
        raise RuntimeError("a bug after the first write")
    assert _scheduled(path) == {"http://kept.test/"}
    catalog.sync_schedule({"http://kept.test/": "kept.test", "http://new.test/": "new.test"}, 3.0)  # the lock was released
    assert _scheduled(path) == {"http://kept.test/", "http://new.test/"}
    catalog.close()
