"""Co-registration: phase correlation sign/accuracy, robust fit, the gate, and the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from affine import Affine
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
    ex, ey, conf, psr = phase_shift(flight, baseline)
    assert (ex, ey) == (pytest.approx(sx, abs=0.2), pytest.approx(sy, abs=0.2))
    assert conf > 0.5 and psr > 30


def test_phase_shift_unrelated_content_has_low_confidence_and_significance() -> None:
    ps = phase_shift(_texture(1, 256), _texture(2, 256))
    assert ps.confidence < 0.1 and ps.psr < 8  # below the default min_psr of 10
    with pytest.raises(ValueError, match="need equal 2-D windows"):
        phase_shift(np.zeros((4, 4)), np.zeros((4, 5)))


def test_fit_correction_is_robust_to_outliers() -> None:
    ests = [ShiftEstimate(x, y, 4.0, -2.0, 0.9) for x in range(0, 500, 100) for y in (0, 250)]
    ests[3] = ShiftEstimate(300, 0, 40.0, 30.0, 0.9)  # a changed area
    d, inliers, is_affine = fit_correction(ests, gsd=0.2)
    assert not is_affine and inliers.sum() == len(ests) - 1 and not inliers[3]
    assert (d.c, d.f) == (pytest.approx(0.8), pytest.approx(0.4))  # y up in map units


def test_no_evidence_is_not_evidence_of_misregistration(tmp_path: Path) -> None:
    """A baseline that shares nothing with the flight (everything changed) gives no confident
    estimate: the pair goes through as georeferenced, marked unverified, nothing dropped."""
    f, _, _, _ = write_pair(tmp_path, size=600)
    world, wt = make_world(800, seed=99)  # another scene at the same coordinates
    other = write_epoch(tmp_path / "other.tif", world, wt, crs=CRS.from_epsg(3857), gsd=0.3)
    with open_pair(f, other, gsd=0.2, strict=True) as pair:
        reg = pair.registration
        assert reg.status == "unverified" and reg.decision == "unverified" and reg.gate_passed
        assert "unverified" in reg.message and "confident shift estimate" in reg.message
        assert reg.correction == Affine.identity() and reg.not_comparable.is_empty
        assert pair.usable.area == pytest.approx(pair.footprints.common.area)
        assert any(tp.valid.any() for tp in pair.tiles(256, 32, prefetch=0))


def test_confident_residuals_above_the_gate_fail_the_pair(tmp_path: Path) -> None:
    f, b, _, _ = write_pair(tmp_path, shift=(1.0, 0.5), size=600)
    # a gate far below what sub-pixel correlation can show: positive evidence above it
    with open_pair(f, b, gsd=0.2, max_residual_px=0.001, max_window_residual_px=0.001) as pair:
        reg = pair.registration
        assert reg.status == "failed" and not reg.gate_passed
        assert "co-registration failed: residual" in reg.message
        assert reg.not_comparable.area == pytest.approx(pair.footprints.common.area)
        assert pair.usable.area == 0 and not pair.tile_windows(256, 32)
    with pytest.raises(CoregistrationError, match=r"flight\.tif vs .*baseline\.tif: co-registr"):
        open_pair(f, b, gsd=0.2, max_residual_px=0.001, max_window_residual_px=0.001, strict=True)


def test_local_misregistration_is_marked_failed(tmp_path: Path) -> None:
    f, b, _, _ = write_pair(tmp_path, size=1000)
    # move the east third of the baseline's content by 6 px: a local orthorectification error
    with rasterio.open(b, "r+") as ds:
        data = ds.read()
        w = ds.width
        data[:, :, 2 * w // 3 + 6 :] = data[:, :, 2 * w // 3 : -6]
        ds.write(data)
    # global correction only: local correction would fix this (tests/test_geo_coreg_local.py)
    with open_pair(f, b, gsd=0.2, local=False) as pair:
        reg = pair.registration
        assert reg.status == "verified" and reg.decision == "partial", reg.message
        assert "not comparable" in reg.message
        fa = reg.not_comparable
        assert not fa.is_empty
        left, _, right, _ = pair.footprints.common.bounds
        assert fa.bounds[0] > left + 0.4 * (right - left)  # only the east part failed
        tp = pair.read_tile(pair.tile_windows(512, 64)[2])  # top-right tile
        assert not tp.valid[:, -50:].any()


def test_coreg_command(tmp_path: Path) -> None:
    f, b, _, _ = write_pair(tmp_path, shift=(1.0, 0.5), size=600)
    out = CliRunner().invoke(cli, ["coreg", "--baseline", str(b), "--flight", str(f)])
    assert out.exit_code == 0, out.output
    dx, dy = re.search(r"shift     dx ([-+.\d]+) m, dy ([-+.\d]+) m", out.output).groups()
    assert (float(dx), float(dy)) == (pytest.approx(1.0, abs=0.01), pytest.approx(0.5, abs=0.01))
    assert "status    verified (corrected)" in out.output
    assert "gate      1 px (0.20 m) median, 2.5 px (0.50 m) per sub-window" in out.output
    world, wt = make_world(800, seed=42)
    other = write_epoch(tmp_path / "other.tif", world, wt)
    out = CliRunner().invoke(cli, ["coreg", "--baseline", str(other), "--flight", str(f)])
    assert out.exit_code == 0 and "status    unverified" in out.output
    tight = ["--max-residual-px", "0.001", "--max-window-residual-px", "0.001"]
    out = CliRunner().invoke(cli, ["coreg", "--baseline", str(b), "--flight", str(f), *tight])
    assert out.exit_code == 4 and "status    failed" in out.output


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
    assert (
        "ground     0.200 m/px native; as a flight: accepted; as a baseline: accepted" in out.output
    )
    coarse = write_epoch(tmp_path / "sat.tif", world, wt, gsd=0.8)
    out = CliRunner().invoke(cli, ["inspect", str(coarse)])
    assert out.exit_code == 0, out.output
    assert (
        "0.800 m/px native; as a flight: accepted; as a baseline: refused, coarser than "
        "input.max_baseline_gsd_m 0.6 m" in out.output
    )
    mid = write_epoch(tmp_path / "sat05.tif", world, wt, gsd=0.5)
    out = CliRunner().invoke(cli, ["inspect", str(mid)])
    assert out.exit_code == 0, out.output
    assert (
        "0.500 m/px native; as a flight: accepted; as a baseline: accepted, a finer flight is "
        "compared at its 0.50 m" in out.output
    )
    out = CliRunner().invoke(cli, ["inspect", str(tmp_path / "missing.tif")])
    assert out.exit_code != 0 and "no such file" in str(out.exception)
