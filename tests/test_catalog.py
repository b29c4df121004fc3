"""Catalog transactions: writes made inside catalog.transaction() commit, or roll back, as one."""

import sqlite3

import pytest

from archiver.catalog import Catalog


def _scheduled(path) -> set[str]:
    other = Catalog(path)  # another connection sees only what was committed
    try:
        return {row["url"] for row in other.schedule.rows()}
    finally:
        other.close()


def test_writes_inside_a_transaction_commit_together(tmp_path):
    path = tmp_path / "archive.sqlite"
    catalog = Catalog(path)
    with catalog.transaction():
        catalog.schedule.sync({"http://a.test/": "a.test"}, 1.0)
        catalog.schedule.mark_started(["http://a.test/"], 2.0)
        assert _scheduled(path) == set()  # both joined the open transaction
    assert _scheduled(path) == {"http://a.test/"}
    catalog.close()


def test_a_failure_inside_rolls_back_every_write_made_inside(tmp_path):
    path = tmp_path / "archive.sqlite"
    catalog = Catalog(path)
    catalog.schedule.sync({"http://kept.test/": "kept.test"}, 1.0)
    with pytest.raises(RuntimeError), catalog.transaction():
        catalog.schedule.sync({"http://kept.test/": "kept.test", "http://new.test/": "new.test"}, 2.0)
        raise RuntimeError("a bug after the first write")
    assert _scheduled(path) == {"http://kept.test/"}
    catalog.schedule.sync({"http://kept.test/": "kept.test", "http://new.test/": "new.test"}, 3.0)  # the lock was released
    assert _scheduled(path) == {"http://kept.test/", "http://new.test/"}
    catalog.close()


def test_a_catalog_made_before_content_digests_opens_and_takes_them(tmp_path):
    path = tmp_path / "archive.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE observations (capture_id INTEGER PRIMARY KEY, tracked_url TEXT NOT NULL, "
                "final_url TEXT NOT NULL, challenge TEXT NOT NULL, extractor TEXT NOT NULL, article TEXT)")
    old.close()
    catalog = Catalog(path)
    catalog.history.add_observation(1, "http://a.test/", "http://a.test/", "", "archiver/1", None)
    columns = [row[1] for row in catalog.db.execute("PRAGMA table_info(observations)")]
    assert columns[-1] == "content_digest"
    catalog.add_column("observations", "content_digest TEXT")  # as a second process would, a moment late
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        catalog.add_column("no_such_table", "x TEXT")
    catalog.close()
    Catalog(path).close()  # opened again: the column is there, nothing to add


def test_a_catalog_made_before_unconfirmed_changes_opens_and_flags_them(tmp_path):
    path = tmp_path / "archive.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE changes (tracked_url TEXT NOT NULL, from_version INTEGER NOT NULL, "
                "to_version INTEGER NOT NULL, kind TEXT NOT NULL, before TEXT NOT NULL, after TEXT NOT NULL, "
                "from_warc TEXT NOT NULL, from_offset INTEGER NOT NULL, from_time TEXT NOT NULL, "
                "to_warc TEXT NOT NULL, to_offset INTEGER NOT NULL, to_time TEXT NOT NULL)")
    old.execute("INSERT INTO changes VALUES ('http://a.test/', 1, 2, 'body', 'a', 'b', 'w', 0, 't1', 'w', 9, 't2')")
    old.commit()
    old.close()
    catalog = Catalog(path)
    [row] = catalog.history.changes_since("t")
    assert row["unconfirmed"] == 0  # until its history is rebuilt at its next capture
    catalog.close()
