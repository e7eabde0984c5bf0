"""The one buildwatch configuration: a validated pydantic model loaded from YAML.

Every default lives here (and is mirrored, commented, in ``pipelines/configs/default.yaml``).
Unknown keys are refused with a :class:`~geo.errors.ConfigError` naming the key, so a typo never
silently falls back to a default. Relative input paths are resolved against the config file's folder; ``output.dir`` against the
working directory.

>>> cfg = BuildwatchConfig()
>>> cfg.filters.min_score["new_building"], cfg.output.chinese_headers
(0.3, False)
>>> BuildwatchConfig.model_validate({"filters": {"min_score": {"house": 0.5}}})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for BuildwatchConfig
...
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from geo.errors import ConfigError
from models.classes import CLASS_NAMES

__all__ = [
    "BuildwatchConfig",
    "DetectorConfig",
    "TilingConfig",
    "CoregConfig",
    "FiltersConfig",
    "UnitsConfig",
    "LayerSource",
    "OutputConfig",
    "load_config",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_MIN_AREA_M2",
    "DEFAULT_MIN_SCORE",
]

DEFAULT_CONFIG_PATH = Path(__file__).with_name("configs") / "default.yaml"


class _Strict(BaseModel):
    """Base for every section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class _Permissive(BaseModel):
    """Base for sections owned by other areas that are still being designed."""

    model_config = ConfigDict(extra="allow")


class ConsensusConfig(_Strict):
    """Scale consensus (:mod:`models.consensus`): a candidate stands only where the same tile
    seen coarser also finds one. Off by default; measured on the model card."""

    enabled: bool = False
    scale: float = Field(
        2 / 3,
        gt=0,
        lt=1,
        description="the coarse look: tile size x this (2/3: 0.2 m seen as 0.3 m)",
    )
    min_score: float = Field(0.1, ge=0, le=1, description="score a coarse candidate needs")
    min_overlap: float = Field(
        0.3, gt=0, le=1, description="share of the smaller of the two outlines that must overlap"
    )


class UnchangedConfig(_Strict):
    """Unchanged-structure test (:mod:`models.unchanged`): a candidate whose outline the
    baseline shows within ``radius_m`` (a leaning or misregistered standing roof, a field or
    roof that changed colour but not shape) is dropped. On by default; measured on the model
    card (*Unchanged-structure test*)."""

    enabled: bool = True
    radius_m: float = Field(
        3.0, ge=0, le=20, description="how far a standing roof may lean or be misregistered (m)"
    )
    min_ncc: float = Field(
        0.8, gt=0, le=1, description="best baseline match (normalised cross-correlation) that drops"
    )
    min_peak: float = Field(
        0.02,
        ge=0,
        le=1,
        description="how much the match must fall 0.4 m off in every direction (0: ridges count)",
    )
    lean_agree: int = Field(
        0,
        ge=0,
        le=50,
        description="lean consensus: also drop a candidate whose best baseline match lies 0.4 m or "
        "more off in a direction this many other candidates of its tile share (0: off)",
    )
    lean_min_ncc: float = Field(
        0.6, gt=0, le=1, description="best baseline match a candidate needs to take part in it"
    )


class DirectionConfig(_Strict):
    """Direction test (:mod:`models.direction`): each tile holding a candidate is looked at again
    with the dates swapped; a candidate the swapped look finds at least as surely (a demolished
    building, not a new one) is dropped. On by default with the shipped ensemble; measured on the
    model card (*Training*, items 25 and 27)."""

    enabled: bool = True
    margin: float = Field(
        0.0, gt=-1, lt=1, description="drop when the swapped score >= the candidate's + this"
    )
    min_iou: float = Field(
        0.3, gt=0, le=1, description="outline IoU at which a swapped candidate is the same place"
    )


