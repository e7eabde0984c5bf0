"""The city level (市指挥办): district ledgers gathered read-only into the city's reports.

* :mod:`~pipelines.city.rollup` — open every district ledger (GeoPackage files, or districts'
  rows in one PostGIS database) read-only, check each, and build the city's daily in-progress
  and monthly existing reports with a city total and the supervised cases that are overdue.

It reads ledgers only through the ledger's public functions (:class:`~pipelines.cases.store.
LedgerStore`, :mod:`pipelines.cases.reports`); the district pipeline never imports it.
"""

__all__: list[str] = []
