"""The co-registration gate's two thresholds: a tight median gate (0.1 m = 0.5 px at 0.2 m) and a
looser per-sub-window bound, and the defaults agreeing across geo.tiles, the config and its YAML."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import shapely
import yaml
from affine import Affine

from geo.coreg import ShiftEstimate, coregister
from geo.tiles import open_pair
from pipelines.config import BuildwatchConfig

GSD = 0.2


def _measure(residuals_px: list[float]):  # type: ignore[no-untyped-def]
    """A stand-in measurement: every call sees the same per-window residual shifts (in x)."""

    def measure(_c: Affine) -> list[ShiftEstimate | None]:
        return [ShiftEstimate(100.0 * i, 0.0, r, 0.0, 0.9) for i, r in enumerate(residuals_px)]

    return measure


def _cells(n: int) -> list[shapely.Polygon]:
    return [shapely.box(100.0 * i - 50, -50, 100.0 * i + 50, 50) for i in range(n)]


def test_one_noisy_window_fails_only_with_the_tight_window_bound() -> None:
    res = [0.2] * 9 + [1.5]  # one window at 1.5 px = 0.3 m (e.g. biased by a new structure)
    loose = coregister(
        _measure(res), _cells(10), GSD, max_residual_m=0.1, max_window_residual_m=0.5
    )
    assert loose.gate_passed and loose.failed_areas.is_empty
    tight = coregister(_measure(res), _cells(10), GSD, max_residual_m=0.1)
    assert tight.gate_passed and tight.failed_areas.area == pytest.approx(100 * 100)
    assert "1 sub-window area(s) above 0.1 m marked failed" in tight.message


def test_the_median_gate_fails_a_uniformly_misregistered_pair() -> None:
    res = [0.65] * 10  # like a 2° rotation fitted by an affine: 0.65 px = 0.13 m everywhere
    reg = coregister(_measure(res), _cells(10), GSD, max_residual_m=0.1, max_window_residual_m=0.5)
    assert not reg.gate_passed
    assert reg.failed_areas.area == pytest.approx(10 * 100 * 100)
    assert "exceeds 0.1 m (0 of 10 sub-windows above 0.5 m)" in reg.message


def test_defaults_agree_between_geo_tiles_config_and_yaml() -> None:
    params = inspect.signature(open_pair).parameters
    cfg = BuildwatchConfig().coreg
    path = Path(__file__).resolve().parents[1] / "pipelines" / "configs" / "default.yaml"
    text = yaml.safe_load(path.read_text(encoding="utf-8"))["coreg"]
    assert params["max_residual_m"].default == cfg.max_residual_m == text["max_residual_m"] == 0.1
    assert (
        params["max_window_residual_m"].default
        == cfg.max_window_residual_m
        == text["max_window_residual_m"]
        == 0.5
    )
