"""Object-level evaluation of public change-detection pair sets through the product's own path.

Each pair of a set (``A/``, ``B/``, ``label/``; :mod:`geo.pairsets`) is georeferenced with a
known baseline shift/rotation and run through :func:`pipelines.detect.detect_leads` exactly as
``buildwatch detect`` runs a flight: co-registration, tiling, model, seam merge, filters. Leads
are matched to the label's changed blobs (class-agnostic: the labels carry no class) at
IoU >= 0.25. Per pair and pooled: P/R/F1, the lead-area / true-area ratio of matched objects,
and how the pair was co-registered. A pair where nothing could be compared counts its truth as
missed and says so.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from geo.errors import ConfigError, CoregistrationError
from geo.pairsets import georeference_pair, list_pairs, shift_vector
from models.evaluate import iou_matrix, match_greedy
from pipelines.config import BuildwatchConfig
from pipelines.detect import detect_leads

__all__ = ["evaluate_pair_set", "prf", "format_report"]

log = logging.getLogger(__name__)


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 (0 where undefined).

    >>> prf(3, 1, 2)
    {'precision': 0.75, 'recall': 0.6, 'f1': 0.667}
    """
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 3), "recall": round(r, 3), "f1": round(f, 3)}


def _match(leads: Any, truth: Any, iou_threshold: float) -> tuple[int, int, int, list[float]]:
    is_lead = leads["status"] == "lead" if len(leads) else []
    pred = leads[is_lead] if len(leads) else leads
    geoms = np.asarray(pred.geometry.values, dtype=object)
    truth_g = np.asarray(truth.geometry.values, dtype=object)
    iou = iou_matrix(geoms, truth_g)
    matched = match_greedy(iou, np.asarray(pred["score"], float), iou_threshold)
    tp = int((matched >= 0).sum())
    ratios = [float(geoms[i].area / truth_g[j].area) for i, j in enumerate(matched) if j >= 0]
    return tp, len(geoms) - tp, len(truth_g) - tp, ratios


