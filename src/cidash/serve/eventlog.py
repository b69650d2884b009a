"""One line per event on standard error: ``text`` (``2026-12-01T10:00:00Z sync project=a/b pipelines=3``) or
``json`` (one object a line). Values are untrusted (project paths come from GitLab): text escapes every
control character, JSON is JSON. Secrets are never passed in."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

LOG_FORMATS: tuple[str, ...] = ("text", "json")


def _clean(value: object) -> str:
    text = str(value)
    out = []
    for ch in text:
        code = ord(ch)
        if code < 0x20 or 0x7F <= code < 0xA0 or ch in "\u061c\u200e\u200f" or 0x202A <= code <= 0x202E:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        elif 0x2066 <= code <= 0x2069:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    cleaned = "".join(out)
    if not cleaned or any(c in cleaned for c in ' "='):
        return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return cleaned


class EventLog:
    """Thread-safe event lines. ``clock`` returns the time to stamp (tests may freeze it)."""

    def __init__(
        self,
        fmt: str = "text",
        stream: IO[str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if fmt not in LOG_FORMATS:
            raise ValueError(f"unknown log format {fmt!r}")
        self.fmt = fmt
        self.stream = stream
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        ts = self.clock().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if self.fmt == "json":
            kept = {k: v for k, v in fields.items() if v is not None}
            line = json.dumps({"ts": ts, "level": level, "event": event, **kept}, ensure_ascii=True, default=str)
        else:
            parts = [ts, level.upper(), _clean(event)]
            parts += [f"{k}={_clean(v)}" for k, v in fields.items() if v is not None]
            line = " ".join(parts)
        stream = self.stream or sys.stderr
        with self._lock:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass  # a closed stderr never stops the service
