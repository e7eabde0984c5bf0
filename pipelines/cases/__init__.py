"""The case ledger: cases that persist across flights, in the notice's two ledgers.

* :mod:`~pipelines.cases.states` — the pure state machine (in-progress, existing, rejected).
* :mod:`~pipelines.cases.store` — the store: a GeoPackage file or PostgreSQL/PostGIS, one code path.
* :mod:`~pipelines.cases.matching` / :mod:`~pipelines.cases.ingest` — a flight's leads → cases.
* :mod:`~pipelines.cases.imports` — officers' updates (CSV/XLSX), supervision, overdue list.
* :mod:`~pipelines.cases.reports` — daily and monthly reports per township and district.
* :mod:`~pipelines.cases.feedback` — confirmed/rejected cases as training labels.

Submodules are imported on use (``from pipelines.cases.store import LedgerStore``).
"""

__all__: list[str] = []
