"""``make nightly-demo``: three synthetic nights landing in an inbox, one nightly pass per night.

Usage: ``python -m pipelines.nightly.demo OUT_DIR [--scheduler tcp://HOST:8786]``. Writes a
synthetic district sequence (``geo.synthetic.district.generate_nights``), an inbox, a baseline
catalogue folder and ``nightly.yaml`` under ``OUT_DIR``, then drops night 1, 2, 3 into the inbox
and runs the nightly pass after each (a final pass shows every flight skipped). Uses the shipped
detector (``models/weights/buildwatch-cd-yolo11n-seg.pt``, or ``detector.weights``) and prints which
model and runtime ran; only when it cannot load does it fall back to the stand-in change detector
of :mod:`pipelines.nightly.testing` (said so loudly: its leads are not model output).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from geo.errors import BuildwatchError
from pipelines.config import load_config
from pipelines.nightly.adapters import BuildwatchBackend
from pipelines.nightly.runner import run_nightly

__all__ = ["main"]

log = logging.getLogger(__name__)


def _backend(config_path: Path) -> BuildwatchBackend:
    """The real detector (shipped weights, or ``detector.weights``) when it loads, else the
    stand-in change detector, said so loudly."""
    config = load_config(config_path)
    backend = BuildwatchBackend(config)
    try:
        backend.detector()  # loads it once; workers and later calls reuse the process cache
        return backend
    except (BuildwatchError, ImportError) as exc:
        print(f"NOTE: no detector ({exc}); using the stand-in change detector", file=sys.stderr)
        return BuildwatchBackend(config, predict="pipelines.nightly.testing:fake_predict")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.nightly.demo")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--size-m", type=float, default=400.0)
    args = parser.parse_args(argv)
    from geo.synthetic.district import generate_nights

    root: Path = args.out_dir.resolve()  # the config below names files relative to itself
    if root.exists():
        shutil.rmtree(root)
    gen = generate_nights(root / "synthetic", seed=11, nights=3, size_m=args.size_m)
    (root / "inbox").mkdir()
    (root / "baselines").mkdir()
    shutil.copy(gen.baseline, root / "baselines" / "baseline.tif")
    config_path = root / "nightly.yaml"
    config_path.write_text(
        f"units:\n  path: {gen.units.relative_to(root)}\nnightly:\n  inbox: inbox\n  catalogue_dir: baselines\n"
        "  output_root: output\n"
        "  settle_seconds: 0  # the demo copies its flights in just before each pass\n",
        encoding="utf-8",
    )
    backend = _backend(config_path)
    config = backend.config
    print(f"detector: {backend.describe()}")
    for flight in [*gen.flights, None]:
        if flight is not None:
            shutil.copytree(flight.parent, root / "inbox" / flight.parent.name)
        summary = run_nightly(config, backend, scheduler=args.scheduler)
        print(summary.to_text())
    print(f"health: {config.nightly.health_file}\nledger: {backend._ledger_url()}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
