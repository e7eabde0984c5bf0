"""``buildwatch synth-district`` / ``synth-nights`` through the real entry point."""

from __future__ import annotations

import pytest

from pipelines.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_help(capsys):
    code, out, _ = _run(["synth-district", "--help"], capsys)
    assert code == 0 and "--seed" in out and "flight.tif" in out and "EPSG:4544" in out
    assert "--no-changes" in out
    code, out, _ = _run(["synth-nights", "--help"], capsys)
    assert code == 0 and "--nights" in out


def test_bad_arguments_one_line(capsys, tmp_path):
    code, _, err = _run(
        ["synth-district", str(tmp_path / "a"), "--seed", "1", "--size-m", "-5"], capsys
    )
    assert code == 2 and err.strip() == "error: --size-m -5: must be between 20 and 5000 metres"
    code, _, err = _run(
        ["synth-district", str(tmp_path / "a"), "--seed", "1", "--gsd", "0"], capsys
    )
    assert code == 2 and "--gsd 0: must be between" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(["synth-district", str(tmp_path / "a")], capsys)
    assert code == 2 and "Missing option '--seed'" in err
    code, _, err = _run(
        ["synth-nights", str(tmp_path / "a"), "--seed", "1", "--nights", "0"], capsys
    )
    assert code == 2 and "--nights 0: must be between 1 and 30" in err


def test_generate_then_refuse_existing(capsys, tmp_path):
    out = tmp_path / "d"
    code, text, _ = _run(
        ["synth-district", str(out), "--seed", "2", "--size-m", "80", "--gsd", "0.25"], capsys
    )
    assert code == 0 and "wrote synthetic district" in text and (out / "flight.tif").is_file()
    code, _, err = _run(["synth-district", str(out), "--seed", "2", "--size-m", "80"], capsys)
    assert code == 2 and "exists and is not empty; pass --overwrite" in err
    code, _, _ = _run(
        [
            "synth-district",
            str(out),
            "--seed",
            "3",
            "--size-m",
            "80",
            "--gsd",
            "0.25",
            "--overwrite",
        ],
        capsys,
    )
    assert code == 0


def test_no_changes_district_has_no_leads(capsys, tmp_path):
    import geopandas as gpd

    out = tmp_path / "quiet"
    argv = ["synth-district", str(out), "--seed", "9", "--size-m", "150", "--gsd", "0.2"]
    code, text, _ = _run([*argv, "--no-changes"], capsys)
    assert code == 0 and "wrote synthetic no-change district" in text
    truth = gpd.read_file(out / "truth.gpkg", layer="changes")
    assert len(truth) and not (truth["expected"] == "lead").any()
    assert set(truth["kind"]) <= {"moved_car", "vegetation", "shadow"}
    code, _, _ = _run([*argv[:2], "--seed", "9", "--size-m", "150", "--gsd", "0.2",
                       "--overwrite"], capsys)  # fmt: skip
    assert code == 0
    assert (gpd.read_file(out / "truth.gpkg", layer="changes")["expected"] == "lead").any()


def test_days_before_sets_the_baseline_date(capsys, tmp_path):
    import datetime as dt
    import json

    out = tmp_path / "year"
    argv = ["synth-district", str(out), "--seed", "9", "--size-m", "60", "--gsd", "0.25"]
    code, _, _ = _run([*argv, "--no-changes", "--days-before", "365"], capsys)
    assert code == 0
    meta = json.loads((out / "district.json").read_text(encoding="utf-8"))
    before = dt.date.fromisoformat(meta["before"]["date"])
    after = dt.date.fromisoformat(meta["after"]["date"])
    assert (after - before).days == 365
    code, _, err = _run([*argv[:2], "--seed", "9", "--days-before", "0"], capsys)
    assert code == 2 and err.strip() == "error: --days-before 0: must be between 1 and 3650 days"
