"""Flight + baseline → leads: the tile loop, seam merge, filters, joins and evidence.

The model is a callback (``list of (h, w, 6) uint8 tiles -> list[Candidates]``) or a detector
object with ``.predict(images, conf=...)`` and ``.card``; this module never imports torch.

>>> from pipelines.detect import tiling_params
>>> tiling_params(None, None)
(0.2, 512, 64)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely

from geo.errors import ConfigError, CoregistrationError, ModelError
from geo.evidence import write_evidence_pair
from geo.hashing import file_sha256
from geo.units import Units, check_units_cover, read_layer, read_units
from models.candidates import Candidates
from pipelines.config import BuildwatchConfig
from pipelines.leads.build import Provenance, build_leads, select_leads
from pipelines.leads.filters import FilterCounts
from pipelines.leads.identity import resolve_identity
from pipelines.leads.merge import dissolve_touching, merge_candidates
from pipelines.leads.tiling import (
    Predict,
    coverage_dict,
    precomputed_candidates,
    registration_dict,
    tile_candidates,
    usable_coverage,
)
from pipelines.safety import inside, safe_name

__all__ = [
    "Predict",
    "ModelInfo",
    "LeadsResult",
    "detect_leads",
    "usable_coverage",
    "load_detector",
    "wrap_detector",
    "tiling_params",
    "software_version",
]

log = logging.getLogger(__name__)

#: used when neither the config nor a model card says otherwise
DEFAULT_GSD_M, DEFAULT_TILE_PX, DEFAULT_OVERLAP_PX = 0.2, 512, 64


@dataclass(frozen=True)
class ModelInfo:
    """What model produced the candidates (from its card; a callback is 'callback')."""

    name: str = "callback"
    sha256: str = ""
    working_gsd_m: float | None = None
    imgsz: int | None = None
    overlap: int | None = None
    baseline_radiometry: str | None = None


@dataclass
class LeadsResult:
    """Leads of one flight plus everything a run summary needs to explain them."""

    leads: gpd.GeoDataFrame
    crs: Any
    flight_id: str
    baseline_id: str
    model: ModelInfo
    thresholds: dict[str, Any]
    gsd_m: float
    tile_px: int
    overlap_px: int
    n_tiles: int = 0
    n_candidates: int = 0
    n_merged_away: int = 0
    dropped: FilterCounts = field(default_factory=FilterCounts)
    registration: dict[str, Any] = field(default_factory=dict)
    coverage_m2: dict[str, float] = field(default_factory=dict)
    #: the compared area (common footprint minus what is not comparable), pair CRS
    coverage: shapely.Geometry | None = None
    #: where both epochs have data but co-registration found them misregistered, pair CRS
    not_comparable: shapely.Geometry | None = None
    #: where only the flight has data (no baseline to compare with), pair CRS
    unknown: shapely.Geometry | None = None
    repairs: list[str] = field(default_factory=list)
    units: Units | None = None
    elapsed_s: float = 0.0
    #: each epoch's native ground pixel (m), {"flight": …, "baseline": …} (empty: not known)
    native_gsd_m: dict[str, float] = field(default_factory=dict)
    #: the GSD (m) detection saw the flight at, when matched to a coarse baseline; else None
    flight_seen_at_m: float | None = None
    #: the baseline's resolution measured against the flight (m; ImageryPair), None: not measured
    baseline_detail_gsd_m: float | None = None
    #: what the reader should know about this run's leads (one line each)
    notes: list[str] = field(default_factory=list)


#: the coarsest baseline (m) against which the real no-change drone mosaics gave no false lead
#: through the product (model card, *Input GSD*: 0 per km² at 0.3 and 0.4 m, 5.9 at 0.5 m, 29.6
#: at 0.6 m — foundation walls and other thin standing structures the baseline cannot resolve)
CLEARS_THIN_STRUCTURES_M = 0.4


def gsd_notes(native_gsd_m: dict[str, float], seen_at_m: float | None = None) -> list[str]:
    """What a run summary says about the epochs' native GSDs (empty where nothing is of note).

    ``seen_at_m``: the GSD detection saw the flight at (``ImageryPair.flight_seen_at_m``), when
    it was matched to a coarse baseline — the baseline's declared pixel, or its measured detail
    where that is coarser (a resampled product).

    >>> gsd_notes({"flight": 0.05, "baseline": 0.3})
    []
    >>> gsd_notes({"flight": 0.05, "baseline": 0.6})[0][:60]
    'baseline at 0.60 m: coarser than 0.4 m, it cannot show thin '
    >>> gsd_notes({"flight": 0.05, "baseline": 0.6}, 0.6)[0][:62]
    'baseline at 0.60 m: the flight was compared at the same 0.60 m'
    >>> gsd_notes({"flight": 0.05, "baseline": 0.3}, 0.62)[0][:78]
    'baseline at 0.30 m, with the detail of a 0.62 m image: the flight was compared'
    """
    b = native_gsd_m.get("baseline")
    if b is None:
        return []
    if seen_at_m is not None:
        what = (
            f"baseline at {b:.2f} m, with the detail of a {seen_at_m:.2f} m image: the flight was "
            f"compared at {seen_at_m:.2f} m"
            if seen_at_m > b * 1.05
            else f"baseline at {b:.2f} m: the flight was compared at the same {seen_at_m:.2f} m"
        )
        return [
            f"{what} (input.match_baseline_above_m), so detail only the flight shows (foundation "
            "walls, fences, roof texture) is not read as change; changes narrower than about "
            f"{2 * seen_at_m:.1f} m may be missed (held-out recall 0.90-0.94x of the flight as "
            "flown at 0.5-0.6 m; model card, Matching the flight to a coarse baseline)"
        ]
    if not b > CLEARS_THIN_STRUCTURES_M * (1 + 1e-6):
        return []
    return [
        f"baseline at {b:.2f} m: coarser than {CLEARS_THIN_STRUCTURES_M:g} m, it cannot show thin "
        "standing structures (foundation walls, fences, frames), so some leads may be structures "
        "that already stood; a finer baseline clears them (measured: 5.9 false leads per km² at "
        "0.5 m, 29.6 at 0.6 m on real drone mosaics; model card, Input GSD), or set "
        "input.match_baseline_above_m to compare the flight at the baseline's GSD"
    ]


def software_version() -> str:
    try:
        return metadata.version("buildwatch")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


def tiling_params(
    config: BuildwatchConfig | None, model: ModelInfo | None
) -> tuple[float, int, int]:
    """Working GSD (m/px), tile size and overlap (px): config, else model card, else defaults."""
    t = config.tiling if config is not None else None
    gsd = (t.gsd if t else None) or (model.working_gsd_m if model else None) or DEFAULT_GSD_M
    size = (t.size if t else None) or (model.imgsz if model else None) or DEFAULT_TILE_PX
    overlap = t.overlap if t and t.overlap is not None else None
    if overlap is None:
        overlap = model.overlap if model and model.overlap is not None else DEFAULT_OVERLAP_PX
    return float(gsd), int(size), int(overlap)


def load_detector(config: BuildwatchConfig) -> Any:
    """Load the change detector named by ``config.detector`` (imports the model stack lazily)."""
    try:
        from models.detector import ChangeDetector
    except ImportError as exc:
        raise ModelError(f"the detector is not available in this install ({exc})") from exc
    weights = config.detector.weights
    if weights is not None and not Path(weights).is_file():
        raise ModelError(f"{weights}: weights file not found; pass --weights with an existing file")
    detector = ChangeDetector.load(
        weights=weights,
        device=config.detector.device,
        backend=config.detector.backend,
        batch=config.detector.batch,
        precision=config.detector.precision,
    )
    return wrap_detector(detector, config)


def wrap_detector(detector: Any, config: BuildwatchConfig) -> Any:
    """``detector`` with what ``config.detector`` switches on around it: the other members of a
    model ensemble (:mod:`models.ensemble`), scale consensus (:mod:`models.consensus`), the
    unchanged-structure test (:mod:`models.unchanged`), then the direction test
    (:mod:`models.direction`), then (opt-in) the unchanged test's lean consensus.
    Everything that runs the detector for the product or measures it goes through here."""
    from models.ensemble import ModelEnsemble

    e = config.detector.ensemble
    # a detector that already is an ensemble (a benchmark's, a sweep's) is not ensembled again:
    # its first member is the shipped one, so it would otherwise get the default members on top
    if isinstance(detector, ModelEnsemble):
        pass
    elif e.enabled or (e.enabled is None and e.weights and _is_shipped(detector)):
        lowest = min(config.filters.min_score.values(), default=0.0)
        try:
            detector = ModelEnsemble(
                [detector, *(_load_member(path, config) for path in e.weights)],
                weights=e.member_weights,
                min_iou=e.min_iou,
                member_conf=e.member_conf,
                front=e.front,
                wholes=_wholes(e.wholes),
            )
        except ValueError as exc:
            raise ConfigError(f"detector.ensemble: {exc}") from exc
        bound = detector.lossless_gate(lowest)
        if e.gate == "auto":
            # rounded down: a gate a hair above the bound would lose a lead
            detector.gate = math.floor(bound * 1e4) / 1e4 if bound > 0 else None
        elif e.gate is not None and e.gate > bound + 1e-9:
            raise ConfigError(
                f"detector.ensemble.gate {e.gate:g} would drop leads the other members could "
                f"lift to filters.min_score {lowest:g}; set it to at most {bound:.3f} "
                "(or auto, or null)"
            )
        else:
            detector.gate = e.gate
    c = config.detector.consensus
    if c.enabled:
        from models.consensus import ScaleConsensus

        detector = ScaleConsensus(detector, c.scale, c.min_score, c.min_overlap)
    looks = detector  # what the direction test runs on the swapped dates: no filter after it
    u = config.detector.unchanged
    if u.enabled:
        from models.unchanged import UnchangedFilter

        detector = UnchangedFilter(detector, u.radius_m, u.min_ncc, min_peak=u.min_peak)
    d = config.detector.direction
    if d.enabled:
        from models.direction import DirectionTest

        # last, so only tiles still holding a candidate are looked at again; the swapped look
        # runs the detector without the unchanged test, so the order changes no decision
        lowest = min(config.filters.min_score.values(), default=0.0)
        detector = DirectionTest(detector, d.margin, d.min_iou, from_score=lowest, looks=looks)
    if u.enabled and u.lean_agree:
        from models.unchanged import LeanConsensus

        # last: the voters are the candidates every other test has kept
        lowest = min(config.filters.min_score.values(), default=0.0)
        detector = LeanConsensus(detector, u.lean_agree, u.lean_min_ncc, lowest, u.radius_m)
    return detector


def _check_gate(predict: Any, config: BuildwatchConfig) -> None:
    """A gated ensemble (models.ensemble) built for higher thresholds than this run's would
    silently drop leads: refuse instead."""
    lossless_from = getattr(predict, "lossless_from", None)
    lowest = min(config.filters.min_score.values(), default=0.0)
    if isinstance(lossless_from, float) and lowest < lossless_from - 1e-6:
        raise ConfigError(
            f"filters.min_score {lowest:g} is below {lossless_from:.3f}, the lowest threshold the "
            "detector's ensemble gate was built for; load the detector with this config "
            "(pipelines.detect.load_detector) or set detector.ensemble.gate: null"
        )


def _is_shipped(detector: Any) -> bool:
    """True when ``detector`` runs the shipped weights (``models/weights/``, the default)."""
    from models.detector import DEFAULT_WEIGHTS

    w = getattr(detector, "weights", None)
    try:
        return w is not None and Path(w).resolve() == DEFAULT_WEIGHTS.resolve()
    except (OSError, TypeError):
        return False


def _wholes(w: Any) -> Any:
    """``detector.ensemble.wholes`` as :class:`models.ensemble.Wholes`, or None when off."""
    if not w.enabled:
        return None
    from models.ensemble import Wholes

    return Wholes(min_parts=w.min_parts, inside=w.inside, min_score=w.min_score,
                  min_cover=w.min_cover)  # fmt: skip


def _load_member(path: Path, config: BuildwatchConfig) -> Any:
    """An ensemble member, loaded like the main detector; a relative path is under
    ``models/weights/`` (where shipped weights live) unless it exists as given."""
    from models.detector import DEFAULT_WEIGHTS, ChangeDetector

    p = Path(path)
    if not p.is_absolute() and not p.is_file():
        p = DEFAULT_WEIGHTS.parent / p
    if not p.is_file():
        raise ModelError(
            f"{path}: ensemble member weights not found; fix detector.ensemble.weights "
            "(a path, or a file name in models/weights/)"
        )
    d = config.detector
    return ChangeDetector.load(
        weights=p, device=d.device, backend=d.backend, batch=d.batch, precision=d.precision
    )


def _member_id(member: Any) -> str:
    card = getattr(member, "card", None)
    return f"{getattr(card, 'name', 'detector')}:{str(getattr(card, 'sha256', '') or '')[:16]}"


def _model_of(predict: Any, conf: float) -> tuple[Predict, ModelInfo]:
    card = getattr(predict, "card", None)
    if card is not None and hasattr(predict, "predict"):
        digest = str(getattr(card, "sha256", "") or "")
        weights = getattr(predict, "weights", None)
        if not digest and weights is not None and Path(weights).is_file():
            digest = file_sha256(weights)
        overlap = getattr(card, "overlap_px", None)
        name = str(getattr(card, "name", "detector"))
        for extra in (
            "ensemble",
            "consensus",
            "unchanged",
            "direction",
            "lean",
        ):  # the wrappers of wrap_detector, in the order it applies them
            settings = getattr(predict, extra, None)
            if isinstance(settings, dict):  # say so in provenance
                name += f"+{extra}(" + ",".join(f"{k}={v:g}" for k, v in settings.items()) + ")"
                members = getattr(predict, "members", None) if extra == "ensemble" else None
                if isinstance(members, list) and len(members) > 1:  # name each other member
                    name += "[" + ",".join(_member_id(m) for m in members[1:]) + "]"
        info = ModelInfo(
            name=name,
            sha256=digest[:16],
            working_gsd_m=getattr(card, "working_gsd_m", None),
            imgsz=getattr(card, "imgsz", None),
            overlap=overlap if overlap is not None else getattr(card, "overlap", None),
            baseline_radiometry=getattr(card, "baseline_radiometry", None),
        )
        return partial(predict.predict, conf=conf), info
    if not callable(predict):
        raise TypeError("predict must be a callable or a detector with .predict and .card")
    return predict, ModelInfo(name=getattr(predict, "__name__", "callback"))


def radiometric_mode(config: BuildwatchConfig, model: ModelInfo | None) -> str:
    """Baseline colour normalisation for this run: the config's choice, else what the model was
    trained with (its card's ``baseline_radiometry``), else histogram matching.

    A learned detector must see the baseline as it saw it in training: matching histograms in
    front of a model trained with colour jitter only turns seasonal colour shifts into false leads.
    """
    choice = config.coreg.radiometric
    if choice != "auto":
        return choice
    trained = model.baseline_radiometry if model is not None else None
    return "off" if trained == "none" else "histogram"


def _open_pair(flight: Path, baseline: Path, **kwargs: Any) -> AbstractContextManager[Any]:
    """Indirection so tests can substitute a stand-in pair reader."""
    from geo.tiles import open_pair

    return open_pair(flight, baseline, **kwargs)


def _optional_layer(
    source: Any,
    units_path: Path | None,
    crs: Any,
    repairs: list[str],
    fallback: gpd.GeoDataFrame | None,
) -> gpd.GeoDataFrame | None:
    """Permits / known buildings: an explicit file, else the units file's layer, else None."""
    if source.path is not None:
        layer = source.layer
        if layer is None:
            import pyogrio

            layer = str(pyogrio.list_layers(source.path)[0, 0])
        return read_layer(source.path, layer, crs, required=(), repairs=repairs)
    if source.layer and units_path is not None:
        import pyogrio

        if source.layer in [str(x) for x in pyogrio.list_layers(units_path)[:, 0]]:
            return read_layer(units_path, source.layer, crs, required=(), repairs=repairs)
        return None
    return fallback


def detect_leads(
    flight: str | Path,
    baseline: str | Path,
    *,
    predict: Predict | Any | None = None,
    config: BuildwatchConfig | None = None,
    units: Units | str | Path | None = None,
    flight_date: date | None = None,
    evidence_dir: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    candidates: Mapping[int, Candidates | None] | None = None,
    flight_id: str | None = None,
) -> LeadsResult:
    """Find the leads of one flight against its baseline.

    Args:
        predict: a callback over batches of (h, w, 6) uint8 tiles, or a loaded detector. With
            ``candidates`` it is optional and only names the model (card, hash) in provenance.
        config: thresholds, tiling, co-registration (defaults when None).
        units: a :class:`Units`, the path of ``units.gpkg``, or None (config's, else no joins).
        flight_date: for permit validity and provenance (None: the sidecar's ``date``, else
            unknown).
        evidence_dir: when given, write ``<lead_id>_before.png`` / ``_after.png`` there and
            reference them (relative to its parent folder) from the leads.
        progress: called with the number of tiles done after each batch.
        candidates: precomputed candidates per tile index of ``pair.tile_windows(size,
            overlap)`` (``None`` for a tile without valid pixels), in tile pixels; every tile
            index must be present. The tiles are then not read or predicted again: the pair is
            only opened for its grid, coverage and (when asked) evidence chips.
        flight_id: the id in ``lead_id``/``flight_id``; None: the sidecar's ``flight_id``, the
            GeoTIFF tag ``FLIGHT_ID``, else the file stem (:mod:`pipelines.leads.identity`).

    Raises:
        ModelError: ``candidates`` do not match the pair's tiles, or predict misbehaves.
    """
    started = time.perf_counter()
    config = config or BuildwatchConfig()
    if predict is None and candidates is None:
        raise TypeError("detect_leads needs predict (a detector or callback) or candidates")
    if predict is None:
        run_predict: Predict | None = None
        model = ModelInfo(name="precomputed")
    else:
        run_predict, model = _model_of(predict, config.detector.conf)
        _check_gate(predict, config)
    gsd, size, overlap = tiling_params(config, model)
    if overlap >= size:
        raise ConfigError(f"tiling.overlap {overlap} must be smaller than tiling.size {size}")
    with _open_pair(
        Path(flight),
        Path(baseline),
        gsd=gsd,
        radiometric=radiometric_mode(config, model),
        **config.input.pair_kwargs(),
        **config.coreg.pair_kwargs(),
    ) as pair:
        _require_compared(pair, Path(flight), Path(baseline))
        crs = pair.crs
        repairs: list[str] = []
        units_path = Path(units) if isinstance(units, (str, Path)) else config.units.path
        if isinstance(units, Units):
            unit_layers: Units | None = units
            units_path = units.path
            if str(unit_layers.crs) != str(crs):
                unit_layers = read_units(units.path, crs)
        elif units_path is not None:
            unit_layers = read_units(units_path, crs)
        else:
            unit_layers = None
        if unit_layers is not None:
            repairs += unit_layers.repairs
            check_units_cover(unit_layers, pair.footprints.flight, f"the flight {flight}", crs)
        permits = _optional_layer(
            config.permits, units_path, crs, repairs, unit_layers.permits if unit_layers else None
        )
        known = _optional_layer(
            config.known_buildings,
            units_path,
            crs,
            repairs,
            unit_layers.known_buildings if unit_layers else None,
        )

        if candidates is not None:
            raw, n_tiles, n_raw = precomputed_candidates(pair, candidates, size, overlap, progress)
        else:
            assert run_predict is not None
            set_total = getattr(progress, "set_total", None)
            windows = getattr(pair, "tile_windows", None)  # a stand-in pair may have none
            if set_total is not None and windows is not None:
                set_total(len(windows(size, overlap)))
            raw, n_tiles, n_raw = tile_candidates(
                pair,
                run_predict,
                size,
                overlap,
                config.detector.batch,
                config.tiling.prefetch,
                progress,
            )
        merged, n_absorbed = merge_candidates(raw, iosa=config.filters.merge_iosa)
        merged, n_parts = dissolve_touching(merged, config.filters.dissolve_gap_m)
        n_absorbed += n_parts
        footprints = pair.footprints
        registration = pair.registration
        failed = getattr(registration, "not_comparable", None)
        ids = resolve_identity(
            Path(flight), Path(baseline), flight_id=flight_id, flight_date=flight_date
        )
        flight_date = ids.flight_date or getattr(pair, "flight_date", None)
        selection = select_leads(
            merged,
            config.filters,
            coverage=footprints.common,
            not_comparable=failed,
            permits=permits,
            known_buildings=known,
            flight_date=flight_date,
        )
        provenance = Provenance(
            flight_id=ids.flight_id,
            baseline_id=ids.baseline_id,
            flight_date=flight_date.isoformat() if flight_date else "",
            coreg_status=str(getattr(registration, "status", "off")),
            model_name=model.name,
            model_sha256=model.sha256,
            thresholds=config.filters.thresholds_json(),
            software_version=software_version(),
        )
        leads = build_leads(selection, crs, provenance, unit_layers)
        if evidence_dir is not None and len(leads):
            _write_evidence(pair, leads, Path(evidence_dir), config.output.evidence_pad_m)
        result = LeadsResult(
            leads=leads,
            crs=crs,
            flight_id=provenance.flight_id,
            baseline_id=provenance.baseline_id,
            model=model,
            thresholds=config.filters.thresholds(),
            gsd_m=gsd,
            tile_px=size,
            overlap_px=overlap,
            n_tiles=n_tiles,
            n_candidates=n_raw,
            n_merged_away=n_absorbed,
            dropped=selection.counts,
            registration=registration_dict(registration),
            coverage_m2=coverage_dict(footprints, registration),
            coverage=usable_coverage(footprints, registration),
            not_comparable=getattr(registration, "not_comparable", None),
            unknown=getattr(footprints, "unknown", None),
            repairs=repairs,
            units=unit_layers,
            native_gsd_m=dict(getattr(pair, "native_gsd_m", None) or {}),
            flight_seen_at_m=getattr(pair, "flight_seen_at_m", None),
            baseline_detail_gsd_m=getattr(pair, "baseline_detail_gsd_m", None),
        )
    result.notes = gsd_notes(result.native_gsd_m, result.flight_seen_at_m)
    for note in result.notes:
        log.warning("flight %s: %s", result.flight_id, note)
    result.elapsed_s = round(time.perf_counter() - started, 3)
    log.info(
        "flight %s: %d tiles, %d candidates, %d merged away, %d leads",
        result.flight_id,
        n_tiles,
        n_raw,
        n_absorbed,
        len(leads),
    )
    return result


def _require_compared(pair: Any, flight: Path, baseline: Path) -> None:
    """Raise (exit 4) when nothing of the pair can be compared: never an empty success."""
    usable = getattr(pair, "usable", None)
    if usable is None or usable.area > 0:
        return
    reg = pair.registration
    raise CoregistrationError(
        f"{flight} vs {baseline}: nothing compared — {getattr(reg, 'message', '')}"
    )


def _write_evidence(pair: Any, leads: gpd.GeoDataFrame, evidence_dir: Path, pad_m: float) -> None:
    rel = evidence_dir.name
    before, after = [], []
    for lead_id, geom in zip(leads["lead_id"], leads.geometry, strict=True):
        b = inside(evidence_dir, f"{safe_name(lead_id, 'lead id')}_before.png")
        a = inside(evidence_dir, f"{safe_name(lead_id, 'lead id')}_after.png")
        write_evidence_pair(pair.read_window, geom, b, a, pad_m=pad_m)
        before.append(f"{rel}/{b.name}")
        after.append(f"{rel}/{a.name}")
    leads["evidence_before"] = before
    leads["evidence_after"] = after
