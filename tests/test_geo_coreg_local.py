"""Local misregistration correction: a residual-shift field where the misregistration varies
across the scene (west/east halves shifted differently, as from a mosaic seam), applied per pixel
to the baseline reads, with the gate re-verified after it."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import shapely
import yaml
from affine import Affine
from click.testing import CliRunner
from rasterio.crs import CRS

from geo.coreg import ShiftEstimate, phase_shift
from geo.coreg_local import LocalField, fit_local_field, remap_tile
from geo.errors import ConfigError
from geo.tiles import ImageryPair, open_pair
from geo.windows import TileWindow
from pipelines.cli import cli
from pipelines.config import BuildwatchConfig
from tests._geo_fixtures import make_world, write_epoch, write_pair, write_step_pair

GSD = 0.2
WEST, EAST = (0.5, 0.2), (2.0, -0.3)  # metres; the halves differ by 1.5 m east, 0.5 m north


def probe_points(crop: tuple, fx: float) -> list[tuple[float, float]]:
    """Map points at fraction ``fx`` of the width, three heights (not the coreg sub-windows')."""
    left, bottom, right, top = crop
    return [(left + fx * (right - left), top - fy * (top - bottom)) for fy in (0.27, 0.5, 0.73)]


def residuals_px(pair: ImageryPair, points: list[tuple[float, float]]) -> np.ndarray:
    """Residual misregistration (px) measured on independent 256 px windows at ``points``."""
    out = []
    for x, y in points:
        c, r = ~pair.transform @ (x, y)
        tp = pair.read_tile(TileWindow(0, int(r) - 128, int(c) - 128, 256, 256), masked=False)
        assert tp.valid.mean() > 0.95
        sx, sy, conf, _ = phase_shift(tp.flight.mean(axis=2), tp.baseline.mean(axis=2), tp.valid)
        assert conf > 0.3
        out.append(np.hypot(sx, sy))
    return np.array(out)


def test_a_seam_is_corrected_locally_and_not_marked_failed(tmp_path: Path) -> None:
    f, b, crop = write_step_pair(tmp_path, WEST, EAST)
    west, east = probe_points(crop, 0.2), probe_points(crop, 0.8)
    with open_pair(f, b, GSD) as pair:
        reg = pair.registration
        assert reg.gate_passed, reg.message
        assert reg.mode == "shift+local" and reg.local is not None
        assert reg.local_max_m == pytest.approx(np.hypot(1.5, 0.5), abs=0.2)
        assert "local field" in reg.message
        # a smooth field cannot represent the step itself: at most a sub-window straddling the
        # seam stays misregistered (half the step), and only there is anything not comparable
        nc = reg.not_comparable
        seam = shapely.LineString(
            [((crop[0] + crop[2]) / 2, crop[1]), ((crop[0] + crop[2]) / 2, crop[3])]
        )
        assert nc.is_empty or (nc.intersects(seam) and nc.area < 0.1 * pair.footprints.common.area)
        assert residuals_px(pair, west).max() < 0.5
        assert residuals_px(pair, east).max() < 0.5
        # the field is what corrects: the two sides differ by the halves' difference
        ew, ns = (np.array(reg.local.at(*np.array(pts).T)) for pts in (east, west))
        assert np.abs(ew - ew.mean(axis=1, keepdims=True)).max() < 0.1  # flat within a side
        assert ew.mean(axis=1) - ns.mean(axis=1) == pytest.approx(np.subtract(EAST, WEST), abs=0.15)
        assert pair.usable.area >= 0.9 * pair.footprints.common.area
    with open_pair(f, b, GSD, local=False) as pair:
        reg = pair.registration
        assert reg.mode == "shift" and reg.local is None and reg.local_max_m == 0.0
        r_west, r_east = residuals_px(pair, west), residuals_px(pair, east)
        bad, good = (r_east, west) if r_east.min() > r_west.min() else (r_west, east)
        assert bad.min() > 1.0
        failed = reg.not_comparable
        bad_pts = east if bad is r_east else west
        assert all(failed.contains(shapely.Point(p)) for p in bad_pts)
        assert not any(failed.contains(shapely.Point(p)) for p in good)


def test_a_uniform_shift_gives_no_local_field_and_the_same_tiles(tmp_path: Path) -> None:
    f, b, _, _ = write_pair(tmp_path, shift=(1.0, 0.5), size=600)
    with open_pair(f, b, GSD) as on, open_pair(f, b, GSD, local=False) as off:
        assert on.registration.local is None and on.registration.local_max_m == 0.0
        assert on.registration.mode == off.registration.mode == "shift"
        assert on.registration.correction == off.registration.correction
        tiles_on = list(on.tiles(256, 32, prefetch=0))
        tiles_off = list(off.tiles(256, 32, prefetch=0))
        assert len(tiles_on) == len(tiles_off) > 0
        for a, c in zip(tiles_on, tiles_off, strict=True):
            assert np.array_equal(a.baseline, c.baseline) and np.array_equal(a.valid, c.valid)


def test_an_unrelated_baseline_gets_no_local_field_and_stays_unverified(tmp_path: Path) -> None:
    f, _, _, _ = write_pair(tmp_path, size=600)
    world, wt = make_world(800, seed=99)
    other = write_epoch(tmp_path / "other.tif", world, wt, crs=CRS.from_epsg(3857), gsd=0.3)
    with pytest.raises(ConfigError, match=r"max_local_m must be > 0 metres .*got -1"):
        open_pair(f, other, GSD, max_local_m=-1)
    with open_pair(f, other, GSD, local=True) as pair:
        reg = pair.registration
        assert reg.status == "unverified" and reg.local is None and reg.mode == "none"
        assert reg.not_comparable.is_empty


def _lattice(value, n: int = 7, step: float = 25.0) -> list[ShiftEstimate]:
    """Estimates on an n x n lattice; ``value(i, j)`` gives the residual (sx, sy) in px."""
    return [
        ShiftEstimate(step * j, -step * i, *value(i, j), 0.9) for i in range(n) for j in range(n)
    ]


def test_fit_local_field_keeps_a_seam_sharp_and_ignores_one_changed_window() -> None:
    field = fit_local_field(_lattice(lambda i, j: (0.0, 0.0) if j < 3 else (7.5, 0.0)), GSD)
    assert field is not None and field.shape == (7, 7) and field.step == pytest.approx(25.0)
    assert field.dx[:, :3] == pytest.approx(0.0) and field.dx[:, 4:] == pytest.approx(1.5)
    assert field.dy == pytest.approx(0.0)  # y is north-up: sy 0 -> dy 0
    assert field.at(10.0, -50.0)[0] == pytest.approx(0.0)
    assert field.at(130.0, -50.0)[0] == pytest.approx(1.5)
    one_bad = _lattice(lambda i, j: (12.0, -9.0) if (i, j) == (3, 3) else (0.1, 0.0))
    assert fit_local_field(one_bad, GSD) is None  # a changed window is not misregistration
    assert fit_local_field(_lattice(lambda i, j: (0.2, -0.1)), GSD) is None  # noise-level
    big = fit_local_field(_lattice(lambda i, j: (0.0, 40.0 if i > 3 else 0.0)), GSD)
    assert big is not None and big.max_m == pytest.approx(3.0)  # clamped
    assert big.dy[5, 0] == pytest.approx(-3.0)  # rows run south: +sy px is -y metres


def test_remap_tile_moves_content_by_the_field() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (60, 60, 3), dtype=np.uint8)
    valid = np.ones((60, 60), dtype=bool)
    field = LocalField(0.0, 0.0, 10.0, np.full((2, 2), 0.6), np.full((2, 2), -0.4))  # 3, 2 px
    t = Affine(GSD, 0, 100.0, 0, -GSD, 200.0)
    out, ok = remap_tile(rgb, valid, 10, field, t, GSD)
    assert out.shape == (40, 40, 3) and ok.all()
    assert np.array_equal(out, rgb[12:52, 13:53])  # pixel p shows grown-read pixel p + m + s
    valid[30, :] = False
    _, ok = remap_tile(rgb, valid, 10, field, t, GSD)
    assert not ok[18].any() and ok[17].all() and ok[19].all()


def test_local_defaults_agree_and_the_cli_reports_the_mode(tmp_path: Path) -> None:
    path = Path(__file__).resolve().parents[1] / "pipelines" / "configs" / "default.yaml"
    text = yaml.safe_load(path.read_text(encoding="utf-8"))["coreg"]
    assert inspect.signature(open_pair).parameters["local"].default is True
    assert BuildwatchConfig().coreg.local is True and text["local"] is True
    f, b, _ = write_step_pair(tmp_path, WEST, EAST, size=800)
    out = CliRunner().invoke(cli, ["coreg", "--baseline", str(b), "--flight", str(f)])
    assert out.exit_code == 0, out.output
    assert "mode      shift+local" in out.output and "local     " in out.output
    assert "nodes every" in out.output and "status    verified" in out.output
    out = CliRunner().invoke(cli, ["coreg", "--baseline", str(b), "--flight", str(f), "--no-local"])
    assert "mode      shift\n" in out.output and "not comparable" in out.output