def evaluate_pair_set(
    root: str | Path,
    gsd: float,
    predict: Any,
    *,
    config: BuildwatchConfig | None = None,
    shift_px: float = 0.0,
    rotation_deg: float = 0.0,
    iou_threshold: float = 0.25,
    workdir: str | Path | None = None,
) -> dict[str, Any]:
    """Run every pair of ``root`` (native ``gsd`` m) through the detect path; the report dict.

    Raises:
        ConfigError: ``gsd`` is coarser than the config's input limits
            (``input.max_flight_gsd_m`` / ``max_baseline_gsd_m``), which would refuse every pair.
    """
    config = config or BuildwatchConfig()
    for role in ("flight", "baseline"):
        limit = getattr(config.input, f"max_{role}_gsd_m")
        if limit is not None and gsd > limit * (1 + 1e-6):
            raise ConfigError(
                f"--gsd {gsd:g}: pairs at that GSD are coarser than input.max_{role}_gsd_m "
                f"({limit:g} m), so every {role} would be refused (model card, Input GSD); "
                f"read the pairs at {limit:g} m or finer"
            )
    names = list_pairs(root)
    pairs: list[dict[str, Any]] = []
    totals = {"tp": 0, "fp": 0, "fn": 0}
    all_ratios: list[float] = []
    compared_m2 = 0.0
    with tempfile.TemporaryDirectory(prefix="bw-pairs-", dir=workdir) as tmp:
        for name in names:
            gp = georeference_pair(
                root,
                name,
                Path(tmp) / Path(name).stem,
                gsd,
                shift_px=shift_px,
                rotation_deg=rotation_deg,
            )
            row: dict[str, Any] = {"pair": name, "n_truth": len(gp.truth)}
            try:
                result = detect_leads(gp.flight, gp.baseline, predict=predict, config=config)
            except CoregistrationError as exc:
                row.update(coreg="failed", decision="failed", error=str(exc), tp=0, fp=0)
                row["fn"] = len(gp.truth)
                row.update(prf(0, 0, len(gp.truth)), area_ratio_median=None)
                pairs.append(row)
                totals["fn"] += len(gp.truth)
                continue
            reg = result.registration
            truth = gp.truth.to_crs(result.crs)
            tp, fp, fn, ratios = _match(result.leads, truth, iou_threshold)
            tx, ty = (v * gsd for v in shift_vector(shift_px))
            err = (
                math.hypot(float(reg.get("dx_m", 0.0)) - tx, float(reg.get("dy_m", 0.0)) - ty)
                if reg.get("status") == "verified"
                else None
            )
            row.update(
                coreg=reg.get("status"),
                decision=reg.get("decision"),
                residual_px=reg.get("residual_ref_px"),
                dx_m=round(float(reg.get("dx_m", 0.0)), 3),
                dy_m=round(float(reg.get("dy_m", 0.0)), 3),
                shift_error_px=round(err / gsd, 2) if err is not None else None,
                compared_m2=result.coverage_m2.get("compared"),
                not_comparable_m2=result.coverage_m2.get("not_comparable"),
                tp=tp,
                fp=fp,
                fn=fn,
                **prf(tp, fp, fn),
                area_ratio_median=round(float(np.median(ratios)), 3) if ratios else None,
            )
            pairs.append(row)
            compared_m2 += float(result.coverage_m2.get("compared", 0.0))
            for k, v in (("tp", tp), ("fp", fp), ("fn", fn)):
                totals[k] += v
            all_ratios += ratios
    overall = {
        **totals,
        **prf(totals["tp"], totals["fp"], totals["fn"]),
        "area_ratio_median": round(float(np.median(all_ratios)), 3) if all_ratios else None,
        "false_leads_per_km2": round(totals["fp"] / (compared_m2 / 1e6), 1)
        if compared_m2 > 0
        else None,
        "compared_km2": round(compared_m2 / 1e6, 4),
    }
    return {
        "inputs": {
            "pairs": str(root),
            "gsd_m": gsd,
            "shift_px": shift_px,
            "rotation_deg": rotation_deg,
            "iou": iou_threshold,
        },
        "pairs": pairs,
        "overall": overall,
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain table (one line per pair, then the total)."""
    lines = [
        f"{'pair':<12} {'coreg':<10} {'decision':<10} {'res px':>6} {'truth':>5} {'tp':>3} "
        f"{'fp':>3} {'fn':>3} {'P':>5} {'R':>5} {'F1':>5} {'area':>5}"
    ]
    for r in report["pairs"]:
        res = f"{r['residual_px']:.2f}" if r.get("residual_px") is not None else "-"
        ratio = f"{r['area_ratio_median']:.2f}" if r.get("area_ratio_median") else "-"
        lines.append(
            f"{Path(r['pair']).stem:<12} {r['coreg']:<10} {r['decision']:<10} {res:>6} "
            f"{r['n_truth']:>5} {r['tp']:>3} {r['fp']:>3} {r['fn']:>3} {r['precision']:>5.2f} "
            f"{r['recall']:>5.2f} {r['f1']:>5.2f} {ratio:>5}"
        )
    o = report["overall"]
    ratio = f"{o['area_ratio_median']:.2f}" if o["area_ratio_median"] else "-"
    lines.append(
        f"{'total':<12} {'':<10} {'':<10} {'':>6} {o['tp'] + o['fn']:>5} {o['tp']:>3} "
        f"{o['fp']:>3} {o['fn']:>3} {o['precision']:>5.2f} {o['recall']:>5.2f} {o['f1']:>5.2f} "
        f"{ratio:>5}"
    )
    lines.append(
        f"compared {o['compared_km2']} km², false leads per km² {o['false_leads_per_km2']}; "
        "area = median lead area / true area of matched objects"
    )
    return "\n".join(lines)
