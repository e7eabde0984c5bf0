"""The analyst notebooks execute headless (nbclient) on the seeded sample district."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize("name", ["01_review_leads.ipynb", "02_thresholds_and_priorities.ipynb"])
def test_notebook_executes(name, monkeypatch):
    monkeypatch.delenv("BUILDWATCH_LEDGER", raising=False)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS.parent)}},
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    html = "".join(str(o.get("data", {}).get("text/html", "")) for o in outputs)
    if name.startswith("01"):
        assert "data:image/png;base64" in html  # the chips are shown
    else:
        assert "区县排名" in html  # the Chinese ranked table
