"""What each evaluation pair's baseline resolves, against what it declares.

    .venv/bin/python benchmarks/bench_baseline_detail.py [--json out.json]

Opens every pair the detector sets use (the synthetic test and other-season districts, WHU-CD
read at 0.2 m and DSIFN-CD at 0.5 m, as ``bench_real_pairs.py`` reads them) as ``detect`` opens
them with the default config and the shipped weights (the same ``open_pair`` settings, and the
baseline's colours matched or not as ``pipelines.detect.radiometric_mode`` says for the shipped
model card; ``--radiometric`` forces one) and prints each
epoch's declared native GSD, the baseline's *detail GSD* measured against the flight
(``ImageryPair.measure_baseline_detail``), the GSD the flight is then seen at (None: as flown)
and how long the measurement took. Nothing is detected; validation sets are only opened.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import _common  # (also puts the repository on sys.path)
from bench_nochange import ensure_district

from geo.tiles import open_pair
from pipelines.config import BuildwatchConfig

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
ROOT = Path(tempfile.gettempdir()) / "buildwatch-bench"


def _row(
    name: str, flight: Path, baseline: Path, config: BuildwatchConfig, radiometric: str
) -> dict:
    kwargs = config.coreg.pair_kwargs() | config.input.pair_kwargs()
    t0 = time.perf_counter()
    gsd = config.tiling.gsd or 0.2
    with open_pair(flight, baseline, gsd=gsd, radiometric=radiometric, **kwargs) as pair:
        opened = time.perf_counter() - t0
        t1 = time.perf_counter()
        pair.measure_baseline_detail()  # once more, timed alone
        row = {
            "pair": name,
            "radiometric": radiometric,
            "declared": pair.native_gsd_m,
            "detail_m": pair.baseline_detail_gsd_m,
            "flight_seen_at_m": pair.flight_seen_at_m,
            "detail_s": round(time.perf_counter() - t1, 2),
            "open_pair_s": round(opened, 2),
        }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--radiometric", choices=["histogram", "off"], default=None,
                    help="open the pairs so (default: as detect opens them for the shipped "
                    "weights)")  # fmt: skip
    args = ap.parse_args()
    config = BuildwatchConfig()
    radiometric = args.radiometric or _common.shipped_radiometric(config)
    rows = []
    for changes, seeds in ((True, (1001, 2002, 3003)), (False, (5001, 5002, 5003))):
        for seed in seeds:
            d = ensure_district(
                ROOT / ("districts" if changes else "nochange"), seed, 800.0, 0.1, changes
            )
            name = f"synthetic {'test' if changes else 'other-season'} {seed}"
            rows.append(_row(name, d / "flight.tif", d / "baseline.tif", config, radiometric))
    from geo.pairsets import georeference_pair, list_pairs

    for set_name, gsd in (("whu-cd", 0.2), ("dsifn-cd", 0.5)):  # as bench_real_pairs reads them
        root = DATA / set_name
        if not root.is_dir():
            print(f"({root} not present: skipped)")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            for p in list_pairs(root):
                gp = georeference_pair(root, p, Path(tmp) / Path(p).stem, gsd)
                rows.append(
                    _row(f"{set_name} {Path(p).stem}", gp.flight, gp.baseline, config, radiometric)
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
