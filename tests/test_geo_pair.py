"""open_pair end to end on generated pairs: CRSs, formats, coverage, tiles, radiometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rasterio.crs import CRS

from geo.tiles import ImageryPair, TilePair, open_pair
from tests._geo_fixtures import GK, make_world, write_epoch, write_pair


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    f, b, _, _ = write_pair(tmp_path_factory.mktemp("shifted"), shift=(1.4, -0.8))
    return f, b


def _diff(tp: TilePair) -> float:
    v = tp.valid
    return float(np.abs(tp.flight[v].astype(int) - tp.baseline[v].astype(int)).mean())


def test_3857_baseline_on_gk_flight_is_corrected_and_aligned(shifted) -> None:
    with open_pair(*shifted, gsd=0.2) as pair:
        assert pair.crs == GK and pair.gsd == 0.2 and (pair.width, pair.height) == (1000, 1000)
        assert (pair.flight_id, pair.baseline_id) == ("flight", "baseline")
        reg = pair.registration
        assert reg.gate_passed, reg.message
        assert reg.dx_m == pytest.approx(1.4, abs=0.04) and reg.dy_m == pytest.approx(
            -0.8, abs=0.04
        )
        assert reg.residual_px < 0.5 and reg.n_estimates >= 4 and reg.confidence > 0.3
        tiles = list(pair.tiles(size=512, overlap=64, prefetch=2))
        diffs = [_diff(tp) for tp in tiles]
    assert [tp.tile.index for tp in tiles] == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert all(tp.flight.shape == (512, 512, 3) and tp.flight.dtype == np.uint8 for tp in tiles)
    assert all(tp.baseline.shape == (512, 512, 3) and tp.valid.shape == (512, 512) for tp in tiles)
    # edge tiles are padded: zeros, not valid
    last = tiles[-1]
    assert not last.valid[-1].any() and (last.flight[-1] == 0).all()
    assert last.transform.c == pytest.approx(pair.transform.c + 896 * 0.2)
    # corrected + normalised baseline matches the flight closely (colours were changed 0.8x+30)
    assert max(diffs) < 6.0, diffs


def test_without_coreg_or_radiometry_the_epochs_differ(shifted) -> None:
    with open_pair(*shifted, gsd=0.2, coreg="off", radiometric="off") as pair:
        assert pair.registration.gate_passed and "not checked" in pair.registration.message
        tp = next(iter(pair.tiles(512, 64, prefetch=0)))
    assert _diff(tp) > 15.0


def test_radiometry_alone_matches_colours(shifted) -> None:
    with open_pair(*shifted, gsd=0.2, coreg="off", radiometric="histogram") as pair:
        tp = next(iter(pair.tiles(512, 64, prefetch=0)))
    v = tp.valid
    for band in range(3):
        f, b = tp.flight[..., band][v], tp.baseline[..., band][v]
        assert abs(float(f.mean()) - float(b.mean())) < 3.0
        assert abs(float(f.std()) - float(b.std())) < 3.0


@pytest.mark.parametrize("baseline_crs", [CRS.from_epsg(4326), GK])
def test_geographic_and_same_crs_baselines(tmp_path: Path, baseline_crs: CRS) -> None:
    f, b, _, _ = write_pair(tmp_path, shift=(-2.0, 1.0), baseline_crs=baseline_crs, size=600)
    with open_pair(f, b, gsd=0.2) as pair:
        reg = pair.registration
    assert reg.gate_passed, reg.message
    assert (reg.dx_m, reg.dy_m) == (pytest.approx(-2.0, abs=0.05), pytest.approx(1.0, abs=0.05))


def test_flight_in_epsg4326_is_worked_in_utm(tmp_path: Path) -> None:
    world, wt = make_world(700, seed=5)
    f = write_epoch(tmp_path / "f4326.tif", world, wt, crs=CRS.from_epsg(4326))
    b = write_epoch(
        tmp_path / "b3857.tif", world, wt, crs=CRS.from_epsg(3857), gsd=0.3, shift=(0.6, 0.4)
    )
    with open_pair(f, b, gsd=0.2) as pair:
        assert pair.crs.to_epsg() == 32648  # UTM 48N around 105E, 29.5N
        assert pair.registration.gate_passed, pair.registration.message
        assert pair.registration.dx_m == pytest.approx(0.6, abs=0.05)
        # the flight's lon/lat grid is not north-up in UTM: the corners are outside it
        tp = next(iter(pair.tiles(256, 32, prefetch=0)))
        assert tp.valid.mean() > 0.5


def test_rgba_alpha_and_uint16_and_unknown_area(tmp_path: Path) -> None:
    world, wt = make_world(900, seed=7)
    x0, y0 = wt @ (50, 50)
    crop = (x0, y0 - 160.0, x0 + 160.0, y0)
    f = write_epoch(tmp_path / "odm.tif", world, wt, crop=crop, dtype="uint16", alpha=True)
    # baseline covers only the right 60% of the flight
    b = write_epoch(
        tmp_path / "base.tif",
        world,
        wt,
        crs=CRS.from_epsg(3857),
        gsd=0.3,
        crop=(x0 + 64.0, y0 - 160.0, x0 + 200.0, y0),
    )
    with open_pair(f, b, gsd=0.2) as pair:
        fp = pair.footprints
        assert fp.flight.area == pytest.approx(160 * 160, rel=0.02)
        assert fp.unknown.area == pytest.approx(64 * 160, rel=0.05)
        assert fp.common.area == pytest.approx(96 * 160, rel=0.05)
        assert pair.registration.gate_passed, pair.registration.message
        tiles = list(pair.tiles(256, 32, prefetch=1))
        # tiles entirely in the unknown (flight-only) strip are skipped; never valid there
        assert all(tp.tile.col_off + 256 > 64 / 0.2 for tp in tiles)
        for tp in tiles:
            cols = tp.tile.col_off + np.arange(256)
            assert not tp.valid[:, cols < 64 / 0.2 - 2].any()
        # the uint16 flight was stretched to use the 8-bit range
        v = np.concatenate([tp.flight[tp.valid] for tp in tiles])
        assert v.min() < 30 and v.max() > 225


def test_read_window_for_evidence(shifted) -> None:
    with open_pair(*shifted, gsd=0.2) as pair:
        left, top = pair.transform @ (100, 100)
        f, b, t = pair.read_window((left, top - 10.0, left + 10.0, top), pad_m=2.0)
        tp = pair.read_tile(pair.tile_windows(512, 64)[0])
    assert f.shape == b.shape == (70, 70, 3)
    assert t.c == pytest.approx(left - 2.0) and t.f == pytest.approx(top + 2.0)
    # same pixels as the tile covering them
    np.testing.assert_array_equal(f, tp.flight[90:160, 90:160])
    np.testing.assert_array_equal(b, tp.baseline[90:160, 90:160])


def test_prefetch_yields_same_tiles_as_serial(shifted) -> None:
    with open_pair(*shifted, gsd=0.2) as pair:
        a = [(tp.tile, tp.baseline.sum()) for tp in pair.tiles(300, 20, prefetch=0)]
        b = [(tp.tile, tp.baseline.sum()) for tp in pair.tiles(300, 20, prefetch=3)]
        assert isinstance(pair, ImageryPair)
    assert a == b and len(a) == 16


def test_odm_orthophoto(shared_data: Path, tmp_path: Path) -> None:
    odm = shared_data / "odm" / "orthophoto.tif"
    if not odm.exists():
        pytest.skip(f"{odm} not present")
    with open_pair(odm, odm, gsd=0.5) as pair:
        assert pair.crs.to_epsg() == 32615
        fp = pair.footprints
        assert 0.9 < fp.flight.area / (106 * 106) < 1.0  # alpha trims the corners
        assert pair.registration.gate_passed, pair.registration.message
        assert abs(pair.registration.dx_m) < 0.05 and abs(pair.registration.dy_m) < 0.05
        tp = next(iter(pair.tiles(128, 16, prefetch=0)))
        assert tp.valid.any() and not tp.valid.all()
