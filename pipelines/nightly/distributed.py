"""Where tile batches run: in this process (default) or on a dask.distributed cluster.

Both executors take the same tasks — ``(backend, pair, tile indices)``, values only — and the
client merges results by tile index, so the dask path gives exactly the in-process result
whatever order the workers finish in. Workers open the flight/baseline pair themselves and keep
their model loaded between tasks (the backend caches it per process).

>>> with make_executor(None) as ex:
...     [f.result() for f in ex.as_completed([ex.submit(pow, 2, 5)])]
[32]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from geo.errors import ConfigError
from models.candidates import Candidates
from pipelines.nightly.job import FlightBackend, PairRef
from pipelines.nightly.state import TileCheckpoint

__all__ = [
    "Executor",
    "InProcessExecutor",
    "DaskExecutor",
    "make_executor",
    "predict_batch",
    "PendingFlight",
    "submit_flight",
    "collect_flight",
    "batches",
]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (flight_id, tiles done, tiles total)


class _Result(Protocol):
    def result(self) -> Any: ...


class Executor(Protocol):
    """Submit work now, collect results as they complete."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Result: ...

    def as_completed(self, futures: Sequence[_Result]) -> Iterator[_Result]: ...


@dataclass
class _Deferred:
    """An in-process 'future': runs when its result is first asked for."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    _value: Any = field(default=None, init=False)
    _done: bool = field(default=False, init=False)

    def result(self) -> Any:
        if not self._done:
            self._value, self._done = self.fn(*self.args), True
        return self._value


class InProcessExecutor:
    """Runs each task in this process, in submission order, when collected."""

    workers = 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Deferred:
        return _Deferred(fn, args)

    def as_completed(self, futures: Sequence[_Result]) -> Iterator[_Result]:
        yield from futures


class DaskExecutor:
    """Sends tasks to a dask.distributed scheduler (``tcp://HOST:8786``) or an open Client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info(n_workers=-1).get("workers", {})))

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Result:
        return self.client.submit(fn, *args, pure=False)  # type: ignore[no-any-return]

    def as_completed(self, futures: Sequence[_Result]) -> Iterator[_Result]:
        from distributed import as_completed

        yield from as_completed(list(futures), loop=self.client.loop)


@contextmanager
def make_executor(scheduler: str | None, *, timeout: float = 30.0) -> Iterator[Executor]:
    """An executor for ``scheduler`` (``None`` = in-process), closed on exit.

    Raises:
        ConfigError: the scheduler address is malformed or nothing answers there.
    """
    if not scheduler:
        yield InProcessExecutor()
        return
    if "://" not in scheduler:
        raise ConfigError(f"scheduler {scheduler!r} must look like tcp://HOST:8786")
    from distributed import Client

    try:
        client = Client(scheduler, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(
            f"cannot reach the dask scheduler at {scheduler} ({exc}); start it with "
            "`dask scheduler` and workers with `dask worker {scheduler}`, or drop --scheduler"
        ) from exc
    try:
        log.info(
            "dask scheduler %s: %d workers", scheduler, len(client.scheduler_info()["workers"])
        )
        yield DaskExecutor(client)
    finally:
        client.close()


def predict_batch(
    backend: FlightBackend, pair: PairRef, indices: tuple[int, ...]
) -> dict[int, Candidates | None]:
    """One task: the candidates of a batch of tiles (what runs on a worker)."""
    result = backend.predict_tiles(pair, indices)
    missing = set(indices) - set(result)
    if missing:
        raise RuntimeError(
            f"backend returned no candidates for tiles {sorted(missing)[:5]} of {pair.flight_id}"
        )
    return {int(i): result[i] for i in indices}


def batches(indices: Sequence[int], size: int) -> list[tuple[int, ...]]:
    """Consecutive batches of at most ``size`` indices.

    >>> batches([1, 2, 3, 4, 5], 2)
    [(1, 2), (3, 4), (5,)]
    """
    return [tuple(indices[i : i + size]) for i in range(0, len(indices), size)]


@dataclass
class PendingFlight:
    """A flight whose tile batches have been submitted but not yet collected."""

    pair: PairRef
    indices: list[int]
    resumed: int
    futures: list[_Result]
    checkpoint: TileCheckpoint


def submit_flight(
    backend: FlightBackend,
    pair: PairRef,
    checkpoint: TileCheckpoint,
    executor: Executor,
    batch_size: int,
) -> PendingFlight:
    """Submit every tile batch of ``pair`` that the checkpoint does not already hold."""
    indices = backend.tile_indices(pair)
    done = checkpoint.done()
    todo = [i for i in indices if i not in done]
    futures = [executor.submit(predict_batch, backend, pair, b) for b in batches(todo, batch_size)]
    resumed = len(indices) - len(todo)
    if resumed:
        log.info("%s: resuming, %d of %d tiles already done", pair.flight_id, resumed, len(indices))
    return PendingFlight(pair, indices, resumed, futures, checkpoint)


def collect_flight(
    pending: PendingFlight, executor: Executor, progress: Progress | None = None
) -> dict[int, Candidates | None]:
    """Wait for a flight's batches, checkpointing each as it finishes; all tiles, in tile order."""
    total, done = len(pending.indices), pending.resumed
    if progress:
        progress(pending.pair.flight_id, done, total)
    for future in executor.as_completed(pending.futures):
        result: Mapping[int, Candidates | None] = future.result()
        pending.checkpoint.save(result)
        done += len(result)
        if progress:
            progress(pending.pair.flight_id, done, total)
    stored = pending.checkpoint.load(pending.indices)
    return {i: stored[i] for i in pending.indices}


def run_tiles(
    backend: FlightBackend,
    pair: PairRef,
    checkpoint: TileCheckpoint,
    executor: Executor,
    batch_size: int,
    progress: Progress | None = None,
) -> dict[int, Candidates | None]:
    """:func:`submit_flight` then :func:`collect_flight` for one flight."""
    return collect_flight(
        submit_flight(backend, pair, checkpoint, executor, batch_size), executor, progress
    )


def merge_results(
    parts: Iterable[Mapping[int, Candidates | None]],
) -> dict[int, Candidates | None]:
    """Merge per-batch results into one ``tile index -> Candidates`` map, sorted by index."""
    merged: dict[int, Candidates | None] = {}
    for part in parts:
        merged.update(part)
    return dict(sorted(merged.items()))
