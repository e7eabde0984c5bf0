"""Suite-wide fixtures: the network is blocked, ultralytics runs offline in a temp config dir.

Only loopback connections are allowed (dask clusters, PostGIS and Chromium on 127.0.0.1): any
other connection attempt raises, so a test that would download weights, fonts or tiles fails.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests: no per-example deadline (the machine is shared and slow), and a fixed
# derandomised search so CI is reproducible.
settings.register_profile(
    "buildwatch", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("buildwatch")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


class NetworkBlockedError(OSError):
    """Raised when code under test tries to reach a non-loopback address."""


def _is_local(address: object) -> bool:
    if isinstance(address, str):  # AF_UNIX path
        return True
    if isinstance(address, tuple) and address:
        host = str(address[0])
        if host in ("localhost", ""):
            return True
        try:
            return ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            return False
    return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_local(address):
        raise NetworkBlockedError(f"network access blocked in tests: connect to {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_local(address):
        raise NetworkBlockedError(f"network access blocked in tests: connect to {address!r}")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if host not in (None, "localhost", "127.0.0.1", "::1", "") and not str(host).startswith("127."):
        try:
            ipaddress.ip_address(str(host))
        except ValueError as exc:
            raise NetworkBlockedError(f"network access blocked in tests: resolve {host!r}") from exc
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]
    cfg = REPO / ".pytest_cache" / "yolo-config"
    cfg.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(cfg))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real imagery); tests using it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real imagery not present at {SHARED_DATA}")
    return SHARED_DATA
