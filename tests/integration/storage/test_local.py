"""LocalStorage on a real folder: round trips, atomic replacement, path escapes refused."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from lipsync_api.storage import ObjectNotFoundError, Storage
from lipsync_api.storage.local import LocalStorage

KEY = "outputs/org_1/gen_1/clip.mp4"


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "data")


def _hidden_files(root: Path) -> list[Path]:
    """Leftover temp files (every temp name starts with a dot)."""
    return [path for path in root.rglob(".*") if path.is_file()]


def test_local_storage_satisfies_the_protocol(storage: LocalStorage) -> None:
    assert isinstance(storage, Storage)


@pytest.mark.asyncio
async def test_put_bytes_round_trip(storage: LocalStorage) -> None:
    assert not await storage.exists(KEY)
    await storage.put_bytes(KEY, b"mp4 bytes")
    assert await storage.exists(KEY)
    assert await storage.size(KEY) == 9
    assert await storage.read_bytes(KEY) == b"mp4 bytes"
    assert storage.local_path(KEY) == storage.root / KEY
    assert (storage.root / KEY).read_bytes() == b"mp4 bytes"


@pytest.mark.asyncio
async def test_put_file_copies_and_streams_back(storage: LocalStorage, tmp_path: Path) -> None:
    source = tmp_path / "render.mp4"
    payload = os.urandom(3 * (1 << 20) + 17)
    source.write_bytes(payload)
    await storage.put_file(KEY, source)
    assert source.exists()  # a copy, not a move
    chunks = [chunk async for chunk in storage.iter_bytes(KEY, chunk_size=1 << 20)]
    assert b"".join(chunks) == payload
    assert len(chunks) == 4


@pytest.mark.asyncio
async def test_delete_is_idempotent_and_prunes_empty_folders(storage: LocalStorage) -> None:
    await storage.put_bytes(KEY, b"x")
    await storage.put_bytes("outputs/org_1/other.txt", b"y")
    assert await storage.delete(KEY) is True
    assert await storage.delete(KEY) is False
    assert not (storage.root / "outputs/org_1/gen_1").exists()
    assert (storage.root / "outputs/org_1/other.txt").exists()
    assert storage.root.exists()


@pytest.mark.asyncio
async def test_missing_objects_raise_object_not_found(storage: LocalStorage) -> None:
    with pytest.raises(ObjectNotFoundError):
        await storage.size(KEY)
    with pytest.raises(ObjectNotFoundError):
        await storage.read_bytes(KEY)
    with pytest.raises(ObjectNotFoundError):
        _ = [chunk async for chunk in storage.iter_bytes(KEY)]


@pytest.mark.asyncio
async def test_a_folder_is_not_an_object(storage: LocalStorage) -> None:
    await storage.put_bytes(KEY, b"x")
    assert not await storage.exists("outputs/org_1")
    with pytest.raises(ObjectNotFoundError):
        await storage.size("outputs/org_1")


@pytest.mark.asyncio
async def test_final_name_appears_only_when_the_file_is_complete(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = b"old" * 1000, os.urandom(5 * (1 << 20))
    await storage.put_bytes(KEY, old)
    seen_at_fsync: list[tuple[bytes, list[int]]] = []
    real_fsync = os.fsync

    def spying_fsync(fd: int) -> None:
        # At the file's fsync the data is all written, yet the final name must still show the old file.
        if os.fstat(fd).st_size == len(new):
            temps = [path.stat().st_size for path in _hidden_files(storage.root)]
            seen_at_fsync.append(((storage.root / KEY).read_bytes(), temps))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spying_fsync)
    await storage.put_bytes(KEY, new)
    assert seen_at_fsync == [(old, [len(new)])]
    assert await storage.read_bytes(KEY) == new
    assert _hidden_files(storage.root) == []


@pytest.mark.asyncio
async def test_concurrent_reader_never_sees_a_partial_file(storage: LocalStorage) -> None:
    versions = [bytes([i]) * (4 * (1 << 20)) for i in range(4)]
    await storage.put_bytes(KEY, versions[0])
    path, stop, bad_reads = storage.root / KEY, threading.Event(), []

    def reader() -> None:
        while not stop.is_set():
            data = path.read_bytes()
            if data not in versions:
                bad_reads.append(len(data))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in versions[1:] * 3:
            await storage.put_bytes(KEY, version)
    finally:
        stop.set()
        thread.join()
    assert bad_reads == []


@pytest.mark.asyncio
async def test_failed_write_keeps_the_old_file_and_leaves_no_temp(
    storage: LocalStorage, tmp_path: Path
) -> None:
    await storage.put_bytes(KEY, b"old")
    with pytest.raises(FileNotFoundError):
        await storage.put_file(KEY, tmp_path / "missing.mp4")
    assert await storage.read_bytes(KEY) == b"old"
    assert _hidden_files(storage.root) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("key", ["../escape.txt", "/etc/passwd", "a/../../x", "a\\..\\x", "a//b", ""])
async def test_bad_keys_are_refused_by_every_method(storage: LocalStorage, key: str) -> None:
    calls = [
        storage.put_bytes(key, b"x"),
        storage.read_bytes(key),
        storage.exists(key),
        storage.size(key),
        storage.delete(key),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            await call
    assert not (storage.root.parent / "escape.txt").exists()


@pytest.mark.asyncio
async def test_symlinked_folder_leading_outside_root_is_refused(
    storage: LocalStorage, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    (storage.root / "outputs").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="outside"):
        await storage.read_bytes("outputs/secret.txt")
    with pytest.raises(ValueError, match="outside"):
        await storage.put_bytes("outputs/new.txt", b"x")
    assert not (outside / "new.txt").exists()


@pytest.mark.asyncio
async def test_symlinked_file_leading_outside_root_is_refused(storage: LocalStorage, tmp_path: Path) -> None:
    target = tmp_path / "secret.txt"
    target.write_bytes(b"secret")
    (storage.root / "link.txt").symlink_to(target)
    with pytest.raises(ValueError, match="outside"):
        await storage.exists("link.txt")
    with pytest.raises(ValueError, match="outside"):
        await storage.delete("link.txt")
    assert target.read_bytes() == b"secret"


@pytest.mark.asyncio
async def test_concurrent_writers_to_one_key_leave_one_complete_version(storage: LocalStorage) -> None:
    versions = [bytes([i]) * (1 << 20) for i in range(8)]
    await asyncio.gather(*(storage.put_bytes(KEY, version) for version in versions))
    assert await storage.read_bytes(KEY) in versions
    assert _hidden_files(storage.root) == []


@pytest.mark.asyncio
async def test_stale_temp_files_of_killed_writes_are_removed(storage: LocalStorage) -> None:
    await storage.put_bytes(KEY, b"kept")
    folder = storage.path_for(KEY).parent
    stale, fresh = folder / ".clip.mp4.abc123.tmp", folder.parent / "gen_2" / ".clip.mp4.def456.tmp"
    fresh.parent.mkdir()
    stale.write_bytes(b"half")
    fresh.write_bytes(b"writing")
    os.utime(stale, (1000.0, 1000.0))
    removed = await storage.remove_stale_temp_files(cutoff=2000.0)
    assert removed == [stale]
    assert not stale.exists() and fresh.exists() and await storage.read_bytes(KEY) == b"kept"
