"""The wire limit of :func:`cidash.remote.policy.wire_limit` and the time limit of :data:`cidash.remote.conn.
SLOW_TIMEOUTS` on httpx's connections (proxies, other origins), as on the sync's own.

httpx reads interim answers (``100 Continue``), chunk framing and trailers inside httpcore, where no cap on a
body sees them: a server sending them for ever holds the request for ever, and one trickling a byte now and then
meets no read's timeout. httpcore takes a network backend; this one counts the bytes read on each connection since
the last request was written there (HTTP/1.1 answers one request at a time on a connection, so a write starts the
next answer) and ends the answer past its limit, which the sending thread sets for each request (:func:`expect`),
or past its time.
"""

from __future__ import annotations

import ssl
import threading
import time
import typing

import httpcore
import httpx

from cidash.remote import conn

_limit = threading.local()


def expect(limit: int) -> None:
    """The wire limit of the next answer this thread reads through httpx."""
    _limit.value = limit


class _CountedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        self._limit = self._left = 0
        self._sent = 0.0

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._limit = self._left = getattr(_limit, "value", 0)
        self._sent = time.monotonic()
        self._inner.write(buffer, timeout)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._inner.read(max_bytes, timeout)
        if self._limit:
            self._left -= len(data)
            if self._left < 0:
                raise httpcore.RemoteProtocolError(conn.past_wire_limit(self._limit))
            if timeout:
                took = time.monotonic() - self._sent
                if took > conn.SLOW_TIMEOUTS * timeout + (self._limit - self._left) / conn.MIN_RATE:
                    raise httpcore.RemoteProtocolError(conn.too_slow(took))
        return data

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _CountedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _CountedBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _CountedStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: typing.Iterable[typing.Any] | None = None
    ) -> httpcore.NetworkStream:
        return _CountedStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def count_wire(client: httpx.Client) -> int:
    """Put the counting backend under each of ``client``'s connection pools (the direct one and one per proxy);
    how many it wrapped. httpx does not take a backend itself, so this reaches its transports' pools (httpx 0.27
    and 0.28: ``_transport``, ``_mounts``, ``HTTPTransport._pool``, httpcore's ``_network_backend``); a test holds
    it to at least the direct pool, so an httpx that moves them is noticed."""
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    wrapped = 0
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, _CountedBackend):
            pool._network_backend = _CountedBackend(backend)  # type: ignore[union-attr]
            wrapped += 1
    return wrapped
