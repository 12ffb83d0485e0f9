"""Resumable downloads into a folder, several at once.

A file is written under ``<name>.part`` and renamed to its name only once every byte the server announced
(``Content-Length``) has arrived, so a final name always holds a whole file. A manifest in the folder
(``.lipsync-downloads.json``) records what each final file is (the id of its source and its size); a rerun
skips a file whose manifest entry matches its source and its size on disk, and fetches everything else
again from the start (a leftover ``.part`` is overwritten).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import httpx

from lipsync_api.client.http import error_from

MANIFEST_NAME = ".lipsync-downloads.json"
PART_SUFFIX = ".part"
CHUNK = 1 << 20
MAX_STEM = 100  # room for a hash suffix, ".mp4" and ".part" within any file system's 255 bytes
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def output_name(request_id: str, suffix: str = ".mp4") -> str:
    """A file name for a batch line's output: the request_id when it is a safe name, else a cleaned one.

    A cleaned name (unsafe characters replaced by ``_``, leading dots dropped, shortened) gets a hash of
    the original id appended, so two ids never share a file.
    """
    cleaned = _UNSAFE.sub("_", request_id).lstrip(".")[:MAX_STEM]
    if cleaned == request_id and cleaned:
        return cleaned + suffix
    digest = hashlib.sha256(request_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned or 'output'}-{digest}{suffix}"


class Outcome(StrEnum):
    """What happened to one file."""

    DOWNLOADED = "downloaded"
    SKIPPED = "skipped"  # already complete
    FAILED = "failed"


@dataclass(frozen=True)
class Job:
    """One file to bring into the folder: its name there, the id of what it holds, a URL or a local path."""

    name: str
    source_id: str
    source: str


@dataclass(frozen=True)
class JobResult:
    """One job's outcome, with the file's size or the reason it failed."""

    job: Job
    outcome: Outcome
    size: int = 0
    error: str | None = None


class Interrupted(Exception):
    """The download was stopped on purpose."""


class Manifest:
    """What each complete file in the folder is; saved after every change (safe across threads)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / MANIFEST_NAME
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, object]] = {}
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(self.path.read_text())
            if isinstance(loaded, dict):
                self._entries = {k: v for k, v in loaded.items() if isinstance(v, dict)}

    def is_complete(self, name: str, source_id: str) -> bool:
        """Whether ``name`` exists and is the whole file of ``source_id``, as recorded."""
        with self._lock:
            entry = self._entries.get(name)
        if entry is None or entry.get("id") != source_id:
            return False
        try:
            return (self.folder / name).stat().st_size == entry.get("size")
        except OSError:
            return False

    def record(self, name: str, source_id: str, size: int) -> None:
        """Remember that ``name`` now holds the whole file of ``source_id``."""
        with self._lock:
            self._entries[name] = {"id": source_id, "size": size}
            temporary = self.path.with_name(self.path.name + PART_SUFFIX)
            temporary.write_text(json.dumps(self._entries, indent=1, sort_keys=True))
            os.replace(temporary, self.path)


def fetch_to(client: httpx.Client, url: str, dest: Path, stop: threading.Event | None = None) -> int:
    """Download ``url`` to ``dest`` through ``dest.part``; returns the size. Raises on an error status,
    a body shorter or longer than announced, or ``stop`` being set."""
    part = dest.with_name(dest.name + PART_SUFFIX)
    with client.stream("GET", url) as response:
        if response.is_error:
            response.read()
            raise error_from(response)
        received = 0
        with part.open("wb") as out:
            for chunk in response.iter_bytes(CHUNK):
                if stop is not None and stop.is_set():
                    raise Interrupted(f"{dest.name}: stopped")
                out.write(chunk)
                received += len(chunk)
        expected = response.headers.get("content-length")
        encoded = response.headers.get("content-encoding", "identity").lower() not in ("", "identity")
        if expected is not None and expected.isdigit() and not encoded and int(expected) != received:
            raise OSError(f"{dest.name}: received {received} of {expected} bytes")
    os.replace(part, dest)
    return dest.stat().st_size


def copy_to(source: Path, dest: Path) -> int:
    """Copy a local file to ``dest`` through ``dest.part``; returns the size."""
    part = dest.with_name(dest.name + PART_SUFFIX)
    shutil.copyfile(source, part)
    os.replace(part, dest)
    return dest.stat().st_size


def _run(
    job: Job, folder: Path, manifest: Manifest, client: httpx.Client | None, stop: threading.Event
) -> JobResult:
    if manifest.is_complete(job.name, job.source_id):
        return JobResult(job, Outcome.SKIPPED, (folder / job.name).stat().st_size)
    if stop.is_set():
        return JobResult(job, Outcome.FAILED, error="stopped")
    try:
        if job.source.startswith(("http://", "https://")):
            if client is None:
                raise ValueError("no HTTP client for a URL")
            size = fetch_to(client, job.source, folder / job.name, stop)
        else:
            size = copy_to(Path(job.source), folder / job.name)
    except Exception as error:  # one file's failure is reported with the others, never fatal
        return JobResult(job, Outcome.FAILED, error=str(error) or type(error).__name__)
    manifest.record(job.name, job.source_id, size)
    return JobResult(job, Outcome.DOWNLOADED, size)


def download_all(
    client: httpx.Client | None,
    jobs: Sequence[Job],
    folder: Path,
    *,
    workers: int = 4,
    on_result: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Bring every job's file into ``folder`` (``workers`` at a time), skipping complete ones.

    URLs are fetched with ``client``; any other source is a local file, copied.

    Ctrl-C stops the running downloads (their ``.part`` files stay, to be fetched again next time).
    """
    folder.mkdir(parents=True, exist_ok=True)
    manifest, stop = Manifest(folder), threading.Event()
    results: list[JobResult] = []
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="download")
    try:
        futures = [pool.submit(_run, job, folder, manifest, client, stop) for job in jobs]
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            if on_result is not None:
                on_result(result)
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    order = {job.name: index for index, job in enumerate(jobs)}
    return sorted(results, key=lambda result: order[result.job.name])
