"""Real before/after pairs go through co-registration (``../shared/data``; skipped where absent).

Each pair of WHU-CD (aerial, 0.2 m) and DSIFN-CD (Google Earth, ≈0.5 m) is written in a projected
CRS with its baseline misregistered by a known 0, 0.5, 1, 2 and 5 px and by a 0.3° rotation
(geo.pairsets), then opened exactly as ``buildwatch detect`` opens a pair. Well-registered and
shifted pairs are compared (never failed), a verified correction lands within 0.5 px of the
truth, and the heavily changed pairs (bare land built over) go through as ``unverified``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from geo.pairsets import georeference_pair, list_pairs, shift_vector
from geo.tiles import open_pair
from models.candidates import Candidates
from pipelines.config import BuildwatchConfig
from pipelines.detect import detect_leads

pytestmark = pytest.mark.realdata

SETS = {"whu-cd": 0.2, "dsifn-cd": 0.5}
SHIFTS = (0.0, 0.5, 1.0, 2.0, 5.0)


def _set(shared_data: Path, name: str) -> Path:
    root = shared_data / name
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    return root


def _outcomes(root: Path, gsd: float, tmp: Path, shift: float, rotation: float = 0.0):  # type: ignore[no-untyped-def]
    for name in list_pairs(root):
        gp = georeference_pair(
            root, name, tmp / f"{Path(name).stem}_{shift}_{rotation}", gsd,
            shift_px=shift, rotation_deg=rotation,
        )  # fmt: skip
        with open_pair(gp.flight, gp.baseline, gsd=0.2) as pair:
            yield name, gp, pair.registration, pair


@pytest.mark.parametrize("set_name", sorted(SETS))
@pytest.mark.parametrize("shift", SHIFTS)
def test_real_pairs_are_compared_and_corrections_are_right(
    shared_data: Path, tmp_path: Path, set_name: str, shift: float
) -> None:
    root, gsd = _set(shared_data, set_name), SETS[set_name]
    tx, ty = (v * gsd for v in shift_vector(shift))
    for name, _, reg, pair in _outcomes(root, gsd, tmp_path, shift):
        assert reg.gate is not None and reg.gate.ref_gsd == pytest.approx(max(gsd, 0.2))
        if shift <= 2.0:  # the done-when: compared, never an empty result
            assert reg.status in ("verified", "unverified"), (name, reg.message)
            assert pair.usable.area > 0.5 * pair.footprints.common.area, (name, reg.message)
        if reg.status == "verified":
            err_px = math.hypot(reg.dx_m - tx, reg.dy_m - ty) / gsd
            assert err_px < 0.5, (name, shift, reg.message)
        if reg.status == "unverified":
            assert reg.not_comparable.is_empty and pair.usable.area == pytest.approx(
                pair.footprints.common.area
            )


def test_a_textured_real_pair_is_verified_at_every_shift(shared_data: Path, tmp_path: Path) -> None:
    root = _set(shared_data, "whu-cd")
    for shift in SHIFTS:
        gp = georeference_pair(root, "000121.png", tmp_path / f"s{shift}", 0.2, shift_px=shift)
        with open_pair(gp.flight, gp.baseline, gsd=0.2) as pair:
            reg = pair.registration
            assert reg.status == "verified", reg.message
            tx, ty = gp.true_shift_m
            assert math.hypot(reg.dx_m - tx, reg.dy_m - ty) / 0.2 < 0.5, reg.message
            assert reg.residual_ref_px < 1.0


def test_a_rotated_real_baseline_is_compared(shared_data: Path, tmp_path: Path) -> None:
    for set_name, gsd in SETS.items():
        root = _set(shared_data, set_name)
        for name, _, reg, pair in _outcomes(root, gsd, tmp_path, 0.0, rotation=0.3):
            assert reg.status in ("verified", "unverified"), (name, reg.message)
            assert pair.usable.area > 0.5 * pair.footprints.common.area, (name, reg.message)


def test_heavily_changed_real_pairs_go_through_unverified(
    shared_data: Path, tmp_path: Path
) -> None:
    """WHU 000213 and 000241: bare land in 2012, an estate in 2016. Nothing correlates; the pair
    is compared as georeferenced and every lead carries coreg_status=unverified."""
    root = _set(shared_data, "whu-cd")

    def one_box(images: list[np.ndarray]) -> list[Candidates]:
        box = np.array([[200, 200, 260, 260]], np.float32)
        return [Candidates(box, np.array([0.9], np.float32), np.array([0])) for _ in images]

    for name in ("000213.png", "000241.png"):
        gp = georeference_pair(root, name, tmp_path / name, 0.2, shift_px=1.0)
        config = BuildwatchConfig.model_validate({"tiling": {"prefetch": 0}})
        result = detect_leads(gp.flight, gp.baseline, predict=one_box, config=config)
        assert result.registration["status"] == "unverified", result.registration["message"]
        assert len(result.leads) > 0 and set(result.leads["coreg_status"]) == {"unverified"}
        assert result.coverage_m2["compared"] == pytest.approx(result.coverage_m2["common"])


def test_pair_set_layout_errors_are_one_clear_line(tmp_path: Path) -> None:
    from geo.errors import InputFileError

    (tmp_path / "A").mkdir()
    with pytest.raises(InputFileError, match=r"missing folder\(s\) B, label"):
        list_pairs(tmp_path)
    (tmp_path / "B").mkdir()
    (tmp_path / "label").mkdir()
    with pytest.raises(InputFileError, match="no image name is present in all of"):
        list_pairs(tmp_path)


def test_a_pair_set_read_coarser_than_the_input_limits_is_refused_up_front(tmp_path: Path) -> None:
    """`evaluate --pairs … --gsd 2` would have every flight refused at the door: one line
    naming --gsd and the limit, before any pair is written; lifting the limits lets it through
    to the next check (here: the folder has no pairs)."""
    from geo.errors import ConfigError, InputFileError
    from pipelines.config import BuildwatchConfig
    from pipelines.evaluate_pairs import evaluate_pair_set

    with pytest.raises(ConfigError, match=r"--gsd 2: .*input\.max_flight_gsd_m \(1 m\)"):
        evaluate_pair_set(tmp_path, 2.0, predict=None)
    with pytest.raises(ConfigError, match=r"--gsd 0.8: .*input\.max_baseline_gsd_m \(0.6 m\)"):
        evaluate_pair_set(tmp_path, 0.8, predict=None)
    lifted = BuildwatchConfig.model_validate(
        {"input": {"max_flight_gsd_m": None, "max_baseline_gsd_m": None}}
    )
    with pytest.raises(InputFileError, match="missing folder"):
        evaluate_pair_set(tmp_path, 2.0, predict=None, config=lifted)
