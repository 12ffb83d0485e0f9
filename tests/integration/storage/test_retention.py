"""Retention on a real folder: only objects older than the cutoff (by mtime) are deleted."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from lipsync_api.storage.local import LocalStorage
from lipsync_api.storage.retention import delete_older_than, retention_cutoff, run_retention, sweep_interval

NOW = 1_700_000_000.0
DAY = 86_400.0


async def _put_aged(storage: LocalStorage, key: str, age_seconds: float) -> None:
    """Store an object and backdate its mtime."""
    await storage.put_bytes(key, key.encode())
    os.utime(storage.root / key, (NOW - age_seconds, NOW - age_seconds))


@pytest.mark.asyncio
async def test_deletes_only_objects_older_than_the_cutoff(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await _put_aged(storage, "outputs/org_1/gen_old/clip.mp4", 3 * DAY)
    await _put_aged(storage, "results/batch_old.jsonl", 2 * DAY)
    await _put_aged(storage, "outputs/org_1/gen_new/clip.mp4", 0.5 * DAY)
    await _put_aged(storage, "outputs/org_2/gen_edge/clip.mp4", DAY)  # exactly at the cutoff: kept
    deleted = await delete_older_than(storage, retention_cutoff(NOW, DAY))
    assert deleted == ["outputs/org_1/gen_old/clip.mp4", "results/batch_old.jsonl"]
    assert not await storage.exists("outputs/org_1/gen_old/clip.mp4")
    assert not (tmp_path / "outputs/org_1/gen_old").exists()
    assert not (tmp_path / "results").exists()
    assert await storage.exists("outputs/org_1/gen_new/clip.mp4")
    assert await storage.exists("outputs/org_2/gen_edge/clip.mp4")


@pytest.mark.asyncio
async def test_prefix_limits_the_sweep(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await _put_aged(storage, "outputs/org_1/gen/clip.mp4", 3 * DAY)
    await _put_aged(storage, "results/batch.jsonl", 3 * DAY)
    assert await delete_older_than(storage, NOW - DAY, prefix="outputs") == ["outputs/org_1/gen/clip.mp4"]
    assert await storage.exists("results/batch.jsonl")
    assert await delete_older_than(storage, NOW - DAY, prefix="nothing_here") == []


@pytest.mark.asyncio
async def test_temp_files_and_symlinks_are_never_listed(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "data")
    await _put_aged(storage, "outputs/a.mp4", 3 * DAY)
    temp = storage.root / "outputs" / ".b.mp4.x1y2.tmp"
    temp.write_bytes(b"half")
    os.utime(temp, (NOW - 3 * DAY, NOW - 3 * DAY))
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"keep me")
    os.utime(outside, (NOW - 3 * DAY, NOW - 3 * DAY))
    (storage.root / "outputs" / "link.txt").symlink_to(outside)
    assert await storage.list_older_than(NOW - DAY) == ["outputs/a.mp4"]
    assert await delete_older_than(storage, NOW - DAY) == ["outputs/a.mp4"]
    assert outside.read_bytes() == b"keep me"


@pytest.mark.asyncio
async def test_prefix_must_be_a_valid_key(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with pytest.raises(ValueError):
        await delete_older_than(storage, NOW, prefix="../")


def test_cutoff_refuses_a_non_positive_window() -> None:
    assert retention_cutoff(NOW, DAY) == NOW - DAY
    with pytest.raises(ValueError):
        retention_cutoff(NOW, 0)


@pytest.mark.asyncio
async def test_the_retention_loop_sweeps_until_stopped(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await _put_aged(storage, "outputs/org_1/gen_old/clip.mp4", 3 * DAY)
    await _put_aged(storage, "results/org_1/batch_old.jsonl", 3 * DAY)
    await _put_aged(storage, "outputs/org_1/gen_new/clip.mp4", 0.5 * DAY)
    stop = asyncio.Event()
    loop = asyncio.create_task(run_retention(storage, DAY, stop, clock=lambda: NOW))
    for _ in range(100):
        if not await storage.exists("results/org_1/batch_old.jsonl"):
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(loop, 5)
    assert not await storage.exists("outputs/org_1/gen_old/clip.mp4")
    assert not await storage.exists("results/org_1/batch_old.jsonl")
    assert await storage.exists("outputs/org_1/gen_new/clip.mp4")


def test_sweep_interval_is_a_quarter_window_within_bounds() -> None:
    assert sweep_interval(DAY * 30) == 3600.0
    assert sweep_interval(400.0) == 100.0
    assert sweep_interval(0.5) == 1.0


@pytest.mark.asyncio
async def test_the_retention_loop_leaves_other_prefixes_to_their_sweeps(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await _put_aged(storage, "assets/asset_1/video", 3 * DAY)
    cutoffs: list[float] = []

    async def sweep(cutoff: float) -> None:
        cutoffs.append(cutoff)

    stop = asyncio.Event()
    loop = asyncio.create_task(run_retention(storage, DAY, stop, sweeps=[sweep], clock=lambda: NOW))
    while not cutoffs:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(loop, 5)
    assert cutoffs[0] == NOW - DAY
    assert await storage.exists("assets/asset_1/video")
