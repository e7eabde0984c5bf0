"""What a long command shows while it works, and the speed it reports when it is done.

* :class:`Progress` — a ``progress(n)`` callback (tiles, flights, epochs): a tqdm bar on a
  terminal, a plain line every 10 % when the output is not a terminal (logs, cron mail), nothing
  with ``--quiet``. It remembers when the first unit finished (start-up to the first tile).
* :func:`speed_line` — km² covered, km²/h, tiles/s, start-up to the first tile and peak RSS.

>>> p = Progress("tiles", total=4, stream=None)
>>> p(2); p(2); p.done
4
>>> speed_line(1.44e6, 12.96, 196, 2.5, 700.0)
'speed: 1.440 km² in 13.0 s = 400 km²/h; 196 tiles at 15.1 tiles/s; first tile after 2.5 s; peak RSS 700 MB'
"""

from __future__ import annotations

import os
import resource
import sys
import time
from typing import IO, Any, Literal

__all__ = ["QUIET", "set_quiet", "quiet", "Progress", "process_age_s", "peak_rss_mb", "speed_line"]

#: set by ``buildwatch --quiet``: no progress, no normal output (errors still go to stderr)
QUIET = {"on": False}


def set_quiet(on: bool) -> None:
    QUIET["on"] = bool(on)


def quiet() -> bool:
    return QUIET["on"]


def process_age_s() -> float:
    """Seconds since this process started (imports included)."""
    try:
        import psutil

        return time.time() - psutil.Process(os.getpid()).create_time()
    except Exception:  # noqa: BLE001 - a missing psutil must not break a run
        return time.process_time()


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def speed_line(area_m2: float, seconds: float, tiles: int, first_tile_s: float | None,
               rss_mb: float) -> str:  # fmt: skip
    """One line: area, time, km²/h, tiles/s, start-up to the first tile, peak RSS."""
    km2 = area_m2 / 1e6
    rate = km2 / seconds * 3600 if seconds > 0 else 0.0
    tps = tiles / seconds if seconds > 0 else 0.0
    first = f"first tile after {first_tile_s:.1f} s; " if first_tile_s is not None else ""
    return (
        f"speed: {km2:.3f} km² in {seconds:.1f} s = {rate:.0f} km²/h; {tiles} tiles at "
        f"{tps:.1f} tiles/s; {first}peak RSS {rss_mb:.0f} MB"
    )


class Progress:
    """A ``progress(n)`` callback: a bar on a TTY, a line per 10 % elsewhere, silent when quiet."""

    def __init__(
        self,
        desc: str,
        total: int | None = None,
        *,
        unit: str = "tile",
        stream: IO[str] | None | Literal["stderr"] = "stderr",
    ) -> None:
        self.desc, self.unit, self.total = desc, unit, total
        self.done = 0
        self.first_at: float | None = None  # time.time() when the first unit finished
        # "stderr": the process's stderr when the bar is made, not when this module was imported
        self._stream = None if quiet() else sys.stderr if stream == "stderr" else stream
        self._bar: Any = None
        self._next_pct = 10
        self._t0 = time.perf_counter()

    def set_total(self, total: int) -> None:
        self.total = int(total)
        self._t0 = time.perf_counter()  # rates count from here, not from before the set-up
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    def _tty(self) -> bool:
        return self._stream is not None and bool(getattr(self._stream, "isatty", lambda: False)())

    def __call__(self, n: int = 1) -> None:
        if self.first_at is None:
            self.first_at = time.time()
        self.done += int(n)
        if self._stream is None:
            return
        if self._tty():
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=self.total, desc=self.desc, unit=self.unit,
                                 file=self._stream, leave=False, dynamic_ncols=True)  # fmt: skip
            self._bar.update(int(n))
            return
        if not self.total:
            return
        pct = 100 * self.done // self.total
        if pct >= self._next_pct or self.done == self.total:
            rate = self.done / max(time.perf_counter() - self._t0, 1e-9)
            print(f"{self.desc}: {self.done}/{self.total} {self.unit}s ({pct}%, {rate:.1f}/s)",
                  file=self._stream, flush=True)  # fmt: skip
            self._next_pct = (pct // 10 + 1) * 10

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