#: the shipped ensemble's other members (models/weights/): a second toned-roof YOLO11n-seg (item
#: 23, seed 4) and the Siamese EfficientNet-Lite0 detector (item 20); their weights against the
#: main detector's (3:3:2, the two YOLOs looking at every tile) and the measurements behind them:
#: model card, *Training* item 27 and "Model ensemble"
DEFAULT_ENSEMBLE_MEMBERS = (
    "buildwatch-cd-yolo11n-seg-seed4.pt",
    "buildwatch-cd-efflite0-siamese-seg.pt",
)
DEFAULT_MEMBER_WEIGHTS = (3.0, 3.0, 2.0)
DEFAULT_FRONT = 2


class WholesConfig(_Strict):
    """Whole over parts (:class:`models.ensemble.Wholes`): where another member outlines a whole
    structure that the main detector outlines as parts, the whole's outline is the lead. Off by
    default; measured on the model card (*A whole building over its parts*)."""

    enabled: bool = False
    min_parts: int = Field(2, ge=1, le=20, description="main-detector parts a whole must hold")
    inside: float = Field(
        0.6, ge=0, le=1, description="share of a part's outline that must lie inside the whole"
    )
    min_score: float = Field(
        0.25, ge=0, le=1, description="the whole's own member score at least this"
    )
    min_cover: float = Field(
        0.2, ge=0, le=1, description="share of the whole the parts must cover together"
    )


class EnsembleConfig(_Strict):
    """Model ensemble (:mod:`models.ensemble`): more detectors look at each tile and a
    candidate's score is the weighted mean of theirs (0 where one found nothing). On with the
    shipped weights; measured on the model card (*Model ensemble*)."""

    enabled: bool | None = Field(
        None, description="None: on with the shipped weights, off with any other weights"
    )
    weights: list[Path] = Field(
        default_factory=lambda: [Path(p) for p in DEFAULT_ENSEMBLE_MEMBERS],
        description="the other members' weights files (a bare name: in models/weights/)",
    )
    member_weights: list[float] | None = Field(
        default_factory=lambda: list(DEFAULT_MEMBER_WEIGHTS),
        description="one weight per detector, the main one first; None = equal",
    )
    min_iou: float = Field(
        0.3, gt=0, le=1, description="outline IoU at which two members' candidates are one"
    )
    member_conf: float = Field(
        0.05, ge=0, lt=1, description="floor each member predicts at (its misses count 0)"
    )
    gate: float | Literal["auto"] | None = Field(
        "auto",
        description="the others look only at tiles where a front detector scores >= this; "
        "auto: the highest gate that loses no lead at filters.min_score; None: every tile",
    )
    front: int = Field(
        DEFAULT_FRONT,
        ge=1,
        description="how many detectors, the main one first, look at every tile",
    )
    wholes: WholesConfig = Field(default_factory=WholesConfig)

    @field_validator("gate")
    @classmethod
    def _gate_range(cls, v: float | str | None) -> float | str | None:
        if isinstance(v, float | int) and not 0 <= v < 1:
            raise ValueError(f"gate must be in [0, 1), 'auto' or null, got {v!r}")
        return v

    @model_validator(mode="after")
    def _members_named(self) -> EnsembleConfig:
        if "weights" in self.model_fields_set:
            # the default weighting and front belong to the default members: other members are
            # weighed equally with only the main detector in front unless the config says
            if "member_weights" not in self.model_fields_set:
                self.member_weights = None
            if "front" not in self.model_fields_set:
                self.front = 1
        if self.weights and self.front > len(self.weights):
            raise ValueError(
                f"detector.ensemble.front is {self.front} but there are {len(self.weights) + 1} "
                "detectors; at least one must be left behind the front (front <= "
                f"{len(self.weights)})"
            )
        if self.enabled and not self.weights:
            raise ValueError("detector.ensemble.enabled needs detector.ensemble.weights")
        if self.member_weights is not None and len(self.member_weights) != len(self.weights) + 1:
            raise ValueError(
                f"detector.ensemble.member_weights has {len(self.member_weights)} values; "
                f"give one per detector: the main one and {len(self.weights)} in weights"
            )
        return self


