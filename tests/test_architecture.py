"""The three rooms keep one direction: geo <- models <- pipelines (STYLE.md, ARCHITECTURE.md).

``geo/`` knows rasters, vectors and coordinates and never imports torch, ultralytics, models or
pipelines; ``models/`` never imports pipelines; the synthetic renderer core stays numpy + cv2 so
it runs where the training data is built (a GPU machine without GDAL).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


FORBIDDEN = {
    "geo": {"pipelines", "models", "torch", "torchvision", "ultralytics"},
    "models": {"pipelines"},
}


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_rooms_import_in_one_direction(room: str) -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_roots(path) & FORBIDDEN[room])
        for path in sorted((REPO / room).rglob("*.py"))
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"{room}/ imports what it must not: {offenders}"


def test_pipeline_flow_is_visible_in_the_folders() -> None:
    for folder in ("geo", "models", "pipelines/leads", "pipelines/cases", "pipelines/maps",
                   "pipelines/nightly", "notebooks", "benchmarks", "tests"):  # fmt: skip
        assert (REPO / folder).is_dir(), folder
    for doc in ("README.md", "ARCHITECTURE.md", "data/README.md"):
        assert (REPO / doc).stat().st_size > 1000, f"{doc} is missing or a stub"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_review_has_its_own_room_and_the_ledger_stays_the_one_writer() -> None:
    """pipelines/review reaches cases only through the ledger's public modules, never with SQL of
    its own; only its CLI command imports it (the district pipeline does not)."""
    allowed = {"pipelines.cases.store", "pipelines.cases.verdicts", "pipelines.cases.states"}
    for path in sorted((REPO / "pipelines" / "review").rglob("*.py")):
        mods = imported_modules(path)
        cases = {m for m in mods if m.startswith("pipelines.cases")}
        assert cases <= allowed, f"{path.name} reaches into the ledger: {sorted(cases - allowed)}"
        assert not {m for m in mods if m.startswith(("sqlalchemy", "sqlite3", "psycopg2"))}, path
    users = {
        str(p.relative_to(REPO))
        for p in (REPO / "pipelines").rglob("*.py")
        if "review" not in p.parts
        and any(m.startswith("pipelines.review") for m in imported_modules(p))
    }
    assert users == {"pipelines/commands/review.py"}, users


def test_the_city_has_its_own_room() -> None:
    """pipelines/city reads district ledgers through the ledger's public modules; nothing in the
    district pipeline imports it (only its CLI command and the city demo, which plays both the
    districts and the city and is itself imported only by the CLI command)."""
    allowed = {
        "pipelines.cases.store",
        "pipelines.cases.reports",
        "pipelines.cases.tables",
        "pipelines.cases.states",
        "pipelines.cases.cleared",
    }
    for path in sorted((REPO / "pipelines" / "city").rglob("*.py")):
        cases = {m for m in imported_modules(path) if m.startswith("pipelines.cases")}
        assert cases <= allowed, f"{path.name} reaches into the ledger: {sorted(cases - allowed)}"
    users = {
        str(p.relative_to(REPO))
        for p in (REPO / "pipelines").rglob("*.py")
        if "city" not in p.parts
        and any(m.startswith("pipelines.city.") for m in imported_modules(p))
    }
    assert users == {"pipelines/commands/city.py", "pipelines/city_demo.py"}, users
    demo_users = {
        str(p.relative_to(REPO))
        for p in (REPO / "pipelines").rglob("*.py")
        if "pipelines.city_demo" in imported_modules(p)
    }
    assert demo_users == {"pipelines/commands/city.py"}, demo_users
