"""Where the store's files live: a local folder, or any ``pyarrow.fs`` file system.

Both backends take paths relative to the store's root, ``/``-separated, and map operating
system errors to :class:`BarStoreError` subclasses naming the file, once, here.

- :class:`LocalFiles` (a folder, a ``file://`` URI, a ``LocalFileSystem`` or a subtree of one):
  a write goes to a temporary file in the target's own folder (``.NAME.PID.RANDOM.tmp``; names
  starting with ``.`` are skipped by the store and by ``pyarrow.dataset``), is flushed with
  ``fsync``, then renamed over the target with ``os.replace`` (atomic on POSIX and Windows),
  and the folder is synced. A reader that opened the old file keeps reading the old file; a
  reader that opens after the rename sees the new one; nobody sees half a file. A writer that
  dies mid-write leaves only its temporary file. Writers of one series hold its lock file
  (:mod:`.lock`).
- :class:`ArrowFiles` (``s3://``, ``gs://``, ``hdfs://`` ... through ``pyarrow.fs``): an object
  store has neither rename nor locks. Each file is written in one upload, which object stores
  publish whole (readers see the old object or the new one), but two writers of one series
  can lose each other's update: **one writer at a time per store** (readers: any number).
"""

from __future__ import annotations

import errno as errno_codes
import os
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.fs as pafs

from ..errors import BarStoreError, BarStoreWriteError
from .lock import exclusive_lock

__all__ = ["ArrowFiles", "LocalFiles", "StoreFiles", "open_files"]

LOCK_NAME = ".lock"

_WHY = {
    errno_codes.EACCES: "permission denied for this user; make the store folder writable "
    "by this user, or use another store (--store or $IBKR_CP_BAR_STORE)",
    errno_codes.EPERM: "operation not permitted for this user; make the store folder "
    "writable by this user, or use another store (--store or $IBKR_CP_BAR_STORE)",
    errno_codes.EROFS: "the file system is read-only; use a store folder on a writable disk",
    errno_codes.ENOSPC: "the disk is full; free some space and run again",
    errno_codes.EDQUOT: "the disk quota is used up; free some space and run again",
    errno_codes.EFBIG: "the file would exceed the file size limit of this process (ulimit "
    "-f) or file system; raise the limit and run again",
}


def write_error(where: str, exc: OSError) -> BarStoreWriteError:
    """``exc`` (from writing ``where``) as a BarStoreWriteError saying what to do."""
    why = _WHY.get(exc.errno or -1) or f"{exc.strerror or exc}"
    return BarStoreWriteError(
        f"cannot write bar store file {where}: {why} ({where} is unchanged)",
        path=where,
        errno=exc.errno,
    )


def read_error(where: str, exc: OSError) -> BarStoreError:
    why = exc.strerror or str(exc)
    if exc.errno in (errno_codes.EACCES, errno_codes.EPERM):
        why = "permission denied for this user; make the store readable by this user"
    return BarStoreError(f"cannot read bar store file {where}: {why}", path=where)


class StoreFiles(Protocol):
    """What the store needs of a file system (paths relative to the store root)."""

    @property
    def local(self) -> bool:
        """True when writers of one series exclude each other with a lock file."""
        ...

    def where(self, rel: str = "") -> str:
        """The full path or URI of ``rel``, for messages."""
        ...

    def listdir(self, rel: str) -> list[str]:
        """Names in folder ``rel``, sorted; empty when it does not exist."""
        ...

    def read_bytes(self, rel: str) -> bytes | None:
        """The content of file ``rel``, or None when it does not exist."""
        ...

    def open_input(self, rel: str) -> pa.NativeFile | None:
        """A random-access reader of file ``rel``, or None when it does not exist."""
        ...

    def write(self, rel: str, data: bytes) -> None:
        """Replace file ``rel`` with ``data`` atomically, creating its folders."""
        ...

    def lock(self, rel_dir: str) -> AbstractContextManager[None]:
        """Exclude the other writers of folder ``rel_dir`` for a ``with`` block."""
        ...


