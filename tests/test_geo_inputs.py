"""Bad inputs give one clear error naming the file and the problem; real formats open."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS

from geo.errors import CoverageError, CRSError, InputFileError, RasterError
from geo.raster import raster_info
from geo.tiles import open_pair
from tests._geo_fixtures import GK, make_world, write_epoch, write_pair


def _write(path: Path, count: int, *, crs: CRS | None = GK, alpha0: bool = False) -> Path:
    data = np.random.default_rng(1).integers(0, 255, (count, 64, 64), dtype=np.uint8)
    if alpha0:
        data[3] = 0
    profile = dict(
        driver="GTiff",
        width=64,
        height=64,
        count=count,
        dtype="uint8",
        transform=Affine(0.2, 0, 500_000, 0, -0.2, 3_270_000),
    )
    if crs is not None:
        profile["crs"] = crs
    if alpha0:
        profile.update(photometric="RGB", alpha="YES")
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return path


GOOD_T = make_world(10)[1]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("good")
    f, b, _, _ = write_pair(tmp, size=400)
    return f, b


def test_missing_file(tmp_path: Path, good) -> None:
    with pytest.raises(InputFileError, match=r"flight .*nope\.tif: no such file"):
        open_pair(tmp_path / "nope.tif", good[1])


def test_directory_instead_of_file(tmp_path: Path, good) -> None:
    with pytest.raises(InputFileError, match=r"baseline .*: is a directory, not a raster"):
        open_pair(good[0], tmp_path)


def test_not_a_raster(tmp_path: Path, good) -> None:
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"this is not a tiff at all" * 10)
    with pytest.raises(RasterError, match=r"junk\.tif: not a readable raster"):
        open_pair(junk, good[1])


def test_truncated_file(tmp_path: Path, good) -> None:
    data = good[0].read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(RasterError, match=r"cut\.tif: .*(truncated|corrupt)"):
        open_pair(cut, good[1])


def test_no_crs(tmp_path: Path, good) -> None:
    with pytest.raises(CRSError, match=r"nocrs\.tif: raster has no coordinate reference system"):
        open_pair(_write(tmp_path / "nocrs.tif", 3, crs=None), good[1])


def test_one_band(tmp_path: Path, good) -> None:
    with pytest.raises(RasterError, match=r"gray\.tif: has 1 band\(s\); an RGB orthophoto needs 3"):
        open_pair(good[0], _write(tmp_path / "gray.tif", 1))


def test_all_transparent(tmp_path: Path, good) -> None:
    with pytest.raises(RasterError, match=r"clear\.tif: no valid pixels \(all transparent"):
        open_pair(_write(tmp_path / "clear.tif", 4, alpha0=True), good[1])


def test_blank_baseline_is_refused_naming_it(tmp_path: Path, good) -> None:
    blank = write_epoch(tmp_path / "blank.tif", np.full((3, 300, 300), 128, np.uint8), GOOD_T)
    with pytest.raises(RasterError, match=r"baseline .*blank\.tif: the image is blank"):
        open_pair(good[0], blank)


def test_nodata_baseline_is_refused_naming_it(tmp_path: Path, good) -> None:
    path = tmp_path / "nodata.tif"
    with rasterio.open(good[1]) as src:
        profile = src.profile | {"nodata": 0}
        profile.pop("photometric", None)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(np.zeros((src.count, src.height, src.width), src.dtypes[0]))
    with pytest.raises(RasterError, match=r"nodata\.tif: no valid pixels"):
        open_pair(good[0], path)


def test_another_season_is_compared_not_refused(tmp_path: Path) -> None:
    """The baseline from another season (other colours, darker) still registers."""
    world, wt = make_world(600, seed=5)
    f = write_epoch(tmp_path / "flight.tif", world, wt)
    b = write_epoch(
        tmp_path / "winter.tif", world, wt, crs=CRS.from_epsg(3857), gsd=0.3,
        shift=(1.0, -0.5), gain=(0.55, 40.0),
    )  # fmt: skip
    with open_pair(f, b, gsd=0.2) as pair:
        reg = pair.registration
        assert reg.status == "verified", reg.message
        assert (reg.dx_m, reg.dy_m) == (pytest.approx(1.0, abs=0.1), pytest.approx(-0.5, abs=0.1))


def test_non_overlapping_pair(tmp_path: Path, good) -> None:
    world, wt = make_world(300, seed=3)
    far = write_epoch(tmp_path / "far.tif", world, Affine.translation(5_000, 0) @ wt)
    with pytest.raises(
        CoverageError, match=r"flight .*flight\.tif and baseline .*far\.tif do not overlap"
    ):
        open_pair(good[0], far)


def test_feet_crs_refused(tmp_path: Path, good) -> None:
    feet = _write(tmp_path / "feet.tif", 3, crs=CRS.from_epsg(2227))  # California ftUS
    with pytest.raises(CRSError, match=r"feet\.tif: projected CRS .* is not in metres"):
        open_pair(feet, good[1])


def test_raster_info_describes_alpha_and_overviews(tmp_path: Path) -> None:
    world, wt = make_world(300, seed=2)
    p = write_epoch(tmp_path / "odm.tif", world, wt, alpha=True, overviews=True)
    info = raster_info(p)
    assert info.count == 4 and info.alpha_band == 4 and info.rgb_bands == (1, 2, 3)
    assert info.overviews == (2, 4, 8) and info.crs == "EPSG:4544"


def _four_bands(path: Path, band4: np.ndarray, *, flag_alpha: bool) -> Path:
    rgb = np.random.default_rng(3).integers(0, 255, (3, 96, 96), dtype=np.uint8)
    profile = dict(driver="GTiff", width=96, height=96, count=4, dtype="uint8", crs=GK,
                   transform=Affine(0.2, 0, 500_000, 0, -0.2, 3_270_000), photometric="RGB")  # fmt: skip
    if flag_alpha:
        profile["alpha"] = "YES"
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.concatenate([rgb, band4[None]]))
    return path


def test_an_unflagged_mask_band_is_named_in_a_warning(tmp_path: Path, caplog) -> None:
    """Band 4 with only 0 and 255 but no alpha flag: GDAL reads it as imagery (the transparent
    corner becomes compared black); the scan says so once, naming the file and the fix."""
    from geo.pairing import scan_epoch

    mask = np.full((96, 96), 255, np.uint8)
    mask[:, :30] = 0
    nir = np.random.default_rng(4).integers(0, 255, (96, 96), dtype=np.uint8)
    cases = {"unflagged.tif": (mask, False), "flagged.tif": (mask, True), "nir.tif": (nir, False)}
    for name, (band4, flag) in cases.items():
        _four_bands(tmp_path / name, band4, flag_alpha=flag)
    with caplog.at_level("WARNING", logger="geo.raster"):
        scans = {name: scan_epoch(tmp_path / name, "flight") for name in cases}
    warned = [r.getMessage() for r in caplog.records if "not flagged as alpha" in r.getMessage()]
    assert len(warned) == 1 and "unflagged.tif" in warned[0] and "-colorinterp_4 alpha" in warned[0]
    assert scans["flagged.tif"].valid.mean() < 0.75  # the flagged mask is honoured
    assert scans["unflagged.tif"].valid.all()  # GDAL's reading is kept, not guessed


def test_an_epoch_coarser_than_the_limit_is_refused_at_the_door(tmp_path: Path) -> None:
    """A 2 m baseline (or flight) is refused by name and GSD when a limit says 1 m; without one
    the same pair opens, and an epoch at the limit passes."""
    world, wt = make_world(600, seed=4)
    f = write_epoch(tmp_path / "flight.tif", world, wt)
    coarse = write_epoch(tmp_path / "old_sat.tif", world, wt, gsd=2.0)
    with pytest.raises(RasterError) as err:
        open_pair(f, coarse, gsd=0.2, coreg="off", max_baseline_gsd_m=1.0)
    msg = str(err.value)
    assert "old_sat.tif" in msg and "baseline" in msg and "2.00 m" in msg
    assert "input.max_baseline_gsd_m" in msg and "\n" not in msg
    with pytest.raises(RasterError, match=r"old_sat\.tif: the flight's native pixel is 2\.00 m"):
        open_pair(coarse, f, gsd=0.2, coreg="off", max_flight_gsd_m=1.0)
    with open_pair(f, coarse, gsd=0.2, coreg="off") as pair:  # no limit: compared
        assert pair.usable.area > 0
    with open_pair(f, coarse, gsd=0.2, coreg="off", max_baseline_gsd_m=2.0) as pair:
        assert pair.usable.area > 0


@pytest.mark.parametrize(("base_gsd", "noted"), [(0.3, False), (0.5, True)])
def test_a_run_says_each_epochs_native_gsd_and_when_the_baseline_cannot_clear_thin_structures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], base_gsd: float, noted: bool
) -> None:
    """The pair knows both native GSDs; detect prints them, and a baseline coarser than 0.4 m
    (where real no-change mosaics first gave false leads) gets a one-line note, in detect's
    output and in the run summary: by default that the flight was compared at the baseline's
    GSD; with the matching switched off, that thin standing structures may be leads."""
    import pipelines.detect as detect_mod
    from pipelines.cli import main
    from tests._leads_fixtures import oracle_predict

    world, wt = make_world(500, seed=6)
    f = write_epoch(tmp_path / "flight.tif", world, wt)
    b = write_epoch(tmp_path / "baseline.tif", world, wt, gsd=base_gsd)
    with open_pair(f, b, gsd=0.2, coreg="off") as pair:
        assert pair.native_gsd_m == {"flight": 0.2, "baseline": base_gsd}
    assert bool(detect_mod.gsd_notes(pair.native_gsd_m)) is noted
    with open_pair(f, b, gsd=0.2, coreg="off", match_baseline_above_m=0.4) as pair:
        seen = pair.flight_seen_at_m  # the declared 0.5 m, or its measured detail if coarser
    assert (seen is not None) is noted
    assert seen is None or 0.5 <= seen < 0.8
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tiling: {gsd: 0.2, size: 128, overlap: 32}\ncoreg: {mode: 'off'}\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(detect_mod, "load_detector", lambda config: oracle_predict)
        with pytest.raises(SystemExit) as exc:
            main(["detect", "--flight", str(f), "--baseline", str(b), "--config", str(cfg),
                  "--out", str(tmp_path / "leads.gpkg")])  # fmt: skip
    out = capsys.readouterr().out
    assert exc.value.code == 0
    assert f"native GSD: flight 0.20 m, baseline {base_gsd:.2f} m" in out
    assert (f"(flight compared at {seen or 0:.2f} m)" in out) is noted
    assert ("note: baseline at 0.50 m" in out and "the flight was compared at" in out) is noted
    unmatched = tmp_path / "unmatched.yaml"
    unmatched.write_text(cfg.read_text() + "input: {match_baseline_above_m: null}\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(detect_mod, "load_detector", lambda config: oracle_predict)
        with pytest.raises(SystemExit) as exc:
            main(["detect", "--flight", str(f), "--baseline", str(b), "--config", str(unmatched),
                  "--out", str(tmp_path / "leads2.gpkg")])  # fmt: skip
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "flight compared at" not in out
    assert ("note: baseline at 0.50 m: coarser than 0.4 m" in out) is noted
    import pipelines.run as run_mod

    cfg.write_text(cfg.read_text() + "output: {dir: out, evidence: false}\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run_mod, "load_detector", lambda config: oracle_predict)
        mp.chdir(tmp_path)
        with pytest.raises(SystemExit) as exc:
            main(["run", "--flight", str(f), "--baseline", str(b), "--config", str(cfg)])
    assert exc.value.code == 0, capsys.readouterr().err
    text = (tmp_path / "out" / "run_summary.txt").read_text(encoding="utf-8")
    assert f"native GSD 原始分辨率: flight 0.20 m, baseline {base_gsd:.2f} m" in text
    assert ("note 注意: baseline at 0.50 m" in text) is noted
    summary = json.loads((tmp_path / "out" / "run_summary.json").read_text(encoding="utf-8"))
    assert summary["flight_seen_at_m"] == seen


def _detail(img: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels: how much fine detail an image has."""
    g = img.astype(np.float32).mean(axis=2)
    return float(np.abs(np.diff(g, axis=1)).mean() + np.abs(np.diff(g, axis=0)).mean())


