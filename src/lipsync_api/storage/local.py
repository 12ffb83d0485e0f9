"""Storage on a local folder: atomic, durable writes and no key ever reaching outside the root."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from lipsync_api.storage import ObjectNotFoundError, validate_key

_COPY_CHUNK = 1 << 20
# What ``_write_atomically`` names its temp files (tempfile.mkstemp with this prefix and suffix).
_TEMP_NAME = re.compile(r"\..+\.tmp")


class LocalStorage:
    """The ``Storage`` protocol on a folder; keys map to files below ``root``."""

    def __init__(self, root: Path | str) -> None:
        root_path = Path(root)
        root_path.mkdir(parents=True, exist_ok=True)
        self._root = root_path.resolve(strict=True)

    @property
    def root(self) -> Path:
        """The resolved folder every key lives under."""
        return self._root

    def path_for(self, key: str) -> Path:
        """The file a key maps to; ValueError if the key is invalid or resolves outside the root."""
        validate_key(key)
        # resolve() follows symlinks already on disk, so a link planted inside root cannot lead out of it.
        path = (self._root / key).resolve(strict=False)
        if not path.is_relative_to(self._root) or path == self._root:
            raise ValueError(f"storage key {key!r} resolves outside the storage root")
        return path

    def local_path(self, key: str) -> Path | None:
        """Local files can be served straight from disk."""
        return self.path_for(key)

    async def put_file(self, key: str, source_path: Path) -> None:
        """Copy ``source_path`` in under ``key``, atomically."""
        path = self.path_for(key)
        await asyncio.to_thread(_write_atomically, path, lambda out: _copy_from(Path(source_path), out))

    async def put_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key``, atomically."""
        path = self.path_for(key)
        await asyncio.to_thread(_write_atomically, path, lambda out: out.write(data))

    async def read_bytes(self, key: str) -> bytes:
        """The whole file."""
        path = self.path_for(key)
        return await asyncio.to_thread(_read_file, path, key)

    async def iter_bytes(self, key: str, chunk_size: int = _COPY_CHUNK) -> AsyncIterator[bytes]:
        """Stream the file in chunks, each read in a worker thread."""
        path = self.path_for(key)
        handle = await asyncio.to_thread(_open_existing, path, key)
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    async def exists(self, key: str) -> bool:
        """Whether a regular file is stored under ``key``."""
        path = self.path_for(key)
        return await asyncio.to_thread(path.is_file)

    async def size(self, key: str) -> int:
        """The file's size in bytes."""
        path = self.path_for(key)
        return await asyncio.to_thread(_file_size, path, key)

    async def delete(self, key: str) -> bool:
        """Remove the file and any folders it leaves empty; True if it existed."""
        path = self.path_for(key)
        return await asyncio.to_thread(self._delete_sync, path)

    async def list_older_than(self, cutoff: float, prefix: str = "") -> list[str]:
        """Keys under the folder key ``prefix`` ("" for all) whose mtime is before ``cutoff``."""
        start = self.path_for(prefix) if prefix else self._root
        return await asyncio.to_thread(self._list_older_sync, start, cutoff)

    async def remove_stale_temp_files(self, cutoff: float) -> list[Path]:
        """Delete the temp files of writes a killed process left, untouched since ``cutoff`` (unix time).

        A write in progress keeps its temp file's mtime fresh, so an old one belongs to no live writer.
        """
        return await asyncio.to_thread(self._remove_stale_temp_sync, cutoff)

    def _delete_sync(self, path: Path) -> bool:
        """Unlink, then prune empty parents so retention does not leave a forest of empty folders."""
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        self._prune_empty_parents(path.parent)
        return True

    def _prune_empty_parents(self, folder: Path) -> None:
        """Remove empty folders from ``folder`` up to (not including) the root."""
        while folder != self._root and folder.is_relative_to(self._root):
            try:
                folder.rmdir()
            except OSError:  # not empty (or raced by a concurrent write): stop here
                return
            folder = folder.parent

    def _remove_stale_temp_sync(self, cutoff: float) -> list[Path]:
        """Unlink old temp files, then prune the folders they leave empty."""
        removed: list[Path] = []
        for folder, _, filenames in os.walk(self._root, followlinks=False):
            for name in filenames:
                path = Path(folder, name)
                if not _TEMP_NAME.fullmatch(name) or path.is_symlink():
                    continue
                with contextlib.suppress(FileNotFoundError):  # renamed into place or removed meanwhile
                    if path.lstat().st_mtime < cutoff:
                        path.unlink()
                        removed.append(path)
        for path in removed:
            self._prune_empty_parents(path.parent)
        return removed

    def _list_older_sync(self, start: Path, cutoff: float) -> list[str]:
        """Walk without following links; temporary files are skipped since no key starts with a dot."""
        keys: list[str] = []
        for path in _walk_files(start):
            with contextlib.suppress(FileNotFoundError):  # deleted while we walked
                if path.lstat().st_mtime < cutoff:
                    keys.append(path.relative_to(self._root).as_posix())
        return sorted(keys)


def _walk_files(start: Path) -> Iterator[Path]:
    """Regular, non-hidden files below ``start``; symlinks are neither followed nor listed."""
    for folder, dirnames, filenames in os.walk(start, followlinks=False):
        dirnames[:] = [name for name in dirnames if not name.startswith(".")]
        for name in filenames:
            path = Path(folder, name)
            if not name.startswith(".") and not path.is_symlink() and path.is_file():
                yield path


def _write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write to a temp file beside ``path``, fsync it, rename it over ``path``, then fsync the folder.

    Readers see the old file or the complete new one, never a partial one; after a crash the rename is
    either durable or absent. A failed write removes its temp file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_from(source: Path, out: BinaryIO) -> None:
    """Stream a source file into ``out`` without loading it whole."""
    with source.open("rb") as src:
        shutil.copyfileobj(src, out, _COPY_CHUNK)


def _open_existing(path: Path, key: str) -> BinaryIO:
    """Open for reading, translating a missing file into ObjectNotFoundError."""
    try:
        return path.open("rb")
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise ObjectNotFoundError(key) from exc


def _read_file(path: Path, key: str) -> bytes:
    """Read a whole file."""
    with _open_existing(path, key) as handle:
        return handle.read()


def _file_size(path: Path, key: str) -> int:
    """A regular file's size."""
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise ObjectNotFoundError(key) from exc
    if not stat.S_ISREG(info.st_mode):
        raise ObjectNotFoundError(key)
    return info.st_size
