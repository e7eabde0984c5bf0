"""detect_leads / run_flight with candidates computed elsewhere (the dask path): the same leads as
the in-process tile loop, georeferenced from the tile windows without reading a tile again."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from geo.errors import ModelError
from geo.tiles import ImageryPair, open_pair
from pipelines.config import BuildwatchConfig
from pipelines.detect import detect_leads
from pipelines.run import run_flight
from tests._leads_fixtures import YELLOW, Structure, oracle_predict, write_pair, write_units

STRUCTURES = [
    Structure(5, 5, 10, 10),
    Structure(20, 2, 28, 8),  # straddles the seam of 128 px / 32 px tiles (x = 19.2..25.6 m)
    Structure(27, 35, 29.5, 40, YELLOW),
    Structure(40, 40, 45, 46),
]


def _config() -> BuildwatchConfig:
    return BuildwatchConfig.model_validate(
        {
            "tiling": {"gsd": 0.2, "size": 128, "overlap": 32, "prefetch": 0},
            "coreg": {"mode": "off"},
        }
    )


def _worker_candidates(flight, baseline, cfg: BuildwatchConfig) -> dict:  # type: ignore[no-untyped-def]
    """What the nightly workers compute: candidates per tile index, None where nothing is valid."""
    out = {}
    with open_pair(flight, baseline, gsd=0.2, coreg="off") as pair:
        for w in pair.tile_windows(cfg.tiling.size, cfg.tiling.overlap):
            tp = pair.read_tile(w)
            img = np.concatenate([tp.flight, tp.baseline], axis=-1)
            out[int(w.index)] = oracle_predict([img])[0] if tp.valid.any() else None
    return out


def test_precomputed_candidates_give_the_tile_loop_leads_without_reading_tiles(
    tmp_path, monkeypatch
):
    flight, baseline = write_pair(tmp_path, STRUCTURES, flight_alpha_cols=200)
    units = write_units(tmp_path / "units.gpkg")
    cfg = _config()
    loop = detect_leads(flight, baseline, predict=oracle_predict, config=cfg, units=units)
    cands = _worker_candidates(flight, baseline, cfg)
    assert len(cands) == 9

    def no_reads(*_a, **_k):  # the precomputed path must not decode a single tile
        raise AssertionError("tile read")

    monkeypatch.setattr(ImageryPair, "read_tile", no_reads)
    pre = detect_leads(
        flight, baseline, predict=oracle_predict, config=cfg, units=units, candidates=cands
    )
    assert len(loop.leads) == 3 and loop.n_merged_away >= 1
    pd.testing.assert_frame_equal(loop.leads, pre.leads)
    assert (pre.n_tiles, pre.n_candidates, pre.n_merged_away) == (
        loop.n_tiles,
        loop.n_candidates,
        loop.n_merged_away,
    )
    assert pre.coverage is not None and pre.coverage.equals(loop.coverage)
    # without predict the provenance says the model is unknown, the leads are the same
    anon = detect_leads(flight, baseline, config=cfg, units=units, candidates=cands)
    assert set(anon.leads["model_name"]) == {"precomputed"}
    pd.testing.assert_frame_equal(
        anon.leads.drop(columns="model_name"), loop.leads.drop(columns="model_name")
    )


def test_candidates_for_other_tiles_are_refused(tmp_path):
    flight, baseline = write_pair(tmp_path, STRUCTURES[:1])
    cfg = _config()
    cands = _worker_candidates(flight, baseline, cfg)
    short = dict(list(cands.items())[:-1])
    with pytest.raises(ModelError, match=r"missing tiles \[8\], unknown tiles \[\]"):
        detect_leads(flight, baseline, config=cfg, candidates=short)
    with pytest.raises(ModelError, match=r"unknown tiles \[99\]"):
        detect_leads(flight, baseline, config=cfg, candidates={**cands, 99: None})
    with pytest.raises(TypeError, match="needs predict"):
        detect_leads(flight, baseline, config=cfg)


def test_run_flight_takes_candidates_and_writes_evidence(tmp_path):
    flight, baseline = write_pair(tmp_path / "in", STRUCTURES)
    cfg = _config()
    cands = _worker_candidates(flight, baseline, cfg)
    out = run_flight(
        flight, config=cfg, baseline=baseline, out_dir=tmp_path / "out", candidates=cands
    )
    leads = gpd.read_file(out.gpkg, layer="leads")
    assert len(leads) == 4
    assert all((out.out_dir / p).is_file() for p in leads["evidence_after"])
