"""``make nightly-demo`` (``python -m pipelines.nightly.demo OUT``) works from a relative OUT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.nightly import demo


@pytest.mark.slow
def test_nightly_demo_with_a_relative_out_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert demo.main(["demo-output/nightly", "--size-m", "200"]) == 0
    printed = capsys.readouterr().out
    assert "FAILED" not in printed
    health = json.loads((tmp_path / "demo-output/nightly/output/health.json").read_text())
    assert health["last_run"]["status"] == "ok", health
    assert health["last_success"], health
    assert (tmp_path / "demo-output/nightly/output/ledger.gpkg").is_file()