class DetectorConfig(_Strict):
    """Which model to run and where."""

    weights: Path | None = Field(None, description="weights file; None = the shipped weights")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: Literal["auto", "torch", "onnx", "openvino"] = "auto"
    conf: float = Field(0.1, ge=0.0, le=1.0, description="detector confidence floor")
    batch: int = Field(4, ge=1, description="tiles per predict call")
    precision: Literal["auto", "f32"] = Field(
        "auto", description="OpenVINO CPU arithmetic: auto (bf16 where the CPU has it) or f32"
    )
    ensemble: EnsembleConfig = EnsembleConfig()
    direction: DirectionConfig = DirectionConfig()
    consensus: ConsensusConfig = ConsensusConfig()
    unchanged: UnchangedConfig = UnchangedConfig()


class TilingConfig(_Strict):
    """Tile geometry; None means "take it from the model card"."""

    gsd: float | None = Field(None, gt=0, description="working GSD m/px (card: working_gsd_m)")
    size: int | None = Field(None, ge=32, description="tile size px (card: imgsz)")
    overlap: int | None = Field(None, ge=0, description="tile overlap px (card: overlap)")
    prefetch: int = Field(2, ge=0)


#: the coarsest native flight / baseline pixel (m) accepted by default (model card, *Input GSD*):
#: the flight's where the shipped detector's held-out recall falls below half
#: (``benchmarks/bench_input_gsd.py``), the baseline's where the real no-change mosaics through the
#: product stop co-registering and flood with false leads
#: (``benchmarks/bench_real_pairs.py --nochange-baseline-gsd``)
DEFAULT_MAX_FLIGHT_GSD_M: float | None = 1.0
DEFAULT_MAX_BASELINE_GSD_M: float | None = 0.6
DEFAULT_MATCH_BASELINE_ABOVE_M: float | None = 0.4


class InputConfig(_Strict):
    """Limits checked at the door, before any work (see geo.raster.open_raster and
    geo.tiles.check_native_gsd)."""

    max_pixels: int = Field(
        3_600_000_000,
        gt=0,
        description="largest raster (width x height) accepted; a bigger declared size is refused",
    )
    max_flight_gsd_m: float | None = Field(
        DEFAULT_MAX_FLIGHT_GSD_M,
        gt=0,
        description="a flight whose native pixel is coarser (m) is refused: the coarsest at "
        "which the shipped detector was measured to find buildings (model card, Input GSD); "
        "null: any",
    )
    max_baseline_gsd_m: float | None = Field(
        DEFAULT_MAX_BASELINE_GSD_M,
        gt=0,
        description="a baseline whose native pixel is coarser (m) is refused (as "
        "max_flight_gsd_m); null: any",
    )
    match_baseline_above_m: float | None = Field(
        DEFAULT_MATCH_BASELINE_ABOVE_M,
        gt=0,
        description="when the baseline's native pixel (or the detail it shows against the flight, "
        "where that is 1.25x coarser) is coarser than this (m) and than the flight's, detection "
        "sees the flight at the baseline's GSD, so detail only the flight "
        "resolves is not read as change (model card, Matching the flight to a coarse "
        "baseline); evidence chips keep the flight as flown; null: never",
    )
    match_full_to_m: float | None = Field(
        None,
        gt=0,
        description="the flight is matched fully to a baseline resolving up to this (m); beyond, "
        "at least this and half-way in log GSD between the baseline's declared pixel and what it "
        "resolves (model card, How far to match); null: always fully",
    )

    def pair_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``geo.tiles.open_pair`` this section sets."""
        return {
            "max_pixels": self.max_pixels,
            "max_flight_gsd_m": self.max_flight_gsd_m,
            "max_baseline_gsd_m": self.max_baseline_gsd_m,
            "match_baseline_above_m": self.match_baseline_above_m,
            "match_full_to_m": self.match_full_to_m,
        }


class CoregConfig(_Strict):
    """Co-registration of the baseline onto the flight (see geo.tiles.open_pair)."""

    mode: str = Field("auto", description="passed to open_pair(coreg=...)")
    max_residual_px: float = Field(
        1.0,
        gt=0,
        description="gate: median residual after correction above this (px of the coarser "
        "native GSD, never finer than the working GSD) means the pair is misregistered",
    )
    max_window_residual_px: float = Field(
        2.5,
        gt=0,
        description="a sub-window whose own residual (same px) is above this is not comparable",
    )
    min_psr: float = Field(
        10.0,
        gt=0,
        description="significance (peak-to-sidelobe ratio) a sub-window's correlation peak needs "
        "to count as evidence; with fewer than 3 such sub-windows the pair is 'unverified'",
    )
    local: bool = Field(
        True, description="local residual-shift field where misregistration varies (open_pair)"
    )
    radiometric: Literal["auto", "histogram", "off"] = Field(
        "auto",
        description="baseline colour normalisation: auto = as the model card says it was trained",
    )

    def pair_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``geo.tiles.open_pair`` this section sets (not radiometry,
        which also depends on the model: ``pipelines.detect.radiometric_mode``)."""
        return {
            "coreg": self.mode,
            "max_residual_px": self.max_residual_px,
            "max_window_residual_px": self.max_window_residual_px,
            "min_psr": self.min_psr,
            "local": self.local,
        }