def test_against_a_coarse_baseline_detection_sees_the_flight_at_the_baselines_gsd(
    tmp_path: Path,
) -> None:
    """With a 0.6 m baseline, tiles show the flight at 0.6 m: no more detail than the baseline,
    so the two dates differ less than the flight as flown does; evidence (read_window) keeps the
    flight as flown, and without the setting (or with a 0.3 m baseline) nothing is matched."""
    from geo.tiles import see_at_gsd

    world, wt = make_world(500, seed=9)
    f = write_epoch(tmp_path / "flight.tif", world, wt)
    coarse = write_epoch(tmp_path / "sat06.tif", world, wt, gsd=0.6)
    fine = write_epoch(tmp_path / "sat03.tif", world, wt, gsd=0.3)
    with open_pair(f, coarse, gsd=0.2, coreg="off", match_baseline_above_m=0.4) as pair:
        assert pair.flight_seen_at_m == pytest.approx(0.6)
        win = pair.tile_windows(256, 32)[0]
        seen = pair.read_tile(win)
        flown = pair.read_tile(win, as_flown=True)
        v = seen.valid
        assert v.mean() > 0.5
        # the flight as tiles show it carries about the baseline's detail, far less than flown
        assert _detail(seen.flight) < 0.8 * _detail(flown.flight)
        assert 0.8 < _detail(seen.flight) / _detail(seen.baseline) < 1.25
        diff_seen = np.abs(seen.flight[v].astype(int) - seen.baseline[v]).mean()
        diff_flown = np.abs(flown.flight[v].astype(int) - flown.baseline[v]).mean()
        assert diff_seen < 0.5 * diff_flown
        np.testing.assert_array_equal(seen.flight, see_at_gsd(flown.flight, 0.6, 0.2))
        tiled = next(iter(pair.tiles(256, 32, prefetch=0)))
        np.testing.assert_array_equal(tiled.flight, pair.read_tile(tiled.tile).flight)
        # evidence chips: the flight as flown
        bounds = shapely.bounds(pair.usable.centroid.buffer(10.0))
        ev_flight, _, _ = pair.read_window(tuple(bounds))
        assert _detail(ev_flight) > 1.2 * _detail(see_at_gsd(ev_flight, 0.6, 0.2))
    with open_pair(f, coarse, gsd=0.2, coreg="off", match_baseline_above_m=None) as pair:
        assert pair.flight_seen_at_m is None
        np.testing.assert_array_equal(pair.read_tile(win).flight, flown.flight)
    with open_pair(f, fine, gsd=0.2, coreg="off", match_baseline_above_m=0.4) as pair:
        assert pair.flight_seen_at_m is None
    with open_pair(coarse, coarse, gsd=0.2, coreg="off", match_baseline_above_m=0.4) as pair:
        assert pair.flight_seen_at_m is None  # a satellite pair: both dates already alike


