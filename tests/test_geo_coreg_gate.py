"""The co-registration gate in pixels of the reference GSD: the median gate, the per-sub-window
bound (areas not comparable), unverified when evidence is missing, failed only on evidence, and
the defaults agreeing across geo.tiles, the config and its YAML."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import shapely
import yaml
from affine import Affine

from geo.coreg import coregister
from geo.registration import Gate, ShiftEstimate
from geo.tiles import open_pair
from pipelines.config import BuildwatchConfig

GSD = 0.2


def _measure(residuals_px: list[float], psr: list[float] | None = None):  # type: ignore[no-untyped-def]
    """A stand-in measurement: every call sees the same per-window residual shifts (in x)."""
    strength = psr or [20.0] * len(residuals_px)

    def measure(_c: Affine) -> list[ShiftEstimate | None]:
        return [
            ShiftEstimate(100.0 * i, 0.0, r, 0.0, 0.3, s)
            for i, (r, s) in enumerate(zip(residuals_px, strength, strict=True))
        ]

    return measure


def _cells(n: int) -> list[shapely.Polygon]:
    return [shapely.box(100.0 * i - 50, -50, 100.0 * i + 50, 50) for i in range(n)]


def test_one_noisy_window_is_kept_comparable_two_neighbours_are_not() -> None:
    res = [0.2] * 9 + [1.5]  # one window at 1.5 px = 0.3 m (e.g. biased by a new structure)
    loose = coregister(_measure(res), _cells(10), GSD, Gate(GSD, 0.5, 2.5))
    assert loose.status == "verified" and loose.not_comparable.is_empty
    assert loose.decision == "pass"
    tight = coregister(_measure(res), _cells(10), GSD, Gate(GSD, 0.5, 0.5))
    assert tight.status == "verified" and tight.not_comparable.is_empty  # isolated: a change
    assert "1 isolated sub-window(s) disagree with all their neighbours" in tight.message
    res = [0.2] * 8 + [1.5, 1.6]  # two neighbours above the bound: a local misregistration
    pair = coregister(_measure(res), _cells(10), GSD, Gate(GSD, 0.5, 0.5))
    assert pair.status == "verified" and pair.decision == "partial"
    assert pair.not_comparable.area == pytest.approx(2 * 100 * 100)
    assert "2 sub-window area(s) above 0.5 px (0.10 m) not comparable" in pair.message


def test_the_median_gate_fails_a_uniformly_misregistered_pair() -> None:
    res = [0.65] * 10  # like a 2° rotation fitted by an affine: 0.65 px = 0.13 m everywhere
    reg = coregister(_measure(res), _cells(10), GSD, Gate(GSD, 0.5, 2.5))
    assert reg.status == "failed" and not reg.gate_passed
    assert reg.not_comparable.area == pytest.approx(10 * 100 * 100)
    assert "residual 0.65 px (0.13 m)" in reg.message and "exceeds the gate 0.5 px" in reg.message


def test_the_gate_is_in_pixels_of_the_coarser_native_gsd() -> None:
    res = [1.5] * 10  # 1.5 working px = 0.3 m: 1.5 px at 0.2 m, but 0.6 px of a 0.5 m baseline
    fine = coregister(_measure(res), _cells(10), GSD, Gate(0.2, 1.0, 2.5))
    coarse = coregister(_measure(res), _cells(10), GSD, Gate(0.5, 1.0, 2.5))
    assert fine.status == "failed" and coarse.status == "verified"
    assert coarse.residual_ref_px == pytest.approx(0.6) and coarse.residual_m == pytest.approx(0.3)
    assert "0.60 px (0.30 m)" in coarse.message


def test_too_few_confident_windows_is_unverified_not_failed() -> None:
    res = [7.0, -3.0, 12.0, 0.1, 5.0]
    weak = [6.0, 5.5, 7.0, 12.0, 4.0]  # one significant peak: no consensus to verify
    reg = coregister(_measure(res, weak), _cells(5), GSD, Gate(GSD))
    assert reg.status == "unverified" and reg.gate_passed and reg.decision == "unverified"
    assert reg.not_comparable.is_empty and reg.correction == Affine.identity()
    assert "only 1 of 5 sub-windows gave a confident shift estimate (need 3)" in reg.message


def test_strong_agreeing_peaks_outweigh_scattered_weak_disagreement() -> None:
    # two leaning roofs disagree with the ground; the ground's peaks are the strong ones
    res = [0.1, 0.2, 0.0, 13.0, -9.0]
    psr = [50.0, 40.0, 30.0, 14.0, 11.0]
    reg = coregister(_measure(res, psr), _cells(5), GSD, Gate(GSD))
    assert reg.status == "verified" and reg.decision == "partial"
    assert reg.not_comparable.area == pytest.approx(2 * 100 * 100)  # the two roof windows only
    assert abs(reg.dx_m) < 0.1  # the consensus, not the mean of all five


def test_gate_rejects_a_window_bound_below_the_median_bound() -> None:
    with pytest.raises(ValueError, match="max_window_residual_px .* must be >= max_residual_px"):
        Gate(0.2, max_residual_px=2.0, max_window_px=1.0)


def test_defaults_agree_between_geo_tiles_config_and_yaml() -> None:
    params = inspect.signature(open_pair).parameters
    cfg = BuildwatchConfig().coreg
    path = Path(__file__).resolve().parents[1] / "pipelines" / "configs" / "default.yaml"
    text = yaml.safe_load(path.read_text(encoding="utf-8"))["coreg"]
    for key, value in (
        ("max_residual_px", 1.0),
        ("max_window_residual_px", 2.5),
        ("min_psr", 10.0),
    ):
        assert params[key].default == getattr(cfg, key) == text[key] == value, key
    assert cfg.pair_kwargs()["max_residual_px"] == cfg.max_residual_px