#: default thresholds per class (a class missing from a config file gets these)
DEFAULT_MIN_AREA_M2: dict[str, float] = {"new_building": 4.0, "construction": 6.0}
#: min_score calibrated for the shipped weights on held-out pseudo pairs (`buildwatch calibrate`:
#: the best F1 that keeps no-change chips at <= 1 false lead per km²; the curve is in the card,
#: models/weights/buildwatch-cd-yolo11n-seg.md) -- never on the sets the F1 is reported for
DEFAULT_MIN_SCORE: dict[str, float] = {"new_building": 0.30, "construction": 0.80}


class FiltersConfig(_Strict):
    """Which merged candidates become leads."""

    min_area_m2: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MIN_AREA_M2))
    min_score: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MIN_SCORE))
    merge_iosa: float = Field(
        0.5, gt=0, le=1, description="merge two candidates when intersection/smaller area >= this"
    )
    dissolve_gap_m: float = Field(
        0.3, ge=0, description="outlines of one class closer than this are one structure"
    )
    min_coverage_fraction: float = Field(
        0.5, ge=0, le=1, description="share of a lead inside valid two-epoch coverage"
    )
    permit_min_overlap: float = Field(
        0.5, ge=0, le=1, description="share of a lead inside a permit polygon to be 'permitted'"
    )
    known_building_min_overlap: float = Field(
        0.3, ge=0, le=1, description="share of a lead on a known building to flag it"
    )

    @field_validator("min_area_m2", "min_score")
    @classmethod
    def _known_classes(cls, value: dict[str, float], info: Any) -> dict[str, float]:
        unknown = sorted(set(value) - set(CLASS_NAMES))
        if unknown:
            raise ValueError(f"unknown class {unknown[0]!r}; classes are {list(CLASS_NAMES)}")
        if any(v < 0 for v in value.values()):
            raise ValueError("thresholds must be >= 0")
        defaults = DEFAULT_MIN_AREA_M2 if info.field_name == "min_area_m2" else DEFAULT_MIN_SCORE
        return {c: float(value.get(c, defaults[c])) for c in CLASS_NAMES}

    def thresholds(self) -> dict[str, Any]:
        """The thresholds that decide what a lead is, per class (recorded as provenance)."""
        return {
            "min_area_m2": dict(self.min_area_m2),
            "min_score": dict(self.min_score),
            "merge_iosa": self.merge_iosa,
            "dissolve_gap_m": self.dissolve_gap_m,
            "min_coverage_fraction": self.min_coverage_fraction,
            "permit_min_overlap": self.permit_min_overlap,
            "known_building_min_overlap": self.known_building_min_overlap,
        }

    def thresholds_json(self) -> str:
        return json.dumps(self.thresholds(), sort_keys=True, separators=(",", ":"))


