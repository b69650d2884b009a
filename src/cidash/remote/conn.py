"""One keep-alive HTTP/1.1 connection to the configured GitLab origin, spoken directly over its socket.

A sync sends thousands of small requests (a job log averages a few KB). Over ``http.client`` each costs a
buffered reader, the ``email`` package's header parser and four or five system calls (each one a hand-over of
the GIL between the 32 worker threads); here a request is one ``sendall`` and, for a small answer, one ``recv``.
Only what a GitLab API answer uses is spoken: a status line, headers, and a body framed by ``Content-Length``,
``Transfer-Encoding: chunked`` or the end of the connection (RFC 9112 §6.3). Anything else (a header block over
64 KiB, a malformed status line or chunk size, conflicting lengths) is a :class:`ProtocolFailure`.

Redirects, proxies and other origins are not handled here: :mod:`cidash.remote.http` sends those through httpx.
"""

from __future__ import annotations

import re
import select
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable, Iterator

MAX_HEADER_BYTES = 64 * 1024
#: Interim answers (``100 Continue``, ``103 Early Hints``) taken before the real one; a server that keeps sending
#: them is not answering.
MAX_INTERIM = 16
#: The most digits a Content-Length (decimal) or a chunk size (hex) may have: beyond any real body, and short of
#: the 4,300 digits past which Python refuses to turn a number into text (an error message would raise instead).
MAX_LENGTH_DIGITS = 18
# ASCII digits only: "²".isdigit() is true (a header is read as Latin-1), and int() refuses it
_LENGTH = re.compile(rf"[0-9]{{1,{MAX_LENGTH_DIGITS}}}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,%d}" % (MAX_LENGTH_DIGITS - 3))  # 1*HEXDIG (no "0x", "_" or sign)
RECV = 64 * 1024
#: An answer must be whole within SLOW_TIMEOUTS x the connection's timeout of its request, plus a second for each
#: MIN_RATE bytes it brought: no read's timeout ends a server that trickles a byte now and then. (GitLab ends a
#: request that runs 60 s itself; a real answer arrives at many times MIN_RATE.)
SLOW_TIMEOUTS = 10
MIN_RATE = 64 * 1024
#: A connection idle this long is checked for a close from the server before it is reused (a select() call);
#: a fresher one is simply used, and a close that races the request is caught by :attr:`RawResponse.nothing_read`.
IDLE_CHECK_SECONDS = 1.0


