"""``buildwatch review``: analysts confirm or reject leads in the browser, beside the evidence.

A local web application (FastAPI under uvicorn) over one case ledger (GeoPackage or PostGIS):

* :mod:`~pipelines.review.queue` — the queue and a case's detail as plain data (pure over the
  ledger's frames: filters, order, neighbours, the units around a case);
* :mod:`~pipelines.review.app` — the application: pages, JSON API, chips, security (loopback
  by default, access token otherwise, CSRF token on every verdict, host check, CSP);
* :mod:`~pipelines.review.server` — uvicorn on a socket bound first, so the printed address is
  the real one; a thread-hosted variant for tests and notebooks.

The page and its script, style and the vendored Leaflet ship in ``templates/`` and ``static/``
beside it: nothing comes from the internet. It changes cases only through the ledger's public
functions (:mod:`pipelines.cases.verdicts`), so the ledger stays the one writer of cases.
"""

__all__: list[str] = []