class UnitsConfig(_Strict):
    """The administrative units GeoPackage (layers: see data/README.md)."""

    path: Path | None = None


class LayerSource(_Strict):
    """An optional polygon layer: a file, a layer name, or both.

    With no ``path`` the layer is read from the units GeoPackage when it has one by that name.
    """

    path: Path | None = None
    layer: str | None = None


class OutputConfig(_Strict):
    """Where and how ``buildwatch run`` writes."""

    dir: Path = Path("buildwatch-output")
    chinese_headers: bool = False
    evidence: bool = True
    evidence_pad_m: float = Field(6.0, ge=0)


class LedgerConfig(_Strict):
    """The case ledger (pipelines.cases): where it is and how ingests match leads to cases."""

    url: str | None = Field(
        None,
        description="GeoPackage path (relative to the config) or postgresql://...; None = none",
    )
    lock_timeout_s: float = Field(30.0, gt=0, description="a writer waits this long for another")
    min_overlap: float = Field(
        0.1, gt=0, le=1, description="lead is a sighting of a case at intersection/smaller >= this"
    )
    attach_distance_m: float = Field(
        30.0,
        ge=0,
        le=500,
        description="a report or lead this close to an open reported case attaches to it, m",
    )
    report_radius_m: float = Field(
        10.0, gt=0, le=200, description="a reported point becomes a disc of this radius, m"
    )


class PriorityWeights(_Strict):
    """Weights of the clearance-priority score (see pipelines.maps.priorities; any >= 0, sum > 0)."""

    density: float = Field(0.35, ge=0, description="open cases per hectare of the unit")
    open_cases: float = Field(0.20, ge=0, description="open cases in the unit")
    new_area: float = Field(0.15, ge=0, description="m2 of open new structures")
    growth: float = Field(0.20, ge=0, description="cases first seen in the last growth window")
    confirmed: float = Field(0.10, ge=0, description="share of cases confirmed by officers")


class MapsConfig(_Strict):
    """Clearance priorities, hot spots and maps (``buildwatch priorities`` / ``map``)."""

    weights: PriorityWeights = Field(default_factory=PriorityWeights)
    growth_window_days: int = Field(30, ge=1, description="'growth since the previous month'")
    priority_bins: tuple[float, float] = Field(
        (30.0, 60.0), description="score limits of the medium and high priority classes"
    )
    hotspot_eps_m: float = Field(150.0, gt=0, description="cluster link distance, metres")
    hotspot_min_samples: int = Field(3, ge=2, description="cases within eps to seed a hot spot")
    hotspot_open_only: bool = Field(True, description="cluster open cases only")
    offline: bool = Field(True, description="maps with no CDN/tiles: Leaflet inlined")
    embed_chips: bool = Field(True, description="evidence chips inlined as base64 in popups")
    overlay_max_px: int = Field(1600, ge=64, description="longest side of the flight overlay")


class NightlyConfig(_Strict):
    """Scheduled and batch processing (``buildwatch nightly`` / ``batch``; pipelines.nightly)."""

    inbox: Path = Field(Path("inbox"), description="folder where new flights land")
    catalogue_dir: Path = Field(Path("baselines"), description="folder of baseline rasters")
    output_root: Path = Field(Path("nightly-output"), description="one sub-folder per flight")
    catalogue_file: Path | None = Field(None, description="default <output_root>/catalogue.geojson")
    state_db: Path | None = Field(None, description="default <output_root>/nightly-state.sqlite")
    lock_file: Path | None = Field(None, description="default <output_root>/nightly.lock")
    health_file: Path | None = Field(None, description="default <output_root>/health.json")
    scheduler: str | None = Field(None, description="tcp://HOST:8786; None = in-process")
    tile_batch: int = Field(16, ge=1, description="tiles per task (and per checkpoint commit)")
    min_coverage: float = Field(0.5, gt=0, le=1, description="baseline must cover this share")
    poll_seconds: float = Field(600.0, gt=0, description="inbox poll interval without --once")
    ignore: list[str] = Field(default_factory=list, description="inbox name globs to skip")
    settle_seconds: float = Field(
        60.0,
        ge=0,
        description="a flight whose files changed more recently than this is still being copied: "
        "it waits for a later pass",
    )
    refresh_maps: bool = Field(True, description="re-render maps and reports after ingesting")

    def resolve_paths(self, base: Path) -> NightlyConfig:
        """A copy with relative paths taken relative to ``base`` and defaults filled in."""
        root = self.output_root if self.output_root.is_absolute() else base / self.output_root

        def fix(p: Path | None, default: str) -> Path:
            return root / default if p is None else p if p.is_absolute() else base / p

        return self.model_copy(
            update={
                "inbox": fix(self.inbox, ""),
                "catalogue_dir": fix(self.catalogue_dir, ""),
                "output_root": root,
                "catalogue_file": fix(self.catalogue_file, "catalogue.geojson"),
                "state_db": fix(self.state_db, "nightly-state.sqlite"),
                "lock_file": fix(self.lock_file, "nightly.lock"),
                "health_file": fix(self.health_file, "health.json"),
            }
        )