def test_a_resampled_baseline_is_matched_by_the_detail_it_shows_not_the_pixel_it_declares(
    tmp_path: Path,
) -> None:
    """A 0.6 m image delivered on a 0.2 m grid (as map services and exports do) declares 0.2 m;
    its detail, measured against the flight, says about 0.6 m, and the flight is matched to
    that. A baseline as sharp as the flight is measured as such and not matched."""
    import cv2

    world, wt = make_world(500, seed=9)
    f = write_epoch(tmp_path / "flight.tif", world, wt)
    coarse = write_epoch(tmp_path / "sat06.tif", world, wt, gsd=0.6)
    with rasterio.open(coarse) as ds:
        arr, t = ds.read(), ds.transform
    up = np.stack([cv2.resize(a, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR) for a in arr])
    resampled = tmp_path / "sat06_as_02.tif"
    with rasterio.open(
        resampled, "w", driver="GTiff", width=up.shape[2], height=up.shape[1], count=3,
        dtype="uint8", crs=GK, transform=t @ Affine.scale(1 / 3), photometric="RGB",
    ) as ds:  # fmt: skip
        ds.write(up)
    with open_pair(f, resampled, gsd=0.2, coreg="off", match_baseline_above_m=0.4) as pair:
        assert pair.native_gsd_m["baseline"] == pytest.approx(0.2)
        assert pair.baseline_detail_gsd_m is not None and 0.45 < pair.baseline_detail_gsd_m < 0.9
        assert pair.flight_seen_at_m == pair.baseline_detail_gsd_m
    with open_pair(f, resampled, gsd=0.2, coreg="off", match_baseline_above_m=None) as pair:
        assert pair.flight_seen_at_m is None and pair.baseline_detail_gsd_m is None
    # match_full_to_m: fully up to it; beyond, half-way in log GSD from the declared pixel
    with open_pair(
        f, resampled, gsd=0.2, coreg="off", match_baseline_above_m=0.4, match_full_to_m=0.3
    ) as pair:
        d = pair.baseline_detail_gsd_m
        assert d is not None and d > 0.4
        assert pair.flight_seen_at_m == pytest.approx(max(0.3, 0.2 * (d / 0.2) ** 0.5), abs=1e-3)
        assert 0.3 <= pair.flight_seen_at_m < d
    with open_pair(
        f, resampled, gsd=0.2, coreg="off", match_baseline_above_m=0.4, match_full_to_m=2.0
    ) as pair:
        assert pair.flight_seen_at_m == pair.baseline_detail_gsd_m  # resolves finer: fully
    twin = write_epoch(tmp_path / "twin.tif", world, wt)
    with open_pair(f, twin, gsd=0.2, coreg="off", match_baseline_above_m=0.4) as pair:
        assert pair.baseline_detail_gsd_m is not None and pair.baseline_detail_gsd_m < 0.25
        assert pair.flight_seen_at_m is None
