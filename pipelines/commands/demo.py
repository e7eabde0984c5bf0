"""``buildwatch demo OUT``: the whole main job on the built-in synthetic district (``make demo``)."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["command"]


@click.command("demo")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--size-m",
    type=float,
    default=None,
    help="Side of the synthetic district in metres  [default: 1000; 400 with --quick]",
)
@click.option("--quick", is_flag=True, help="A 400 m district: the same demo in about a minute.")
@click.option("--seed", type=int, default=7, show_default=True, help="District seed.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists and is not empty.")
def command(out: Path, size_m: float | None, quick: bool, seed: int, overwrite: bool) -> None:
    """Run the whole job on a synthetic district over two nights, into OUT.

    \b
    1. generate a district with two successive nights (OUT/district/, preview.png)
    2. night 1: detect leads (OUT/runs/night_01/), ingest them into OUT/ledger.gpkg
    3. the townships' updates (OUT/updates/*.csv, Chinese headers) imported, one case supervised
    4. night 2: detect and ingest (cases seen again, new, not observed, reopened)
    5. daily and monthly ledger reports per township and district (OUT/reports/)
    6. clearance priorities, hot spots and offline maps (OUT/maps/)
    7. OUT/demo_summary.json and OUT/README.txt (every file explained)

    The last line printed is the district map: an HTML file that opens with no internet.
    """
    from geo.synthetic.district import check_args
    from pipelines.demo import DEFAULT_SIZE_M, GSD_M, QUICK_SIZE_M, run_demo
    from pipelines.demo_readme import summary_lines

    size = size_m if size_m is not None else (QUICK_SIZE_M if quick else DEFAULT_SIZE_M)
    check_args(seed, size, GSD_M)
    result = run_demo(out, size_m=size, seed=seed, overwrite=overwrite, progress=click.echo)
    for line in summary_lines(result.summary):
        click.echo(line)
    click.echo(f"summary: {result.summary_json}")
    click.echo(f"README:  {result.readme}")
    click.echo(f"district map (opens offline in a browser):\n{result.district_map}")
