"""Make ultralytics safe to import here: offline, writable config dir, local font, right threads.

Call :func:`configure_ultralytics` before anything imports ``ultralytics`` (every module in
``models/`` imports it lazily, inside functions, after calling this). It never touches the network.

>>> import os
>>> d = configure_ultralytics()
>>> os.environ["YOLO_OFFLINE"], (d / "Ultralytics" / "Arial.ttf").is_file()
('1', True)
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

from geo.atomic import atomic_path

__all__ = ["configure_ultralytics", "default_config_dir", "set_threads"]

log = logging.getLogger(__name__)

_FONTS = ("Arial.ttf", "Arial.Unicode.ttf")
_THREADS = [os.cpu_count() or 1]


def default_config_dir() -> Path:
    """A per-user cache folder for ultralytics settings (``$XDG_CACHE_HOME/buildwatch/yolo``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "buildwatch" / "yolo"


def _copy_fonts(config_dir: Path) -> None:
    """Put matplotlib's DejaVuSans where ultralytics looks for Arial, so it never downloads one."""
    target_dir = config_dir / "Ultralytics"
    target_dir.mkdir(parents=True, exist_ok=True)
    missing = [name for name in _FONTS if not (target_dir / name).is_file()]
    if not missing:
        return
    try:
        import matplotlib

        src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        log.warning("matplotlib missing: ultralytics plots may try to download a font")
        return
    for name in missing:
        with atomic_path(target_dir / name) as tmp:
            shutil.copyfile(src, tmp)


def configure_ultralytics(config_dir: str | Path | None = None, threads: int | None = None) -> Path:
    """Set the environment ultralytics reads at import time, and its thread count.

    Args:
        config_dir: writable folder for ultralytics settings; default ``$YOLO_CONFIG_DIR`` when
            set, else :func:`default_config_dir`.
        threads: CPU threads ultralytics and torch may use; default ``os.cpu_count()``.

    Returns:
        The config folder in use.
    """
    if config_dir is None:
        config_dir = os.environ.get("YOLO_CONFIG_DIR") or default_config_dir()
    path = Path(config_dir).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_CONFIG_DIR"] = str(path)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ.setdefault("MPLBACKEND", "Agg")
    _copy_fonts(path)
    n = int(threads or os.cpu_count() or 1)
    os.environ["OMP_NUM_THREADS"] = str(n)  # ultralytics otherwise pins OMP to 1 thread
    _THREADS[0] = n
    if "ultralytics" in sys.modules:
        set_threads(n)
    return path


def set_threads(n: int | None = None) -> int:
    """Set torch's and ultralytics' CPU thread counts (call after importing ultralytics)."""
    n = int(n or _THREADS[0])
    import torch

    torch.set_num_threads(n)
    for name in ("ultralytics.utils", "ultralytics.data.dataset", "ultralytics.utils.torch_utils"):
        module = sys.modules.get(name)
        if module is not None:
            module.NUM_THREADS = n  # type: ignore[attr-defined]
    return n
