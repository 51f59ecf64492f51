"""Keep tests on loopback: an unknown host is made at the socket layer instead of asked of the system's DNS."""

from __future__ import annotations

import socket

import pytest

UNKNOWN_HOST = "no-such-host.invalid"


def unknown_host(monkeypatch: pytest.MonkeyPatch) -> str:
    """Make ``UNKNOWN_HOST`` fail to resolve as a real resolver does (``socket.gaierror``) without a DNS query;
    every other name resolves as usual. Returns the host name."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):  # noqa: ANN001, ANN202 - socket.getaddrinfo's own signature
        if host == UNKNOWN_HOST:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return UNKNOWN_HOST