class LocalFiles:
    """A store in a local folder (see the module docstring)."""

    local = True

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, rel: str) -> Path:
        return self.root / rel if rel else self.root

    def where(self, rel: str = "") -> str:
        return str(self._path(rel))

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self._path(rel)))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise read_error(self.where(rel), exc) from exc

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            return self._path(rel).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise read_error(self.where(rel), exc) from exc

    def open_input(self, rel: str) -> pa.NativeFile | None:
        try:
            return pa.OSFile(str(self._path(rel)), "r")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise read_error(self.where(rel), exc) from exc

    def _makedirs(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(str(folder), exc) from exc

    def write(self, rel: str, data: bytes) -> None:
        target = self._path(rel)
        self._makedirs(target.parent)
        temp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, target)
        except OSError as exc:
            _discard(temp)
            raise write_error(str(target), exc) from exc
        _sync_folder(target.parent)

    @contextmanager
    def lock(self, rel_dir: str) -> Iterator[None]:
        folder = self._path(rel_dir)
        self._makedirs(folder)
        try:
            held = exclusive_lock(str(folder / LOCK_NAME))
            held.__enter__()
        except OSError as exc:
            raise write_error(str(folder / LOCK_NAME), exc) from exc
        try:
            yield
        finally:
            held.__exit__(None, None, None)

    def __repr__(self) -> str:
        return f"LocalFiles({str(self.root)!r})"


def _discard(path: Path) -> None:
    with suppress(OSError):
        path.unlink()


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every system syncs folders)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ArrowFiles:
    """A store on a ``pyarrow.fs`` file system other than the local one (single writer)."""

    local = False

    def __init__(self, fs: pafs.FileSystem, root: str, display: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.display = display.rstrip("/")

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def where(self, rel: str = "") -> str:
        return f"{self.display}/{rel}" if rel else self.display

    def listdir(self, rel: str) -> list[str]:
        selector = pafs.FileSelector(self._path(rel), allow_not_found=True)
        try:
            infos = self.fs.get_file_info(selector)
        except OSError as exc:
            raise read_error(self.where(rel), exc) from exc
        return sorted(info.base_name for info in infos)

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(self._path(rel)) as stream:
                return bytes(stream.read())
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise read_error(self.where(rel), exc) from exc

    def open_input(self, rel: str) -> pa.NativeFile | None:
        try:
            return self.fs.open_input_file(self._path(rel))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise read_error(self.where(rel), exc) from exc

    def write(self, rel: str, data: bytes) -> None:
        path = self._path(rel)
        try:
            self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            with self.fs.open_output_stream(path) as out:
                out.write(data)
        except OSError as exc:
            raise write_error(self.where(rel), exc) from exc

    def lock(self, rel_dir: str) -> AbstractContextManager[None]:
        return nullcontext()

    def __repr__(self) -> str:
        return f"ArrowFiles({self.display!r})"


def open_files(location: str | os.PathLike[str], filesystem: pafs.FileSystem | None) -> StoreFiles:
    """The backend for ``location``: a local path, a URI (``file://``, ``s3://`` ...), or a
    path inside ``filesystem``. Local file systems (also under a ``SubTreeFileSystem``) get
    :class:`LocalFiles` with its locks and atomic renames."""
    text = os.fspath(location)
    if filesystem is None:
        if "://" not in text:
            return LocalFiles(Path(text).expanduser())
        try:
            filesystem, inner = pafs.FileSystem.from_uri(text)
        except (pa.ArrowException, OSError) as exc:
            raise BarStoreError(
                f"bar store location {text!r} is not a usable file system URI ({exc}); use a "
                "folder path, or a URI pyarrow supports (file://, s3://, gs://, hdfs://)",
                path=text,
            ) from exc
        return _on(filesystem, inner, text)
    return _on(filesystem, text, f"{type(filesystem).__name__}:{text or '/'}")


def _on(fs: pafs.FileSystem, inner: str, display: str) -> StoreFiles:
    base, path = fs, inner
    while isinstance(base, pafs.SubTreeFileSystem):
        path = base.base_path.rstrip("/") + ("/" + path.lstrip("/") if path else "")
        base = base.base_fs
    if isinstance(base, pafs.LocalFileSystem):
        return LocalFiles(Path(path or "/"))
    return ArrowFiles(fs, inner, display)