class ProtocolFailure(Exception):
    """The answer is not well-framed HTTP/1.1 (``incomplete``: it started, but its body did not end as framed;
    ``slow``: it was past its time, see :data:`SLOW_TIMEOUTS`)."""

    def __init__(self, text: str, *, incomplete: bool = True, slow: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.incomplete = incomplete
        self.slow = slow


class PeerClosed(Exception):
    """The connection was closed before a single byte of the answer arrived (a stale keep-alive connection)."""


class RawResponse:
    """A response's status and headers; :meth:`body` yields its bytes as they arrive, framed as announced."""

    def __init__(self, conn: RawConnection, status: int, headers: dict[str, str], lengths: list[str]) -> None:
        self.conn = conn
        self.status = status
        self.headers = headers  # lower-case names; a repeated header keeps its last value
        self.lengths = lengths  # every Content-Length value, for the framing check
        self.remaining = 0  # Content-Length bytes not received when the body ended early

    def framing_problem(self) -> str | None:
        """Conflicting or unreadable Content-Length (None: the framing can be trusted)."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return None
        if len(self.lengths) == 1 and _LENGTH.fullmatch(self.lengths[0]):  # the usual answer: one plain length
            return None
        values = {v.strip() for raw in self.lengths for v in raw.split(",")}
        if len(values) > 1:
            return "conflicting Content-Length headers"
        if values and not _LENGTH.fullmatch(next(iter(values))):
            return "an unreadable Content-Length header"
        return None

    def body(self, method: str) -> Iterator[bytes]:
        """The body in pieces, as they arrive. The connection is reusable once this is exhausted."""
        conn, status = self.conn, self.status
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            yield from conn.read_chunked()
            return
        if self.lengths:
            length = int(self.lengths[0].split(",")[0].strip())
            for piece in conn.read_exactly(length):
                length -= len(piece)
                yield piece
            self.remaining = length
            return
        conn.keep = False  # no framing: the body ends where the connection does
        yield from conn.read_to_close()


class RawConnection:
    """A keep-alive connection to one origin (``context``: TLS). Used by one thread at a time."""

    def __init__(
        self,
        host: str,
        port: int | None,
        *,
        timeout: float,
        context: Callable[[], ssl.SSLContext] | None = None,
    ) -> None:
        self.host = host
        self.port = port or (443 if context is not None else 80)
        self.timeout = timeout
        self.context = context
        default = 443 if context is not None else 80
        host_header = f"[{host}]" if ":" in host else host
        self.host_header = host_header if self.port == default else f"{host_header}:{self.port}"
        self.sock: socket.socket | None = None
        self.buf = b""
        self.keep = True
        self.last_used = 0.0
        self.wire_limit = self.wire_left = 0  # bytes this exchange may receive, and has left (see request)
        self.due = 0.0  # when this exchange's answer is late, before counting what it brought (see SLOW_TIMEOUTS)

    # -- connection --------------------------------------------------------------------------------------------

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.context is not None:
                sock = self.context().wrap_socket(sock, server_hostname=self.host)
            else:
                _kernel_timeouts(sock, self.timeout)
        except BaseException:
            sock.close()
            raise
        self.sock, self.buf, self.keep = sock, b"", True

    def close(self) -> None:
        sock, self.sock, self.buf = self.sock, None, b""
        if sock is not None:
            sock.close()

    def stale(self) -> bool:
        """True when an idle connection was closed by the server (checked only after IDLE_CHECK_SECONDS idle)."""
        if self.sock is None or time.monotonic() - self.last_used < IDLE_CHECK_SECONDS:
            return False
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    # -- one exchange ------------------------------------------------------------------------------------------

    def request(self, method: str, target: str, headers: bytes, wire_limit: int, body: bytes = b"") -> RawResponse:
        """Send a request (``headers``: ready-made ``Name: value\\r\\n`` lines, ``body`` after them, framed by the
        caller's ``Content-Length``) and read the status and headers.

        At most ``wire_limit`` bytes are received for the whole answer (status lines, headers, framing, body): one
        that goes on past it is a :class:`ProtocolFailure`, whatever its framing announced.

        Raises :class:`PeerClosed` when the connection ends before any answer byte, :class:`ProtocolFailure`
        for a malformed answer, ``OSError`` for the socket's own failures."""
        assert self.sock is not None
        try:
            self.sock.sendall(
                f"{method} {target} HTTP/1.1\r\nHost: {self.host_header}\r\n".encode("latin-1")
                + headers
                + b"\r\n"
                + body
            )
        except BlockingIOError:  # the kernel's send timeout (see _kernel_timeouts)
            raise TimeoutError("timed out") from None
        self.wire_limit = self.wire_left = wire_limit
        self.due = time.monotonic() + SLOW_TIMEOUTS * self.timeout
        for _ in range(MAX_INTERIM + 1):
            response = self._read_head()
            if not 100 <= response.status < 200:
                return response
            # an interim answer (100 Continue, 103 Early Hints): the real one follows
        raise ProtocolFailure(f"more than {MAX_INTERIM} interim (1xx) answers", incomplete=False)

    def finished(self) -> None:
        """The body was read to its end: keep the connection for the next request, or close it."""
        self.last_used = time.monotonic()
        if not self.keep:
            self.close()

    def _read_head(self) -> RawResponse:
        assert self.sock is not None
        first = not self.buf
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            if len(self.buf) > MAX_HEADER_BYTES:
                raise ProtocolFailure("a header block over 64 KiB", incomplete=False)
            data = self._recv()
            if not data:
                if first and not self.buf:
                    raise PeerClosed()
                raise ProtocolFailure("the connection closed inside the headers")
            self.buf += data
        head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4 :]
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if (
            len(parts) < 2
            or not parts[0].startswith("HTTP/1.")
            or not _LENGTH.fullmatch(parts[1])
            or len(parts[1]) != 3
        ):
            raise ProtocolFailure(f"not an HTTP/1.1 status line: {lines[0][:40]!r}", incomplete=False)
        version, status = parts[0], int(parts[1])
        headers: dict[str, str] = {}
        lengths: list[str] = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                continue
            key = name.strip().lower()
            value = value.strip()
            headers[key] = value
            if key == "content-length":
                lengths.append(value)
        token = headers.get("connection", "").lower()
        self.keep = "close" not in token and (version != "HTTP/1.0" or "keep-alive" in token)
        return RawResponse(self, status, headers, lengths)

    # -- bodies ------------------------------------------------------------------------------------------------

    def _recv(self) -> bytes:
        assert self.sock is not None
        try:
            data = self.sock.recv(RECV)
        except BlockingIOError:  # the kernel's receive timeout (see _kernel_timeouts)
            raise TimeoutError("timed out") from None
        self.wire_left -= len(data)
        if self.wire_left < 0:
            self.keep = False
            raise ProtocolFailure(past_wire_limit(self.wire_limit))
        if (late := time.monotonic() - self.due) > 0 and late > (self.wire_limit - self.wire_left) / MIN_RATE:
            self.keep = False
            raise ProtocolFailure(too_slow(SLOW_TIMEOUTS * self.timeout + late), slow=True)
        return data

    def read_exactly(self, length: int) -> Iterator[bytes]:
        """Up to ``length`` bytes; fewer when the connection closes first (the caller sees what is missing)."""
        while length > 0:
            if not self.buf:
                data = self._recv()
                if not data:
                    self.keep = False
                    return
                self.buf = data
            piece, self.buf = self.buf[:length], self.buf[length:]
            length -= len(piece)
            yield piece

    def read_to_close(self) -> Iterator[bytes]:
        if self.buf:
            piece, self.buf = self.buf, b""
            yield piece
        while data := self._recv():
            yield data

    def _line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            if len(self.buf) > MAX_HEADER_BYTES:
                raise ProtocolFailure("a chunk header over 64 KiB")
            data = self._recv()
            if not data:
                raise ProtocolFailure("body ended early (in a chunk header)")
            self.buf += data
        line, self.buf = self.buf[:end], self.buf[end + 2 :]
        return line

    def read_chunked(self) -> Iterator[bytes]:
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise ProtocolFailure(f"an unreadable chunk size {size_text[:20]!r}")
            size = int(size_text, 16)
            if size == 0:
                trailers = 0
                while line := self._line():  # trailers, up to the empty line
                    trailers += len(line) + 2
                    if trailers > MAX_HEADER_BYTES:
                        raise ProtocolFailure("trailers over 64 KiB")
                return
            got = 0
            for piece in self.read_exactly(size):
                got += len(piece)
                yield piece
            if got < size:
                raise ProtocolFailure(f"body ended early ({size - got} bytes short in a chunk)")
            if self._line():
                raise ProtocolFailure("a chunk not followed by CRLF")


def past_wire_limit(limit: int) -> str:
    """The error of an answer that goes on past its limit on the wire (see ``wire_limit`` in :meth:`request`)."""
    return f"an answer still going past {limit:,} bytes on the wire"


def too_slow(seconds: float) -> str:
    """The error of an answer past its time (see :data:`SLOW_TIMEOUTS`)."""
    return f"an answer too slow: still arriving {seconds:.0f} s after the request, at under {MIN_RATE // 1024} KiB/s"


def _kernel_timeouts(sock: socket.socket, timeout: float) -> None:
    """Keep a plain connection's timeout in the kernel (``SO_RCVTIMEO``/``SO_SNDTIMEO`` on a blocking socket)
    instead of in Python: a socket with a Python timeout makes CPython ``poll()`` before every ``recv`` and
    ``send``, two more system calls and two more hand-overs of the GIL per request among the sync's 32 request
    threads. The same timeout per call; one that expires surfaces as ``BlockingIOError``, which
    :class:`RawConnection` reports as ``TimeoutError("timed out")``, as before. Where the options cannot be set
    (or on Windows), the Python timeout stays. Not for TLS: CPython's TLS reads on a blocking socket retry a timed
    out read forever, so a TLS connection keeps the Python timeout (its reads try the socket before polling)."""
    if sys.platform == "win32" or not timeout > 0:
        return
    seconds = int(timeout)
    value = struct.pack("ll", seconds, int((timeout - seconds) * 1_000_000))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
    except OSError:
        return
    sock.settimeout(None)
