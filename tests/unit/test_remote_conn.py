"""`cidash.remote.conn`: a plain connection's timeout is kept by the kernel, and still reads "timed out"."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import pytest

from cidash.remote.conn import RawConnection


@pytest.fixture
def silent_server() -> Iterator[socket.socket]:
    """A server on 127.0.0.1 that accepts connections (the kernel's backlog) and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    yield server
    server.close()


@pytest.mark.skipif(sys.platform == "win32", reason="the kernel timeouts are not set on Windows")
def test_a_plain_connection_keeps_its_timeout_in_the_kernel(silent_server: socket.socket) -> None:
    conn = RawConnection("127.0.0.1", silent_server.getsockname()[1], timeout=0.2)
    conn.connect()
    try:
        assert conn.sock is not None
        assert conn.sock.gettimeout() is None  # blocking: no poll() before each recv/send
        assert conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16) != bytes(16)
        with pytest.raises(TimeoutError, match="timed out"):  # as Python's own socket timeout says it
            conn.request("GET", "/api/v4/version", b"", 1 << 20)
    finally:
        conn.close()
