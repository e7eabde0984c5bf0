"""The dask.distributed path gives exactly the in-process result (real LocalCluster, loopback)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipelines.config import load_config
from pipelines.nightly.distributed import DaskExecutor, InProcessExecutor, make_executor, run_tiles
from pipelines.nightly.job import PairRef
from pipelines.nightly.runner import run_nightly
from pipelines.nightly.state import TileCheckpoint
from pipelines.nightly.testing import FakeBackend, write_pair
from tests._nightly_fixtures import drop, make_site

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """One real two-process cluster on 127.0.0.1 for the whole module."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def _night_root(root: Path, gen, tile_batch: int, units: bool = False) -> Path:  # type: ignore[no-untyped-def]
    """A nightly folder with the generated baseline catalogued and night 1 in the inbox; its config."""
    import shutil

    (root / "baselines").mkdir(parents=True)
    shutil.copy(gen.baseline, root / "baselines" / "baseline.tif")
    shutil.copytree(gen.flights[0].parent, root / "inbox" / "night_01")
    cfg_path = root / "cfg.yaml"
    cfg_path.write_text(
        (f"units: {{path: {gen.units}}}\n" if units else "")
        + "nightly:\n  inbox: inbox\n  catalogue_dir: baselines\n  output_root: out\n"
        + "  settle_seconds: 0\n"
        + f"  tile_batch: {tile_batch}\n  refresh_maps: false\n",
        encoding="utf-8",
    )
    return cfg_path


def _tiles(executor, pair: PairRef, ck_path: Path, batch: int) -> dict:  # type: ignore[no-untyped-def]
    backend = FakeBackend(tile_size=32)
    with TileCheckpoint(ck_path, backend.checkpoint_key(pair)) as ck:
        return run_tiles(backend, pair, ck, executor, batch)


def test_dask_tiles_equal_in_process(tmp_path: Path, scheduler: str) -> None:
    flight, baseline = write_pair(tmp_path / "pair", seed=3, size=256, changes=12)
    pair = PairRef("f", str(flight), "b", str(baseline))
    local = _tiles(InProcessExecutor(), pair, tmp_path / "a.sqlite", batch=5)
    with make_executor(scheduler) as ex:
        assert isinstance(ex, DaskExecutor) and ex.workers == 2
        remote = _tiles(ex, pair, tmp_path / "b.sqlite", batch=5)
        pids = ex.client.run(lambda: __import__("os").getpid())
    assert len(set(pids.values())) == 2  # two real worker processes
    assert list(local) == list(remote) == list(range(64))
    assert sum(len(c) for c in local.values() if c is not None) > 5
    for i in local:
        a, b = local[i], remote[i]
        assert a is not None and b is not None
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
        np.testing.assert_array_equal(a.score, b.score)
        np.testing.assert_array_equal(a.class_id, b.class_id)
        np.testing.assert_array_equal(a.tile_id, b.tile_id)


def _ledger(out: Path) -> tuple[list, list]:
    con = sqlite3.connect(out / "fake-ledger.sqlite")
    cases = sorted(con.execute("SELECT * FROM cases").fetchall())
    sightings = sorted(con.execute("SELECT * FROM sightings").fetchall())
    con.close()
    return cases, sightings


def test_nightly_on_cluster_equals_in_process(tmp_path: Path, scheduler: str) -> None:
    results = {}
    for name, sched in (("local", None), ("dask", scheduler)):
        site = make_site(tmp_path / name, nights=3)
        for k in (1, 2, 3):
            drop(site, k)
        summary = run_nightly(load_config(site["config"]), FakeBackend(), scheduler=sched)
        assert summary.status == "ok" and summary.scheduler == (sched or "in-process")
        leads = [
            json.loads((site["out"] / f"night_0{k}" / "leads.json").read_text()) for k in (1, 2, 3)
        ]
        results[name] = (leads, _ledger(site["out"]))
    assert results["local"] == results["dask"]
    assert sum(len(night) for night in results["local"][0]) > 0


@pytest.mark.slow
def test_real_job_on_cluster_equals_in_process(tmp_path: Path, scheduler: str) -> None:
    """The real per-flight job (geo.tiles, leads, ledger) with a stand-in predict callback."""

    import pandas as pd

    from geo.synthetic.district import generate_nights
    from pipelines.nightly.adapters import BuildwatchBackend

    gen = generate_nights(tmp_path / "gen", seed=5, nights=1, size_m=160)
    tables = {}
    for name, sched in (("local", None), ("dask", scheduler)):
        root = tmp_path / name
        cfg = load_config(_night_root(root, gen, tile_batch=2))
        backend = BuildwatchBackend(cfg, predict="pipelines.nightly.testing:fake_predict")
        summary = run_nightly(cfg, backend, scheduler=sched)
        assert summary.status == "ok", summary.to_text()
        assert summary.flights[0].baseline_id == "baseline"
        tables[name] = pd.read_csv(root / "out" / summary.flights[0].flight_id / "leads.csv")
        assert (root / "out" / "ledger.gpkg").is_file()
    assert len(tables["local"]) > 0
    pd.testing.assert_frame_equal(tables["local"], tables["dask"])


@pytest.mark.slow
def test_real_detector_on_cluster_equals_in_process(tmp_path: Path, scheduler: str) -> None:
    """The shipped detector on a 300 m night: two worker processes give exactly the in-process
    leads (workers load the model and co-register the pair themselves; the client merges the
    candidates per tile index without reading the tiles again)."""

    import geopandas as gpd
    import pandas as pd

    from geo.synthetic.district import generate_nights
    from pipelines.nightly.adapters import BuildwatchBackend

    gen = generate_nights(tmp_path / "gen", seed=8, nights=1, size_m=300)
    leads, runs = {}, {}
    for name, sched in (("local", None), ("dask", scheduler)):  # in-process first: warms caches
        root = tmp_path / name
        backend = BuildwatchBackend(load_config(_night_root(root, gen, tile_batch=4, units=True)))
        assert backend.describe().startswith("buildwatch-cd-yolo11n")  # the real detector
        summary = run_nightly(backend.config, backend, scheduler=sched)
        assert summary.status == "ok", summary.to_text()
        out = root / "out" / summary.flights[0].flight_id
        leads[name] = gpd.read_file(out / "leads.gpkg", layer="leads")
        runs[name] = json.loads((out / "run_summary.json").read_text(encoding="utf-8"))
    assert len(leads["local"]) >= 3
    from models.detector import DEFAULT_WEIGHTS

    # the default config's ensemble, unchanged-structure and direction tests run on the workers
    # too, and say so in the order they run
    (name,) = set(leads["local"]["model_name"])
    assert name.startswith(f"{DEFAULT_WEIGHTS.stem}+ensemble(w0=0.375,w1=0.375,w2=0.25,")
    assert "[buildwatch-cd-yolo11n-seg-seed4:" in name
    assert ",buildwatch-cd-efflite0-siamese-seg:" in name
    assert name.endswith(
        "+unchanged(radius_m=3,min_ncc=0.8,min_peak=0.02)+direction(margin=0,min_iou=0.3)"
    )
    pd.testing.assert_frame_equal(leads["local"], leads["dask"])
    assert leads["local"].geometry.geom_equals_exact(leads["dask"].geometry, tolerance=0).all()
    for key in ("counts", "coverage_m2", "registration", "model"):
        assert runs["local"][key] == runs["dask"][key], key
