"""Text from data that reaches HTML is escaped (pipelines.safety.escape_html): unit names with
markup in the map's hover tooltips, popups and legend never run, checked in headless Chromium
with every tooltip opened."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelines.maps.render import render_all
from tests._maps_fixtures import cases, units  # noqa: F401
from tests.test_maps_html import CHROMIUM, _chromium

PAYLOADS = [
    "<img src=x onerror=\"document.title='PWNED-IMG'\">",
    "\"><script>document.title='PWNED-SCRIPT'</script>",
    "</script><script>document.title='PWNED-BREAK'</script>",
]

_OPEN_TOOLTIPS = """<script>
window.addEventListener('load', function () { setTimeout(function () {
  var n = 0;
  Object.keys(window).filter(function (k) { return /^map_/.test(k); }).forEach(function (k) {
    window[k].eachLayer(function (l) {
      if (l.getTooltip && l.getTooltip()) { l.openTooltip(l.getBounds ? l.getBounds().getCenter() : undefined); n++; }
      if (l.getPopup && l.getPopup()) { l.openPopup(); }
    });
  });
  var pre = document.createElement('pre'); pre.id = 'bw-opened'; pre.textContent = String(n);
  document.body.appendChild(pre); }, 300); });
</script>"""


@pytest.fixture
def hostile_units(units):  # noqa: F811
    out = {k: v.copy() for k, v in units.items()}
    for layer in ("villages", "compounds"):
        if layer in out:
            col = next(c for c in out[layer].columns if c.endswith("name"))
            out[layer][col] = [PAYLOADS[i % len(PAYLOADS)] for i in range(len(out[layer]))]
    return out


def test_map_page_holds_no_raw_markup_from_the_data(tmp_path: Path, hostile_units, cases) -> None:  # noqa: F811
    paths = render_all(tmp_path / "maps", cases, hostile_units, offline=True)
    page = paths["district_map"].read_text(encoding="utf-8")
    for payload in PAYLOADS:
        assert payload not in page
    escaped = "&lt;img src=x onerror"  # as text; inside scripts also JSON-escaped
    assert escaped in page or escaped.replace("&", "\\u0026") in page


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (make sysdeps)")
def test_no_script_from_the_data_runs_in_chromium(tmp_path: Path, hostile_units, cases) -> None:  # noqa: F811
    paths = render_all(tmp_path / "maps", cases, hostile_units, offline=True)
    html = paths["district_map"]
    page = html.read_text(encoding="utf-8")
    probed = html.with_name("opened.html")
    probed.write_text(page.replace("</body>", _OPEN_TOOLTIPS + "</body>", 1), encoding="utf-8")
    run = _chromium(["--dump-dom", probed.as_uri()], tmp_path / "profile")
    opened = re.search(r'<pre id="bw-opened">(\d+)</pre>', run.stdout)
    assert opened and int(opened.group(1)) > 0, run.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", run.stdout, re.S)
    assert "PWNED" not in run.stdout.replace("PWNED-IMG\\'", "").split("<body")[0]
    assert title is None or "PWNED" not in title.group(1)
    # the names are shown, as text, in the opened tooltips
    assert "&lt;img src=x onerror" in run.stdout
