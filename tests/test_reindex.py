"""The WARCs are the source of truth: reindex rebuilds the catalog and index exactly."""

from __future__ import annotations

from archiver.catalog import Catalog
from archiver.demo import run_demo
from archiver.config import load_config
from archiver.pipeline import reindex


def test_reindex_rebuilds_identical_catalog_and_cdxj(tmp_path):
    run_demo(tmp_path / "d")
    config = load_config(tmp_path / "d" / "config.toml")
    catalog = Catalog(config.storage.catalog)
    before = catalog.dump()
    catalog.close()
    cdxj_before = {p.name: p.read_text() for p in config.storage.index_dir.glob("*.cdxj")}
    assert len(before[0]) == 28 and len(before[1]) > 20
    config.storage.catalog.unlink()
    for p in config.storage.index_dir.glob("*.cdxj"):
        p.unlink()
    files, count = reindex(config)
    assert (files, count) == (2, 28)
    catalog = Catalog(config.storage.catalog)
    assert catalog.dump() == before
    catalog.close()
    assert {p.name: p.read_text() for p in config.storage.index_dir.glob("*.cdxj")} == cdxj_before
