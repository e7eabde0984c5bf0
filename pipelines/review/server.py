"""Run the review application under uvicorn on a socket bound first (so the address is real).

:func:`check_bind` enforces the safe default: loopback needs nothing, any other address needs an
access token. :class:`ReviewServer` runs the server in a thread (tests, notebooks) or in the
foreground (:meth:`ReviewServer.serve_forever`, the CLI).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from geo.errors import ConfigError

__all__ = ["is_loopback", "check_bind", "ReviewServer"]


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str) -> None:
    """Refuse to serve the ledger beyond this machine without an access token.

    >>> check_bind("0.0.0.0", "")
    Traceback (most recent call last):
    ...
    geo.errors.ConfigError: review: --host 0.0.0.0 lets other machines reach the ledger; give an access token with --token (at least 16 characters) or keep the default 127.0.0.1
    """
    if is_loopback(host):
        return
    if len(token) < 16:
        raise ConfigError(
            f"review: --host {host} lets other machines reach the ledger; give an access token "
            "with --token (at least 16 characters) or keep the default 127.0.0.1"
        )


class ReviewServer:
    """uvicorn serving *app* on *host*:*port* (0 = any free port); ``url`` is the real address."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise ConfigError(
                f"review: cannot listen on {host}:{port} ({exc.strerror}); choose another --port"
            ) from exc
        self.host = host
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def serve_forever(self) -> None:
        """Serve in the foreground until Ctrl-C."""
        self.server.run(sockets=[self.sock])

    def start(self) -> ReviewServer:
        """Serve in a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("review server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> ReviewServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
