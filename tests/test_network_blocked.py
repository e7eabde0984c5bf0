"""The suite really runs with the network blocked (non-negotiable: no network at runtime)."""

import socket
import urllib.request

import pytest

from tests.conftest import NetworkBlockedError


def test_outbound_connection_is_refused() -> None:
    with pytest.raises(NetworkBlockedError, match="network access blocked"):
        socket.create_connection(("93.184.216.34", 80), timeout=1)


def test_dns_lookup_is_refused() -> None:
    with pytest.raises(OSError, match="network access blocked"):
        urllib.request.urlopen("https://example.com", timeout=1)


def test_loopback_is_allowed() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=1)
    client.close()
    server.close()
