"""``buildwatch build-dataset | train | evaluate | export``: the detector's commands."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

__all__ = ["build_dataset_command", "train_command", "evaluate_command", "export_command"]


@click.command("build-dataset")
@click.argument("builder", type=click.Choice(["synthetic", "fairdrone", "fairdrone-prepare"]))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--n-train", default=64, show_default=True, help="Training chips.")
@click.option("--n-val", default=16, show_default=True, help="Validation chips.")
@click.option("--size", default=512, show_default=True, help="Chip size in pixels.")
@click.option("--seed", default=0, show_default=True)
@click.option("--workers", default=1, show_default=True, help="Processes.")
@click.option("--source", type=click.Path(path_type=Path), default=None,
              help="fairdrone: prepared folder; fairdrone-prepare: the fair-drone data folder.")  # fmt: skip
def build_dataset_command(
    builder: str, out: Path, n_train: int, n_val: int, size: int, seed: int, workers: int,
    source: Path | None,
) -> None:  # fmt: skip
    """Write a 6-channel ultralytics dataset (or prepare fair-drone mosaics) under OUT."""
    if builder == "synthetic":
        from models.datasets.synthetic import SyntheticSpec, build_synthetic

        spec = SyntheticSpec(n_train=n_train, n_val=n_val, size_px=size, seed=seed)
        click.echo(build_synthetic(out, spec, workers))
    elif builder == "fairdrone-prepare":
        from models.datasets.fairdrone_prepare import prepare_fairdrone

        metas = prepare_fairdrone(source or Path("../shared/data/fair-drone"), out)
        for m in metas:
            click.echo(f"{m['name']}: {m['width']}x{m['height']} px, {m['buildings']} buildings")
    else:
        from models.datasets.fairdrone import FairDroneSpec, build_fairdrone

        fd_spec = FairDroneSpec(n_train=n_train, n_val=n_val, size_px=size, seed=seed)
        click.echo(build_fairdrone(source or Path(".device/fairdrone"), out, fd_spec, workers))


@click.command("train")
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="Training config YAML (see models/configs/).")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: the config's `out`).")  # fmt: skip
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set epochs=3 --set data.synthetic.n_train=32.")  # fmt: skip
@click.option("--resume", is_flag=True,
              help="Continue the run in the output folder from its last epoch checkpoint.")  # fmt: skip
@click.option("--finish", is_flag=True,
              help="End a stopped run at its best epoch so far (no more training).")  # fmt: skip
def train_command(
    config_path: Path, out: Path | None, overrides: tuple[str, ...], resume: bool, finish: bool
) -> None:
    """Train the change detector; writes NAME.pt and its model card NAME.yaml.

    A checkpoint is written after every epoch (OUT/train/weights/last.pt); a run that was
    stopped goes on with the same command plus --resume.
    """
    from models.config import load_config
    from models.train import train

    cfg = load_config(config_path, list(overrides))
    args = ["train", "--config", str(config_path)] + (["--out", str(out)] if out else [])
    args += [a for kv in overrides for a in ("--set", kv)]
    command = "buildwatch " + " ".join(shlex.quote(a) for a in args)
    if os.environ.get("BW_REPRODUCE"):  # set by scripts/device_train.sh
        command = f"{os.environ['BW_REPRODUCE']}  (runs: {command})"
    if resume and finish:
        raise click.UsageError("--resume and --finish exclude each other")
    result = train(cfg, out, command=command, resume=resume, finish=finish)
    click.echo(f"weights: {result.weights}")
    click.echo(f"card:    {result.card}")
    for name, m in result.metrics.items():
        if "precision" not in m:  # a background-only set (hard negatives): chips still firing
            click.echo(f"{name:10s} {m['chips_firing']}/{m['chips']} chips fire at >= {m['conf']}")
            continue
        click.echo(
            f"{name:10s} P {m['precision']:.3f}  R {m['recall']:.3f}  mAP50 {m['map50']:.3f}"
        )


@click.command("evaluate")
@click.option("--flight", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--baseline", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--truth", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Truth GeoPackage; layer `changes` with a `class` column.")  # fmt: skip
@click.option("--layer", default="changes", show_default=True, help="Truth layer name.")
@click.option("--pairs", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Instead of flight/baseline/truth: a folder of A/ B/ label/ image pairs, "
                   "georeferenced and run through the detect path.")  # fmt: skip
@click.option("--gsd", "--pair-gsd", "pair_gsd", default=0.3, show_default=True,
              help="Native GSD (m) of --pairs.")  # fmt: skip
@click.option("--shift", "shift_px", default=0.0, show_default=True,
              help="--pairs: misregister each baseline by this many pixels (known shift).")  # fmt: skip
@click.option("--rotation", "rotation_deg", default=0.0, show_default=True,
              help="--pairs: and rotate it by this many degrees about its centre.")  # fmt: skip
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Weights (default: the shipped detector).")  # fmt: skip
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda")
@click.option("--backend", default="auto", show_default=True, help="auto | torch | onnx | openvino")
@click.option("--conf", type=float, default=None,
              help="Score threshold (with --pairs: the leads stage's min_score for both classes) "
                   "[default: the pipeline's filters.min_score].")  # fmt: skip
@click.option("--iou", default=0.25, show_default=True, help="IoU needed for a match.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="JSON report to write.")  # fmt: skip
def evaluate_command(
    flight: Path | None, baseline: Path | None, truth: Path | None, layer: str,
    pairs: Path | None, pair_gsd: float, shift_px: float, rotation_deg: float,
    weights: Path | None, device: str, backend: str, conf: float | None, iou: float,
    out_path: Path,
) -> None:  # fmt: skip
    """Object-level P/R/F1 (IoU >= 0.25), written as a JSON report.

    \b
    Either a georeferenced flight + baseline + truth layer (runs the detect pipeline), or
    --pairs DIR of public change-detection pairs (A = before, B = after, label = mask): each
    pair is written as GeoTIFFs at --gsd (its baseline misregistered by --shift px and
    --rotation degrees) and run through exactly the detect path; the table gives per pair how
    it was co-registered, P/R/F1 against the label's changed blobs (class-agnostic) and the
    median lead-area / true-area ratio of matched objects.
    \b
    Example:
      buildwatch evaluate --pairs ../shared/data/whu-cd --gsd 0.2 --shift 1 --out whu.json
    """
    from models.detector import ChangeDetector
    from models.evaluate import write_report

    if pairs is None and not (flight and baseline and truth):
        raise click.UsageError("pass --flight, --baseline and --truth, or --pairs DIR")
    from pipelines.config import BuildwatchConfig
    from pipelines.detect import wrap_detector

    detector = ChangeDetector.load(weights, device=device, backend=backend)
    # the pairs go through the leads stage: --conf is its min_score for both classes; a flight
    # is scored at --conf, else at every score (an ensemble's gate must allow that threshold)
    classes = ("new_building", "construction")
    score = conf if conf is not None else (None if pairs is not None else 0.0)
    raw = {} if score is None else {"filters": {"min_score": dict.fromkeys(classes, score)}}
    config = BuildwatchConfig.model_validate(raw)
    # the checks the pipeline's default config switches on, as `detect` and `run` apply them
    detector = wrap_detector(detector, config)
    if pairs is not None:
        from pipelines.evaluate_pairs import evaluate_pair_set, format_report

        report = evaluate_pair_set(
            pairs, pair_gsd, detector, shift_px=shift_px, rotation_deg=rotation_deg,
            iou_threshold=iou, config=config,
        )  # fmt: skip
        report["inputs"].update(model=detector.card.name, sha256=detector.card.sha256[:16],
                                backend=detector.backend.name)  # fmt: skip
        write_report(report, out_path)
        click.echo(format_report(report))
        click.echo(f"report: {out_path}")
        return
    else:
        assert flight and baseline and truth
        report = _evaluate_flight(detector, flight, baseline, truth, layer, conf or 0.0, iou)
    report["inputs"].update(model=detector.card.name, sha256=detector.card.sha256[:16],
                            backend=detector.backend.name)  # fmt: skip
    write_report(report, out_path)
    _echo_report(report)
    click.echo(f"report: {out_path}")


def _evaluate_flight(
    detector: Any, flight: Path, baseline: Path, truth: Path, layer: str, conf: float, iou: float
) -> dict:
    import geopandas as gpd

    from geo.errors import VectorError
    from models.evaluate import evaluate_objects

    try:
        truth_gdf = gpd.read_file(truth, layer=layer)
    except Exception as exc:
        raise VectorError(f"{truth}: cannot read layer {layer!r} ({exc})") from exc
    if "class" not in truth_gdf.columns:
        raise VectorError(f"{truth}:{layer}: no 'class' column; expected new_building/construction")
    truth_gdf = truth_gdf[truth_gdf["class"].isin(["new_building", "construction"])]
    # --- call site: the detect pipeline (pipelines/detect.py, owned by the detect engineer) ---
    from pipelines.detect import detect_leads

    result = detect_leads(flight, baseline, predict=detector)
    # -------------------------------------------------------------------------------------------
    leads = result.leads
    if truth_gdf.crs is not None and leads.crs is not None and truth_gdf.crs != leads.crs:
        truth_gdf = truth_gdf.to_crs(leads.crs)
    area_km2 = float(result.coverage_m2.get("common", 0.0)) / 1e6 or None
    report = evaluate_objects(
        leads.geometry.values, list(leads["class"]), list(leads["score"]),
        truth_gdf.geometry.values, list(truth_gdf["class"]), iou_threshold=iou, conf=conf,
        area_km2=area_km2,
    )  # fmt: skip
    report["inputs"] = {"flight": str(flight), "baseline": str(baseline), "truth": str(truth),
                        "n_tiles": result.n_tiles, "elapsed_s": round(result.elapsed_s, 1)}  # fmt: skip
    return report


def _echo_report(report: dict) -> None:
    for name, m in report["per_class"].items():
        click.echo(f"{name:13s} P {m['precision']:.3f}  R {m['recall']:.3f}  F1 {m['f1']:.3f}  "
                   f"(tp {m['tp']}, fp {m['fp']}, fn {m['fn']})")  # fmt: skip
    o = report["overall"]
    if "class_agnostic" in report:
        a = report["class_agnostic"]
        click.echo(
            f"{'any class':13s} P {a['precision']:.3f}  R {a['recall']:.3f}  F1 {a['f1']:.3f}"
        )
    click.echo(f"{'overall':13s} P {o['precision']:.3f}  R {o['recall']:.3f}  F1 {o['f1']:.3f}")
    if report.get("map50") is not None:
        click.echo(f"mAP50 {report['map50']:.3f}")
    if "false_detections_per_km2" in report:
        click.echo(f"false detections per km2: {report['false_detections_per_km2']}")


@click.command("export")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Weights (default: the shipped detector).")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["onnx", "openvino"]), default="openvino",
              show_default=True)  # fmt: skip
@click.option("--batch", default=8, show_default=True, help="Static batch size of the export.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where exports go (default: beside the weights, else a user cache).")  # fmt: skip
def export_command(weights: Path | None, fmt: str, batch: int, cache_dir: Path | None) -> None:
    """Export weights for fast CPU inference (the detector finds and reuses these exports)."""
    from models.backends import cache_dir_for, export_onnx, export_openvino
    from models.card import read_card, sha256
    from models.detector import DEFAULT_WEIGHTS

    path = weights or DEFAULT_WEIGHTS
    card = read_card(path.with_suffix(".yaml"))
    cache = cache_dir_for(path, cache_dir)
    onnx_path = export_onnx(path, card.imgsz, batch, cache, (card.sha256 or sha256(path))[:10])
    click.echo(onnx_path if fmt == "onnx" else export_openvino(onnx_path))


@click.command("calibrate")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Weights (default: the shipped detector).")  # fmt: skip
@click.option("--chips", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folders of held-out 6-page chips (…/images/val); default: build fresh ones.")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/calibrate"), show_default=True,
              help="Where fresh calibration chips are built.")  # fmt: skip
@click.option("--n-fairdrone", default=240, show_default=True,
              help="Fresh fair-drone pseudo pairs from the held-out mosaics.")  # fmt: skip
@click.option("--n-synthetic", default=60, show_default=True, help="Fresh synthetic chips.")
@click.option("--prepared", type=click.Path(path_type=Path), default=Path(".device/fairdrone"),
              show_default=True, help="Prepared fair-drone folder.")  # fmt: skip
@click.option("--seed", default=9091, show_default=True,
              help="Chip seed (apart from every training seed).")  # fmt: skip
@click.option("--max-false-per-km2", "max_false", default=1.0, show_default=True,
              help="Cap on false leads per km² of no-change chips the threshold must keep.")  # fmt: skip
@click.option("--consensus", is_flag=True,
              help="Calibrate the detector with scale consensus on (detector.consensus defaults); "
                   "shown, never written to the card.")  # fmt: skip
@click.option("--unchanged/--no-unchanged", default=None,
              help="Calibrate with the unchanged-structure test on / off "
                   "[default: as the pipeline's config has it].")  # fmt: skip
@click.option("--direction/--no-direction", default=None,
              help="Calibrate with the direction test on / off (models/direction.py) "
                   "[default: as the pipeline's config has it].")  # fmt: skip
@click.option("--ensemble", "ensemble", multiple=True, type=click.Path(path_type=Path),
              help="Calibrate a model ensemble: these weights averaged with --weights "
                   "(repeatable; models/ensemble.py) [default: as the pipeline's config has it].")  # fmt: skip
@click.option(
    "--ensemble-weights",
    "ensemble_weights",
    default=None,
    help="With --ensemble: comma-separated member weights, --weights first.",
)
@click.option("--floor", "floors", multiple=True, metavar="CLASS=T",
              help="Never pick below T for CLASS (e.g. new_building=0.30, where whole no-change "
                   "districts need it; repeatable); the card keeps the pick and the floor.")  # fmt: skip
@click.option("--write", is_flag=True, help="Record the curve and thresholds in the model card.")
def calibrate_command(
    weights: Path | None, chips: tuple[Path, ...], out: Path, n_fairdrone: int,
    n_synthetic: int, prepared: Path, seed: int, max_false: float, consensus: bool,
    unchanged: bool | None, direction: bool | None, ensemble: tuple[Path, ...],
    ensemble_weights: str | None, floors: tuple[str, ...], write: bool,
) -> None:  # fmt: skip
    """Per-class score thresholds from held-out pseudo pairs, with the P/R/F1 curve.

    \b
    The chips come from the fair-drone mosaics held out of training and from synthetic
    districts seeded apart from training - never from the real validation sets.
    """
    from dataclasses import replace

    from models.calibrate import calibrate
    from models.card import read_card, write_card
    from models.detector import DEFAULT_WEIGHTS, ChangeDetector

    floor = _parse_floors(floors)
    path = Path(weights or DEFAULT_WEIGHTS)
    det = ChangeDetector.load(path, device="cpu")
    dirs = list(chips)
    if not dirs:
        size, gsd = int(det.card.imgsz), float(det.card.working_gsd_m)
        if n_fairdrone and any(prepared.glob("*.json")):
            from models.datasets.fairdrone import FairDroneSpec, build_fairdrone

            spec = FairDroneSpec(n_train=0, n_val=n_fairdrone, size_px=size, working_gsd=gsd,
                                 seed=seed, no_change_fraction=0.15)  # fmt: skip
            build_fairdrone(prepared, out / "fairdrone", spec, os.cpu_count() or 1)
            dirs.append(out / "fairdrone" / "images" / "val")
        if n_synthetic:
            from models.datasets.synthetic import SyntheticSpec, build_synthetic

            syn = SyntheticSpec(n_train=0, n_val=n_synthetic, size_px=size, working_gsd=gsd,
                                seed=seed, renderer="mixed")  # fmt: skip
            build_synthetic(out / "synthetic", syn, os.cpu_count() or 1)
            dirs.append(out / "synthetic" / "images" / "val")
    from pipelines.config import BuildwatchConfig
    from pipelines.detect import wrap_detector

    default = BuildwatchConfig()
    raw: dict[str, Any] = {"detector": {"consensus": {"enabled": consensus}}}
    if unchanged is not None:
        raw["detector"]["unchanged"] = {"enabled": unchanged}
    if direction is not None:
        raw["detector"]["direction"] = {"enabled": direction}
    if ensemble:
        raw["detector"]["ensemble"] = {"enabled": True, "weights": [str(p) for p in ensemble]}
        if ensemble_weights:
            member = [float(x) for x in ensemble_weights.split(",")]
            raw["detector"]["ensemble"]["member_weights"] = member
    # every threshold from 0 is measured: an ensemble's gate must not skip a tile (auto -> none)
    raw["filters"] = {"min_score": {c: 0.0 for c in default.filters.min_score}}
    config = BuildwatchConfig.model_validate(raw)
    if write and config.detector != default.detector:
        d = config.detector
        flag = ("--consensus" if consensus else "--ensemble" if ensemble
                else ("--direction" if direction else "--no-direction")
                if d.direction != default.detector.direction
                else "--unchanged" if unchanged else "--no-unchanged")  # fmt: skip
        raise click.UsageError(
            f"{flag} with --write: the card's thresholds are those of the default detection "
            f"path; drop --write to see the curve with {flag}"
        )
    # the default detection path (pipelines.detect.load_detector), or the one the flags ask for
    run: Any = wrap_detector(det, config)
    # candidates are counted as the leads stage hands them on: touching outlines joined
    gsd = float(det.card.working_gsd_m)
    join_gap_px = round(config.filters.dissolve_gap_m / gsd, 6)
    cal = calibrate(run, dirs, gsd=gsd, max_false_per_km2=max_false, join_gap_px=join_gap_px)
    cal.floor = floor
    click.echo(cal.table())
    click.echo("min_score: " + ", ".join(f"{c} {t:.2f}" for c, t in cal.min_score.items()))
    for c, t in floor.items():
        click.echo(f"  {c}: picked {cal.picked[c]:.2f}, floor {t:.2f}")
    if write:
        card_path = path.with_suffix(".yaml")
        card = read_card(card_path)
        u = config.detector.unchanged  # the checks the thresholds were measured with
        checks = {"unchanged": {"radius_m": u.radius_m, "min_ncc": u.min_ncc,
                                "min_peak": u.min_peak} if u.enabled
                  else None}  # fmt: skip
        dr = config.detector.direction
        checks["direction"] = ({"margin": dr.margin, "min_iou": dr.min_iou} if dr.enabled
                               else None)  # fmt: skip
        ens = getattr(run, "ensemble", None)  # models.ensemble, as wrap_detector built it
        checks["ensemble"] = None if not isinstance(ens, dict) else {
            "members": [str(p) for p in config.detector.ensemble.weights],
            "member_weights": [round(w, 4) for w in run.member_weights],
            "min_iou": ens["min_iou"], "member_conf": ens["member_conf"],
        }  # fmt: skip
        extra = dict(card.extra) | {"calibration": cal.as_card() | {"checks": checks}}
        write_card(replace(card, extra=extra), card_path)
        click.echo(f"card: {card_path}")


def _parse_floors(floors: Sequence[str]) -> dict[str, float]:
    """``("new_building=0.30", ...)`` -> ``{"new_building": 0.3}``; a bad item is a usage error."""
    from models.classes import CLASS_NAMES

    out: dict[str, float] = {}
    for item in floors:
        name, sep, value = item.partition("=")
        try:
            t = float(value) if sep else float("nan")
        except ValueError:
            t = float("nan")
        if name not in CLASS_NAMES or not 0 <= t <= 1:
            raise click.BadParameter(
                f"{item!r}: give CLASS=T with CLASS one of {', '.join(CLASS_NAMES)} and T in "
                "[0, 1], e.g. new_building=0.30",
                param_hint="--floor",
            )
        out[name] = t
    return out
