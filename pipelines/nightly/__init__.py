"""Nightly and batch operation: inbox -> baseline catalogue -> per-flight job -> ledger -> maps.

Modules: :mod:`~pipelines.nightly.inbox` (find flights), :mod:`~pipelines.nightly.catalogue`
(baseline imagery index and choice), :mod:`~pipelines.nightly.state` (processed flights, tile
checkpoints, lock, health), :mod:`~pipelines.nightly.distributed` (in-process or dask executors),
:mod:`~pipelines.nightly.runner` (the nightly pass), :mod:`~pipelines.nightly.batch` (manifests),
:mod:`~pipelines.nightly.job` (the backend interface), :mod:`~pipelines.nightly.adapters` (the
real backend) and :mod:`~pipelines.nightly.testing` (a stand-in backend for tests and demos).
"""

__all__: list[str] = []
