"""Interactive maps: offline HTML (no CDN), opened in headless Chromium with the network disabled."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

from geo.errors import RasterError
from pipelines.maps.folium_map import build_map, remote_assets, save_map
from pipelines.maps.overlay import read_flight_overlay
from pipelines.maps.render import compute_priorities, render_all
from tests._maps_fixtures import ARTIFACTS, cases, units, write_flight  # noqa: F401

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian chromium not installed (make sysdeps)"
)

_PROBE = """<script>
window.__bwErrors = [];
window.addEventListener('error', function (e) { window.__bwErrors.push(String(e.message || e)); });
(function () { var orig = console.error; console.error = function () {
  window.__bwErrors.push(Array.prototype.join.call(arguments, ' ')); orig.apply(console, arguments); }; })();
window.addEventListener('load', function () { setTimeout(function () {
  var res = performance.getEntriesByType('resource').map(function (r) { return r.name; });
  var out = {leaflet: typeof L !== 'undefined',
    paths: document.querySelectorAll('path.leaflet-interactive').length,
    images: document.querySelectorAll('img.leaflet-image-layer').length,
    layer_control: document.querySelectorAll('.leaflet-control-layers-overlays label').length,
    title: (document.querySelector('.bw-title') || {}).textContent || '',
    legend: (document.querySelector('.bw-legend') || {}).textContent || '',
    remote: res.filter(function (n) { return !/^(file|data|blob):/.test(n); }),
    errors: window.__bwErrors};
  var pre = document.createElement('pre'); pre.id = 'bw-probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre); }, 400); });
</script>"""


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--mute-audio",
        f"--user-data-dir={profile}",
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=8000",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


def probe_map(html: Path, tmp: Path, screenshot: Path | None = None) -> dict:
    """Open ``html`` in headless Chromium (no network); return what the JS probe saw."""
    page = html.read_text(encoding="utf-8")
    probed = html.with_name(f"probe_{html.name}")
    probed.write_text(page.replace("<head>", "<head>" + _PROBE, 1), encoding="utf-8")
    run = _chromium(["--dump-dom", probed.as_uri()], tmp / "profile-dom")
    found = re.search(r'<pre id="bw-probe">(.*?)</pre>', run.stdout, re.S)
    assert found, f"probe did not run; chromium stderr:\n{run.stderr[-3000:]}"
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    result["console"] = [
        ln for ln in run.stderr.splitlines() if "CONSOLE" in ln and "Uncaught" in ln
    ]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        shot = _chromium(
            [
                "--hide-scrollbars",
                "--window-size=1280,900",
                f"--screenshot={screenshot}",
                html.as_uri(),
            ],
            tmp / "profile-shot",
        )
        assert screenshot.is_file(), shot.stderr[-2000:]
    return result


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_offline_html_is_self_contained(tmp_path, units, cases, umask_022):  # noqa: F811
    prio = compute_priorities(cases, units)
    offline = save_map(
        build_map(prio.units, prio.cases, prio.hotspots, offline=True), tmp_path / "off.html"
    )
    assert stat.S_IMODE(offline.stat().st_mode) == 0o644  # a web server can read it (not 0600)
    page = offline.read_text(encoding="utf-8")
    assert remote_assets(page) == []
    assert (
        "Leaflet 1.9.4" in page and "cdn.jsdelivr" not in page and "data:image/png;base64" in page
    )
    for case_id in prio.cases["case_id"]:
        assert case_id in page
    online = save_map(
        build_map(prio.units, prio.cases, offline=False), tmp_path / "on.html", offline=False
    )
    assert remote_assets(online.read_text(encoding="utf-8"))  # the check does see CDN tags


def test_chips_relative_paths(tmp_path, units, cases):  # noqa: F811
    prio = compute_priorities(cases, units)
    fmap = build_map(prio.units, prio.cases, embed_chips=False, html_dir=tmp_path)
    page = save_map(fmap, tmp_path / "rel.html").read_text(encoding="utf-8")
    assert re.search(r"\.\./[^'\"]*BW-500104-000001_before\.png", page)


def test_flight_overlay(tmp_path, units):  # noqa: F811
    flight = write_flight(units, tmp_path / "flight.tif")
    ov = read_flight_overlay(flight, max_px=200)
    assert ov.rgba.dtype == np.uint8 and ov.rgba.shape[2] == 4 and max(ov.rgba.shape[:2]) <= 200
    (south, west), (north, east) = ov.bounds
    assert 29.0 < south < north < 30.5 and 104 < west < east < 107
    assert ov.rgba[..., 3].max() == 255 and ov.rgba[..., :3].max() >= 200  # the bright square
    import rasterio

    one = tmp_path / "one.tif"
    with (
        rasterio.open(flight) as src,
        rasterio.open(one, "w", **{**src.profile, "count": 1}) as dst,
    ):
        dst.write(src.read(1), 1)
    with pytest.raises(RasterError, match="1 band.*needs RGB"):
        read_flight_overlay(one)


@needs_chromium
def test_offline_district_map_renders_in_chromium(tmp_path, units, cases):  # noqa: F811
    flight = write_flight(units, tmp_path / "flight.tif")
    out = tmp_path / "out"
    paths = render_all(out, cases, units, flight=flight, offline=True)
    prio = compute_priorities(cases, units)
    shot = ARTIFACTS / "maps_district_offline.png"
    result = probe_map(paths["district_map"], tmp_path, screenshot=shot)
    assert result["leaflet"] is True
    assert result["errors"] == [] and result["console"] == []
    assert result["remote"] == []
    assert result["paths"] == len(prio.units) + len(prio.cases) + len(prio.hotspots)
    assert result["images"] == 1  # the flight overlay
    assert result["layer_control"] == 5
    assert "整治优先级" in result["legend"] and "热点片区" in result["legend"]
    assert result["title"].startswith("大渡口区")
    assert shot.stat().st_size > 10_000


@needs_chromium
def test_township_map_draws_its_units_only(tmp_path, units, cases):  # noqa: F811
    paths = render_all(tmp_path / "out", cases, units, township="500104002")
    assert "township_map:500104001" not in paths
    prio = compute_priorities(cases, units)
    town = prio.units.loc[prio.units["township_code"] == "500104002"]
    n_cases = int(prio.cases["unit_code"].isin(town["unit_code"]).sum())
    n_hot = int(prio.hotspots["township_codes"].str.contains("500104002").sum())
    result = probe_map(
        paths["township_map:500104002"],
        tmp_path,
        screenshot=ARTIFACTS / "maps_township_offline.png",
    )
    assert result["errors"] == [] and result["remote"] == []
    assert result["paths"] == len(town) + n_cases + n_hot
