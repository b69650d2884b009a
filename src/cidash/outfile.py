"""Where cidash writes a file the user named (``export --output``, ``key --write``, the TUI's Markdown export).

A target is written only when it is a regular file or a path that does not exist yet, and always through a
temp file in the same directory and a rename, so a reader never sees half a file. A device, FIFO, socket or
directory is refused with one line (``export --output /dev/null`` as root used to replace the device node with
a regular file); ``-`` means standard output. A symlink is followed: the file it points to is replaced, not the
link.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

from cidash.errors import InputError

STDOUT = "-"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_target(path: str | Path, *, option: str = "--output") -> Path:
    """The path to replace for ``path`` (symlinks followed), or :class:`InputError` naming ``option`` when it
    exists and is not a regular file, or its directory does not exist."""
    text = str(path)
    if not text or "\x00" in text:
        raise InputError(f"{option} {text!r}: not a file name")
    target = Path(os.path.realpath(os.path.expanduser(text)))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        if not target.parent.is_dir():
            raise InputError(f"{option} {text}: directory {target.parent} does not exist") from None
        return target
    except OSError as exc:
        raise InputError(f"{option} {text}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(
            f"{option} {text} is {_kind(st.st_mode)}: give a regular file, a new path, or - for standard output"
        )
    return target


def write_text(path: str | Path, text: str, *, option: str = "--output") -> bool:
    """Write ``text`` (UTF-8) to ``path``, or to standard output when ``path`` is ``-``. Returns True when the
    file changed (always True for standard output)."""
    if str(path) == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return True
    return write_bytes(path, text.encode("utf-8", "surrogateescape"), option=option)


def write_bytes(path: str | Path, data: bytes, *, option: str = "--output") -> bool:
    """:func:`check_target`, then temp file + fsync + rename (the file's mode is kept). False: unchanged."""
    if str(path) == STDOUT:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return True
    target = check_target(path, option=option)
    try:
        if target.read_bytes() == data:
            return False
    except OSError:
        pass
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            mode = target.stat().st_mode & 0o777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    return True