class BuildwatchConfig(_Strict):
    """The whole configuration of one buildwatch job."""

    baseline: Path | None = Field(None, description="baseline raster when --baseline is not given")
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    tiling: TilingConfig = Field(default_factory=TilingConfig)
    coreg: CoregConfig = Field(default_factory=CoregConfig)
    input: InputConfig = Field(default_factory=InputConfig)
    filters: FiltersConfig = Field(default_factory=FiltersConfig)
    units: UnitsConfig = Field(default_factory=UnitsConfig)
    permits: LayerSource = Field(default_factory=lambda: LayerSource(layer="permits"))
    known_buildings: LayerSource = Field(
        default_factory=lambda: LayerSource(layer="known_buildings")
    )
    output: OutputConfig = Field(default_factory=OutputConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    maps: MapsConfig = Field(default_factory=MapsConfig)
    nightly: NightlyConfig = Field(default_factory=NightlyConfig)

    def resolve_paths(self, base: Path) -> BuildwatchConfig:
        """Return a copy whose relative paths are taken relative to ``base``."""

        def fix(p: Path | None) -> Path | None:
            return p if p is None or p.is_absolute() else (base / p)

        data = self.model_copy(deep=True)
        data.baseline = fix(data.baseline)
        data.detector.weights = fix(data.detector.weights)
        data.units.path = fix(data.units.path)
        data.permits.path = fix(data.permits.path)
        data.known_buildings.path = fix(data.known_buildings.path)
        data.nightly = data.nightly.resolve_paths(base)
        if data.ledger.url and "://" not in data.ledger.url:
            data.ledger.url = str(fix(Path(data.ledger.url)))
        return data


def _describe(exc: ValidationError, source: str) -> str:
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            problems.append(
                f"unknown key {key!r} (check spelling; see pipelines/configs/default.yaml)"
            )
        else:
            value = err.get("input")
            problems.append(f"{key}: {err['msg']} (got {value!r})")
    return f"{source}: " + "; ".join(problems)


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> BuildwatchConfig:
    """Load and validate a YAML config (``None`` = all defaults), then apply ``overrides``.

    ``overrides`` is a nested dict of the same shape (e.g. from CLI options). Raises
    :class:`ConfigError` naming the file and the offending key or value.
    """
    raw: dict[str, Any] = {}
    source = "config"
    base = Path.cwd()
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found; pass an existing YAML file")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc}); fix the syntax") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"{path}: top level must be a mapping of sections, got {type(loaded).__name__}"
            )
        raw = loaded
        base = path.resolve().parent
    for section, values in (overrides or {}).items():
        if isinstance(values, dict):
            current = raw.get(section) or {}
            if not isinstance(current, dict):
                raise ConfigError(f"{source}: section {section!r} must be a mapping")
            raw[section] = {**current, **values}
        else:
            raw[section] = values
    try:
        cfg = BuildwatchConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc
    return cfg.resolve_paths(base)
