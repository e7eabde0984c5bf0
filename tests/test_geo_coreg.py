"""Co-registration: phase correlation sign/accuracy, robust fit, the gate, and the CLI."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.crs import CRS

from geo.coreg import ShiftEstimate, fit_correction, phase_shift
from geo.errors import CoregistrationError
from geo.tiles import open_pair
from pipelines.cli import cli
from tests._geo_fixtures import make_world, write_epoch, write_pair


def _texture(seed: int, n: int = 400) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random((n, n)).astype(np.float32) * 255, (0, 0), 2)


@pytest.mark.parametrize(("sx", "sy"), [(0, 0), (5, -3), (-12, 7), (2, 14)])
def test_phase_shift_sign_and_accuracy(sx: int, sy: int) -> None:
    big = _texture(0)
    flight = big[100:356, 100:356]
    baseline = big[100 - sy : 356 - sy, 100 - sx : 356 - sx]  # content at flight px + (sx, sy)
    ex, ey, conf = phase_shift(flight, baseline)
    assert (ex, ey) == (pytest.approx(sx, abs=0.2), pytest.approx(sy, abs=0.2))
    assert conf > 0.5


def test_phase_shift_unrelated_content_has_low_confidence() -> None:
    assert phase_shift(_texture(1, 256), _texture(2, 256))[2] < 0.1
    with pytest.raises(ValueError, match="need equal 2-D windows"):
        phase_shift(np.zeros((4, 4)), np.zeros((4, 5)))


def test_fit_correction_is_robust_to_outliers() -> None:
    ests = [ShiftEstimate(x, y, 4.0, -2.0, 0.9) for x in range(0, 500, 100) for y in (0, 250)]
    ests[3] = ShiftEstimate(300, 0, 40.0, 30.0, 0.9)  # a changed area
    d, inliers, is_affine = fit_correction(ests, gsd=0.2)
    assert not is_affine and inliers.sum() == len(ests) - 1 and not inliers[3]
    assert (d.c, d.f) == (pytest.approx(0.8), pytest.approx(0.4))  # y up in map units


def test_gate_fires_on_an_unrelated_baseline(tmp_path: Path) -> None:
    f, _, _, _ = write_pair(tmp_path, size=600)
    world, wt = make_world(800, seed=99)  # another place, same coordinates
    other = write_epoch(tmp_path / "other.tif", world, wt, crs=CRS.from_epsg(3857), gsd=0.3)
    with open_pair(f, other, gsd=0.2) as pair:
        reg = pair.registration
        assert not reg.gate_passed
        assert "co-registration gate" in reg.message and "sub-windows" in reg.message
        assert reg.failed_areas.area == pytest.approx(pair.footprints.common.area, rel=0.3)
        assert list(pair.tiles(256, 32, prefetch=0)) == [] or not any(
            tp.valid.any() for tp in pair.tiles(256, 32, prefetch=0)
        )
    with pytest.raises(
        CoregistrationError, match=r"flight\.tif vs .*other\.tif: co-registration gate"
    ):
        open_pair(f, other, gsd=0.2, strict=True)


def test_local_misregistration_is_marked_failed(tmp_path: Path) -> None:
    f, b, _, _ = write_pair(tmp_path, size=1000)
    # move the east third of the baseline's content by 6 px: a local orthorectification error
    with rasterio.open(b, "r+") as ds:
        data = ds.read()
        w = ds.width
        data[:, :, 2 * w // 3 + 6 :] = data[:, :, 2 * w // 3 : -6]
        ds.write(data)
    # global correction only: local correction would fix this (tests/test_geo_coreg_local.py)
    with open_pair(f, b, gsd=0.2, max_residual_m=0.5, local=False) as pair:
        reg = pair.registration
        assert reg.gate_passed, reg.message
        assert "marked failed" in reg.message
        fa = reg.failed_areas
        assert not fa.is_empty
        left, _, right, _ = pair.footprints.common.bounds
        assert fa.bounds[0] > left + 0.4 * (right - left)  # only the east part failed
        tp = pair.read_tile(pair.tile_windows(512, 64)[2])  # top-right tile
        assert not tp.valid[:, -50:].any()


def test_coreg_command(tmp_path: Path) -> None:
    f, b, _, _ = write_pair(tmp_path, shift=(1.0, 0.5), size=600)
    out = CliRunner().invoke(cli, ["coreg", "--baseline", str(b), "--flight", str(f)])
    assert out.exit_code == 0, out.output
    assert "dx +1.0" in out.output and "dy +0.5" in out.output and "gate      PASSED" in out.output
    world, wt = make_world(800, seed=42)
    other = write_epoch(tmp_path / "other.tif", world, wt)
    out = CliRunner().invoke(cli, ["coreg", "--baseline", str(other), "--flight", str(f)])
    assert out.exit_code == 4 and "gate      FAILED" in out.output


def test_inspect_command(tmp_path: Path) -> None:
    world, wt = make_world(300, seed=2)
    p = write_epoch(
        tmp_path / "odm.tif", world, wt, alpha=True, alpha_cut=0.5, dtype="uint16", overviews=True
    )
    out = CliRunner().invoke(cli, ["inspect", str(p)])
    assert out.exit_code == 0, out.output
    assert "EPSG:4544" in out.output and "4 x uint16" in out.output and "alpha = 4" in out.output
    assert "overviews  2, 4, 8" in out.output and "stretch" in out.output
    assert "50.0% of the extent valid" in out.output or "49." in out.output
    out = CliRunner().invoke(cli, ["inspect", str(tmp_path / "missing.tif")])
    assert out.exit_code != 0 and "no such file" in str(out.exception)
