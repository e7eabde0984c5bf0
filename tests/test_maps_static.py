"""Static outputs: township PNG maps and the monthly trend chart, with a CJK font or a clear skip."""

from __future__ import annotations

import logging
import os
import stat

import pytest

from pipelines.maps import static
from pipelines.maps.render import compute_priorities
from pipelines.maps.static import find_cjk_font, monthly_counts, township_png, trend_png
from tests._maps_fixtures import ARTIFACTS, cases, units  # noqa: F401

needs_font = pytest.mark.skipif(
    find_cjk_font() is None, reason="no CJK font (Debian fonts-noto-cjk)"
)


def test_monthly_counts(cases):  # noqa: F811
    counts = monthly_counts(cases)
    assert counts.to_numpy().sum() == len(cases)
    assert list(counts.index) == sorted(counts.index) and counts.index[-1] == "2024-06"


@needs_font
def test_pngs_written_with_cjk_font(units, cases):  # noqa: F811
    import matplotlib.image as mpimg

    prio = compute_priorities(cases, units)
    ARTIFACTS.mkdir(exist_ok=True)
    old_umask = os.umask(0o022)
    try:
        png = township_png(
            prio.units, prio.cases, "500104001", ARTIFACTS / "maps_township_500104001.png"
        )
        trend = trend_png(prio.cases, ARTIFACTS / "maps_trend.png")
    finally:
        os.umask(old_umask)
    assert png is not None and trend is not None
    assert {stat.S_IMODE(p.stat().st_mode) for p in (png, trend)} == {0o644}  # not mkstemp's 0600
    img = mpimg.imread(png)
    assert img.shape[0] > 500 and img[..., :3].std() > 0.05  # a picture, not a blank page
    with pytest.raises(KeyError, match="has no units"):
        township_png(prio.units, prio.cases, "999", ARTIFACTS / "never.png")


def test_no_cjk_font_warns_and_skips(tmp_path, units, cases, monkeypatch, caplog):  # noqa: F811
    monkeypatch.setattr(static, "find_cjk_font", lambda: None)
    with caplog.at_level(logging.WARNING, logger="pipelines.maps.static"):
        assert trend_png(cases, tmp_path / "t.png") is None
    assert "fonts-noto-cjk" in caplog.text
    assert not (tmp_path / "t.png").exists()
