"""Hard negatives mined with the current weights: no-change chips on which the model still fires.

Bootstrapping (Sung & Poggio): render a *pool* of synthetic no-change chips (the same scene on
both dates, other season, sun, shadows, moved cars and vegetation; see
:mod:`models.datasets.synthetic`), run the weights being fine-tuned on every chip and keep the
chips where any detection scores at least ``conf``. Each kept chip is written with an empty label
file (a background image), ``repeat`` times under distinct dihedral transforms, so the next
training run sees exactly the scenes the model gets wrong. A ``val_fraction`` of the kept chips
goes to the ``val`` split (kept apart from the training copies), so validation measures them.

With ``real_pool`` (and a ``prepared`` fair-drone folder) the pool also holds *real* no-change
chips: windows of the training drone mosaics (never the held-out ones) against a copy degraded
like a satellite or aerial baseline (:mod:`models.datasets.fairdrone` with every chip unchanged).
Synthetic hard negatives alone taught the weights to ignore synthetic season change but made them
fire more on real degraded self-pairs (model card, stage 3), so both sources are mined together.

The pool is seeded apart from the training chips (``seed`` is offset by :data:`POOL_SEED_OFFSET`)
and is deleted once scored; only the kept chips stay.

>>> HardNegativeSpec(pool=8).conf
0.3
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geo.errors import ConfigError
from models.datasets.realism import dihedral
from models.datasets.synthetic import Renderer, SyntheticSpec, build_synthetic
from models.datasets.writer import read_chip, write_chip, write_data_yaml

__all__ = ["HardNegativeSpec", "POOL_SEED_OFFSET", "mine_hard_negatives"]

log = logging.getLogger(__name__)

#: added to the training seed for the pool, so pool scenes never repeat the training chips
POOL_SEED_OFFSET = 7919

Predict = Callable[[Sequence[np.ndarray]], Sequence[Any]]


@dataclass(frozen=True)
class HardNegativeSpec:
    """How many no-change chips to score, which to keep and how often to repeat them."""

    pool: int = 2000
    conf: float = 0.3
    repeat: int = 2
    val_fraction: float = 0.15
    size_px: int = 512
    working_gsd: float = 0.2
    gsd_range: tuple[float, float] = (0.12, 0.35)
    seed: int = 0
    renderer: Renderer = "geo"
    real_pool: int = 0
    prepared: str | None = None


def _max_scores(predict: Predict, files: list[Path], batch: int = 32) -> list[float]:
    scores: list[float] = []
    for i in range(0, len(files), batch):
        chips = [read_chip(f) for f in files[i : i + batch]]
        for cand in predict(chips):
            s = np.asarray(cand.score)
            scores.append(float(s.max()) if s.size else 0.0)
    return scores


def _source(chip: Path) -> str:
    """Which pool a scored chip came from (``_pool/real/...`` or ``_pool/syn/...``)."""
    return "real" if chip.parents[2].name == "real" else "synthetic"


def _tag(chip: Path) -> str:
    return "real_" if _source(chip) == "real" else ""


def mine_hard_negatives(
    root: str | Path, spec: HardNegativeSpec, predict: Predict, workers: int = 1
) -> Path:
    """Render, score and keep the hard no-change chips under ``root``; returns ``data.yaml``.

    ``predict`` maps a list of ``(h, w, 6)`` uint8 chips to one candidates object (with a
    ``score`` array) per chip, e.g. ``ChangeDetector.load(weights).predict`` with ``conf`` low
    enough to see ``spec.conf``. Writes ``mining.json`` with the pool size, the kept chips and
    their scores.
    """
    root = Path(root)
    pool_root = root / "_pool"
    if pool_root.exists():
        shutil.rmtree(pool_root)
    if spec.pool + spec.real_pool < 1:
        raise ConfigError("data.hard_negatives: pool and real_pool are both 0; nothing to mine")
    if spec.real_pool and not spec.prepared:
        raise ConfigError(
            "data.hard_negatives.real_pool needs data.fairdrone.prepared (a prepared fair-drone "
            "folder: buildwatch build-dataset fairdrone-prepare)"
        )
    t0 = time.monotonic()
    files: list[Path] = []
    if spec.pool:
        pool_spec = SyntheticSpec(
            n_train=spec.pool,
            n_val=0,
            size_px=spec.size_px,
            working_gsd=spec.working_gsd,
            gsd_range=spec.gsd_range,
            no_change_fraction=1.0,
            seed=spec.seed + POOL_SEED_OFFSET,
            renderer=spec.renderer,
        )
        build_synthetic(pool_root / "syn", pool_spec, workers)
        files += sorted((pool_root / "syn" / "images" / "train").glob("*.tif"))
    if spec.real_pool:
        from models.datasets.fairdrone import FairDroneSpec, build_fairdrone

        real_spec = FairDroneSpec(
            n_train=spec.real_pool,
            n_val=0,
            size_px=spec.size_px,
            working_gsd=spec.working_gsd,
            no_change_fraction=1.0,
            seed=spec.seed + POOL_SEED_OFFSET,
        )
        build_fairdrone(str(spec.prepared), pool_root / "real", real_spec, workers)
        files += sorted((pool_root / "real" / "images" / "train").glob("*.tif"))
    t_render = time.monotonic() - t0
    scores = _max_scores(predict, files)
    kept = [(f, s) for f, s in zip(files, scores, strict=True) if s >= spec.conf]
    rng = np.random.default_rng([spec.seed, POOL_SEED_OFFSET])
    n_val = int(round(len(kept) * spec.val_fraction)) if len(kept) > 1 else 0
    val_idx = set(rng.choice(len(kept), size=n_val, replace=False).tolist()) if n_val else set()
    written = {"train": 0, "val": 0}
    for i, (f, _) in enumerate(kept):
        chip = read_chip(f)
        split = "val" if i in val_idx else "train"
        copies = 1 if split == "val" else max(1, spec.repeat)
        for k in range(copies):
            flight, baseline, _boxes = dihedral(
                chip[:, :, :3], chip[:, :, 3:], [], k % 4, bool(k // 4 % 2)
            )
            write_chip(root, split, f"hn_{_tag(f)}{f.stem}_{k}", flight, baseline, [])
            written[split] += 1
    shutil.rmtree(pool_root, ignore_errors=True)
    report = {
        "spec": asdict(spec),
        "pool": len(files),
        "kept": len(kept),
        "kept_by_source": {
            src: sum(1 for f, _ in kept if _source(f) == src) for src in ("synthetic", "real")
        },
        "kept_fraction": round(len(kept) / max(1, len(files)), 4),
        "written": written,
        "render_seconds": round(t_render, 1),
        "total_seconds": round(time.monotonic() - t0, 1),
        "kept_scores": {f.stem: round(s, 3) for f, s in kept},
    }
    (root / "mining.json").write_text(json.dumps(report, indent=1))
    log.info("hard negatives: %d of %d no-change chips fire at >= %.2f; %d train + %d val chips",
             len(kept), len(files), spec.conf, written["train"], written["val"])  # fmt: skip
    (root / "images" / "train").mkdir(parents=True, exist_ok=True)
    (root / "images" / "val").mkdir(parents=True, exist_ok=True)
    return write_data_yaml(root)
