"""An exclusive lock between processes on one machine: a lock file and ``flock``.

``flock`` locks belong to the open file, so the operating system releases them when the
holding process ends for any reason (a crash, ``kill -9``): a killed writer never leaves the
store locked. Each acquisition opens the lock file anew, so two threads of one process exclude
each other too. On Windows the first byte of the file is locked with ``msvcrt.locking``
(also released when the process ends).

Waiting for the lock blocks (writers hold it for one read-merge-replace of one series, a few
milliseconds to a fraction of a second); Ctrl-C interrupts the wait.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["exclusive_lock"]


@contextmanager
def exclusive_lock(path: str) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) for the ``with``
    block. OSError when the file cannot be created or opened (no permission)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _lock(fd)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                return
            except OSError:  # LK_LOCK gives up after 10 s; keep waiting
                continue

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
